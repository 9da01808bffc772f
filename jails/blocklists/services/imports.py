"""Importing a blocklist into its jail: preview, import, and undo what left the list.

Bans go through the bulk-ban service (jails.services.bans.ips_ban: batches, the allow-list,
its one audit record per call), recorded as "blocklist_import" by the actor
``blocklist:<source>`` — the history reads a ban's origin and "banned by" from that record,
so the archive shows these bans as blocklist imports by ``blocklist:<source>``.

What a source banned is remembered per entry and host (SourceEntry.banned). An entry that
leaves the list is unbanned only if this source banned it, no other source lists it in the
same jail on that host (that source then takes it over) and no person banned it there;
everything else stays.

Hosts (jails.hosts): a source imports on its target hosts (source_targets). The list is
fetched once and parsed once per distinct ignore list, then applied on each host with the
state scoped to it (fleet.host_state), so the bans, their audit records and the held-back
rules are that host's. Hosts are done one after another, not in parallel: an import is a
background job of seconds, and each host's work writes its own database rows, which worker
threads would do on connections of their own. One host failing (unreachable, no such jail)
is recorded in its own run; the others go on.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.apps import apps as django_apps
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from jails.blocklists.models import BlocklistSource as Source
from jails.blocklists.models import ImportRun, SourceEntry
from jails.blocklists.services.fetch import FetchError, FetchPolicy, list_fetch
from jails.blocklists.services.parse import (
    Exclusion,
    LineSample,
    LineStatus,
    ParsedList,
    exclusions_build,
    list_parse,
)
from jails.fail2ban import Fail2banError, UnknownJail
from jails.hosts.models import Host
from jails.hosts.services import fleet
from jails.models import AuditEntry
from jails.services import jails as jail_service
from jails.services.audit import Actor
from jails.services.bans import LineStatus as BanStatus
from jails.services.bans import ips_ban, ips_unban
from jails.services.operations import MAX_ENTRIES
from jails.state import RuntimeState

logger = logging.getLogger(__name__)

FAILING_AFTER = 3  # failures in a row before a source is shown as failing
RETRY_AFTER = timedelta(minutes=15)  # a failed scheduled source is tried again this soon
LOCK_LEASE = timedelta(minutes=30)
DB_CHUNK = 5000  # addresses per `IN (...)` and per bulk write
IMPORT_ACTION = "blocklist_import"  # the history maps this action to origin "blocklist"
UNBAN_ACTION = "blocklist_unban"
FAILED_FETCHING = "fetch"  # ImportRun.failed_at
FAILED_ON_HOST = "host"


class ImportRefused(Exception):
    """An import that cannot start or go on: not confirmed, busy, an unusable list."""


class NotConfirmed(ImportRefused):
    """A source's first import needs a look at its preview and a confirmation."""


class ImportBusy(ImportRefused):
    """Another import of this source is running (the runner, a page or a command)."""


def importer_actor(actor: Actor, *, label: str) -> Actor:
    """The actor an import's bans are recorded under: ``blocklist:<source>``, by whoever ran it.

    The name is what the history shows as "banned by"; the user id and address keep who
    started the run (a person on the web, a command user, or the job runner).
    """
    return Actor(
        name=f"blocklist:{label}"[:150],
        source=actor.source,
        user_id=actor.user_id,
        address=actor.address,
    )


# --- The site's own addresses -----------------------------------------------------------------
def own_addresses() -> list[str]:
    """The addresses of this host's interfaces (Linux /proc); a list must never ban them."""
    found: list[str] = []
    try:
        # fib_trie lists each local IPv4 address as "|-- a.b.c.d" followed by "/32 host LOCAL".
        previous = ""
        for line in Path("/proc/net/fib_trie").read_text().splitlines():
            text = line.strip()
            if text.startswith("/32 host LOCAL") and previous:
                found.append(previous)
            previous = text[4:] if text.startswith("|-- ") else ""
    except OSError:
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            raw = line.split()[0] if line.split() else ""
            if len(raw) == 32:
                found.append(":".join(raw[i : i + 4] for i in range(0, 32, 4)))
    except OSError:
        pass
    return sorted(set(found))


# --- Locking ------------------------------------------------------------------------------------
def source_lock(source: Source, *, owner: str, now: datetime) -> bool:
    """Take the source's lease (one conditional UPDATE: exactly one caller wins)."""
    free = Q(locked_until__isnull=True) | Q(locked_until__lt=now) | Q(locked_by="")
    taken = (
        Source.objects.filter(free, pk=source.pk).update(
            locked_by=owner[:128], locked_until=now + LOCK_LEASE
        )
        == 1
    )
    return taken


def source_unlock(source: Source, *, owner: str) -> None:
    Source.objects.filter(pk=source.pk, locked_by=owner[:128]).update(
        locked_by="", locked_until=None
    )


def source_entries(source: Source, *, host: str) -> dict[str, bool]:
    """What the source holds on `host`: address -> whether it banned it.

    A plain cursor, not the ORM: 100 000 rows through the ORM's per-value converters cost
    about a second, and a 1 % change must not pay that (bench/bench_blocklists.py).
    """
    table = SourceEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT address, banned FROM {table} WHERE source_id = %s AND host = %s",
            [source.pk, host],
        )
        return {str(address): bool(banned) for address, banned in cursor.fetchall()}


def source_entries_hosts(source: Source) -> list[str]:
    """The hosts on which the source holds entries."""
    held = SourceEntry.objects.filter(source=source).values_list("host", flat=True)
    return sorted(set(held))


def source_entries_add(source: Source, rows: Sequence[tuple[str, bool]], *, host: str) -> None:
    """Remember new entries of the source on `host`: (address, whether this source banned it).

    executemany on a plain cursor, for the same reason: bulk_create builds a model instance
    and compiles every value of every row, 6 of the 7 CPU seconds a 100 000-line first
    import spent on our side (the bulk-ban service itself: about 1 s).
    """
    table = SourceEntry._meta.db_table
    sql = (
        f"INSERT INTO {table} (source_id, host, jail, address, banned) VALUES (%s, %s, %s, %s, %s)"
    )
    with connection.cursor() as cursor:
        for start in range(0, len(rows), DB_CHUNK):
            cursor.executemany(
                sql,
                [
                    (source.pk, host, source.jail, a, banned)
                    for a, banned in rows[start : start + DB_CHUNK]
                ],
            )


# --- Reading a list ------------------------------------------------------------------------------
@dataclass
class Fetched:
    """A list's text (None: unchanged since the last import) and what the fetch learnt."""

    text: str | None
    http_status: int | None = None
    size: int = 0
    etag: str = ""
    last_modified: str = ""
    content_hash: str = ""


def _decode(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def source_read(source: Source, *, policy: FetchPolicy, conditional: bool) -> Fetched:
    """The source's list: its uploaded text, or a fetch of its URL (conditional if asked)."""
    if not source.url:
        data = source.content.encode("utf-8")
        digest = hashlib.sha256(data).hexdigest()
        unchanged = conditional and digest == source.content_hash
        return Fetched(None if unchanged else source.content, None, len(data), "", "", digest)
    result = list_fetch(
        source.url,
        policy=policy,
        etag=source.etag if conditional else "",
        last_modified=source.last_modified if conditional else "",
    )
    if result.body is None:
        return Fetched(None, result.status, 0, result.etag or source.etag, source.last_modified)
    digest = hashlib.sha256(result.body).hexdigest()
    if conditional and digest == source.content_hash:
        # The server does not do conditional requests, but the list is the same: no work.
        return Fetched(None, result.status, len(result.body), result.etag, result.last_modified)
    return Fetched(
        _decode(result.body),
        result.status,
        len(result.body),
        result.etag,
        result.last_modified,
        digest,
    )


def source_policy(source: Source, base: FetchPolicy | None = None) -> FetchPolicy:
    """The fetch policy for a source: the base one, with the source's private-ranges choice."""
    return replace(base or FetchPolicy(), allow_private=source.allow_private)


def _jail_ignore(state: RuntimeState, jail: str) -> tuple[str, ...]:
    """The jail's ignore list on the state's host (UnknownJail if it has no such jail)."""
    jail_service.jail_require(state, name=jail)
    found = state.jail_service.client.send("get", jail, "ignoreip") or ()
    return tuple(sorted(str(item) for item in found))


def _jail_exclusions(state: RuntimeState, jail: str) -> list[Exclusion]:
    return exclusions_build(ignore=_jail_ignore(state, jail), own=own_addresses())


class Parses:
    """A list parsed once per distinct ignore list: hosts that ignore the same addresses (the
    usual case: none, or the same deployed jail.local) share one parse of a 100 000-line list.
    """

    def __init__(self, text: str, *, allow_private: bool) -> None:
        self.text = text
        self.allow_private = allow_private
        self.own = own_addresses()  # the site's own: never banned on any host
        self.parsed: dict[tuple[str, ...], ParsedList] = {}

    def for_host(self, state: RuntimeState, *, jail: str) -> ParsedList:
        """The list as `state`'s host would hold it in `jail` (its ignore list held back)."""
        ignore = _jail_ignore(state, jail)
        parsed = self.parsed.get(ignore)
        if parsed is None:
            exclusions = exclusions_build(ignore=ignore, own=self.own)
            parsed = list_parse(self.text, allow_private=self.allow_private, exclusions=exclusions)
            self.parsed[ignore] = parsed
        return parsed


def _jail_bans(state: RuntimeState, jail: str) -> set[str]:
    return {str(ip) for ip in state.jail_service.client.send("get", jail, "banip") or ()}


# --- Preview -----------------------------------------------------------------------------------
@dataclass
class Preview:
    """What an import would do, before anything is banned."""

    source: str
    jail: str
    parsed: ParsedList
    already_banned: int = 0  # entries the jail bans already
    http_status: int | None = None
    size: int = 0

    @property
    def to_ban(self) -> int:
        return len(self.parsed.entries) - self.already_banned


def source_preview(state: RuntimeState, *, source: Source, policy: FetchPolicy) -> Preview:
    """Fetch and check the list, count what it would ban; nothing is banned or stored."""
    fetched = source_read(source, policy=source_policy(source, policy), conditional=False)
    assert fetched.text is not None
    exclusions = _jail_exclusions(state, source.jail)
    parsed = list_parse(fetched.text, allow_private=source.allow_private, exclusions=exclusions)
    banned = _jail_bans(state, source.jail)
    already = sum(1 for entry in parsed.entries if entry in banned)
    return Preview(source.name, source.jail, parsed, already, fetched.http_status, fetched.size)


# --- Import -------------------------------------------------------------------------------------
@dataclass
class Applied:
    banned: int = 0
    already_banned: int = 0
    unbanned: int = 0
    kept: int = 0
    held_back: int = 0
    errors: list[str] = field(default_factory=list)


def _chunks(values: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _person_bans(jail: str, addresses: set[str], since: datetime, *, host: str) -> set[str]:
    """Which of `addresses` a person banned in `jail` on `host` since `since` (the audit log)."""
    found: set[str] = set()
    records = AuditEntry.objects.filter(
        action="ban", host=host, jail=jail, created_at__gte=since, ok=True
    ).values_list("ips", flat=True)
    for ips in records.iterator():
        if isinstance(ips, list):
            found.update(str(ip) for ip in ips if str(ip) in addresses)
    return found


def _ban_entries(
    state: RuntimeState,
    *,
    jail: str,
    entries: list[str],
    actor: Actor,
    parameters: dict[str, Any],
    applied: Applied,
    banned_now: set[str] | None = None,
) -> set[str]:
    """Ban `entries` through the bulk-ban service; return those fail2ban newly banned."""
    newly: set[str] = set()
    # ips_ban takes at most MAX_ENTRIES lines per call: longer lists take a few calls.
    for chunk in _chunks(entries, MAX_ENTRIES):
        report = ips_ban(
            state,
            jail=jail,
            lines=chunk,
            actor=actor,
            confirmed=True,  # held back here already (parse: private, ignore list, own, width)
            audit_action=IMPORT_ACTION,
            audit_parameters=parameters,
            banned_now=banned_now,
        )
        for line in report.lines:
            if line.status is BanStatus.BANNED:
                newly.add(line.address)
            elif line.status is BanStatus.ALREADY_BANNED:
                applied.already_banned += 1
            elif line.status is BanStatus.SKIPPED:
                applied.held_back += 1
        applied.banned = len(newly)
        if report.error:
            applied.errors.append(f"ban: {report.error}")
            break
    return newly


def _apply(
    state: RuntimeState,
    *,
    source: Source,
    parsed: ParsedList,
    actor: Actor,
    run: ImportRun,
) -> Applied:
    """Ban what is new, unban what left the list (if safe), and remember what is whose."""
    jail = source.jail
    host = state.snapshot.host
    applied = Applied()
    previous = source_entries(source, host=host)
    current = parsed.entries
    if not current and previous:
        # An empty list is far likelier a broken download than an upstream that forgave
        # everyone at once: unbanning the whole list on it is not done.
        raise ImportRefused("the list has no usable entries: nothing banned or unbanned")
    banned_now = _jail_bans(state, jail)
    to_ban = [entry for entry in current if entry not in banned_now]
    applied.already_banned = len(current) - len(to_ban)
    parameters = {"source": source.name, "run": run.pk}
    who = importer_actor(actor, label=source.name)
    newly = (
        _ban_entries(
            state,
            jail=jail,
            entries=to_ban,
            actor=who,
            parameters=parameters,
            applied=applied,
            banned_now=banned_now,
        )
        if to_ban
        else set()
    )
    current_set = set(current)
    added = [entry for entry in current if entry not in previous]
    with transaction.atomic():
        rows = [(a, a in newly) for a in added if not applied.errors or a in newly]
        source_entries_add(source, rows, host=host)
        rebanned = [a for a in newly if a in previous and not previous[a]]
        for chunk in _chunks(rebanned, DB_CHUNK):
            SourceEntry.objects.filter(source=source, host=host, address__in=chunk).update(
                banned=True
            )
    if applied.errors:
        return applied  # a failed ban: nothing is unbanned on a half-done run
    removed = [address for address in previous if address not in current_set]
    removed_unban(
        state,
        source=source,
        previous=previous,
        removed=removed,
        actor=who,
        parameters=parameters,
        applied=applied,
        banned_now=banned_now,
    )
    return applied


def removed_unban(
    state: RuntimeState,
    *,
    source: Source,
    previous: dict[str, bool],
    removed: list[str],
    actor: Actor,
    parameters: dict[str, Any],
    applied: Applied,
    banned_now: set[str] | None = None,
) -> None:
    """Unban on the state's host what left the source's list there, when that is safe."""
    jail = source.jail
    host = state.snapshot.host
    ours = {address for address in removed if previous[address]}
    keep: set[str] = set()
    if ours:
        listed_elsewhere: set[str] = set()
        for chunk in _chunks(sorted(ours), DB_CHUNK):
            others = SourceEntry.objects.filter(host=host, jail=jail, address__in=chunk).exclude(
                source=source
            )
            listed_elsewhere.update(others.values_list("address", flat=True))
            # Another source lists it: that source now answers for the ban.
            others.update(banned=True)
        keep = listed_elsewhere | _person_bans(jail, ours, source.created_at, host=host)
    to_unban = sorted(ours - keep)
    applied.kept = len(ours) - len(to_unban)
    if to_unban:
        report = ips_unban(
            state,
            jail=jail,
            lines=to_unban,
            actor=actor,
            audit_action=UNBAN_ACTION,
            audit_parameters=parameters,
            banned_now=banned_now,
        )
        applied.unbanned = report.count(BanStatus.UNBANNED)
        if report.error:
            applied.errors.append(f"unban: {report.error}")
            return
    for chunk in _chunks(removed, DB_CHUNK):
        SourceEntry.objects.filter(source=source, host=host, address__in=chunk).delete()


def _run_fill(run: ImportRun, parsed: ParsedList, applied: Applied | None) -> None:
    run.lines = parsed.lines
    run.entries = len(parsed.entries)
    run.invalid = parsed.counts[LineStatus.INVALID]
    run.duplicates = parsed.counts[LineStatus.DUPLICATE]
    run.skipped = parsed.counts[LineStatus.SKIPPED] + (applied.held_back if applied else 0)
    run.skipped_reasons = dict(parsed.skipped_reasons)
    run.first_invalid = [sample.as_dict() for sample in parsed.first_invalid]
    if applied is not None:
        run.banned = applied.banned
        run.already_banned = applied.already_banned
        run.unbanned = applied.unbanned
        run.kept = applied.kept


def _notify_failure(name: str, error: str) -> None:
    """Tell the notification rules, when that app is installed (it need not be)."""
    if not django_apps.is_installed("jails.notifications"):
        return
    from jails.notifications.signals import blocklist_import_failed

    try:
        blocklist_import_failed.send(sender=None, blocklist=name, error=error[:500])
    except Exception:  # a notification problem must not turn into an import failure
        logger.exception("blocklist %s: could not record the failure for notifications", name)


def source_targets(source: Source) -> list[Host]:
    """The hosts the source imports on: every enabled host, its enabled chosen ones, or none
    chosen: the local host (every source before the fleet, and any single-host site)."""
    if source.all_hosts:
        fleet.local_host()  # remade if someone deleted its row, as the pages do
        return fleet.hosts_enabled()
    if source.pk is not None and source.hosts.exists():
        return list(source.hosts.filter(enabled=True).order_by("name"))
    return [fleet.local_host()]


def _settled(source: Source, hosts: Sequence[Host]) -> bool:
    """Whether every host's latest run of the source succeeded: only then may an unchanged
    list (304, same hash) be skipped; a host that failed or is new needs the whole list."""
    for host in hosts:
        runs = source.runs.filter(host=host.name).exclude(failed_at=FAILED_FETCHING)
        last = runs.order_by("-started_at", "-id").first()
        if last is None or last.status not in (ImportRun.Status.OK, ImportRun.Status.UNCHANGED):
            return False
    return True


def _host_failure(exc: Exception, *, jail: str, host: str, fleet_wide: bool) -> str:
    if isinstance(exc, UnknownJail):
        where = f" on {host}" if fleet_wide else ""
        return (
            f"the jail {jail!r} does not exist in fail2ban{where}: create it "
            "(see the blocklists page) or choose another jail"
        )
    if isinstance(exc, Fail2banError | ImportRefused | OSError):
        return str(exc) or type(exc).__name__
    return f"internal error: {type(exc).__name__}"


def _host_apply(
    state: RuntimeState,
    *,
    source: Source,
    host: Host,
    parses: Parses,
    actor: Actor,
    run: ImportRun,
    fleet_wide: bool,
) -> None:
    """The import on one host, recorded in its run: never raises for that host's failures."""
    try:
        scoped = fleet.host_state(state, host)
        parsed = parses.for_host(scoped, jail=source.jail)
        _run_fill(run, parsed, None)
        applied = _apply(scoped, source=source, parsed=parsed, actor=actor, run=run)
        _run_fill(run, parsed, applied)
    except Exception as exc:  # one host's failure is its run's, never the other hosts'
        if not isinstance(exc, Fail2banError | ImportRefused | OSError):
            logger.exception("blocklist %s: import on %s failed", source.name, host.name)
        run.status, run.failed_at = ImportRun.Status.FAILED, FAILED_ON_HOST
        run.errors = _host_failure(exc, jail=source.jail, host=host.name, fleet_wide=fleet_wide)
        return
    if applied.errors:
        run.status, run.failed_at = ImportRun.Status.FAILED, FAILED_ON_HOST
        run.errors = "\n".join(applied.errors)
    else:
        run.status = ImportRun.Status.OK


def source_import(
    state: RuntimeState,
    *,
    source: Source,
    actor: Actor,
    trigger: str,
    owner: str,
    policy: FetchPolicy | None = None,
    confirm: bool = False,
    hosts: Sequence[Host] | None = None,
) -> list[ImportRun]:
    """Import the source's list now on its target hosts (`hosts`: on these instead).

    One ImportRun per host, in host order, says what happened there (also when it failed).
    Raises NotConfirmed before the first confirmed import, ImportBusy if another import of
    the source holds its lock. Everything else is recorded in the runs, never raised.
    """
    if not source.confirmed and not confirm:
        raise NotConfirmed(f"{source.name}: look at the preview and confirm the first import")
    targets = list(source_targets(source) if hosts is None else hosts)
    conditional = _settled(source, targets)
    started = timezone.now()
    if not source_lock(source, owner=owner, now=started):
        raise ImportBusy(f"{source.name}: another import of this source is running")
    runs = [
        ImportRun.objects.create(
            source=source,
            label=source.name,
            jail=source.jail,
            host=host.name,
            trigger=trigger,
            actor=actor.name,
            started_at=started,
        )
        for host in targets
    ]
    changes: dict[str, Any] = {}
    if not runs:
        # The source's chosen hosts are all disabled: recorded, so the page says why.
        runs.append(
            ImportRun.objects.create(
                source=source,
                label=source.name,
                jail=source.jail,
                host="",
                trigger=trigger,
                actor=actor.name,
                started_at=started,
                status=ImportRun.Status.FAILED,
                failed_at=FAILED_ON_HOST,
                errors="none of the source's hosts is enabled",
            )
        )
        _finish(runs, source, changes, owner)
        return runs
    try:
        fetched = source_read(source, policy=source_policy(source, policy), conditional=conditional)
    except FetchError as exc:
        for run in runs:
            run.status, run.errors = ImportRun.Status.FAILED, str(exc)
            run.failed_at, run.http_status = FAILED_FETCHING, exc.status
    except Exception as exc:  # recorded, then raised: the runs must not stay "running"
        for run in runs:
            run.status = ImportRun.Status.FAILED
            run.errors = f"internal error: {type(exc).__name__}"
        _finish(runs, source, changes, owner)
        raise
    else:
        parses = (
            Parses(fetched.text, allow_private=source.allow_private)
            if fetched.text is not None
            else None
        )
        fleet_wide = len(targets) > 1 or any(not host.is_local for host in targets)
        for run, host in zip(runs, targets, strict=False):
            run.http_status = fetched.http_status
            run.bytes = fetched.size
            if parses is None:
                run.status = ImportRun.Status.UNCHANGED
                continue
            _host_apply(
                state,
                source=source,
                host=host,
                parses=parses,
                actor=actor,
                run=run,
                fleet_wide=fleet_wide,
            )
        if parses is None:
            changes["etag"] = fetched.etag or source.etag
        elif any(run.status == ImportRun.Status.OK for run in runs):
            # A host that failed is retried with the whole list next time (_settled).
            changes.update(
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                content_hash=fetched.content_hash,
                confirmed=True,
            )
    _finish(runs, source, changes, owner)
    failed = [run for run in runs if run.status == ImportRun.Status.FAILED]
    if failed:
        if len(runs) == 1:
            _notify_failure(source.name, failed[0].errors)
        else:
            _notify_failure(source.name, "; ".join(f"{r.host}: {r.errors}" for r in failed))
    return runs


def _finish(runs: list[ImportRun], source: Source, changes: dict[str, Any], owner: str) -> None:
    now = timezone.now()
    for run in runs:
        run.finished_at = now
        run.errors = run.errors[:4000]
        run.save()
    # One host failing makes the source's import a failure: it is not where it should be.
    failed = any(run.status == ImportRun.Status.FAILED for run in runs)
    interval = source.interval
    if interval is not None:
        wait = min(interval, RETRY_AFTER) if failed else interval
        changes["next_run_at"] = runs[0].started_at + wait
    changes["last_run_at"] = now
    changes["consecutive_failures"] = F("consecutive_failures") + 1 if failed else 0
    Source.objects.filter(pk=source.pk).update(**changes)
    source_unlock(source, owner=owner)
    source.refresh_from_db()


def file_import(
    state: RuntimeState,
    *,
    text: str,
    jail: str,
    label: str,
    actor: Actor,
    trigger: str = "command",
    hosts: Sequence[Host] | None = None,
) -> list[ImportRun]:
    """Import a list from a file into `jail` once, on `hosts` (default: the local host): bans
    only (no source, so nothing to undo). One run per host."""
    targets = list(hosts) if hosts is not None else [fleet.local_host()]
    started = timezone.now()
    parses = Parses(text, allow_private=False)
    runs: list[ImportRun] = []
    for host in targets:
        run = ImportRun.objects.create(
            source=None,
            label=label[:200],
            jail=jail,
            host=host.name,
            trigger=trigger,
            actor=actor.name,
            started_at=started,
            bytes=len(text.encode("utf-8")),
        )
        try:
            scoped = fleet.host_state(state, host)
            parsed = parses.for_host(scoped, jail=jail)
            _run_fill(run, parsed, None)
            applied = Applied()
            banned_now = _jail_bans(scoped, jail)
            to_ban = [entry for entry in parsed.entries if entry not in banned_now]
            applied.already_banned = len(parsed.entries) - len(to_ban)
            if to_ban:
                _ban_entries(
                    scoped,
                    jail=jail,
                    entries=to_ban,
                    actor=importer_actor(actor, label=label),
                    parameters={"file": label, "run": run.pk},
                    applied=applied,
                    banned_now=banned_now,
                )
            _run_fill(run, parsed, applied)
            run.status = ImportRun.Status.FAILED if applied.errors else ImportRun.Status.OK
            run.errors = "\n".join(applied.errors)
        except UnknownJail:
            where = "" if host.is_local and len(targets) == 1 else f" on {host.name}"
            run.status = ImportRun.Status.FAILED
            run.errors = f"the jail {jail!r} does not exist{where}"
        except (Fail2banError, OSError) as exc:
            run.status, run.errors = ImportRun.Status.FAILED, str(exc) or type(exc).__name__
        run.finished_at = timezone.now()
        run.save()
        runs.append(run)
    return runs


def runs_summary(runs: Sequence[ImportRun]) -> str:
    """ "imported" for one run; "imported on a, b; failed on c" for several hosts."""
    if len(runs) == 1:
        return runs[0].get_status_display().lower()
    by_status: dict[str, list[str]] = {}
    for run in runs:
        by_status.setdefault(run.get_status_display().lower(), []).append(run.host)
    return "; ".join(f"{status} on {', '.join(hosts)}" for status, hosts in by_status.items())


def samples_of(preview: Preview) -> list[tuple[str, int, list[LineSample]]]:
    """(status, count, first lines) for each status, in display order."""
    parsed = preview.parsed
    return [(str(status), parsed.counts[status], parsed.samples[status]) for status in LineStatus]
