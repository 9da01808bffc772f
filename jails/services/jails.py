"""Reading jails from fail2ban: the server overview, one jail's settings, its bans.

Every function takes the RuntimeState first and talks to fail2ban only through the
client held in it. Version-dependent commands are sent only after the capability probe
has shown that the server supports them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jails.fail2ban import (
    Connection,
    Fail2banError,
    InvalidArgument,
    UnknownJail,
    UnsupportedCommand,
)
from jails.fail2ban.commands import PROBE_JAIL
from jails.fail2ban.validation import JAIL_NAME_RE, validate_jail_name
from jails.state import Capabilities, RuntimeState

logger = logging.getLogger(__name__)

NOT_REPORTED = None  # shown as "not reported by this fail2ban version"


# Results -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JailSummary:
    """One row of the jail list: counters from `status J short`."""

    name: str
    log_sources: tuple[str, ...]
    backend: str | None
    currently_failed: int
    total_failed: int
    currently_banned: int
    total_banned: int
    idle: bool | None


@dataclass(frozen=True)
class Overview:
    """The whole server at a glance: what the status bar and the jail list show."""

    version: str
    jails: tuple[JailSummary, ...]
    skipped_jail_names: tuple[str, ...] = ()

    @property
    def jail_count(self) -> int:
        return len(self.jails)

    @property
    def currently_banned(self) -> int:
        return sum(j.currently_banned for j in self.jails)

    @property
    def total_failed(self) -> int:
        return sum(j.total_failed for j in self.jails)

    @property
    def total_banned(self) -> int:
        return sum(j.total_banned for j in self.jails)


@dataclass(frozen=True)
class BanTimeIncrement:
    """The jail's ban-time escalation settings (`bantime.*`)."""

    enabled: bool
    factor: str | None
    formula: str | None
    multipliers: str | None
    maxtime: str | None
    rndtime: str | None
    overalljails: bool | None


@dataclass(frozen=True)
class JailDetail:
    """A jail's settings and counters."""

    summary: JailSummary
    bantime: int
    findtime: int
    maxretry: int
    ignore_list: tuple[str, ...]
    failregex: tuple[str, ...]
    ignoreregex: tuple[str, ...]
    actions: tuple[str, ...]
    usedns: str
    ignoreself: bool
    bantime_increment: BanTimeIncrement

    @property
    def name(self) -> str:
        return self.summary.name


@dataclass(frozen=True)
class BanEntry:
    """One currently banned address of a jail, with times as aware datetimes."""

    ip: str
    banned_at: datetime
    bantime: int
    ends_at: datetime | None  # None: permanent

    def seconds_left(self, now: datetime) -> int | None:
        if self.ends_at is None:
            return None
        return max(int((self.ends_at - now).total_seconds()), 0)


# Capabilities ------------------------------------------------------------------------------------
def _supported(conn: Connection, *command: str) -> bool:
    try:
        conn.send(*command)
    except UnsupportedCommand:
        return False
    except UnknownJail:
        return True  # the command exists: it only objected to the probe jail
    except Fail2banError as exc:
        # Anything else (e.g. `status --all` read as a jail named --all) means: not usable.
        logger.debug("capability probe %r: %s", command, exc)
        return False
    return True


def capabilities_get(state: RuntimeState) -> Capabilities:
    """What this fail2ban supports; probed once per process, under a lock."""
    service = state.jail_service
    cached = service.capabilities
    if cached is not None:
        return cached
    with service.probe_lock:
        if service.capabilities is not None:
            return service.capabilities
        with service.client.connection() as conn:
            version = str(conn.send("version"))
            # 1.0.2 reads `status --all` as a jail named "--all" (UnknownJail): unsupported.
            try:
                conn.send("status", "--all")
                status_all = True
            except Fail2banError:
                status_all = False
            capabilities = Capabilities(
                version=version,
                get_backend=_supported(conn, "get", PROBE_JAIL, "backend"),
                get_idle=_supported(conn, "get", PROBE_JAIL, "idle"),
                stats=_supported(conn, "stats"),
                status_all=status_all,
            )
        service.probes_run += 1
        service.capabilities = capabilities
        return capabilities


# Overview ----------------------------------------------------------------------------------------
def _pairs(value: Any) -> dict[str, Any]:
    """fail2ban's status replies are lists of (label, value) pairs."""
    try:
        return {str(k): v for k, v in value}
    except (TypeError, ValueError):
        return {}


def _jail_names(conn: Connection) -> tuple[list[str], list[str]]:
    status = _pairs(conn.send("status"))
    names = [n.strip() for n in str(status.get("Jail list", "")).split(",") if n.strip()]
    valid = [n for n in names if JAIL_NAME_RE.fullmatch(n)]
    skipped = [n for n in names if not JAIL_NAME_RE.fullmatch(n)]
    return valid, skipped


def _summary(conn: Connection, name: str, capabilities: Capabilities) -> JailSummary:
    status = _pairs(conn.send("status", name, "short"))
    filter_part = _pairs(status.get("Filter", []))
    actions_part = _pairs(status.get("Actions", []))
    sources = filter_part.get("File list") or filter_part.get("Journal matches") or []
    if isinstance(sources, str):
        sources = [sources]
    backend = str(conn.send("get", name, "backend")) if capabilities.get_backend else None
    idle = _as_bool(conn.send("get", name, "idle")) if capabilities.get_idle else None
    return JailSummary(
        name=name,
        log_sources=tuple(str(s) for s in sources),
        backend=backend,
        currently_failed=int(filter_part.get("Currently failed", 0)),
        total_failed=int(filter_part.get("Total failed", 0)),
        currently_banned=int(actions_part.get("Currently banned", 0)),
        total_banned=int(actions_part.get("Total banned", 0)),
        idle=idle,
    )


def overview_get(state: RuntimeState) -> Overview:
    """Every jail with its counters, over one connection (`status`, then `status J short`)."""
    capabilities = capabilities_get(state)
    with state.jail_service.client.connection() as conn:
        names, skipped = _jail_names(conn)
        summaries = []
        for name in names:
            try:
                summaries.append(_summary(conn, name, capabilities))
            except UnknownJail:
                continue  # removed between `status` and `status J`
    return Overview(
        version=capabilities.version, jails=tuple(summaries), skipped_jail_names=tuple(skipped)
    )


def jail_names_list(state: RuntimeState) -> list[str]:
    """The names of the live jails (the only names any action may use)."""
    with state.jail_service.client.connection() as conn:
        return _jail_names(conn)[0]


def jail_require(state: RuntimeState, *, name: str) -> str:
    """Return `name` if it is a valid name of a live jail; else InvalidArgument/UnknownJail."""
    validate_jail_name(name)
    if name not in jail_names_list(state):
        raise UnknownJail(["status", name], name)
    return name


# One jail ----------------------------------------------------------------------------------------
def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _as_int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def jail_detail_get(state: RuntimeState, *, name: str) -> JailDetail:
    """A jail's settings and counters (raises UnknownJail for a jail fail2ban lacks)."""
    validate_jail_name(name)
    capabilities = capabilities_get(state)
    with state.jail_service.client.connection() as conn:
        summary = _summary(conn, name, capabilities)

        def get(key: str) -> Any:
            return conn.send("get", name, key)

        increment = BanTimeIncrement(
            enabled=_as_bool(get("bantime.increment")),
            factor=_optional_str(get("bantime.factor")),
            formula=_optional_str(get("bantime.formula")),
            multipliers=_optional_str(get("bantime.multipliers")),
            maxtime=_optional_str(get("bantime.maxtime")),
            rndtime=_optional_str(get("bantime.rndtime")),
            overalljails=_as_bool(get("bantime.overalljails")),
        )
        return JailDetail(
            summary=summary,
            bantime=_as_int(get("bantime")),
            findtime=_as_int(get("findtime")),
            maxretry=_as_int(get("maxretry")),
            ignore_list=_strings(get("ignoreip")),
            failregex=_strings(get("failregex")),
            ignoreregex=_strings(get("ignoreregex")),
            actions=_strings(get("actions")),
            usedns=str(get("usedns")),
            ignoreself=_as_bool(get("ignoreself")),
            bantime_increment=increment,
        )


def _parse_ban_line(line: str, state: RuntimeState) -> BanEntry | None:
    # '203.0.113.7 \t2026-11-28 21:50:59 + 600 = 2026-11-28 22:00:59' in server-local time.
    try:
        ip, rest = line.split("\t", 1)
        start_text, rest = rest.split(" + ", 1)
        bantime_text, end_text = rest.split(" = ", 1)
        zone = state.jail_service.server_time_zone
        banned_at = datetime.fromisoformat(start_text.strip()).replace(tzinfo=zone)
        bantime = int(bantime_text)
        ends_at = (
            None if bantime < 0 else datetime.fromisoformat(end_text.strip()).replace(tzinfo=zone)
        )
    except ValueError:
        logger.warning("unreadable ban line from fail2ban: %r", line[:200])
        return None
    return BanEntry(ip=ip.strip(), banned_at=banned_at, bantime=bantime, ends_at=ends_at)


def jail_bans_list(state: RuntimeState, *, name: str, search: str = "") -> list[BanEntry]:
    """The jail's current bans (oldest end first), optionally filtered by a substring."""
    validate_jail_name(name)
    needle = search.strip().lower()
    if len(needle) > 64:
        raise InvalidArgument("search text is too long")
    lines: Sequence[Any] = state.jail_service.client.send("get", name, "banip", "--with-time")
    entries = []
    for line in lines:
        text = str(line)
        if needle and needle not in text.split("\t", 1)[0].lower():
            continue
        entry = _parse_ban_line(text, state)
        if entry is not None:
            entries.append(entry)
    return entries
