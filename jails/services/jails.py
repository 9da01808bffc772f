"""Reading jails from fail2ban: the server overview, one jail's settings, its bans.

Every function takes the RuntimeState first and talks to fail2ban only through the
client held in it. Version-dependent commands are sent only after the capability probe
has shown that the server supports them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, overload
from zoneinfo import ZoneInfo

from jails.agent.link import CommandChannel
from jails.fail2ban import (
    Fail2banError,
    InvalidArgument,
    UnknownJail,
    UnsupportedCommand,
)
from jails.fail2ban.commands import PROBE_JAIL
from jails.fail2ban.validation import JAIL_NAME_RE, validate_jail_name
from jails.state import Capabilities, JailServiceState, RuntimeState

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
    # Not read from fail2ban while the escalation is off: they mean nothing then.
    factor: str | None = None
    formula: str | None = None
    multipliers: str | None = None
    maxtime: str | None = None
    rndtime: str | None = None
    overalljails: bool | None = None


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
class JailCounters:
    """What the jail page's counters poll shows: one `status J short`, nothing more."""

    name: str
    currently_failed: int
    total_failed: int
    currently_banned: int
    total_banned: int


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
def _supported(conn: CommandChannel, *command: str) -> bool:
    try:
        conn.send(*command)
    except UnsupportedCommand:
        return False
    except UnknownJail:
        return True  # the command exists: it only objected to the probe jail
    except Fail2banError as exc:
        logger.debug("capability probe %r: %s", command, exc)
        return False
    return True


def _probe(conn: CommandChannel) -> Capabilities:
    version = str(conn.send("version"))
    # 1.0.2 reads `status --all short` as a jail named "--all" (UnknownJail): unsupported.
    try:
        conn.send("status", "--all", "short")
        status_all = True
    except Fail2banError:
        status_all = False
    return Capabilities(
        version=version,
        get_backend=_supported(conn, "get", PROBE_JAIL, "backend"),
        get_idle=_supported(conn, "get", PROBE_JAIL, "idle"),
        stats=_supported(conn, "stats"),
        status_all=status_all,
    )


def capabilities_get(state: RuntimeState) -> Capabilities:
    """What this fail2ban supports; probed once per server (again after a restart), locked."""
    return _capabilities(state.snapshot.jail_service)


def _capabilities(service: JailServiceState) -> Capabilities:
    """The capabilities of `service`'s own server, from its cache or probed over its client.

    Callers that go on to use the client pass the JailServiceState they took from one
    snapshot read: the capabilities and the client then belong to the same server even
    when the settings swap the snapshot meanwhile.
    A restarted fail2ban (perhaps upgraded: another version, other commands) re-creates
    its socket, so the cache is keyed on the socket file's identity: one stat() per call,
    no extra round trip on the hot path.
    """
    endpoint = service.client.endpoint_identity()
    cached = service.capabilities
    if cached is not None and service.capabilities_endpoint == endpoint:
        return cached
    with service.probe_lock:
        # Read again under the lock: an agent link knows the endpoint only after a reply, so
        # threads that read None before the first probe ended would each probe once more.
        endpoint = service.client.endpoint_identity()
        if service.capabilities is not None and service.capabilities_endpoint == endpoint:
            return service.capabilities
        with service.client.connection() as conn:
            capabilities = _probe(conn)
        service.probes_run += 1
        service.capabilities = capabilities
        # Read again: an agent link learns the endpoint from its first reply (the probe's).
        service.capabilities_endpoint = service.client.endpoint_identity()
        return capabilities


def _capabilities_forget(service: JailServiceState, *, stale: Capabilities) -> None:
    # A command the cache called supported was refused: the server changed under the same
    # socket file (a case the stat() key cannot see); the next call probes again.
    with service.probe_lock:
        if service.capabilities is stale:
            service.capabilities = None


# Overview ----------------------------------------------------------------------------------------
def _pairs(value: Any) -> dict[str, Any]:
    """fail2ban's status replies are lists of (label, value) pairs."""
    try:
        return {str(k): v for k, v in value}
    except (TypeError, ValueError):
        return {}


def _split_jail_list(status: dict[str, Any]) -> tuple[list[str], list[str]]:
    names = [n.strip() for n in str(status.get("Jail list", "")).split(",") if n.strip()]
    valid = [n for n in names if JAIL_NAME_RE.fullmatch(n)]
    skipped = [n for n in names if not JAIL_NAME_RE.fullmatch(n)]
    return valid, skipped


def _jail_names(conn: CommandChannel) -> tuple[list[str], list[str]]:
    return _split_jail_list(_pairs(conn.send("status")))


def _stats(conn: CommandChannel) -> dict[str, Any]:
    """fail2ban 1.1's `stats`: {jail: [backend, (failed now, total), (banned now, total)]}."""
    reply = conn.send("stats")
    return {str(k): v for k, v in reply.items()} if isinstance(reply, dict) else {}


def _stats_backend(entry: Any) -> str | None:
    if isinstance(entry, list | tuple) and entry and isinstance(entry[0], str):
        return entry[0]
    return NOT_REPORTED


def _summary_from_status(
    name: str, status: dict[str, Any], *, backend: str | None, idle: bool | None
) -> JailSummary:
    filter_part = _pairs(status.get("Filter", []))
    actions_part = _pairs(status.get("Actions", []))
    sources = filter_part.get("File list") or filter_part.get("Journal matches") or []
    if isinstance(sources, str):
        sources = [sources]
    return JailSummary(
        name=name,
        log_sources=tuple(str(s) for s in sources),
        backend=backend,
        currently_failed=_as_int(filter_part.get("Currently failed", 0)),
        total_failed=_as_int(filter_part.get("Total failed", 0)),
        currently_banned=_as_int(actions_part.get("Currently banned", 0)),
        total_banned=_as_int(actions_part.get("Total banned", 0)),
        idle=idle,
    )


def _overview_each(
    conn: CommandChannel, capabilities: Capabilities
) -> tuple[list[JailSummary], list[str]]:
    # fail2ban 1.0: `status`, then every jail's `status J short` (and the per-jail gets the
    # version answers) in one batch: two round trips whatever the number of jails, which
    # matters most through the host agent, where each round trip crosses two sockets.
    names, skipped = _jail_names(conn)
    asked = ["status"] + ["backend"] * capabilities.get_backend + ["idle"] * capabilities.get_idle
    commands = [
        ("status", name, "short") if what == "status" else ("get", name, what)
        for name in names
        for what in asked
    ]
    outcomes = conn.send_batch_outcomes(commands)
    stats = _stats(conn) if capabilities.stats and not capabilities.get_backend else {}
    summaries = []
    width = len(asked)
    for index, name in enumerate(names):
        answers = outcomes[index * width : (index + 1) * width]
        if any(isinstance(answer, UnknownJail) for answer in answers):
            continue  # removed between `status` and `status J`
        refusal = next((a for a in answers if isinstance(a, Fail2banError)), None)
        if refusal is not None:
            raise refusal
        status, rest = _pairs(answers[0]), list(answers[1:])
        backend = NOT_REPORTED
        if capabilities.get_backend:
            backend = str(rest.pop(0))
        elif capabilities.stats:
            backend = _stats_backend(stats.get(name))
        idle = _as_bool(rest.pop(0)) if capabilities.get_idle else None
        summaries.append(_summary_from_status(name, status, backend=backend, idle=idle))
    return summaries, skipped


def _overview_all(
    conn: CommandChannel, capabilities: Capabilities
) -> tuple[list[JailSummary], list[str]]:
    # fail2ban 1.1: `status --all short` holds the jail list and every jail's counters
    # ([(label, value)..., {jail: status}]); `stats` adds each backend. Two round trips.
    reply = conn.send("status", "--all", "short")
    header: dict[str, Any] = {}
    per_jail: dict[str, Any] = {}
    for item in reply if isinstance(reply, list | tuple) else ():
        if isinstance(item, dict):
            per_jail = {str(k): v for k, v in item.items()}
        elif isinstance(item, list | tuple) and len(item) == 2:
            header[str(item[0])] = item[1]
    names, skipped = _split_jail_list(header)
    stats = _stats(conn) if capabilities.stats else {}
    summaries = [
        _summary_from_status(
            name,
            _pairs(per_jail[name]),
            backend=_stats_backend(stats.get(name)),
            idle=None,  # no version reports it (`get J idle` is refused by 1.0 and 1.1)
        )
        for name in names
        if name in per_jail
    ]
    return summaries, skipped


def overview_get(state: RuntimeState) -> Overview:
    """Every jail with its counters, over one connection (1.1: two round trips; 1.0: 1 + N)."""
    service = state.snapshot.jail_service  # once: client and capabilities of one server
    capabilities = _capabilities(service)
    with service.client.connection() as conn:
        if capabilities.status_all and not capabilities.get_idle:
            try:
                summaries, skipped = _overview_all(conn, capabilities)
            except UnsupportedCommand:
                _capabilities_forget(service, stale=capabilities)
                summaries, skipped = _overview_each(conn, replace(capabilities, stats=False))
        else:
            summaries, skipped = _overview_each(conn, capabilities)
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


_DETAIL_KEYS = (
    "bantime.increment",
    "bantime",
    "findtime",
    "maxretry",
    "ignoreip",
    "failregex",
    "ignoreregex",
    "actions",
    "usedns",
    "ignoreself",
)
_INCREMENT_KEYS = (
    "bantime.factor",
    "bantime.formula",
    "bantime.multipliers",
    "bantime.maxtime",
    "bantime.rndtime",
    "bantime.overalljails",
)


def _detail(
    conn: CommandChannel,
    name: str,
    capabilities: Capabilities,
    *,
    also: Sequence[Sequence[str]] = (),
) -> tuple[JailDetail, list[Any]]:
    """The jail's detail in one batch (plus the `also` commands, whose answers are returned).

    A dozen settings one round trip each cost more than the page's floor; fail2ban answers
    a batch on one connection in order, so the page pays one round trip (two when the
    ban-time escalation is on: its six parameters mean nothing while it is off).
    """
    commands: list[Sequence[str]] = [("status", name, "short")]
    if capabilities.get_backend:
        commands.append(("get", name, "backend"))
    elif capabilities.stats:
        commands.append(("stats",))
    if capabilities.get_idle:
        commands.append(("get", name, "idle"))
    commands += [("get", name, key) for key in _DETAIL_KEYS]
    commands += list(also)
    answers = iter(conn.send_batch(commands))
    status = _pairs(next(answers))
    backend = NOT_REPORTED
    if capabilities.get_backend:
        backend = str(next(answers))
    elif capabilities.stats:
        reply = next(answers)
        stats = {str(k): v for k, v in reply.items()} if isinstance(reply, dict) else {}
        backend = _stats_backend(stats.get(name))
    idle = _as_bool(next(answers)) if capabilities.get_idle else None
    got = {key: next(answers) for key in _DETAIL_KEYS}
    extra = list(answers)
    enabled = _as_bool(got["bantime.increment"])
    if enabled:
        more = dict(
            zip(
                _INCREMENT_KEYS,
                conn.send_batch([("get", name, key) for key in _INCREMENT_KEYS]),
                strict=True,
            )
        )
        increment = BanTimeIncrement(
            enabled=True,
            factor=_optional_str(more["bantime.factor"]),
            formula=_optional_str(more["bantime.formula"]),
            multipliers=_optional_str(more["bantime.multipliers"]),
            maxtime=_optional_str(more["bantime.maxtime"]),
            rndtime=_optional_str(more["bantime.rndtime"]),
            overalljails=_as_bool(more["bantime.overalljails"]),
        )
    else:
        increment = BanTimeIncrement(enabled=False)
    detail = JailDetail(
        summary=_summary_from_status(name, status, backend=backend, idle=idle),
        bantime=_as_int(got["bantime"]),
        findtime=_as_int(got["findtime"]),
        maxretry=_as_int(got["maxretry"]),
        ignore_list=_strings(got["ignoreip"]),
        failregex=_strings(got["failregex"]),
        ignoreregex=_strings(got["ignoreregex"]),
        actions=_strings(got["actions"]),
        usedns=str(got["usedns"]),
        ignoreself=_as_bool(got["ignoreself"]),
        bantime_increment=increment,
    )
    return detail, extra


def jail_detail_get(state: RuntimeState, *, name: str) -> JailDetail:
    """A jail's settings and counters (raises UnknownJail for a jail fail2ban lacks)."""
    validate_jail_name(name)
    service = state.snapshot.jail_service  # once: client and capabilities of one server
    capabilities = _capabilities(service)
    with service.client.connection() as conn:
        return _detail(conn, name, capabilities)[0]


def jail_page_get(
    state: RuntimeState, *, name: str, search: str = ""
) -> tuple[JailDetail, BanLines]:
    """The jail page's data: settings, counters and the bans, over one connection."""
    validate_jail_name(name)
    needle = _needle(search)
    service = state.snapshot.jail_service  # once: client and capabilities of one server
    capabilities = _capabilities(service)
    with service.client.connection() as conn:
        detail, (lines,) = _detail(
            conn, name, capabilities, also=[("get", name, "banip", "--with-time")]
        )
    return detail, BanLines(service.server_time_zone, lines, needle)


def jail_counters_get(state: RuntimeState, *, name: str) -> JailCounters:
    """The counters the jail page polls: only `status J short` (fail2ban is single-threaded)."""
    validate_jail_name(name)
    with state.jail_service.client.connection() as conn:
        status = _pairs(conn.send("status", name, "short"))
    filter_part = _pairs(status.get("Filter", []))
    actions_part = _pairs(status.get("Actions", []))
    return JailCounters(
        name=name,
        currently_failed=_as_int(filter_part.get("Currently failed")),
        total_failed=_as_int(filter_part.get("Total failed")),
        currently_banned=_as_int(actions_part.get("Currently banned")),
        total_banned=_as_int(actions_part.get("Total banned")),
    )


def _parse_ban_line(line: str, zone: ZoneInfo) -> BanEntry | None:
    # '203.0.113.7 \t2026-11-28 21:50:59 + 600 = 2026-11-28 22:00:59' in server-local time.
    try:
        ip, rest = line.split("\t", 1)
        start_text, rest = rest.split(" + ", 1)
        bantime_text, end_text = rest.split(" = ", 1)
        banned_at = datetime.fromisoformat(start_text.strip()).replace(tzinfo=zone)
        bantime = int(bantime_text)
        ends_at = (
            None if bantime < 0 else datetime.fromisoformat(end_text.strip()).replace(tzinfo=zone)
        )
    except ValueError:
        logger.warning("unreadable ban line from fail2ban: %r", line[:200])
        return None
    return BanEntry(ip=ip.strip(), banned_at=banned_at, bantime=bantime, ends_at=ends_at)


def _needle(search: str) -> str:
    needle = search.strip().lower()
    if len(needle) > 64:
        raise InvalidArgument("search text is too long")
    return needle


class BanLines(Sequence[BanEntry]):
    """A jail's bans as fail2ban listed them, parsed only when a slice is read.

    Parsing a line costs more than fail2ban took to send it (10 000 bans: about 130 ms
    of 350), and a page shows one page of them: the paginator takes len() and one slice.
    The search filters on the address text before any parsing. An unreadable line is
    logged and left out of the slice it falls in. The server's time zone is taken when the
    lines are (the slice is parsed later, perhaps after the settings changed).
    """

    def __init__(self, zone: ZoneInfo, lines: Sequence[Any], needle: str = "") -> None:
        self._zone = zone
        texts = [str(line) for line in lines or ()]
        if needle:
            texts = [t for t in texts if needle in t.split("\t", 1)[0].lower()]
        self._lines = texts

    def __len__(self) -> int:
        return len(self._lines)

    @overload
    def __getitem__(self, index: int) -> BanEntry: ...
    @overload
    def __getitem__(self, index: slice) -> list[BanEntry]: ...
    def __getitem__(self, index: int | slice) -> BanEntry | list[BanEntry]:
        if isinstance(index, slice):
            parsed = (_parse_ban_line(line, self._zone) for line in self._lines[index])
            return [entry for entry in parsed if entry is not None]
        entry = _parse_ban_line(self._lines[index], self._zone)
        if entry is None:
            raise ValueError(f"unreadable ban line at {index}")
        return entry


def jail_bans_list(state: RuntimeState, *, name: str, search: str = "") -> list[BanEntry]:
    """The jail's current bans (oldest end first), optionally filtered by a substring."""
    validate_jail_name(name)
    needle = _needle(search)
    service = state.snapshot.jail_service  # once: the lines' server and its time zone
    lines: Sequence[Any] = service.client.send("get", name, "banip", "--with-time")
    return BanLines(service.server_time_zone, lines, needle)[:]
