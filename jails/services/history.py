"""Ban history: archive fail2ban's bans, keep the summaries, purge by retention, read for pages.

fail2ban forgets bans (an unban deletes its rows, `unban --all` empties the table, rows older
than dbpurgeage are purged), so every ban is copied into BanEvent. The copy is incremental
(a rowid cursor into fail2ban's `bans` table, checked on every sync because SQLite reuses
rowids after deletes) and idempotent (unique on jail, IP, time of ban).

fail2ban's database is opened read-only and read in short queries of at most BATCH_SIZE
rows: a reader that holds a read transaction for seconds makes the server lose bans.

Every archived event also updates three summaries in the same transaction, so that pages
never aggregate a year of events per request:

- BanRollup: counts per hour, day and month (UTC) by jail, country and origin, with
  ROLLUP_ALL rows for "every jail" / "every country";
- IPSummary and NetworkSummary: first and last ban, count and distinct days per address and
  per /24 (IPv4) or /64 (IPv6).

A dashboard window is split into whole months, days and hours read from BanRollup plus
two partial hours at its ends read from BanEvent, so figures are exact at any boundary.
"""

from __future__ import annotations

import heapq
import ipaddress
import json
import logging
import sqlite3
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
)
from django.utils import timezone

from jails.fail2ban import InvalidArgument
from jails.fail2ban.validation import JAIL_NAME_RE, parse_ip_or_network
from jails.geo import GeoDataError, GeoInfo
from jails.models import (
    ROLLUP_ALL,
    AuditEntry,
    BanEvent,
    BanRollup,
    HistorySource,
    IPSummary,
    NetworkSummary,
)
from jails.services.audit import Actor, audit_record
from jails.state import RuntimeState

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000  # rows per read from fail2ban's database (each read is one short query)
COMMIT_ROWS = 20000  # rows archived per write transaction
MAX_MATCH_TEXT = 32 * 1024  # matched log lines kept per ban
MAX_DATA_BYTES = 4 * 1024 * 1024  # a `data` blob larger than this is not parsed
# Audit actions whose bans are not a jail's own detection, by origin. The ban service writes
# "ban" (jails.services.bans); a blocklist import is to write "blocklist_import".
ORIGIN_ACTIONS: Mapping[str, str] = {
    "ban": BanEvent.Origin.MANUAL,
    "blocklist_import": BanEvent.Origin.BLOCKLIST,
}
AUDIT_MATCH_SECONDS = 300  # an audit record this close to a ban's start explains it
HOUR, DAY = 3600, 86400
READ_RETRIES = 5  # "database is locked" while fail2ban writes: retry shortly
SEARCH_EXPANSION_LIMIT = 4096  # a network search becomes at most this many /24s or addresses
REPEAT_DAYS = 2  # an address banned on this many distinct days is a repeat offender
Grain = BanRollup.Grain


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


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A ban about to be archived (a light stand-in for a BanEvent instance)."""

    jail: str
    ip: str
    network: str
    timeofban: int
    bantime: int
    bancount: int
    failures: int
    matches: str
    origin: str
    banned_by: str
    country_code: str
    country_name: str
    asn: int | None
    as_name: str


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
    if cache is not None and text in cache:
        return cache[text]
    try:
        # fail2ban can ban whole networks too (`set J banip 192.0.2.0/24`).
        ip = str(parse_ip_or_network(text))
        found: tuple[str, str] | None = (ip, network_of(ip))
    except InvalidArgument:
        found = None
    if cache is not None:
        cache[text] = found
    return found


def parse_ban_row(
    row: Sequence[Any], *, cache: dict[str, tuple[str, str] | None] | None = None
) -> ParsedBan | None:
    """Validate one (jail, ip, timeofban, bantime, bancount, data) row; None if unusable."""
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
    failures, matches = _parse_data(data)
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
def dbfile_get(state: RuntimeState) -> str | None:
    """fail2ban's database path (`get dbfile`), or None when it keeps no database."""
    value = state.jail_service.client.send("get", "dbfile")
    if value is None:
        return None
    path = str(value).strip()
    return path if path and path not in (":memory:", "None") else None


def _open_readonly(path: str) -> sqlite3.Connection:
    uri = "file:" + urllib.parse.quote(path) + "?mode=ro"
    try:
        # isolation_level=None: no implicit transaction; every SELECT ends when it is fetched.
        conn = sqlite3.connect(uri, uri=True, timeout=2.0, isolation_level=None)
        conn.execute("PRAGMA query_only = ON")
        version = conn.execute("SELECT version FROM fail2banDb").fetchone()
    except sqlite3.Error as exc:
        raise HistoryError(f"cannot read fail2ban's database {path}: {exc}") from exc
    if not version or int(version[0]) < 2:
        conn.close()
        raise HistoryError(f"{path} is not a fail2ban database this version understands")
    return conn


def _query(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    """One short read; retried a few times while fail2ban holds its write lock."""
    for attempt in range(READ_RETRIES):
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise HistoryError(f"cannot read fail2ban's database: {exc}") from exc
            time.sleep(0.05 * (attempt + 1))
    raise HistoryError("fail2ban's database stayed locked; will try again on the next sync")


# --- Summaries ------------------------------------------------------------------------------------
def _month_start(epoch: int) -> int:
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return int(moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp())


def _next_month(epoch: int) -> int:
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


RollupKey = tuple[int, int, str, str, str]  # grain, period, jail, country, origin


def rollup_deltas(counts: Iterable[tuple[int, str, str, str, int]]) -> Counter[RollupKey]:
    """Rollup increments for (hour start, jail, country, origin, bans) tuples."""
    deltas: Counter[RollupKey] = Counter()
    months: dict[int, int] = {}
    for hour, jail, country, origin, n in counts:
        day = hour - hour % DAY
        month = months.get(day)
        if month is None:
            month = months[day] = _month_start(day)
        deltas[(Grain.HOUR, hour, ROLLUP_ALL, ROLLUP_ALL, origin)] += n
        deltas[(Grain.HOUR, hour, jail, ROLLUP_ALL, origin)] += n
        for grain, period in ((Grain.DAY, day), (Grain.MONTH, month)):
            deltas[(grain, period, ROLLUP_ALL, ROLLUP_ALL, origin)] += n
            deltas[(grain, period, jail, ROLLUP_ALL, origin)] += n
            deltas[(grain, period, ROLLUP_ALL, country, origin)] += n
            deltas[(grain, period, jail, country, origin)] += n
    return deltas


def _rollup_apply(deltas: Mapping[RollupKey, int]) -> None:
    """Add the deltas to BanRollup (an upsert); rows that reach zero are deleted."""
    rows = [(*key, n) for key, n in deltas.items() if n]
    if not rows:
        return
    qn = connection.ops.quote_name
    table = qn(BanRollup._meta.db_table)
    # One statement for SQLite and PostgreSQL alike; the ORM cannot add to a conflicting row.
    sql = (
        f"INSERT INTO {table} (grain, period, jail, country_code, origin, bans) "
        "VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (grain, jail, country_code, period, origin) "
        f"DO UPDATE SET bans = {table}.bans + excluded.bans"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    if any(n < 0 for *_, n in rows):
        BanRollup.objects.filter(bans__lte=0).delete()


def _hour_expression() -> ExpressionWrapper:
    return ExpressionWrapper(F("timeofban") - F("timeofban") % HOUR, output_field=BigIntegerField())


SUMMARY_CHUNK = 500  # keys per summary statement


def _sql_names() -> dict[str, str]:
    qn = connection.ops.quote_name
    return {
        "event": qn(BanEvent._meta.db_table),
        "ipsum": qn(IPSummary._meta.db_table),
        "netsum": qn(NetworkSummary._meta.db_table),
    }


def _summaries_add(
    events: Sequence[NewEvent], existing: set[tuple[str, str, int]], geo: Mapping[str, GeoInfo]
) -> None:
    """Add newly archived bans to IPSummary and NetworkSummary (an upsert per key).

    ``existing`` holds the archive's bans of these addresses on the same days (read before
    the insert), so a day counts as new only if the address had no ban on it yet.
    """
    t = _sql_names()
    least, greatest = ("MIN", "MAX") if connection.vendor == "sqlite" else ("LEAST", "GREATEST")
    old_days: dict[str, set[int]] = {}
    for _, ip, when in existing:
        old_days.setdefault(ip, set()).add(when // DAY)
    known = set()
    ip_list = sorted({e.ip for e in events})
    for i in range(0, len(ip_list), SUMMARY_CHUNK * 4):
        known.update(
            IPSummary.objects.filter(ip__in=ip_list[i : i + SUMMARY_CHUNK * 4]).values_list(
                "ip", flat=True
            )
        )
    per_ip: dict[str, list[NewEvent]] = {}
    for e in events:
        per_ip.setdefault(e.ip, []).append(e)
    ip_rows = []
    net_rows: dict[str, list[int]] = {}  # network -> [first, last, bans, new addresses]
    for ip, mine in per_ip.items():
        times = [e.timeofban for e in mine]
        days = {t // DAY for t in times} - old_days.get(ip, set())
        info = geo.get(ip) or GeoInfo()
        ip_rows.append(
            (
                ip,
                mine[0].network,
                min(times),
                max(times),
                len(mine),
                len(days),
                info.country_code or "",
                (info.country_name or "")[:64],
                info.asn,
                (info.as_name or "")[:255],
            )
        )
        net = net_rows.setdefault(mine[0].network, [min(times), max(times), 0, 0])
        net[0], net[1] = min(net[0], *times), max(net[1], *times)
        net[2] += len(mine)
        net[3] += ip not in known
    ip_sql = (
        f"INSERT INTO {t['ipsum']} (ip, network, first_seen, last_seen, bans, days, "
        "country_code, country_name, asn, as_name) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (ip) DO UPDATE SET "
        f"first_seen = {least}({t['ipsum']}.first_seen, excluded.first_seen), "
        f"last_seen = {greatest}({t['ipsum']}.last_seen, excluded.last_seen), "
        f"bans = {t['ipsum']}.bans + excluded.bans, days = {t['ipsum']}.days + excluded.days, "
        "country_code = excluded.country_code, country_name = excluded.country_name, "
        "asn = excluded.asn, as_name = excluded.as_name"
    )
    net_sql = (
        f"INSERT INTO {t['netsum']} (network, first_seen, last_seen, bans, ips) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (network) DO UPDATE SET "
        f"first_seen = {least}({t['netsum']}.first_seen, excluded.first_seen), "
        f"last_seen = {greatest}({t['netsum']}.last_seen, excluded.last_seen), "
        f"bans = {t['netsum']}.bans + excluded.bans, ips = {t['netsum']}.ips + excluded.ips"
    )
    with connection.cursor() as cursor:
        cursor.executemany(ip_sql, ip_rows)
        cursor.executemany(net_sql, [(net, *values) for net, values in net_rows.items()])


def _summaries_refresh(ips: set[str], networks: set[str], *, after_delete: bool = False) -> None:
    """Recompute IPSummary/NetworkSummary for these keys from the archive (deleting empty ones).

    Set-based SQL (INSERT ... SELECT ... ON CONFLICT, the same on SQLite and PostgreSQL): the
    rows never travel through Python, and an address's figures are always those of its bans.
    The geo fields take the largest stored value: one per address unless the geo data changed.
    """
    t = _sql_names()
    ip_sql = (
        f"INSERT INTO {t['ipsum']} (ip, network, first_seen, last_seen, bans, days, "
        "country_code, country_name, asn, as_name) "
        "SELECT ip, MAX(network), MIN(timeofban), MAX(timeofban), COUNT(*), "
        f"COUNT(DISTINCT timeofban / {DAY}), MAX(country_code), "
        f"MAX(country_name), MAX(asn), MAX(as_name) FROM {t['event']} WHERE ip IN ({{marks}}) "
        "GROUP BY ip ON CONFLICT (ip) DO UPDATE SET network = excluded.network, "
        "first_seen = excluded.first_seen, last_seen = excluded.last_seen, "
        "bans = excluded.bans, days = excluded.days, "
        "country_code = excluded.country_code, country_name = excluded.country_name, "
        "asn = excluded.asn, as_name = excluded.as_name"
    )
    net_sql = (
        f"INSERT INTO {t['netsum']} (network, first_seen, last_seen, bans, ips) "
        "SELECT network, MIN(timeofban), MAX(timeofban), COUNT(*), COUNT(DISTINCT ip) "
        f"FROM {t['event']} WHERE network IN ({{marks}}) GROUP BY network "
        "ON CONFLICT (network) DO UPDATE SET first_seen = excluded.first_seen, "
        "last_seen = excluded.last_seen, bans = excluded.bans, ips = excluded.ips"
    )
    with connection.cursor() as cursor:
        for keys, sql, model, field_name in (
            (sorted(ips), ip_sql, IPSummary, "ip"),
            (sorted(networks), net_sql, NetworkSummary, "network"),
        ):
            for i in range(0, len(keys), SUMMARY_CHUNK):
                chunk = keys[i : i + SUMMARY_CHUNK]
                cursor.execute(sql.format(marks=", ".join(["%s"] * len(chunk))), chunk)
                if after_delete:  # keys whose last ban was purged
                    model.objects.filter(**{f"{field_name}__in": chunk}).exclude(
                        Exists(BanEvent.objects.filter(**{field_name: OuterRef(field_name)}))
                    ).delete()


def summaries_rebuild() -> None:
    """Rebuild BanRollup, IPSummary and NetworkSummary from the whole archive (seed, repair)."""
    with transaction.atomic():
        BanRollup.objects.all().delete()
        IPSummary.objects.all().delete()
        NetworkSummary.objects.all().delete()
        counts = (
            BanEvent.objects.order_by()
            .annotate(hour=_hour_expression())
            .values_list("hour", "jail", "country_code", "origin")
            .annotate(n=Count("id"))
        )
        _rollup_apply(rollup_deltas(counts.iterator(chunk_size=20000)))
        day = ExpressionWrapper(F("timeofban") / DAY, output_field=BigIntegerField())
        # The address's geo fields: any of its events' (they come from one lookup per sync).
        ip_rows = (
            BanEvent.objects.order_by()
            .values("ip")
            .annotate(
                net=Max("network"),
                first=Min("timeofban"),
                last=Max("timeofban"),
                n=Count("id"),
                days=Count(day, distinct=True),
                cc=Max("country_code"),
                cn=Max("country_name"),
                asn_=Max("asn"),
                asname=Max("as_name"),
            )
        )
        batch: list[IPSummary] = []
        for row in ip_rows.iterator(chunk_size=20000):
            batch.append(
                IPSummary(
                    ip=row["ip"],
                    network=row["net"],
                    first_seen=row["first"],
                    last_seen=row["last"],
                    bans=row["n"],
                    days=row["days"],
                    country_code=row["cc"] or "",
                    country_name=row["cn"] or "",
                    asn=row["asn_"],
                    as_name=row["asname"] or "",
                )
            )
            if len(batch) >= 5000:
                IPSummary.objects.bulk_create(batch)
                batch = []
        IPSummary.objects.bulk_create(batch)
        net_rows = (
            BanEvent.objects.order_by()
            .values("network")
            .annotate(
                first=Min("timeofban"),
                last=Max("timeofban"),
                n=Count("id"),
                ips=Count("ip", distinct=True),
            )
        )
        nets = [
            NetworkSummary(
                network=row["network"],
                first_seen=row["first"],
                last_seen=row["last"],
                bans=row["n"],
                ips=row["ips"],
            )
            for row in net_rows.iterator(chunk_size=20000)
        ]
        NetworkSummary.objects.bulk_create(nets, batch_size=5000)


# --- Origin ---------------------------------------------------------------------------------------
@dataclass
class _AuditIndex:
    by_address: dict[tuple[str, str], list[tuple[int, str, str]]] = field(default_factory=dict)
    truncated: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)

    def explain(self, ban: ParsedBan) -> tuple[str, str] | None:
        """(origin, actor) of the audit record that explains this ban, if any."""
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


def _audit_index(bans: Sequence[ParsedBan]) -> _AuditIndex:
    index = _AuditIndex()
    candidates = [b for b in bans if b.without_evidence]
    if not candidates:
        return index
    low = min(b.timeofban for b in candidates) - AUDIT_MATCH_SECONDS
    high = max(b.timeofban for b in candidates) + AUDIT_MATCH_SECONDS
    entries = AuditEntry.objects.filter(
        action__in=list(ORIGIN_ACTIONS),
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


def _cursor_valid(conn: sqlite3.Connection, source: HistorySource) -> bool:
    """The row at the cursor is still the one we read, so every new row lies beyond it.

    SQLite gives a new row max(rowid)+1; only when the newest rows were deleted (an unban,
    `unban --all`, a purge, a VACUUM) can rowids be reused, and then the check fails.
    """
    if source.last_rowid <= 0:
        return True
    row = _query(conn, "SELECT jail, ip, timeofban FROM bans WHERE rowid = ?", (source.last_rowid,))
    if not row:
        return False
    jail, ip, timeofban = row[0]
    return (str(jail), str(ip), int(timeofban)) == (
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


def _archive_batch(
    state: RuntimeState, bans: list[ParsedBan], result: SyncResult
) -> list[ParsedBan]:
    """Store the bans not yet archived, with their summaries. Call inside a transaction."""
    unique = list({b.key: b for b in bans}.values())
    if not unique:
        return []
    ips = {b.ip for b in unique}
    # The archived bans of these addresses on the days of the batch: what is already there,
    # and on which days each address was already banned (for the summaries' day counts).
    low = min(b.timeofban for b in unique)
    high = max(b.timeofban for b in unique)
    existing: set[tuple[str, str, int]] = set()
    ip_list = sorted(ips)
    for i in range(0, len(ip_list), SUMMARY_CHUNK * 4):
        chunk = ip_list[i : i + SUMMARY_CHUNK * 4]
        existing.update(
            BanEvent.objects.filter(
                ip__in=chunk, timeofban__gte=low - low % DAY, timeofban__lt=high - high % DAY + DAY
            ).values_list("jail", "ip", "timeofban")
        )
    new = [b for b in unique if b.key not in existing]
    result.already += len(bans) - len(new)
    if not new:
        return []
    geo = _geo_lookup(state, {b.ip for b in new}, result)
    index = _audit_index(new)
    events = []
    for ban in new:
        origin, actor = _origin(ban, index)
        info = geo.get(ban.ip) or GeoInfo()
        events.append(
            NewEvent(
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
    counts: Counter[tuple[int, str, str, str]] = Counter(
        (e.timeofban - e.timeofban % HOUR, e.jail, e.country_code, e.origin) for e in events
    )
    _rollup_apply(rollup_deltas((*key, n) for key, n in counts.items()))
    _summaries_add(events, existing, geo)
    result.archived += len(new)
    return new


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

    ``dbfile`` reads that file instead of the one fail2ban reports (an old copy, a backup).
    """
    path = dbfile if dbfile is not None else dbfile_get(state)
    if not path:
        raise HistoryError("fail2ban keeps no database (dbfile is :memory: or unset)")
    result = SyncResult(dbfile=path)
    conn = _open_readonly(path)
    try:
        source, _ = HistorySource.objects.get_or_create(dbfile=path[:1024])
        if not _cursor_valid(conn, source):
            result.rescanned = True
            source.last_rowid = 0
        last_rowid = source.last_rowid
        addresses: dict[str, tuple[str, str] | None] = {}
        parsed: list[ParsedBan] = []
        unstored: Sequence[Any] | None = None  # the last row read but not yet archived

        def store(bans: list[ParsedBan], last: Sequence[Any]) -> None:
            with transaction.atomic():
                _archive_batch(state, bans, result)
                source.last_rowid = int(last[0])
                source.last_jail = str(last[1])[:64]
                source.last_ip = str(last[2])[:64]
                source.last_timeofban = int(last[3]) if isinstance(last[3], int) else 0
                source.save()
            if progress is not None:
                progress()

        if connection.vendor == "sqlite":
            # Index pages of a large archive stay in memory across the batches of this sync
            # (SQLite's default cache is 2 MB); the setting ends with the connection.
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA cache_size = -131072")
        while True:
            if should_stop is not None and should_stop():
                result.stopped = True
                break
            rows = _query(
                conn,
                "SELECT rowid, jail, ip, timeofban, bantime, bancount, data FROM bans "
                "WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last_rowid, batch_size),
            )
            if not rows:
                break
            result.batches += 1
            result.read += len(rows)
            unstored = rows[-1]
            for row in rows:
                ban = parse_ban_row(row[1:], cache=addresses)
                if ban is None:
                    result.skipped += 1
                    logger.warning("ban history: unusable row %r in %s", row[:4], path)
                else:
                    parsed.append(ban)
            last_rowid = int(rows[-1][0])
            finished = len(rows) < batch_size
            # Several short reads, one write transaction: fewer commits of a large archive.
            if finished or len(parsed) >= commit_rows:
                store(parsed, unstored)
                parsed, unstored = [], None
            if finished:
                break
        if unstored is not None:  # stopped early, or the table ended on a full read
            store(parsed, unstored)
        HistorySource.objects.filter(pk=source.pk).update(
            synced_at=timezone.now(), archived_total=F("archived_total") + result.archived
        )
    finally:
        conn.close()
    return result


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
            counts = doomed.annotate(hour=_hour_expression()).values_list(
                "hour", "jail", "country_code", "origin"
            )
            deltas = rollup_deltas(counts.annotate(n=Count("id")))
            ips = set(doomed.values_list("ip", flat=True))
            networks = set(doomed.values_list("network", flat=True))
            doomed.delete()
            _rollup_apply({key: -n for key, n in deltas.items()})
            _summaries_refresh(ips, networks, after_delete=True)
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


# --- Reading: filters and windows -----------------------------------------------------------------
@dataclass(frozen=True)
class HistoryFilter:
    """A time window [start, end) in Unix seconds and optional jail, country and origin."""

    start: int
    end: int
    jail: str = ""
    country: str = ""  # ISO alpha-2, upper case
    origin: str = ""

    @property
    def unfiltered(self) -> bool:
        return not (self.jail or self.country or self.origin)

    def events(self) -> QuerySet[BanEvent]:
        qs = BanEvent.objects.filter(timeofban__gte=self.start, timeofban__lt=self.end)
        if self.jail:
            qs = qs.filter(jail=self.jail)
        if self.country:
            qs = qs.filter(country_code=self.country)
        if self.origin:
            qs = qs.filter(origin=self.origin)
        return qs


def _ceil(t: int, step: int) -> int:
    return -(-t // step) * step


def window_segments(start: int, end: int) -> list[tuple[int | None, int, int]]:
    """Split [start, end) into (grain, a, b): whole months, days, hours; None = raw events."""
    segments: list[tuple[int | None, int, int]] = []
    h0, h1 = _ceil(start, HOUR), end - end % HOUR
    if h0 >= h1:
        return [(None, start, end)] if start < end else []
    if start < h0:
        segments.append((None, start, h0))
    d0, d1 = _ceil(h0, DAY), h1 - h1 % DAY
    if d0 >= d1:
        segments.append((Grain.HOUR, h0, h1))
    else:
        if h0 < d0:
            segments.append((Grain.HOUR, h0, d0))
        m0 = d0 if _month_start(d0) == d0 else _next_month(d0)
        m1 = _month_start(d1)
        if m0 >= m1:
            segments.append((Grain.DAY, d0, d1))
        else:
            if d0 < m0:
                segments.append((Grain.DAY, d0, m0))
            segments.append((Grain.MONTH, m0, m1))
            if m1 < d1:
                segments.append((Grain.DAY, m1, d1))
        if d1 < h1:
            segments.append((Grain.HOUR, d1, h1))
    if h1 < end:
        segments.append((None, h1, end))
    return segments


_GROUP_FIELDS = {"jail": "jail", "country": "country_code", "origin": "origin"}


def _count_segment(
    grain: int | None, a: int, b: int, f: HistoryFilter, group: str | None
) -> Iterator[tuple[Any, int]]:
    needs_country = bool(f.country) or group == "country"
    field_name = _GROUP_FIELDS.get(group or "")
    if grain is None or (grain == Grain.HOUR and needs_country):
        qs = replace_window(f, a, b).events().order_by()
        if field_name is None:
            yield None, qs.count()
        else:
            yield from (
                qs.values_list(field_name).annotate(n=Count("id")).values_list(field_name, "n")
            )
        return
    qs = BanRollup.objects.filter(grain=grain, period__gte=a, period__lt=b).order_by()
    jail = f.jail or ROLLUP_ALL
    country = f.country or ROLLUP_ALL
    if group == "jail" and not f.jail:
        qs = qs.filter(country_code=country).exclude(jail=ROLLUP_ALL)
    elif group == "country" and not f.country:
        qs = qs.filter(jail=jail).exclude(country_code=ROLLUP_ALL)
    else:
        qs = qs.filter(jail=jail, country_code=country)
    if f.origin:
        qs = qs.filter(origin=f.origin)
    if field_name is None:
        yield None, qs.aggregate(n=Sum("bans"))["n"] or 0
    else:
        yield from qs.values_list(field_name).annotate(n=Sum("bans")).values_list(field_name, "n")


def replace_window(f: HistoryFilter, start: int, end: int) -> HistoryFilter:
    return HistoryFilter(start=start, end=end, jail=f.jail, country=f.country, origin=f.origin)


def bans_count(f: HistoryFilter, *, group: str | None = None) -> dict[Any, int]:
    """Bans in the window, in total (key None) or per jail, country or origin."""
    totals: Counter[Any] = Counter()
    for grain, a, b in window_segments(f.start, f.end):
        for key, n in _count_segment(grain, a, b, f, group):
            totals[key] += int(n)
    return {k: v for k, v in totals.items() if v}


TREND_GRAINS = {"hour": Grain.HOUR, "day": Grain.DAY, "month": Grain.MONTH}


def trend_grain_for(f: HistoryFilter) -> str:
    span = f.end - f.start
    if span <= 7 * DAY:
        return "hour"
    if span <= 400 * DAY:
        return "day"
    return "month"


def _bucket_floor(t: int, grain: str) -> int:
    if grain == "hour":
        return t - t % HOUR
    if grain == "day":
        return t - t % DAY
    return _month_start(t)


def _bucket_next(t: int, grain: str) -> int:
    if grain == "hour":
        return t + HOUR
    if grain == "day":
        return t + DAY
    return _next_month(t)


def bans_trend(f: HistoryFilter, *, grain: str) -> list[tuple[int, int]]:
    """(bucket start, bans) for every hour, day or month (UTC) of the window, zeros included."""
    buckets: list[int] = []
    t = _bucket_floor(f.start, grain)
    while t < f.end:
        buckets.append(t)
        t = _bucket_next(t, grain)
    counts: Counter[int] = Counter()
    whole = [b for b in buckets if b >= f.start and _bucket_next(b, grain) <= f.end]
    whole_set = set(whole)
    partial = [b for b in buckets if b not in whole_set]
    if whole:
        lo, hi = whole[0], _bucket_next(whole[-1], grain)
        rollup_grain = TREND_GRAINS[grain]
        if rollup_grain == Grain.HOUR and f.country:
            qs = replace_window(f, lo, hi).events().order_by().annotate(hour=_hour_expression())
            for hour, n in qs.values_list("hour").annotate(n=Count("id")).values_list("hour", "n"):
                counts[int(hour)] += n
        else:
            qs = BanRollup.objects.filter(
                grain=rollup_grain,
                period__gte=lo,
                period__lt=hi,
                jail=f.jail or ROLLUP_ALL,
                country_code=f.country or ROLLUP_ALL,
            ).order_by()
            if f.origin:
                qs = qs.filter(origin=f.origin)
            rows = qs.values_list("period").annotate(n=Sum("bans")).values_list("period", "n")
            for period, n in rows:
                counts[int(period)] += int(n)
    for b in partial:
        a, z = max(b, f.start), min(_bucket_next(b, grain), f.end)
        counts[b] += bans_count(replace_window(f, a, z)).get(None, 0)
    return [(b, counts.get(b, 0)) for b in buckets]


def latest_ban_time() -> int | None:
    """Start of the newest archived ban."""
    return BanEvent.objects.order_by("-timeofban").values_list("timeofban", flat=True).first()


def unique_ips_count(f: HistoryFilter, *, latest: int | None) -> int:
    """Distinct addresses banned in the window."""
    if latest is None:
        return 0
    if f.end > latest and not (f.jail or f.origin):
        # A window that reaches past the newest ban holds an address iff its last ban is in it.
        # (With a country: the address's summary country, that of its latest lookup.)
        summaries = IPSummary.objects.filter(last_seen__gte=f.start)
        if f.country:
            summaries = summaries.filter(country_code=f.country)
        return summaries.count()
    return f.events().order_by().values("ip").distinct().count()


@dataclass(frozen=True)
class Offender:
    """An address or network with its ban count in the window."""

    key: str
    bans: int
    country_code: str = ""
    country_name: str = ""
    as_name: str = ""
    days: int = 0
    total_bans: int = 0
    ips: int = 0
    last_seen: int = 0

    @property
    def repeat(self) -> bool:
        return self.days >= REPEAT_DAYS

    @property
    def last_seen_at(self) -> datetime:
        return datetime.fromtimestamp(self.last_seen, tz=UTC)


RAW_RANKING_LIMIT = 30000  # up to this many bans in a window, rank them directly
THRESHOLD_BATCH = 100
THRESHOLD_BATCHES = 5


def _ranked_items(found: Mapping[str, int], limit: int) -> list[tuple[str, int]]:
    return sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def _top_by_summary_totals(
    f: HistoryFilter, *, key: str, limit: int, candidates: QuerySet[Any]
) -> list[tuple[str, int]] | None:
    """Rank by walking the summaries by all-time total (an upper bound of any window count).

    Exact counts are taken for a batch of candidates at a time; once the next candidate's
    total is below the current `limit`-th count, no later one can enter the ranking. None if
    that does not happen within THRESHOLD_BATCHES (the caller then counts directly).
    """
    best: list[int] = []  # min-heap of the `limit` largest counts so far
    found: dict[str, int] = {}
    ordered = candidates.order_by("-bans").values_list(key, "bans")
    for batch in range(THRESHOLD_BATCHES):
        chunk = list(ordered[batch * THRESHOLD_BATCH : (batch + 1) * THRESHOLD_BATCH])
        if not chunk:
            return _ranked_items(found, limit)
        if len(best) >= limit and chunk[0][1] < best[0]:
            return _ranked_items(found, limit)
        counts = dict(
            f.events()
            .filter(**{f"{key}__in": [name for name, _ in chunk]})
            .order_by()
            .values_list(key)
            .annotate(n=Count("id"))
            .values_list(key, "n")
        )
        for name, total in chunk:
            if len(best) >= limit and total < best[0]:
                return _ranked_items(found, limit)
            n = counts.get(name, 0)
            if n <= 0:
                continue
            found[str(name)] = n
            if len(best) < limit:
                heapq.heappush(best, n)
            elif n > best[0]:
                heapq.heapreplace(best, n)
    return None


def _top_keys(
    f: HistoryFilter, *, key: str, limit: int, latest: int | None
) -> list[tuple[str, int]]:
    """The `limit` addresses (key "ip") or networks ("network") with most bans in the window."""
    if latest is None:
        return []
    summary_model: Any = IPSummary if key == "ip" else NetworkSummary
    inside = bans_count(f).get(None, 0)
    if f.unfiltered and f.end > latest and archive_size() - inside < inside:
        # Most of the archive is in the window: every count is the summary's total minus
        # the bans before the window; walk the summaries by total, stop when no later one
        # can beat the current top `limit`.
        before = dict(
            BanEvent.objects.filter(timeofban__lt=f.start)
            .order_by()
            .values_list(key)
            .annotate(n=Count("id"))
            .values_list(key, "n")
        )
        best: list[int] = []
        candidates: dict[str, int] = {}
        rows = (
            summary_model.objects.filter(last_seen__gte=f.start)
            .order_by("-bans")
            .values_list(key, "bans")
        )
        for name, total in rows.iterator(chunk_size=500):
            if len(best) >= limit and total < best[0]:
                break  # this and every later total is below the current top `limit`
            n = total - before.get(name, 0)
            if n <= 0:
                continue
            candidates[str(name)] = n
            if len(best) < limit:
                heapq.heappush(best, n)
            elif n > best[0]:
                heapq.heapreplace(best, n)
        return _ranked_items(candidates, limit)
    # A jail or origin filter keeps a slice of every address's bans, so all-time totals are a
    # loose bound and the walk below would rarely stop early: count directly (the indexes
    # on jail/origin, time and address cover that query).
    if inside > RAW_RANKING_LIMIT and not (f.jail or f.origin):
        pool = summary_model.objects.filter(last_seen__gte=f.start, first_seen__lt=f.end)
        if f.country:
            # An address's summary country is its latest lookup's; its bans carry the country
            # of their own lookup, which only differs if the geo data changed. Networks have
            # no country of their own: they are counted directly.
            pool = pool.filter(country_code=f.country) if key == "ip" else None
        if pool is not None:
            ranked = _top_by_summary_totals(f, key=key, limit=limit, candidates=pool)
            if ranked is not None:
                return ranked
    rows = (
        f.events()
        .order_by()
        .values_list(key)
        .annotate(n=Count("id"))
        .order_by("-n", key)
        .values_list(key, "n")[:limit]
    )
    return [(str(name), int(n)) for name, n in rows]


def top_ips(f: HistoryFilter, *, limit: int = 10, latest: int | None) -> list[Offender]:
    """Addresses with most bans in the window, with where they are and how often they return."""
    ranked = _top_keys(f, key="ip", limit=limit, latest=latest)
    info = {s.ip: s for s in IPSummary.objects.filter(ip__in=[ip for ip, _ in ranked])}
    offenders = []
    for ip, n in ranked:
        s = info.get(ip)
        offenders.append(
            Offender(
                key=ip,
                bans=n,
                country_code=s.country_code if s else "",
                country_name=s.country_name if s else "",
                as_name=s.as_name if s else "",
                days=s.days if s else 0,
                total_bans=s.bans if s else n,
                last_seen=s.last_seen if s else 0,
            )
        )
    return offenders


def top_networks(f: HistoryFilter, *, limit: int = 10, latest: int | None) -> list[Offender]:
    """/24 and /64 networks with most bans in the window."""
    ranked = _top_keys(f, key="network", limit=limit, latest=latest)
    info = {
        s.network: s for s in NetworkSummary.objects.filter(network__in=[net for net, _ in ranked])
    }
    return [
        Offender(
            key=net,
            bans=n,
            total_bans=info[net].bans if net in info else n,
            ips=info[net].ips if net in info else 0,
            last_seen=info[net].last_seen if net in info else 0,
        )
        for net, n in ranked
    ]


def archive_size() -> int:
    """How many bans the archive holds (from the monthly rollups: a few dozen rows)."""
    return int(
        BanRollup.objects.filter(
            grain=Grain.MONTH, jail=ROLLUP_ALL, country_code=ROLLUP_ALL
        ).aggregate(n=Sum("bans"))["n"]
        or 0
    )


def country_names(
    codes: Iterable[str], *, known: Mapping[str, str] | None = None
) -> dict[str, str]:
    """English names of countries: from ``known`` (e.g. the map's), else as the geo data gave."""
    names = {c: known[c] for c in set(codes) if known and c in known}
    wanted = [c for c in set(codes) if c and c != ROLLUP_ALL and c not in names]
    if not wanted:
        return names
    rows = (
        IPSummary.objects.filter(country_code__in=wanted)
        .exclude(country_name="")
        .order_by()
        .values_list("country_code")
        .annotate(name=Max("country_name"))
        .values_list("country_code", "name")
    )
    return {**names, **dict(rows)}


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard shows for one window and filter."""

    filter: HistoryFilter
    total_bans: int
    unique_ips: int
    by_jail: list[tuple[str, int]]
    by_country: list[tuple[str, int]]
    by_origin: dict[str, int]
    trend: list[tuple[int, int]]
    trend_grain: str
    top_ips: list[Offender]
    top_networks: list[Offender]
    country_names: dict[str, str]
    latest: int | None
    archive_empty: bool

    @property
    def busiest_jail(self) -> tuple[str, int] | None:
        return self.by_jail[0] if self.by_jail else None

    @property
    def top_country(self) -> tuple[str, int] | None:
        known = [(c, n) for c, n in self.by_country if c]
        return known[0] if known else None


def _ranked(counts: Mapping[Any, int]) -> list[tuple[str, int]]:
    return sorted(((str(k or ""), n) for k, n in counts.items()), key=lambda kv: (-kv[1], kv[0]))


def dashboard_get(
    *, f: HistoryFilter, top: int = 10, known_names: Mapping[str, str] | None = None
) -> Dashboard:
    """The dashboard's figures, charts and rankings for the window and filter."""
    latest = latest_ban_time()
    by_jail = _ranked(bans_count(f, group="jail"))
    by_country = _ranked(bans_count(f, group="country"))
    by_origin = {str(k): v for k, v in bans_count(f, group="origin").items()}
    grain = trend_grain_for(f)
    return Dashboard(
        filter=f,
        total_bans=sum(n for _, n in by_jail),
        unique_ips=unique_ips_count(f, latest=latest),
        by_jail=by_jail,
        by_country=by_country,
        by_origin=by_origin,
        trend=bans_trend(f, grain=grain),
        trend_grain=grain,
        top_ips=top_ips(f, limit=top, latest=latest),
        top_networks=top_networks(f, limit=top, latest=latest),
        country_names=country_names((c for c, _ in by_country), known=known_names),
        latest=latest,
        archive_empty=latest is None,
    )


# --- History list and one address -----------------------------------------------------------------
SearchTarget = (
    ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network
)


def search_condition(target: SearchTarget) -> Q:
    """The condition for an address or network search (validated by the caller with ipaddress).

    A network is matched through the stored /24 or /64 and so is expanded into at most
    SEARCH_EXPANSION_LIMIT of those (or of single addresses, for a network smaller than them).
    """
    if isinstance(target, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return Q(ip=str(target))
    network = target
    unit = 24 if network.version == 4 else 64
    if network.prefixlen == unit:
        return Q(network=str(network))
    if network.prefixlen > unit:
        if network.num_addresses > SEARCH_EXPANSION_LIMIT:
            raise InvalidArgument(f"{network} is too large a network to search; use /{unit}")
        return Q(ip__in=[str(a) for a in network])
    count = 2 ** (unit - network.prefixlen)
    if count > SEARCH_EXPANSION_LIMIT:
        shortest = unit - SEARCH_EXPANSION_LIMIT.bit_length() + 1
        raise InvalidArgument(
            f"{network} is too large a network to search; use /{shortest} or longer"
        )
    return Q(network__in=[str(n) for n in network.subnets(new_prefix=unit)])


HISTORY_SORTS: Mapping[str, tuple[str, ...]] = {
    "time": ("timeofban", "id"),
    "jail": ("jail", "timeofban", "id"),
    "ip": ("ip", "timeofban", "id"),
    "country": ("country_code", "timeofban", "id"),
    "origin": ("origin", "timeofban", "id"),
}


def history_events(
    *, f: HistoryFilter, search: SearchTarget | None = None, sort: str = "-time"
) -> QuerySet[BanEvent]:
    """Archived bans matching the filter and search, in the requested order."""
    qs = f.events()
    if search is not None:
        qs = qs.filter(search_condition(search))
    key = sort.lstrip("-")
    fields = HISTORY_SORTS.get(key, HISTORY_SORTS["time"])
    descending = sort.startswith("-") if key in HISTORY_SORTS else True
    return qs.order_by(*[f"-{name}" if descending else name for name in fields])


def jail_names_archived() -> list[str]:
    """Names of every jail with archived bans (for the filter forms)."""
    return list(
        BanRollup.objects.filter(grain=Grain.MONTH, country_code=ROLLUP_ALL)
        .exclude(jail=ROLLUP_ALL)
        .order_by("jail")
        .values_list("jail", flat=True)
        .distinct()
    )


def countries_archived(*, known_names: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(code, name) of every country with archived bans (for the filter forms)."""
    codes = set(
        BanRollup.objects.filter(grain=Grain.MONTH, jail=ROLLUP_ALL)
        .exclude(country_code__in=[ROLLUP_ALL, ""])
        .values_list("country_code", flat=True)
        .distinct()
    )
    names = country_names(codes, known=known_names)
    return sorted(((c, names.get(c, c)) for c in codes), key=lambda cn: cn[1])


@dataclass(frozen=True)
class IPHistory:
    """Everything archived about one address."""

    ip: str
    summary: IPSummary | None
    events: QuerySet[BanEvent]
    by_jail: list[tuple[str, int]]

    @property
    def first_seen(self) -> datetime | None:
        return datetime.fromtimestamp(self.summary.first_seen, tz=UTC) if self.summary else None

    @property
    def last_seen(self) -> datetime | None:
        return datetime.fromtimestamp(self.summary.last_seen, tz=UTC) if self.summary else None

    @property
    def repeat(self) -> bool:
        return bool(self.summary and self.summary.days >= REPEAT_DAYS)


def ip_history_get(*, ip: str) -> IPHistory:
    """One address's (or banned network's) archived bans, newest first, and its summary."""
    address = str(parse_ip_or_network(ip))
    events = BanEvent.objects.filter(ip=address).order_by("-timeofban", "-id")
    by_jail = _ranked(
        dict(
            BanEvent.objects.filter(ip=address)
            .order_by()
            .values_list("jail")
            .annotate(n=Count("id"))
            .values_list("jail", "n")
        )
    )
    return IPHistory(
        ip=address,
        summary=IPSummary.objects.filter(ip=address).first(),
        events=events,
        by_jail=by_jail,
    )


def window_ending_now(days: float, *, now: datetime | None = None) -> tuple[int, int]:
    """[now - days, now] as Unix seconds (end exclusive: one second past now)."""
    moment = now or timezone.now()
    end = int(moment.timestamp()) + 1
    return end - int(timedelta(days=days).total_seconds()) - 1, end
