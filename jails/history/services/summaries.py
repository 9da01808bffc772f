"""Ban history summaries: the tables pages read instead of a year of events.

Every archived event updates three summaries in the same transaction as the event itself:

- BanRollup: counts per hour, day and month (UTC) by host, jail, country and origin, with
  ROLLUP_ALL rows for "every host" / "every jail" / "every country";
- IPSummary and NetworkSummary: first and last ban, count and distinct days per address and
  per /24 (IPv4) or /64 (IPv6), over every host: they describe the address, whichever host
  banned it (a dashboard filtered by host ranks that host's bans from the archive itself);
- LastSeenRollup: addresses per UTC day of their latest ban and country (IPSummary counted).

The archive (jails.history.services.sync) adds and removes events through these functions; the
selectors (jails.history.selectors.archive) read the tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

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
)

from jails.history.geo import GeoInfo
from jails.history.models import (
    ROLLUP_ALL,
    BanEvent,
    BanRollup,
    IPSummary,
    LastSeenRollup,
    NetworkSummary,
)
from jails.history.periods import DAY, hour_expression, month_start

Grain = BanRollup.Grain


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A ban about to be archived (a light stand-in for a BanEvent instance)."""

    host: str
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


# --- Summaries ------------------------------------------------------------------------------------
RollupKey = tuple[int, int, str, str, str, str]  # grain, period, host, jail, country, origin


def rollup_deltas(counts: Iterable[tuple[int, str, str, str, str, int]]) -> Counter[RollupKey]:
    """Rollup increments for (hour start, host, jail, country, origin, bans) tuples."""
    deltas: Counter[RollupKey] = Counter()
    months: dict[int, int] = {}
    for hour, host, jail, country, origin, n in counts:
        day = hour - hour % DAY
        month = months.get(day)
        if month is None:
            month = months[day] = month_start(day)
        # Every row twice: for the host, and for "every host" (what an unfiltered page reads).
        for h in (host, ROLLUP_ALL):
            deltas[(Grain.HOUR, hour, h, ROLLUP_ALL, ROLLUP_ALL, origin)] += n
            deltas[(Grain.HOUR, hour, h, jail, ROLLUP_ALL, origin)] += n
            for grain, period in ((Grain.DAY, day), (Grain.MONTH, month), (Grain.TOTAL, 0)):
                deltas[(grain, period, h, ROLLUP_ALL, ROLLUP_ALL, origin)] += n
                deltas[(grain, period, h, jail, ROLLUP_ALL, origin)] += n
                deltas[(grain, period, h, ROLLUP_ALL, country, origin)] += n
                deltas[(grain, period, h, jail, country, origin)] += n
    return deltas


def rollup_apply(deltas: Mapping[RollupKey, int]) -> None:
    """Add the deltas to BanRollup (an upsert); rows that reach zero are deleted."""
    rows = [(*key, n) for key, n in deltas.items() if n]
    if not rows:
        return
    qn = connection.ops.quote_name
    table = qn(BanRollup._meta.db_table)
    # One statement for SQLite and PostgreSQL alike; the ORM cannot add to a conflicting row.
    sql = (
        f"INSERT INTO {table} (grain, period, host, jail, country_code, origin, bans) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (grain, host, jail, country_code, period, origin) "
        f"DO UPDATE SET bans = {table}.bans + excluded.bans"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    if any(n < 0 for *_, n in rows):
        BanRollup.objects.filter(bans__lte=0).delete()


SUMMARY_CHUNK = 500  # keys per summary statement

LastSeen = tuple[int, str]  # an address's IPSummary (last_seen, country_code)


def last_seen_deltas(
    before: Mapping[str, LastSeen], after: Mapping[str, LastSeen]
) -> Counter[tuple[str, int]]:
    """LastSeenRollup increments, keyed (country, day), for addresses that changed."""
    deltas: Counter[tuple[str, int]] = Counter()
    for states, sign in ((before, -1), (after, 1)):
        for ip, (last_seen, country) in states.items():
            if before.get(ip) == after.get(ip):
                continue
            day = last_seen - last_seen % DAY
            deltas[(country, day)] += sign
            deltas[(ROLLUP_ALL, day)] += sign
    return deltas


def last_seen_apply(deltas: Mapping[tuple[str, int], int]) -> None:
    """Add the deltas to LastSeenRollup (an upsert); rows that reach zero are deleted."""
    rows = [(day, country, n) for (country, day), n in deltas.items() if n]
    if not rows:
        return
    table = connection.ops.quote_name(LastSeenRollup._meta.db_table)
    sql = (
        f"INSERT INTO {table} (day, country_code, ips) VALUES (%s, %s, %s) "
        f"ON CONFLICT (country_code, day) DO UPDATE SET ips = {table}.ips + excluded.ips"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    if any(n < 0 for *_, n in rows):
        LastSeenRollup.objects.filter(ips__lte=0).delete()


def _last_seen_of(ips: Sequence[str]) -> dict[str, LastSeen]:
    rows = IPSummary.objects.filter(ip__in=ips).values_list("ip", "last_seen", "country_code")
    return {ip: (last_seen, country) for ip, last_seen, country in rows}


def _sql_names() -> dict[str, str]:
    qn = connection.ops.quote_name
    return {
        "event": qn(BanEvent._meta.db_table),
        "ipsum": qn(IPSummary._meta.db_table),
        "netsum": qn(NetworkSummary._meta.db_table),
    }


def summaries_add(
    events: Sequence[NewEvent],
    existing: set[tuple[str, str, str, int]],
    geo: Mapping[str, GeoInfo],
) -> None:
    """Add newly archived bans to IPSummary, NetworkSummary and LastSeenRollup (upserts).

    ``existing`` holds the archive's (host, jail, ip, timeofban) of these addresses on the
    same days, every host's (read before the insert), so a day counts as new only if the
    address had no ban on it yet.
    """
    t = _sql_names()
    least, greatest = ("MIN", "MAX") if connection.vendor == "sqlite" else ("LEAST", "GREATEST")
    old_days: dict[str, set[int]] = {}
    for _, _, ip, when in existing:
        old_days.setdefault(ip, set()).add(when // DAY)
    before: dict[str, LastSeen] = {}
    ip_list = sorted({e.ip for e in events})
    for i in range(0, len(ip_list), SUMMARY_CHUNK * 4):
        before.update(_last_seen_of(ip_list[i : i + SUMMARY_CHUNK * 4]))
    after: dict[str, LastSeen] = {}
    per_ip: dict[str, list[NewEvent]] = {}
    for e in events:
        per_ip.setdefault(e.ip, []).append(e)
    ip_rows = []
    net_rows: dict[str, list[int]] = {}  # network -> [first, last, bans, new addresses]
    for ip, mine in per_ip.items():
        times = [e.timeofban for e in mine]
        days = {t // DAY for t in times} - old_days.get(ip, set())
        info = geo.get(ip) or GeoInfo()
        # What the upsert below leaves: the later last ban, the country of this lookup.
        old_last = before[ip][0] if ip in before else max(times)
        after[ip] = (max(old_last, *times), info.country_code or "")
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
        net[3] += ip not in before
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
    last_seen_apply(last_seen_deltas(before, after))


def summaries_refresh(ips: set[str], networks: set[str], *, after_delete: bool = False) -> None:
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
                before = _last_seen_of(chunk) if model is IPSummary else {}
                cursor.execute(sql.format(marks=", ".join(["%s"] * len(chunk))), chunk)
                if after_delete:  # keys whose last ban was purged
                    model.objects.filter(**{f"{field_name}__in": chunk}).exclude(
                        Exists(BanEvent.objects.filter(**{field_name: OuterRef(field_name)}))
                    ).delete()
                if model is IPSummary:
                    last_seen_apply(last_seen_deltas(before, _last_seen_of(chunk)))


def last_seen_rebuild() -> None:
    """Rebuild LastSeenRollup from IPSummary (the last step of summaries_rebuild)."""
    LastSeenRollup.objects.all().delete()
    day = ExpressionWrapper(F("last_seen") - F("last_seen") % DAY, output_field=BigIntegerField())
    rows = (
        IPSummary.objects.order_by()
        .annotate(day=day)
        .values_list("day", "country_code")
        .annotate(n=Count("id"))
    )
    deltas: Counter[tuple[str, int]] = Counter()
    for when, country, n in rows.iterator(chunk_size=20000):
        deltas[(country, when)] += n
        deltas[(ROLLUP_ALL, when)] += n
    last_seen_apply(deltas)


def summaries_rebuild() -> None:
    """Rebuild the rollups and the per-address and per-network summaries from the archive."""
    with transaction.atomic():
        BanRollup.objects.all().delete()
        IPSummary.objects.all().delete()
        NetworkSummary.objects.all().delete()
        counts = (
            BanEvent.objects.order_by()
            .annotate(hour=hour_expression())
            .values_list("hour", "host", "jail", "country_code", "origin")
            .annotate(n=Count("id"))
        )
        rollup_apply(rollup_deltas(counts.iterator(chunk_size=20000)))
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
        last_seen_rebuild()
