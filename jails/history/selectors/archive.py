"""Ban history, the reads: dashboard figures, rankings, the history list, one address.

A dashboard window is split into whole months, days and hours read from BanRollup plus
two partial hours at its ends read from BanEvent, so figures are exact at any boundary; a
window that holds most of the archive is read as the all-time totals minus the part of the
archive outside it, which is the smaller read. The summaries are kept by
jails.history.services.summaries as bans are archived.

A filter may name hosts (a fleet: the host select, or the hosts a user may view): the rollups
have a row per host beside the "every host" row, so a host filter reads that host's rows;
the per-address summaries are over every host, so with a host filter the address counts and
rankings come from the archive itself (the host index covers those reads).
"""

from __future__ import annotations

import heapq
import ipaddress
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext

from jails.fail2ban import InvalidArgument
from jails.fail2ban.validation import parse_ip_or_network
from jails.history.models import (
    LOCAL_HOST,
    ROLLUP_ALL,
    BanEvent,
    BanRollup,
    IPSummary,
    LastSeenRollup,
    NetworkSummary,
)
from jails.history.periods import DAY, HOUR, hour_expression, month_start, next_month

Grain = BanRollup.Grain
SEARCH_EXPANSION_LIMIT = 4096  # a network search becomes at most this many /24s or addresses
REPEAT_DAYS = 2  # an address banned on this many distinct days is a repeat offender


# --- Reading: filters and windows -----------------------------------------------------------------
@dataclass(frozen=True)
class HistoryFilter:
    """A time window [start, end) in Unix seconds and optional jail, country and origin.

    ``hosts``: only these hosts' bans (a host filter, or the hosts the user may view; an
    empty tuple matches nothing); None: every host.
    """

    start: int
    end: int
    jail: str = ""
    country: str = ""  # ISO alpha-2, upper case
    origin: str = ""
    hosts: tuple[str, ...] | None = None

    @property
    def unfiltered(self) -> bool:
        return not (self.jail or self.country or self.origin) and self.hosts is None

    def events(self) -> QuerySet[BanEvent]:
        qs = BanEvent.objects.filter(timeofban__gte=self.start, timeofban__lt=self.end)
        if self.hosts is not None:
            qs = qs.filter(host__in=self.hosts)
        if self.jail:
            qs = qs.filter(jail=self.jail)
        if self.country:
            qs = qs.filter(country_code=self.country)
        if self.origin:
            qs = qs.filter(origin=self.origin)
        return qs


def _rollups(f: HistoryFilter, **conditions: Any) -> QuerySet[BanRollup]:
    """The rollup rows of the filter's hosts ("every host" rows when it names none)."""
    qs = BanRollup.objects.filter(**conditions).order_by()
    if f.hosts is None:
        return qs.filter(host=ROLLUP_ALL)
    return qs.filter(host__in=f.hosts)


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
        m0 = d0 if month_start(d0) == d0 else next_month(d0)
        m1 = month_start(d1)
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
        # Its own name: the archived events and the rollups below are different querysets.
        events = replace_window(f, a, b).events().order_by()
        if field_name is None:
            yield None, events.count()
        else:
            yield from (
                events.values_list(field_name).annotate(n=Count("id")).values_list(field_name, "n")
            )
        return
    qs = _rollups(f, grain=grain, period__gte=a, period__lt=b)
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
    return replace(f, start=start, end=end)


def _window_counts(f: HistoryFilter, start: int, end: int, group: str | None) -> Counter[Any]:
    totals: Counter[Any] = Counter()
    for grain, a, b in window_segments(start, end):
        for key, n in _count_segment(grain, a, b, f, group):
            totals[key] += int(n)
    return totals


def bans_count(
    f: HistoryFilter, *, group: str | None = None, span: tuple[int, int] | None = None
) -> dict[Any, int]:
    """Bans in the window, in total (key None) or per jail, country or origin.

    ``span`` is archive_span() if the caller already has it.
    """
    span = span or archive_span()
    if span is None:
        return {}
    oldest, newest = span
    # Every ban lies in [oldest, newest]: the rest of the window holds nothing to read.
    lo, hi = max(f.start, oldest), min(f.end, newest + 1)
    if lo >= hi:
        return {}
    outside = [(a, b) for a, b in ((oldest, lo), (hi, newest + 1)) if a < b]
    if sum(b - a for a, b in outside) < hi - lo:
        # Rollup rows grow with the periods read (a year of days and months per jail and
        # country), the all-time rows do not: the shorter stretch outside the window is the
        # cheaper read, and the difference is just as exact.
        totals: Counter[Any] = Counter()
        for key, n in _count_segment(Grain.TOTAL, 0, 1, f, group):
            totals[key] += int(n)
        for a, b in outside:
            for key, n in _window_counts(f, a, b, group).items():
                totals[key] -= n
    else:
        totals = _window_counts(f, lo, hi, group)
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
    return month_start(t)


def _bucket_next(t: int, grain: str) -> int:
    if grain == "hour":
        return t + HOUR
    if grain == "day":
        return t + DAY
    return next_month(t)


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
            events = replace_window(f, lo, hi).events().order_by().annotate(hour=hour_expression())
            hourly = events.values_list("hour").annotate(n=Count("id")).values_list("hour", "n")
            for hour, n in hourly:
                counts[int(hour)] += n
        else:
            qs = _rollups(
                f,
                grain=rollup_grain,
                period__gte=lo,
                period__lt=hi,
                jail=f.jail or ROLLUP_ALL,
                country_code=f.country or ROLLUP_ALL,
            )
            if f.origin:
                qs = qs.filter(origin=f.origin)
            rows = qs.values_list("period").annotate(n=Sum("bans")).values_list("period", "n")
            for period, n in rows:
                counts[int(period)] += int(n)
    for b in partial:
        a, z = max(b, f.start), min(_bucket_next(b, grain), f.end)
        counts[b] += _window_counts(f, a, z, None)[None]
    return [(b, counts.get(b, 0)) for b in buckets]


def archive_stamp() -> tuple[Any, ...]:
    """A value that changes whenever the archive does, from one query of a few index reads.

    The sync adds rows (the newest id grows: ids are never reused), the purge deletes the
    oldest ones (the oldest id and the total fall), a rebuild of the summaries re-creates the
    rollup rows (their newest id grows); the total from the all-time rollups also catches a
    delete anywhere else. The newest row's archived_at tells apart two archives that reuse
    ids after a rolled-back transaction (SQLite hands out a rolled-back id again).
    """
    qn = connection.ops.quote_name
    event, rollup = qn(BanEvent._meta.db_table), qn(BanRollup._meta.db_table)
    sql = (
        f"SELECT (SELECT MIN(id) FROM {event}), (SELECT MAX(id) FROM {event}),"
        f" (SELECT archived_at FROM {event} ORDER BY id DESC LIMIT 1),"
        f" (SELECT MAX(id) FROM {rollup}),"
        f" (SELECT SUM(bans) FROM {rollup} WHERE grain = %s AND host = %s AND jail = %s"
        " AND country_code = %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [Grain.TOTAL, ROLLUP_ALL, ROLLUP_ALL, ROLLUP_ALL])
        row = cursor.fetchone()
    return tuple(row) if row else ()


def latest_ban_time() -> int | None:
    """Start of the newest archived ban."""
    return BanEvent.objects.order_by("-timeofban").values_list("timeofban", flat=True).first()


def archive_span() -> tuple[int, int] | None:
    """Start of the oldest and of the newest archived ban (None: the archive is empty)."""
    oldest, newest = oldest_ban_time(), latest_ban_time()
    return None if oldest is None or newest is None else (oldest, newest)


def unique_ips_count(f: HistoryFilter, *, latest: int | None) -> int:
    """Distinct addresses banned in the window."""
    if latest is None:
        return 0
    if f.end > latest and not (f.jail or f.origin) and f.hosts is None:
        # A window that reaches past the newest ban holds an address iff its last ban is in it.
        # (With a country: the address's summary country, that of its latest lookup.) Whole
        # days from LastSeenRollup (a row per day, not per address), the first part-day from
        # IPSummary.
        first_day = _ceil(f.start, DAY)
        country = f.country or ROLLUP_ALL
        whole = LastSeenRollup.objects.filter(country_code=country, day__gte=first_day)
        summaries = IPSummary.objects.filter(last_seen__gte=f.start, last_seen__lt=first_day)
        if f.country:
            summaries = summaries.filter(country_code=f.country)
        return int(whole.aggregate(n=Sum("ips"))["n"] or 0) + summaries.count()
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
    # The key breaks ties: the batches are pages (OFFSET/LIMIT) of this order, and with ties
    # PostgreSQL may order equal rows differently from one page's query to the next, so a
    # candidate could be skipped (SQLite happened to follow its index in the same order).
    ordered = candidates.order_by("-bans", key).values_list(key, "bans")
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
    outside = archive_size() - inside
    if f.unfiltered and f.end > latest and outside < inside:
        # Most of the archive is in the window: every count is the summary's total minus
        # the bans before the window; walk the summaries by total, stop when no later one
        # can beat the current top `limit`.
        earlier = BanEvent.objects.filter(timeofban__lt=f.start).order_by()
        before: Mapping[str, int]
        if outside <= RAW_RANKING_LIMIT:
            # SQLite groups these by walking the whole address index (a million entries)
            # rather than reading the few rows before the window through the time index:
            # read them (that index covers the key) and count them here.
            before = Counter(earlier.values_list(key, flat=True))
        else:
            before = dict(earlier.values_list(key).annotate(n=Count("id")).values_list(key, "n"))
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
    # A jail, origin or host filter keeps a slice of every address's bans, so all-time totals
    # are a loose bound and the walk below would rarely stop early: count directly (the
    # indexes on jail/origin/host, time and address cover that query).
    if inside > RAW_RANKING_LIMIT and not (f.jail or f.origin) and f.hosts is None:
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
    """How many bans the archive holds (from the all-time rollups: a row per origin)."""
    return int(
        BanRollup.objects.filter(
            grain=Grain.TOTAL, host=ROLLUP_ALL, jail=ROLLUP_ALL, country_code=ROLLUP_ALL
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
    span = archive_span()
    latest = span[1] if span else None
    by_jail = _ranked(bans_count(f, group="jail", span=span))
    by_country = _ranked(bans_count(f, group="country", span=span))
    by_origin = {str(k): v for k, v in bans_count(f, group="origin", span=span).items()}
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
            # Shown on the history page as the search field's error (never logged).
            raise InvalidArgument(
                gettext("%(network)s is too large a network to search; use /%(prefix)d")
                % {"network": network, "prefix": unit}
            )
        return Q(ip__in=[str(a) for a in network])
    count = 2 ** (unit - network.prefixlen)
    if count > SEARCH_EXPANSION_LIMIT:
        shortest = unit - SEARCH_EXPANSION_LIMIT.bit_length() + 1
        raise InvalidArgument(
            gettext("%(network)s is too large a network to search; use /%(prefix)d or longer")
            % {"network": network, "prefix": shortest}
        )
    return Q(network__in=[str(n) for n in network.subnets(new_prefix=unit)])


HISTORY_SORTS: Mapping[str, tuple[str, ...]] = {
    "time": ("timeofban", "id"),
    "host": ("host", "timeofban", "id"),
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


def _all_time(hosts: tuple[str, ...] | None) -> QuerySet[BanRollup]:
    qs = BanRollup.objects.filter(grain=Grain.TOTAL)
    return qs.filter(host=ROLLUP_ALL) if hosts is None else qs.filter(host__in=hosts)


def jail_names_archived(*, hosts: tuple[str, ...] | None = None) -> list[str]:
    """Names of every jail with archived bans (of `hosts`; for the filter forms)."""
    return list(
        _all_time(hosts)
        .filter(country_code=ROLLUP_ALL)
        .exclude(jail=ROLLUP_ALL)
        .order_by("jail")
        .values_list("jail", flat=True)
        .distinct()
    )


def countries_archived(
    *, known_names: Mapping[str, str] | None = None, hosts: tuple[str, ...] | None = None
) -> list[tuple[str, str]]:
    """(code, name) of every country with archived bans (of `hosts`; for the filter forms)."""
    codes = set(
        _all_time(hosts)
        .filter(jail=ROLLUP_ALL)
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
    events: QuerySet[BanEvent]  # each with its `host`
    by_jail: list[tuple[str, int]]
    by_host: list[tuple[str, int]]

    @property
    def first_seen(self) -> datetime | None:
        return datetime.fromtimestamp(self.summary.first_seen, tz=UTC) if self.summary else None

    @property
    def last_seen(self) -> datetime | None:
        return datetime.fromtimestamp(self.summary.last_seen, tz=UTC) if self.summary else None

    @property
    def repeat(self) -> bool:
        return bool(self.summary and self.summary.days >= REPEAT_DAYS)

    @property
    def other_hosts(self) -> bool:
        """Banned by a host other than the local one: the page names each ban's host."""
        return any(host != LOCAL_HOST for host, _ in self.by_host)


def ip_history_get(*, ip: str, hosts: tuple[str, ...] | None = None) -> IPHistory:
    """One address's (or banned network's) archived bans, newest first, and its summary.

    ``hosts``: only these hosts' bans (the hosts the user may view); None: every host. The
    summary (first and last ban, days) is over every host.
    """
    address = str(parse_ip_or_network(ip))
    mine = BanEvent.objects.filter(ip=address)
    if hosts is not None:
        mine = mine.filter(host__in=hosts)
    events = mine.order_by("-timeofban", "-id")
    summary = IPSummary.objects.filter(ip=address).first()
    by_jail: Counter[str] = Counter()
    by_host: Counter[str] = Counter()
    # The summary exists iff the address has archived bans (on any host): without it there is
    # nothing to count. Both counts come from one grouped read of the address's bans.
    if summary is not None:
        rows = mine.order_by().values_list("jail", "host").annotate(n=Count("id"))
        for jail, host, n in rows.values_list("jail", "host", "n"):
            by_jail[jail] += n
            by_host[host] += n
    return IPHistory(
        ip=address,
        summary=summary,
        events=events,
        by_jail=_ranked(by_jail),
        by_host=_ranked(by_host),
    )


def window_ending_now(days: float, *, now: datetime | None = None) -> tuple[int, int]:
    """[now - days, now] as Unix seconds (end exclusive: one second past now)."""
    moment = now or timezone.now()
    end = int(moment.timestamp()) + 1
    return end - int(timedelta(days=days).total_seconds()) - 1, end


def oldest_ban_time() -> int | None:
    """Start of the oldest archived ban."""
    return BanEvent.objects.order_by("timeofban").values_list("timeofban", flat=True).first()


def window_everything(*, now: datetime | None = None) -> tuple[int, int]:
    """The whole archive: from the UTC day of its oldest ban (at least a day back) to now."""
    moment = now or timezone.now()
    end = int(moment.timestamp()) + 1
    oldest = oldest_ban_time()
    # At least a day, so an empty or brand-new archive still shows a sensible trend axis.
    start = min(oldest if oldest is not None else end - DAY, end - DAY)
    return start - start % DAY, end
