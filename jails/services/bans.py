"""Banning and unbanning: one address or a hundred thousand; and where an address is banned.

Bulk lists go to fail2ban in batches (many addresses per ``set J banip``), never one
command per address. Before anything is sent, every line is validated and normalised,
checked against what the jail already bans, and held back unless the action is confirmed
if it is the acting person's own address, on the jail's ignore list, in a private or other
special-use range (loopback, link-local, CGNAT, multicast, reserved...: often the operators'
own network, seldom an attacker), or a network wider than the configured bound (/16 for
IPv4, /48 for IPv6 by default). ``/0`` is refused outright by the validation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.utils.translation import gettext_noop, pgettext_lazy

from jails.agent.link import CommandChannel
from jails.fail2ban import Fail2banError, InvalidArgument, UnknownJail
from jails.fail2ban.validation import IPAddress, IPNetwork, validate_jail_name
from jails.services import jails as jail_service
from jails.services.audit import Actor
from jails.services.operations import (
    AuditDraft,
    Entry,
    Translate,
    as_network,
    audited,
    english,
    entries_parse,
    entry_parse,
    operator_address,
    overlaps,
    special_use_reason,
    width_reason,
)
from jails.state import RuntimeState

logger = logging.getLogger(__name__)

# Addresses per `set J banip` / `set J unbanip`. fail2ban is single-threaded: a batch of
# 2000 keeps it busy for about 80 ms, so other clients are never held up for long, while
# the per-command round trip is paid once per 2000 addresses (see bench/bench_bulk_ban.py).
BATCH_SIZE = 2000


class LineStatus(StrEnum):
    BANNED = "banned"
    ALREADY_BANNED = "already banned"
    UNBANNED = "unbanned"
    NOT_BANNED = "not banned"
    INVALID = "invalid"
    SKIPPED = "skipped"


STATUS_ORDER = tuple(LineStatus)

# What a report (the bulk-ban page, `manage.py jails`) calls each line status; the values
# themselves are the --json's and the audit's, English.
LINE_STATUS_LABELS = {
    LineStatus.BANNED: pgettext_lazy("ban report: line status", "banned"),
    LineStatus.ALREADY_BANNED: pgettext_lazy("ban report: line status", "already banned"),
    LineStatus.UNBANNED: pgettext_lazy("ban report: line status", "unbanned"),
    LineStatus.NOT_BANNED: pgettext_lazy("ban report: line status", "not banned"),
    LineStatus.INVALID: pgettext_lazy("ban report: line status", "invalid"),
    LineStatus.SKIPPED: pgettext_lazy("ban report: line status", "skipped"),
}


@dataclass(frozen=True, slots=True)
class LineResult:
    """What happened to one input line."""

    number: int
    text: str
    status: LineStatus
    address: str = ""
    reason: str = ""


@dataclass
class ActionReport:
    """The per-line outcome of a ban or unban, with fail2ban's own count."""

    action: str  # "ban" or "unban"
    jail: str  # empty: every jail
    lines: list[LineResult] = field(default_factory=list)
    sent: int = 0  # addresses sent to fail2ban
    changed: int = 0  # what fail2ban reported as newly banned (or unbanned)
    batches: int = 0
    needs_confirmation: list[str] = field(default_factory=list)
    error: str = ""
    # The typed error behind `error`, so callers branch on its class (UnknownJail...), never
    # on the message's wording.
    failure: Fail2banError | None = field(default=None, compare=False)
    # unban in every jail: which jails held each address before
    jails_by_address: dict[str, list[str]] = field(default_factory=dict)

    def count(self, status: LineStatus) -> int:
        return sum(1 for line in self.lines if line.status is status)

    @property
    def counts(self) -> dict[str, int]:
        totals = dict.fromkeys(STATUS_ORDER, 0)
        for line in self.lines:
            totals[line.status] += 1
        return {str(status): n for status, n in totals.items() if n}

    @property
    def ok(self) -> bool:
        """No failure in fail2ban, and the input was not only invalid lines."""
        if self.error:
            return False
        invalid = self.count(LineStatus.INVALID)
        return invalid == 0 or invalid < len(self.lines)

    @property
    def concurrent(self) -> int:
        """Sent addresses that fail2ban reported as already done (someone else got there)."""
        return max(self.sent - self.changed, 0)

    def lines_with(self, status: LineStatus) -> list[LineResult]:
        return [line for line in self.lines if line.status is status]

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "jail": self.jail or None,
            "ok": self.ok,
            "error": self.error or None,
            "counts": self.counts,
            "sent": self.sent,
            "changed": self.changed,
            "batches": self.batches,
            "needs_confirmation": self.needs_confirmation,
            "lines": [
                {
                    "line": line.number,
                    "text": line.text,
                    "status": str(line.status),
                    "address": line.address or None,
                    "reason": line.reason or None,
                }
                for line in self.lines
            ],
        }


def _fill_draft(draft: AuditDraft, report: ActionReport, sent: list[str], **extra: Any) -> None:
    draft.ips = sent
    draft.parameters = {
        "counts": report.counts,
        "sent": report.sent,
        "changed": report.changed,
        "batches": report.batches,
        **extra,
    }
    if not report.ok:
        draft.ok = False
        first_invalid = next(iter(report.lines_with(LineStatus.INVALID)), None)
        draft.error = report.error or (
            f"{first_invalid.text!r}: {first_invalid.reason}" if first_invalid else "failed"
        )


def _batches(values: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    size = max(size, 1)
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _banned_in_jail(conn: CommandChannel, jail: str) -> set[str]:
    return {str(ip) for ip in conn.send("get", jail, "banip") or ()}


def _ignore_networks(conn: CommandChannel, jail: str) -> list[tuple[str, IPNetwork]]:
    """The jail's ignore list as networks; entries that are no address (host names) are left out."""
    networks = []
    for text in conn.send("get", jail, "ignoreip") or ():
        network = as_network(str(text))
        if network is not None:
            networks.append((str(text), network))
    return networks


@dataclass(frozen=True, slots=True)
class HoldBack:
    """What holds a ban back until confirmed: who is acting, the jail's ignore list, the bounds."""

    own: IPAddress | None
    ignore: list[tuple[str, IPNetwork]]
    min_prefix_v4: int
    min_prefix_v6: int


def _hold_back(state: RuntimeState, conn: CommandChannel, *, jail: str, actor: Actor) -> HoldBack:
    settings = state.settings
    return HoldBack(
        own=operator_address(actor),
        ignore=_ignore_networks(conn, jail),
        min_prefix_v4=settings.ban_min_prefix_v4,
        min_prefix_v6=settings.ban_min_prefix_v6,
    )


def _confirmation_reason(address: str, hold: HoldBack, translate: Translate = english) -> str:
    """Why banning `address` needs a confirmation ("" if it does not), the weightiest first.

    English (the report's lines, --json) unless a page passes gettext as `translate`."""
    own, ignore = hold.own, hold.ignore
    if own is not None or ignore:
        network = as_network(address)
        if network is not None:  # always, for a validated entry
            if own is not None and own in network:
                if network.num_addresses == 1:
                    return translate(gettext_noop("this is the address you are connected from"))
                text = gettext_noop(
                    "this network contains the address you are connected from (%(address)s)"
                )
                return translate(text) % {"address": own}
            for entry, ignored in ignore:
                if overlaps(network, ignored):
                    text = gettext_noop("on the jail's ignore list (%(entry)s)")
                    return translate(text) % {"entry": entry}
    return special_use_reason(address, translate=translate) or width_reason(
        address,
        min_prefix_v4=hold.min_prefix_v4,
        min_prefix_v6=hold.min_prefix_v6,
        translate=translate,
    )


# Ban ---
def ban_confirmations(
    state: RuntimeState,
    *,
    jail: str,
    lines: Iterable[str],
    actor: Actor,
    translate: Translate = english,
) -> dict[str, str]:
    """Which of these addresses need an explicit confirmation, and why (reads only).

    `translate`: gettext when the reasons are shown on a page (English by default)."""
    entries = [e for e in entries_parse(lines) if e.valid]
    if not entries:
        return {}
    jail_service.jail_require(state, name=jail)
    with state.jail_service.client.connection() as conn:
        hold = _hold_back(state, conn, jail=jail, actor=actor)
        banned = _banned_in_jail(conn, jail)
    reasons = {}
    for entry in entries:
        if entry.address in banned:
            continue
        reason = _confirmation_reason(entry.address, hold, translate)
        if reason:
            reasons[entry.address] = reason
    return reasons


def ips_ban(
    state: RuntimeState,
    *,
    jail: str,
    lines: Iterable[str],
    actor: Actor,
    confirmed: bool = False,
    batch_size: int = BATCH_SIZE,
    audit_action: str = "ban",
    audit_parameters: dict[str, Any] | None = None,
    banned_now: set[str] | None = None,
) -> ActionReport:
    """Ban every valid address of `lines` in `jail`, in batches; report each line.

    Never raises for bad input or a failing fail2ban: the report carries the error, and
    exactly one audit record is written either way. A blocklist import records its bans as
    "blocklist_import" (`audit_action`): the history reads a ban's origin from that action,
    and passes the snapshot of the jail's bans it has just taken (`banned_now`): reading
    100 000 bans again costs fail2ban and us a few hundred ms for nothing.
    """
    with audited(actor=actor, action=audit_action, jail=jail, host=state.snapshot.host) as draft:
        run = ban_run(
            state,
            jail=jail,
            lines=lines,
            actor=actor,
            confirmed=confirmed,
            batch_size=batch_size,
            banned_now=banned_now,
        )
        change_audit_fill(draft, run, confirmed=confirmed, **(audit_parameters or {}))
    return run.report


# A change on several hosts at once (jails.hosts.services.fleet.fleet_change) runs the
# fail2ban part of ips_ban / ips_unban on worker threads (ban_run / unban_run: no database)
# and writes each host's audit record on the calling thread (change_audit_fill).
@dataclass
class ChangeRun:
    """What a ban or unban did on one host: its report, and the addresses sent to fail2ban."""

    report: ActionReport
    sent: list[str] = field(default_factory=list)

    def failure(self) -> Fail2banError | None:
        return self.report.failure


def ban_run(
    state: RuntimeState,
    *,
    jail: str,
    lines: Iterable[str],
    actor: Actor,
    confirmed: bool = False,
    batch_size: int = BATCH_SIZE,
    banned_now: set[str] | None = None,
) -> ChangeRun:
    """ips_ban without its audit record: talks to fail2ban only, never raises for it."""
    run = ChangeRun(ActionReport(action="ban", jail=jail))
    try:
        _ban(
            state,
            run.report,
            run.sent,
            jail=jail,
            lines=lines,
            actor=actor,
            confirmed=confirmed,
            batch_size=batch_size,
            banned_now=banned_now,
        )
    except Fail2banError as exc:
        run.report.error, run.report.failure = str(exc), exc
    return run


def unban_run(
    state: RuntimeState,
    *,
    jail: str | None,
    lines: Iterable[str],
    batch_size: int = BATCH_SIZE,
    banned_now: set[str] | None = None,
) -> ChangeRun:
    """ips_unban without its audit record: talks to fail2ban only, never raises for it."""
    run = ChangeRun(ActionReport(action="unban", jail=jail or ""))
    try:
        _unban(
            state,
            run.report,
            run.sent,
            jail=jail,
            lines=lines,
            batch_size=batch_size,
            banned_now=banned_now,
        )
    except Fail2banError as exc:
        run.report.error, run.report.failure = str(exc), exc
    return run


def unban_audit_action(jail: str | None) -> str:
    return "unban" if jail else "unban_everywhere"


def change_audit_fill(draft: AuditDraft, run: ChangeRun, /, **extra: Any) -> None:
    """A ban's or unban's audit record, from what it did (`extra`: more parameters, any
    names: a blocklist import records its "run", hence positional-only arguments)."""
    report = run.report
    _fill_draft(draft, report, run.sent, **extra)
    if report.action == "unban" and not report.jail:
        draft.parameters["jails"] = dict(list(report.jails_by_address.items())[:1000])


def change_audit_close(
    draft: AuditDraft,
    run: ChangeRun | None,
    /,
    *,
    error: str = "",
    unknown: bool = False,
    **extra: Any,
) -> None:
    """A ban's or unban's record on one host of several: what it did (`run`); without a run,
    `error` as a failure, or (`unknown`) as a result nobody knows: the host did not answer in
    time and the change may still have happened there (the record stays "started")."""
    if run is not None:
        change_audit_fill(draft, run, **extra)
    else:
        draft.ok = None if unknown else False
        draft.error = error


def _ban(
    state: RuntimeState,
    report: ActionReport,
    sent: list[str],
    *,
    jail: str,
    lines: Iterable[str],
    actor: Actor,
    confirmed: bool,
    batch_size: int,
    banned_now: set[str] | None = None,
) -> None:
    validate_jail_name(jail)
    batch_size = max(batch_size, 1)
    entries = entries_parse(lines)
    if not entries:
        raise InvalidArgument("no addresses given")
    results: list[LineResult | None] = [
        None if e.valid else LineResult(e.number, e.text, LineStatus.INVALID, reason=e.error)
        for e in entries
    ]
    try:
        if all(r is not None for r in results):
            return  # nothing valid: fail2ban is not even asked
        jail_service.jail_require(state, name=jail)
        with state.jail_service.client.connection() as conn:
            banned = banned_now if banned_now is not None else _banned_in_jail(conn, jail)
            hold = _hold_back(state, conn, jail=jail, actor=actor)
            first_line: dict[str, int] = {}
            pending: list[int] = []
            for index, entry in enumerate(entries):
                if results[index] is None:
                    results[index] = _classify(entry, first_line, banned, hold, confirmed, report)
                    if results[index] is None:
                        pending.append(index)
            for start in range(0, len(pending), batch_size):
                chunk = pending[start : start + batch_size]
                batch = [entries[i].address for i in chunk]
                report.changed += int(conn.send("set", jail, "banip", *batch) or 0)
                report.batches += 1
                report.sent += len(batch)
                sent.extend(batch)
                for i in chunk:
                    e = entries[i]
                    results[i] = LineResult(e.number, e.text, LineStatus.BANNED, e.address)
    finally:
        report.lines = _finish(results, entries)


def _finish(results: list[LineResult | None], entries: list[Entry]) -> list[LineResult]:
    """Lines not done when the action stopped (fail2ban failed) are reported as not sent."""
    return [
        result
        if result is not None
        else LineResult(
            e.number, e.text, LineStatus.SKIPPED, e.address, "not sent: the action failed"
        )
        for result, e in zip(results, entries, strict=True)
    ]


def _classify(
    entry: Entry,
    first_line: dict[str, int],
    banned: set[str],
    hold: HoldBack,
    confirmed: bool,
    report: ActionReport,
) -> LineResult | None:
    """The line's final result, or None if it is to be sent to fail2ban."""
    address = entry.address
    if address in first_line:
        reason = f"duplicate of line {first_line[address]}"
        return LineResult(entry.number, entry.text, LineStatus.SKIPPED, address, reason)
    first_line[address] = entry.number
    if address in banned:
        return LineResult(entry.number, entry.text, LineStatus.ALREADY_BANNED, address)
    if confirmed:
        return None  # confirmed: no reason could hold it back, so none is worked out
    reason = _confirmation_reason(address, hold)
    if reason:
        report.needs_confirmation.append(address)
        note = f"{reason}: needs confirmation"
        return LineResult(entry.number, entry.text, LineStatus.SKIPPED, address, note)
    return None


# Unban ---
def ips_unban(
    state: RuntimeState,
    *,
    jail: str | None,
    lines: Iterable[str],
    actor: Actor,
    batch_size: int = BATCH_SIZE,
    audit_action: str = "",
    audit_parameters: dict[str, Any] | None = None,
    banned_now: set[str] | None = None,
) -> ActionReport:
    """Unban addresses from one jail, or from every jail when `jail` is None; report each line.

    `banned_now`: the jail's bans, just read by the caller (a blocklist import), not read again.
    """
    action = audit_action or unban_audit_action(jail)
    with audited(actor=actor, action=action, jail=jail or "", host=state.snapshot.host) as draft:
        run = unban_run(state, jail=jail, lines=lines, batch_size=batch_size, banned_now=banned_now)
        change_audit_fill(draft, run, **(audit_parameters or {}))
    return run.report


def _all_bans(conn: CommandChannel) -> dict[str, list[str]]:
    """`banned`: every jail with its banned addresses."""
    bans: dict[str, list[str]] = {}
    for item in conn.send("banned") or ():
        if isinstance(item, dict):
            for jail, ips in item.items():
                bans[str(jail)] = [str(ip) for ip in ips or ()]
    return bans


def _unban(
    state: RuntimeState,
    report: ActionReport,
    sent: list[str],
    *,
    jail: str | None,
    lines: Iterable[str],
    batch_size: int,
    banned_now: set[str] | None = None,
) -> None:
    if jail is not None:
        validate_jail_name(jail)
    batch_size = max(batch_size, 1)
    entries = entries_parse(lines)
    if not entries:
        raise InvalidArgument("no addresses given")
    results: list[LineResult | None] = []
    pending: list[int] = []
    first_line: dict[str, int] = {}
    for index, e in enumerate(entries):
        if not e.valid:
            results.append(LineResult(e.number, e.text, LineStatus.INVALID, reason=e.error))
        elif e.address in first_line:
            reason = f"duplicate of line {first_line[e.address]}"
            results.append(LineResult(e.number, e.text, LineStatus.SKIPPED, e.address, reason))
        else:
            first_line[e.address] = e.number
            results.append(None)
            pending.append(index)
    try:
        if not pending:
            return
        if jail is not None:
            jail_service.jail_require(state, name=jail)
        with state.jail_service.client.connection() as conn:
            if jail is not None:
                held = banned_now if banned_now is not None else _banned_in_jail(conn, jail)
            else:
                for name, ips in _all_bans(conn).items():
                    for ip in ips:
                        if ip in first_line:
                            report.jails_by_address.setdefault(ip, []).append(name)
                held = set(report.jails_by_address)
            for start in range(0, len(pending), batch_size):
                chunk = pending[start : start + batch_size]
                batch = [entries[i].address for i in chunk]
                command = ("set", jail, "unbanip", *batch) if jail else ("unban", *batch)
                report.changed += int(conn.send(*command) or 0)
                report.batches += 1
                report.sent += len(batch)
                sent.extend(batch)
                for i in chunk:
                    e = entries[i]
                    status = LineStatus.UNBANNED if e.address in held else LineStatus.NOT_BANNED
                    results[i] = LineResult(e.number, e.text, status, e.address)
    finally:
        report.lines = _finish(results, entries)


def jail_unban_all(
    state: RuntimeState, *, jail: str, actor: Actor, batch_size: int = BATCH_SIZE
) -> int:
    """Unban every address of one jail; return how many fail2ban unbanned."""
    with audited(actor=actor, action="unban_jail", jail=jail, host=state.snapshot.host) as draft:
        jail_service.jail_require(state, name=jail)
        changed = 0
        with state.jail_service.client.connection() as conn:
            addresses = sorted(_banned_in_jail(conn, jail))
            draft.ips = addresses
            for batch in _batches(addresses, batch_size):
                changed += int(conn.send("set", jail, "unbanip", *batch) or 0)
        draft.parameters = {"unbanned": changed}
        return changed


def everything_unban(state: RuntimeState, *, actor: Actor) -> int:
    """Unban every address in every jail (`unban --all`); return fail2ban's count."""
    with audited(actor=actor, action="unban_all", host=state.snapshot.host) as draft:
        changed = int(state.jail_service.client.send("unban", "--all") or 0)
        draft.parameters = {"unbanned": changed}
        return changed


# Where is this address? ---
@dataclass(frozen=True)
class WhereBan:
    """One jail that bans the address, directly or through a network that contains it."""

    jail: str
    entry: str  # what fail2ban holds: the address itself, or a network around it
    exact: bool
    banned_at: datetime | None
    ends_at: datetime | None
    bantime: int | None

    @property
    def permanent(self) -> bool:
        return self.bantime is not None and self.bantime < 0

    def seconds_left(self, now: datetime) -> int | None:
        if self.ends_at is None:
            return None
        return max(int((self.ends_at - now).total_seconds()), 0)


@dataclass(frozen=True)
class WhereIgnore:
    jail: str
    entry: str


@dataclass(frozen=True)
class WhereReport:
    """Where an address (or network) is banned or ignored right now."""

    address: str
    is_network: bool
    bans: tuple[WhereBan, ...]
    ignored_by: tuple[WhereIgnore, ...]
    jails: tuple[str, ...]

    @property
    def banned_jails(self) -> list[str]:
        return sorted({ban.jail for ban in self.bans})

    @property
    def exact_jails(self) -> list[str]:
        return sorted({ban.jail for ban in self.bans if ban.exact})

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "banned": bool(self.bans),
            "bans": [
                {
                    "jail": b.jail,
                    "entry": b.entry,
                    "exact": b.exact,
                    "banned_at": b.banned_at.isoformat() if b.banned_at else None,
                    "ends_at": b.ends_at.isoformat() if b.ends_at else None,
                    "bantime": b.bantime,
                }
                for b in self.bans
            ],
            "ignored_by": [{"jail": i.jail, "entry": i.entry} for i in self.ignored_by],
        }


def ip_where(state: RuntimeState, *, address: str) -> WhereReport:
    """Which jails ban `address` right now (since when, until when) and which ignore it."""
    entry = entry_parse(address)
    if not entry.valid:
        raise InvalidArgument(f"{entry.text!r} is {entry.error}")
    query = as_network(entry.address)
    assert query is not None
    is_network = "/" in entry.address
    with state.jail_service.client.connection() as conn:
        all_bans = _all_bans(conn)
        ignored: list[WhereIgnore] = []
        for jail in all_bans:
            try:
                for text, network in _ignore_networks(conn, jail):
                    if overlaps(query, network):
                        ignored.append(WhereIgnore(jail, text))
            except UnknownJail:
                continue
    matches: dict[str, set[str]] = {}
    for jail, ips in all_bans.items():
        for ip in ips:
            if ip == entry.address:
                matches.setdefault(jail, set()).add(ip)
            elif is_network or "/" in ip:
                banned_network = as_network(ip)
                if banned_network is not None and overlaps(query, banned_network):
                    matches.setdefault(jail, set()).add(ip)
    bans: list[WhereBan] = []
    for jail in sorted(matches):
        try:
            listed = jail_service.jail_bans_list(state, name=jail)
        except UnknownJail:
            continue  # stopped since
        timed = {ban.ip: ban for ban in listed}
        for ip in sorted(matches[jail]):
            ban = timed.get(ip)
            bans.append(
                WhereBan(
                    jail=jail,
                    entry=ip,
                    exact=ip == entry.address,
                    banned_at=ban.banned_at if ban else None,
                    ends_at=ban.ends_at if ban else None,
                    bantime=ban.bantime if ban else None,
                )
            )
    return WhereReport(
        address=entry.address,
        is_network=is_network,
        bans=tuple(bans),
        ignored_by=tuple(ignored),
        jails=tuple(sorted(all_bans)),
    )
