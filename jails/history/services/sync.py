"""Ban history, the writes: archive fail2ban's bans and purge them by retention.

fail2ban forgets bans (an unban deletes its rows, `unban --all` empties the table, rows older
than dbpurgeage are purged), so every ban is copied into BanEvent. The copy is incremental
(a rowid cursor into fail2ban's `bans` table, checked on every sync because SQLite reuses
rowids after deletes) and idempotent (unique on host, jail, IP, time of ban).

Each ban records its host (jails.hosts): the state's `snapshot.host`, so a state scoped to a
host (jails.hosts.services.fleet.host_state) archives that host's database under its name,
with a cursor of its own. history_sync_hosts syncs several hosts: each host's rows are read
on a thread of its own (the hosts answer in parallel, and a slow or dead host holds up no
other), and written by the calling thread alone (SQLite has one writer at a time anyway).

fail2ban's database is opened read-only and read in short queries of at most BATCH_SIZE
rows: a reader that holds a read transaction for seconds makes the server lose bans.

Every archived event also updates the summaries (jails.history.services.summaries) in the
same transaction, so that pages never aggregate a year of events per request; the pages
read them through jails.history.selectors.archive.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from jails.agent import operations
from jails.agent.operations import BanRow
from jails.fail2ban import DatabaseUnavailable, Fail2banError, InvalidArgument
from jails.fail2ban.validation import JAIL_NAME_RE, is_canonical_ipv4, parse_ip_or_network
from jails.history.geo import GeoDataError, GeoInfo
from jails.history.models import LOCAL_HOST, BanEvent, HistorySource
from jails.history.periods import DAY, HOUR, hour_expression
from jails.history.services.summaries import (
    SUMMARY_CHUNK,
    NewEvent,
    rollup_apply,
    rollup_deltas,
    summaries_add,
    summaries_refresh,
)
from jails.hosts.services import fleet
from jails.hosts.services.fleet import HostOutcome, HostScope, reachability_record
from jails.models import AuditEntry
from jails.services.audit import Actor, audit_record
from jails.state import RuntimeState

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000  # rows per read from fail2ban's database (each read is one short query)
# (at most operations.MAX_BATCH_ROWS: the agent refuses larger reads)
COMMIT_ROWS = 20000  # rows archived per write transaction
MAX_MATCH_TEXT = 32 * 1024  # matched log lines kept per ban
MAX_DATA_BYTES = 4 * 1024 * 1024  # a `data` blob larger than this is not parsed
# `data` blobs this short are parsed once per sync: every manual or imported ban of a host
# carries the same one (no failures, no lines), so a sync of a blocklist's bans parses it once.
SHARED_DATA_CHARS = 64
MAX_SHARED_DATA = 1024  # distinct short blobs remembered per sync
# Audit actions whose bans are not a jail's own detection, by origin. The ban service writes
# "ban" (jails.services.bans); a blocklist import is to write "blocklist_import".
ORIGIN_ACTIONS: Mapping[str, str] = {
    "ban": BanEvent.Origin.MANUAL,
    "blocklist_import": BanEvent.Origin.BLOCKLIST,
}
AUDIT_MATCH_SECONDS = 300  # an audit record this close to a ban's start explains it


class HistoryError(Exception):
    """The ban history cannot be read from fail2ban (no database, unreadable, not fail2ban's)."""


# --- Parsing fail2ban's rows ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ParsedBan:
    """One row of fail2ban's `bans` table, validated."""

    jail: str
    ip: str
    network: str
    timeofban: int
    bantime: int
    bancount: int
    failures: int
    matches: str

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.jail, self.ip, self.timeofban)

    @property
    def without_evidence(self) -> bool:
        """Banned with no failure and no log line: a manual or imported ban."""
        return self.failures == 0 and not self.matches


def network_of(ip: str) -> str:
    """The /24 (IPv4) or /64 (IPv6) an address (or a smaller banned network) belongs to."""
    banned = ipaddress.ip_network(ip, strict=False)
    prefix = 24 if banned.version == 4 else 64
    if banned.prefixlen < prefix:
        return str(banned)  # a wider banned network is its own group
    return str(banned.supernet(new_prefix=prefix))


def _clean_line(value: Any) -> str:
    # fail2ban stores a match as a string or as the list of pieces it split the line into.
    text = "".join(str(part) for part in value) if isinstance(value, list | tuple) else str(value)
    # One match is one line; NUL cannot be stored in PostgreSQL text.
    return text.replace("\x00", "\ufffd").replace("\r", " ").replace("\n", " ")


def _parse_data(raw: Any) -> tuple[int, str]:
    """(failures, matched lines joined by newlines) from fail2ban's JSON `data` column."""
    if raw is None:
        return 0, ""
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw)
        if len(raw) > MAX_DATA_BYTES:
            return 0, ""
        raw = raw.decode("utf-8", errors="replace")
    elif len(str(raw)) > MAX_DATA_BYTES:
        return 0, ""
    try:
        data = json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        return 0, ""
    if not isinstance(data, dict):
        return 0, ""
    try:
        failures = max(int(data.get("failures") or 0), 0)
    except (TypeError, ValueError):
        failures = 0
    matches = data.get("matches") or []
    lines: list[str] = []
    size = 0
    if isinstance(matches, list):
        for item in matches:
            line = _clean_line(item)
            size += len(line) + 1
            if size > MAX_MATCH_TEXT:
                lines.append("[… more lines not kept]")
                break
            lines.append(line)
    return min(failures, 2**31 - 1), "\n".join(lines)


def _address(text: str, cache: dict[str, tuple[str, str] | None] | None) -> tuple[str, str] | None:
    """(canonical address, its /24 or /64) of fail2ban's text, or None if it is no address."""
    if is_canonical_ipv4(text):
        # Nearly every row: the text is its own canonical form and its /24 is a cut, with no
        # parse at all (ipaddress's parse was a third of the writer's time for 100 000 rows).
        return text, f"{text[: text.rfind('.')]}.0/24"
    if cache is not None and text in cache:
        return cache[text]
    try:
        # fail2ban can ban whole networks too (`set J banip 192.0.2.0/24`).
        parsed = parse_ip_or_network(text)
        ip = str(parsed)
        # An address's /24 or /64 from its integer: parsing it again as a network costs as
        # much as the whole validation (most addresses of a sync are new, so uncached).
        if isinstance(parsed, ipaddress.IPv4Address):
            network = f"{ipaddress.IPv4Address(int(parsed) & 0xFFFFFF00)}/24"
        elif isinstance(parsed, ipaddress.IPv6Address):
            network = f"{ipaddress.IPv6Address(int(parsed) >> 64 << 64)}/64"
        else:
            network = network_of(ip)
        found: tuple[str, str] | None = (ip, network)
    except InvalidArgument:
        found = None
    if cache is not None:
        cache[text] = found
    return found


def _data_of(raw: Any, shared: dict[Any, tuple[int, str]] | None) -> tuple[int, str]:
    if shared is None or not isinstance(raw, str | bytes) or len(raw) > SHARED_DATA_CHARS:
        return _parse_data(raw)
    found = shared.get(raw)
    if found is None:
        found = _parse_data(raw)
        if len(shared) < MAX_SHARED_DATA:
            shared[raw] = found
    return found


def parse_ban_row(
    row: Sequence[Any],
    *,
    cache: dict[str, tuple[str, str] | None] | None = None,
    shared: dict[Any, tuple[int, str]] | None = None,
) -> ParsedBan | None:
    """Validate one (jail, ip, timeofban, bantime, bancount, data) row; None if unusable.

    ``cache`` remembers addresses that needed a parse, ``shared`` short `data` blobs, over
    the rows of one sync.
    """
    jail, ip_text, timeofban, bantime, bancount, data = row
    if not isinstance(jail, str) or not JAIL_NAME_RE.fullmatch(jail):
        return None
    address = _address(str(ip_text), cache)
    if address is None:
        return None
    ip, network = address
    try:
        start = int(timeofban)
        duration = int(bantime)
        count = int(bancount or 1)
    except (TypeError, ValueError):
        return None
    if start <= 0 or start > 2**40:
        return None
    failures, matches = _data_of(data, shared)
    return ParsedBan(
        jail=jail,
        ip=ip,
        network=network,
        timeofban=start,
        bantime=max(duration, -1),
        bancount=min(max(count, 1), 2**31 - 1),
        failures=failures,
        matches=matches,
    )


# --- Reading fail2ban's database ------------------------------------------------------------------
# The reading itself is a host operation (jails.agent.operations): in agent mode only the
# agent, as root, can open fail2ban's database; the site asks it through the HostLink.
@dataclass(frozen=True)
class _Reader:
    """Where the rows come from: fail2ban's database through the link, or a file given here."""

    path: str
    bans: Callable[[int, int], list[BanRow]]  # (after, limit)
    ban: Callable[[int], tuple[str, str, int] | None]  # rowid


def dbfile_get(state: RuntimeState) -> str | None:
    """fail2ban's database path (`get dbfile`), or None when it keeps no database."""
    return state.jail_service.client.database_path()


def _reader(state: RuntimeState, dbfile: str | None) -> _Reader:
    if dbfile is not None:
        # An old copy or a backup, read here: `history_sync --dbfile` runs on the host.
        return _Reader(
            path=dbfile,
            bans=lambda after, limit: operations.database_bans(dbfile, after=after, limit=limit),
            ban=lambda rowid: operations.database_ban(dbfile, rowid=rowid),
        )
    link = state.jail_service.client
    path = link.database_path()
    if not path:
        raise HistoryError("fail2ban keeps no database (dbfile is :memory: or unset)")
    return _Reader(
        path=path,
        bans=lambda after, limit: link.database_bans(after=after, limit=limit),
        ban=lambda rowid: link.database_ban(rowid=rowid),
    )


# --- Origin ---------------------------------------------------------------------------------------
@dataclass
class _AuditIndex:
    by_address: dict[tuple[str, str], list[tuple[int, str, str]]] = field(default_factory=dict)
    truncated: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)

    def explain(self, ban: ParsedBan) -> tuple[str, str] | None:
        """(origin, actor) of the audit record that explains this ban, if any."""
        if not self.by_address and not self.truncated:
            return None  # no record at all (most syncs): no lookups for each ban
        for candidates in (
            self.by_address.get((ban.jail, ban.ip), ()),
            self.truncated.get(ban.jail, ()),
        ):
            best = min(
                candidates,
                key=lambda c: abs(c[0] - ban.timeofban),
                default=None,
            )
            if best is not None and abs(best[0] - ban.timeofban) <= AUDIT_MATCH_SECONDS:
                return best[1], best[2]
        return None


def _audit_index(bans: Sequence[ParsedBan], host: str) -> _AuditIndex:
    index = _AuditIndex()
    candidates = [b for b in bans if b.without_evidence]
    if not candidates:
        return index
    low = min(b.timeofban for b in candidates) - AUDIT_MATCH_SECONDS
    high = max(b.timeofban for b in candidates) + AUDIT_MATCH_SECONDS
    entries = AuditEntry.objects.filter(
        action__in=list(ORIGIN_ACTIONS),
        # A record without a host is one the action did not say it for: it may explain any.
        host__in=[host, ""],
        created_at__gte=datetime.fromtimestamp(low, tz=UTC),
        created_at__lte=datetime.fromtimestamp(high, tz=UTC),
    ).values_list("action", "actor", "jail", "ips", "ip_count", "created_at")
    for action, actor, jail, ips, ip_count, created_at in entries:
        item = (int(created_at.timestamp()), ORIGIN_ACTIONS[action], actor)
        stored = ips if isinstance(ips, list) else []
        for ip in stored:
            index.by_address.setdefault((jail, str(ip)), []).append(item)
        if ip_count > len(stored):  # a bulk ban keeps only its first addresses in the log
            index.truncated.setdefault(jail, []).append(item)
    return index


def _origin(ban: ParsedBan, index: _AuditIndex) -> tuple[str, str]:
    if not ban.without_evidence:
        return BanEvent.Origin.JAIL, ""
    explained = index.explain(ban)
    if explained is not None:
        return explained
    # Banned with no failures and no log lines, and not by jailadmin: `fail2ban-client set
    # J banip` by hand.
    return BanEvent.Origin.MANUAL, ""


# --- Sync -----------------------------------------------------------------------------------------
@dataclass
class SyncResult:
    """What one sync did."""

    dbfile: str
    host: str = LOCAL_HOST
    read: int = 0
    archived: int = 0
    already: int = 0
    skipped: int = 0
    batches: int = 0
    rescanned: bool = False
    stopped: bool = False
    geo_error: str = ""

    @property
    def message(self) -> str:
        text = (
            f"read {self.read} rows from {self.dbfile}: archived {self.archived} new bans, "
            f"{self.already} already archived, {self.skipped} unusable"
        )
        if self.rescanned:
            text += " (full re-read: fail2ban deleted rows since the last sync)"
        if self.stopped:
            text += " (stopped early)"
        if self.geo_error:
            text += f"; no geo data: {self.geo_error}"
        return text


def _cursor_valid(reader: _Reader, source: HistorySource) -> bool:
    """The row at the cursor is still the one we read, so every new row lies beyond it.

    SQLite gives a new row max(rowid)+1; only when the newest rows were deleted (an unban,
    `unban --all`, a purge, a VACUUM) can rowids be reused, and then the check fails.
    """
    if source.last_rowid <= 0:
        return True
    return reader.ban(source.last_rowid) == (
        source.last_jail,
        source.last_ip,
        source.last_timeofban,
    )


def _geo_lookup(state: RuntimeState, ips: Iterable[str], result: SyncResult) -> dict[str, GeoInfo]:
    if result.geo_error:
        return {}
    try:
        locator = state.history.geo
        # A banned network is placed where its first address is.
        return {ip: locator.lookup(ip.split("/", 1)[0]) for ip in ips}
    except GeoDataError as exc:
        result.geo_error = str(exc)
        logger.warning("ban history: archiving without geo data: %s", exc)
        return {}


EVENT_COLUMNS = (
    "host",
    "jail",
    "ip",
    "network",
    "timeofban",
    "bantime",
    "bancount",
    "failures",
    "matches",
    "origin",
    "banned_by",
    "country_code",
    "country_name",
    "asn",
    "as_name",
    "archived_at",
)


def _events_insert(events: Sequence[NewEvent]) -> None:
    """Insert archive rows with one prepared statement (bulk_create's per-row cost is 10x)."""
    if not events:
        return
    qn = connection.ops.quote_name
    archived_at = connection.ops.adapt_datetimefield_value(timezone.now())
    sql = (
        f"INSERT INTO {qn(BanEvent._meta.db_table)} "
        f"({', '.join(qn(c) for c in EVENT_COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(EVENT_COLUMNS))})"
    )
    rows = [
        (
            e.host,
            e.jail,
            e.ip,
            e.network,
            e.timeofban,
            e.bantime,
            e.bancount,
            e.failures,
            e.matches,
            e.origin,
            e.banned_by,
            e.country_code,
            e.country_name,
            e.asn,
            e.as_name,
            archived_at,
        )
        for e in events
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _archived_on_days(ips: Sequence[str], low: int, high: int) -> set[tuple[str, str, str, int]]:
    """(host, jail, ip, timeofban) of the archived bans of `ips` with low <= timeofban < high.

    Plain SQL: the ORM spends more time preparing 2 000 `IN` parameters one by one than the
    database spends answering through the unique index (ip first).
    """
    qn = connection.ops.quote_name
    found: set[tuple[str, str, str, int]] = set()
    step = SUMMARY_CHUNK * 4
    with connection.cursor() as cursor:
        for i in range(0, len(ips), step):
            chunk = ips[i : i + step]
            cursor.execute(
                f"SELECT host, jail, ip, timeofban FROM {qn(BanEvent._meta.db_table)} "
                f"WHERE ip IN ({', '.join(['%s'] * len(chunk))}) "
                "AND timeofban >= %s AND timeofban < %s",
                [*chunk, low, high],
            )
            found.update(cursor.fetchall())
    return found


def _archive_batch(
    state: RuntimeState, host: str, bans: list[ParsedBan], result: SyncResult
) -> list[ParsedBan]:
    """Store `host`'s bans not yet archived, with their summaries. Call in a transaction."""
    unique = list({b.key: b for b in bans}.values())
    if not unique:
        return []
    ips = {b.ip for b in unique}
    # The archived bans of these addresses on the days of the batch: what is already there,
    # and on which days each address was already banned (for the summaries' day counts).
    low = min(b.timeofban for b in unique)
    high = max(b.timeofban for b in unique)
    # Every host's (the summaries count an address's days over all hosts); this host's are
    # the ones already archived.
    existing = _archived_on_days(sorted(ips), low - low % DAY, high - high % DAY + DAY)
    new = [b for b in unique if (host, *b.key) not in existing]
    result.already += len(bans) - len(new)
    if not new:
        return []
    geo = _geo_lookup(state, {b.ip for b in new}, result)
    index = _audit_index(new, host)
    events = []
    for ban in new:
        origin, actor = _origin(ban, index)
        info = geo.get(ban.ip) or GeoInfo()
        events.append(
            NewEvent(
                host=host,
                jail=ban.jail,
                ip=ban.ip,
                network=ban.network,
                timeofban=ban.timeofban,
                bantime=ban.bantime,
                bancount=ban.bancount,
                failures=ban.failures,
                matches=ban.matches,
                origin=origin,
                banned_by=actor[:150],
                country_code=info.country_code or "",
                country_name=(info.country_name or "")[:64],
                asn=info.asn,
                as_name=(info.as_name or "")[:255],
            )
        )
    _events_insert(events)
    counts: Counter[tuple[int, str, str, str, str]] = Counter(
        (e.timeofban - e.timeofban % HOUR, e.host, e.jail, e.country_code, e.origin) for e in events
    )
    rollup_apply(rollup_deltas((*key, n) for key, n in counts.items()))
    summaries_add(events, existing, geo)
    result.archived += len(new)
    return new


@dataclass(frozen=True)
class _ParsedBatch:
    """One read of fail2ban's rows, validated: the bans, and the last row (the cursor)."""

    bans: list[ParsedBan]
    read: int
    skipped: int
    last: Sequence[Any] | None


def _rows_parse(
    rows: Sequence[Sequence[Any]],
    cache: dict[str, tuple[str, str] | None],
    shared: dict[Any, tuple[int, str]],
    *,
    where: str,
) -> _ParsedBatch:
    bans: list[ParsedBan] = []
    skipped = 0
    for row in rows:
        ban = parse_ban_row(row[1:], cache=cache, shared=shared)
        if ban is None:
            skipped += 1
            logger.warning("ban history: unusable row %r of %s", row[:4], where)
        else:
            bans.append(ban)
    return _ParsedBatch(bans, len(rows), skipped, rows[-1] if rows else None)


class _Archiver:
    """One host's sync under way: rows parsed since the last write, and its cursor.

    Rows come in batches from fail2ban's database; every `commit_rows` parsed rows (and at
    the end) are archived in one transaction that also moves the cursor past them, so an
    interrupted sync keeps what it wrote and resumes after it.
    """

    def __init__(
        self,
        state: RuntimeState,
        *,
        host: str,
        path: str,
        rescanned: bool,
        commit_rows: int,
        progress: Callable[[], None] | None,
    ) -> None:
        self.state = state
        self.host = host
        self.source, _ = HistorySource.objects.get_or_create(host=host, dbfile=path[:1024])
        self.result = SyncResult(dbfile=path, host=host, rescanned=rescanned)
        self.commit_rows = commit_rows
        self.progress = progress
        self.addresses: dict[str, tuple[str, str] | None] = {}
        self.blobs: dict[Any, tuple[int, str]] = {}
        self.parsed: list[ParsedBan] = []
        self.unstored: Sequence[Any] | None = None  # the last row read but not yet archived

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        where = f"{self.host}:{self.result.dbfile}"
        self.add_parsed(_rows_parse(rows, self.addresses, self.blobs, where=where))

    def add_parsed(self, batch: _ParsedBatch) -> None:
        result = self.result
        result.batches += 1
        result.read += batch.read
        result.skipped += batch.skipped
        self.parsed.extend(batch.bans)
        if batch.last is not None:
            self.unstored = batch.last
        # Several short reads, one write transaction: fewer commits of a large archive.
        if len(self.parsed) >= self.commit_rows:
            self.store()

    def store(self) -> None:
        last = self.unstored
        if last is None:
            return
        source = self.source
        with transaction.atomic():
            _archive_batch(self.state, self.host, self.parsed, self.result)
            source.last_rowid = int(last[0])
            source.last_jail = str(last[1])[:64]
            source.last_ip = str(last[2])[:64]
            source.last_timeofban = int(last[3]) if isinstance(last[3], int) else 0
            source.save()
        self.parsed, self.unstored = [], None
        if self.progress is not None:
            self.progress()

    def finish(self) -> SyncResult:
        self.store()
        HistorySource.objects.filter(pk=self.source.pk).update(
            synced_at=timezone.now(), archived_total=F("archived_total") + self.result.archived
        )
        return self.result


def _cache_pages() -> None:
    if connection.vendor == "sqlite":
        # Index pages of a large archive stay in memory across the batches of this sync
        # (SQLite's default cache is 2 MB); the setting ends with the connection.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA cache_size = -131072")


def history_sync(
    state: RuntimeState,
    *,
    dbfile: str | None = None,
    batch_size: int = BATCH_SIZE,
    commit_rows: int = COMMIT_ROWS,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[], None] | None = None,
) -> SyncResult:
    """Copy the bans fail2ban's database holds and the archive lacks; idempotent.

    The bans are the host's of `state.snapshot.host` (a state scoped to a host syncs that
    host). ``dbfile`` reads that file instead of the one fail2ban reports (an old copy, a
    backup), archived as that host's.
    """
    try:
        return _sync(state, dbfile, batch_size, commit_rows, should_stop, progress)
    except DatabaseUnavailable as exc:
        raise HistoryError(str(exc)) from exc


def _sync(
    state: RuntimeState,
    dbfile: str | None,
    batch_size: int,
    commit_rows: int,
    should_stop: Callable[[], bool] | None,
    progress: Callable[[], None] | None,
) -> SyncResult:
    host = state.snapshot.host
    reader = _reader(state, dbfile)
    source = HistorySource.objects.filter(host=host, dbfile=reader.path[:1024]).first()
    rescanned = source is not None and not _cursor_valid(reader, source)
    archiver = _Archiver(
        state,
        host=host,
        path=reader.path,
        rescanned=rescanned,
        commit_rows=commit_rows,
        progress=progress,
    )
    last_rowid = 0 if rescanned else archiver.source.last_rowid
    _cache_pages()
    while True:
        if should_stop is not None and should_stop():
            archiver.result.stopped = True
            break
        rows = reader.bans(last_rowid, batch_size)
        if not rows:
            break
        archiver.add(rows)
        last_rowid = int(rows[-1][0])
        if len(rows) < batch_size:
            break
    return archiver.finish()


# --- Several hosts --------------------------------------------------------------------------------
# What a host's reading thread sends the writer: (host index, kind, payload).
_Message = tuple[int, str, Any]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HistoryError | DatabaseUnavailable | Fail2banError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _host_read(
    index: int,
    scoped: RuntimeState,
    *,
    cursors: Mapping[str, tuple[int, str, str, int]],
    batch_size: int,
    out: queue.Queue[_Message],
    abandoned: threading.Event,
    alive: dict[int, float],
) -> None:
    """One host's side of history_sync_hosts: read its new rows and hand them over.

    Runs on a thread of its own and touches no database of ours (the writer does that):
    `cursors` are the host's stored cursors by database path. `alive[index]` is when the
    host last answered (or this thread last waited for the writer, which is not the host's
    delay): the writer gives up on a host silent for longer than its deadline.
    """

    def send(kind: str, payload: Any = None) -> bool:
        # A bounded queue keeps at most a few batches per host in memory; a writer that gave
        # up on this host (stop, deadline) is never waited for.
        while not abandoned.is_set():
            alive[index] = time.monotonic()
            try:
                out.put((index, kind, payload), timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    try:
        reader = _reader(scoped, None)
        after, rescanned = 0, False
        cursor = cursors.get(reader.path[:1024])
        if cursor is not None and cursor[0] > 0:
            if reader.ban(cursor[0]) == cursor[1:]:
                after = cursor[0]
            else:
                rescanned = True
        if not send("start", (reader.path, rescanned)):
            return
        while not abandoned.is_set():
            rows = reader.bans(after, batch_size)
            # Raw rows: validating them here would be CPU work competing with the writer's
            # for the GIL (measured slower); the writer validates as it archives.
            if rows and not send("rows", rows):
                return
            if len(rows) < batch_size:
                break
            after = int(rows[-1][0])
        send("done")
    except Exception as exc:  # every failure of one host is that host's outcome
        send("error", _describe(exc))


def history_sync_hosts(
    state: RuntimeState,
    *,
    scopes: Sequence[HostScope],
    deadline: float,
    batch_size: int = BATCH_SIZE,
    commit_rows: int = COMMIT_ROWS,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[], None] | None = None,
) -> list[HostOutcome[SyncResult]]:
    """history_sync for every host of `scopes`; each host's result or error, in that order.

    The hosts are read in parallel, the archive written here. A host that fails (or sends
    nothing for `deadline` seconds) is that host's error: what it sent before is archived,
    and the other hosts carry on. Each host's reachability is recorded on its row.
    """
    started = time.monotonic()
    out: queue.Queue[_Message] = queue.Queue(maxsize=4 * max(len(scopes), 1))
    abandoned = threading.Event()
    # Written by the reading threads (one key each), read here: plain assignments under the GIL.
    alive = dict.fromkeys(range(len(scopes)), started)
    stored: dict[str, dict[str, tuple[int, str, str, int]]] = {}
    for row in HistorySource.objects.filter(host__in=[item.name for item in scopes]).values_list(
        "host", "dbfile", "last_rowid", "last_jail", "last_ip", "last_timeofban"
    ):
        stored.setdefault(row[0], {})[row[1]] = (row[2], row[3], row[4], row[5])
    for index, item in enumerate(scopes):
        threading.Thread(
            target=_host_read,
            args=(index, item.state),
            kwargs={
                "cursors": stored.get(item.name, {}),
                "batch_size": batch_size,
                "out": out,
                "abandoned": abandoned,
                "alive": alive,
            },
            name=f"history-sync-{item.name}",
            daemon=True,  # a hung host's thread must not keep the process alive
        ).start()
    archivers: dict[int, _Archiver] = {}
    outcomes: dict[int, HostOutcome[SyncResult]] = {}
    pending = set(alive)
    stopped: set[int] = set()  # hosts left when asked to stop: no verdict on their health

    def end(index: int, error: str = "", timed_out: bool = False) -> None:
        pending.discard(index)
        archiver = archivers.get(index)
        result: SyncResult | None = None
        if archiver is not None:
            try:
                result = archiver.finish()  # what the host sent before it failed is kept
            except DatabaseError as exc:
                error = error or f"archive write failed: {exc}"
        seconds = time.monotonic() - started
        outcomes[index] = HostOutcome(
            scopes[index].host, result, error=error, timed_out=timed_out, seconds=seconds
        )

    _cache_pages()
    try:
        while pending:
            if should_stop is not None and should_stop():
                abandoned.set()
                stopped.update(pending)
                for index in sorted(pending):
                    if index in archivers:
                        archivers[index].result.stopped = True
                    end(index, error="" if index in archivers else "stopped before it answered")
                break
            now = time.monotonic()
            for index in sorted(pending):
                if now - alive[index] > deadline:
                    end(index, error=f"no answer within {deadline:g} s", timed_out=True)
            if not pending:
                break
            wait = min(alive[index] for index in pending) + deadline - now
            try:
                # At most a second: should_stop is asked between messages too.
                index, kind, payload = out.get(timeout=max(min(wait, 1.0), 0.01))
            except queue.Empty:
                continue
            if index not in pending:
                continue  # a host given up on: its late rows are read again next time
            item = scopes[index]
            try:
                if kind == "start":
                    path, rescanned = payload
                    archivers[index] = _Archiver(
                        state,
                        host=item.name,
                        path=path,
                        rescanned=rescanned,
                        commit_rows=commit_rows,
                        progress=progress,
                    )
                elif kind == "rows":
                    archivers[index].add(payload)
                elif kind == "done":
                    end(index)
                else:
                    end(index, error=str(payload))
            except DatabaseError as exc:
                end(index, error=f"archive write failed: {exc}")
    finally:
        abandoned.set()  # reading threads still waiting to hand over rows stop
    ordered = [outcomes[index] for index in range(len(scopes))]
    reachability_record(o for index, o in enumerate(ordered) if index not in stopped)
    return ordered


@dataclass(frozen=True)
class HostSync:
    """One host's part of a fleet sync: what it archived, and why it stopped if it failed."""

    host: str
    result: SyncResult | None
    error: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def archived(self) -> int:
        return self.result.archived if self.result is not None else 0

    @property
    def message(self) -> str:
        if self.result is None:
            return f"{self.host}: FAILED: {self.error}"
        text = f"{self.host}: {self.result.message}"
        return text + (f"; then failed: {self.error}" if self.error else "")


@dataclass(frozen=True)
class FleetSyncResult:
    """Every host's part of a fleet sync, in host order."""

    hosts: list[HostSync]

    @property
    def message(self) -> str:
        return " | ".join(item.message for item in self.hosts)  # one line: the job's summary

    @property
    def all_failed(self) -> bool:
        """No host could be read at all (a failure of the whole sync, retried by the runner)."""
        return bool(self.hosts) and all(item.result is None for item in self.hosts)


def sync_deadline(state: RuntimeState) -> float:
    """How long a host may stay silent during a sync before it counts as unreachable.

    Generous (pages wait host_deadline): a sync reads thousands of rows per answer, and a
    host given up on is simply read again at the next run.
    """
    settings = state.settings
    return max(5 * settings.host_deadline, 2 * settings.fail2ban_timeout, 10.0)


def fleet_history_sync(
    state: RuntimeState,
    *,
    names: Iterable[str] | None = None,
    deadline: float | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[], None] | None = None,
) -> FleetSyncResult:
    """Sync every enabled host (or those of `names`; HostUnknown for another name) at once."""
    outcomes = history_sync_hosts(
        state,
        scopes=fleet.scopes_list(state, names=names),
        deadline=sync_deadline(state) if deadline is None else deadline,
        should_stop=should_stop,
        progress=progress,
    )
    return FleetSyncResult(
        hosts=[
            HostSync(host=o.name, result=o.value, error=o.error, timed_out=o.timed_out)
            for o in outcomes
        ]
    )


# --- Retention ------------------------------------------------------------------------------------
@dataclass
class PurgeResult:
    cutoff: int
    deleted: int = 0
    stopped: bool = False

    @property
    def message(self) -> str:
        when = datetime.fromtimestamp(self.cutoff, tz=UTC).isoformat(timespec="seconds")
        return f"deleted {self.deleted} archived bans from before {when}" + (
            " (stopped early)" if self.stopped else ""
        )


def history_purge(
    *,
    retention_days: int,
    now: datetime,
    actor: Actor | None = None,
    chunk: int = 10000,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[], None] | None = None,
) -> PurgeResult:
    """Delete archived bans that started more than ``retention_days`` before ``now``."""
    if retention_days < 1:
        raise ValueError("retention must be at least one day")
    result = PurgeResult(cutoff=int(now.timestamp()) - retention_days * DAY)
    while True:
        if should_stop is not None and should_stop():
            result.stopped = True
            break
        ids = list(
            BanEvent.objects.filter(timeofban__lt=result.cutoff)
            .order_by("timeofban")
            .values_list("id", flat=True)[:chunk]
        )
        if not ids:
            break
        with transaction.atomic():
            doomed = BanEvent.objects.filter(id__in=ids).order_by()
            counts = doomed.annotate(hour=hour_expression()).values_list(
                "hour", "host", "jail", "country_code", "origin"
            )
            deltas = rollup_deltas(counts.annotate(n=Count("id")))
            ips = set(doomed.values_list("ip", flat=True))
            networks = set(doomed.values_list("network", flat=True))
            doomed.delete()
            rollup_apply({key: -n for key, n in deltas.items()})
            summaries_refresh(ips, networks, after_delete=True)
        result.deleted += len(ids)
        if progress is not None:
            progress()
    if result.deleted and actor is not None:
        audit_record(
            actor=actor,
            action="history_purge",
            parameters={
                "retention_days": retention_days,
                "cutoff": result.cutoff,
                "deleted": result.deleted,
            },
        )
    return result
