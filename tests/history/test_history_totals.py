"""The dashboard's shortcuts over a long window equal a direct count of the archive.

A window that holds most of the archive is read as the all-time rollups (BanRollup TOTAL)
minus the part outside it, distinct addresses from LastSeenRollup, and the top offenders
from the summaries minus the bans before the window. Each test compares those answers with
a count over BanEvent itself, on an archive built the way the site builds it: synced
incrementally from fail2ban files (bans out of time order, addresses coming back), then
purged, so every maintenance path (add, upsert, subtract, delete) has run.
"""

from __future__ import annotations

import dataclasses
import importlib
import random
from collections import Counter
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create
from jails.history.models import ROLLUP_ALL, BanEvent, BanRollup, IPSummary, LastSeenRollup
from jails.history.periods import DAY, HOUR
from jails.history.selectors import archive as history
from jails.history.selectors.archive import HistoryFilter
from jails.history.services.summaries import last_seen_rebuild, summaries_rebuild
from jails.history.services.sync import history_purge, history_sync

pytestmark = pytest.mark.django_db

NOW = int(datetime(2026, 11, 28, 16, 47, 13, tzinfo=UTC).timestamp())
JAILS = ["sshd", "postfix", "nginx-http-auth", "dovecot"]
RETENTION_DAYS = 390  # the purge drops the oldest bans (drawn up to 420 days back)


def _public_ipv4(rng: random.Random) -> str:
    # Real public addresses, so the offline geo data gives several real countries.
    while True:
        a = rng.randrange(1, 224)
        if a not in (10, 100, 127, 169, 172, 192, 198, 203):
            return f"{a}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _bans(rng: random.Random, ips: list[str], count: int) -> list[Fail2banBan]:
    bans = []
    for _ in range(count):
        # Most bans recent, some over a year back; a few heavy hitters; odd seconds, so
        # every window below cuts hours and days.
        if rng.random() < 0.1:
            age = rng.randrange(420 * DAY)
        else:
            age = int(rng.expovariate(1 / (60 * DAY))) % (420 * DAY)
        ip = ips[int(len(ips) * rng.random() ** 3)]
        failures = 0 if rng.random() < 0.1 else 3  # no failures: a manual ban's origin
        bans.append(
            Fail2banBan(
                rng.choice(JAILS), ip, NOW - age, matches=["x"] * failures, failures=failures
            )
        )
    return bans


@pytest.fixture
def archive(runtime, tmp_path):
    """~1100 bans from ~150 located addresses: two syncs, then a purge of the oldest."""
    rng = random.Random(8)
    ips = [_public_ipv4(rng) for _ in range(130)]
    ips += [f"2a01:4f8:{rng.randrange(16):x}::{rng.randrange(1, 9999):x}" for _ in range(20)]
    for n, count in enumerate((700, 500)):
        path = tmp_path / f"f2b-{n}.sqlite3"
        fail2ban_db_create(path)
        fail2ban_db_add(path, _bans(rng, ips, count))
        history_sync(runtime, dbfile=str(path), batch_size=150, commit_rows=200)
    purged = history_purge(retention_days=RETENTION_DAYS, now=datetime.fromtimestamp(NOW, UTC))
    assert purged.deleted > 0
    events = list(
        BanEvent.objects.values("jail", "ip", "network", "timeofban", "country_code", "origin")
    )
    # The archive really is varied: the shortcuts below are tested on more than one value.
    assert len({e["country_code"] for e in events}) >= 5
    assert {e["origin"] for e in events} >= {"jail", "manual"}
    return events


def brute(events, f: HistoryFilter):
    return [
        e
        for e in events
        if f.start <= e["timeofban"] < f.end
        and (not f.jail or e["jail"] == f.jail)
        and (not f.country or e["country_code"] == f.country)
        and (not f.origin or e["origin"] == f.origin)
    ]


def long_windows(events):
    """Windows that hold most of the archive, cutting hours and days at both ends."""
    oldest = min(e["timeofban"] for e in events)
    latest = max(e["timeofban"] for e in events)
    yield NOW - 365 * DAY, NOW + 1  # the dashboard's 365 days
    yield oldest, latest + 1  # exactly the archive
    yield oldest + 1, latest  # its first and last ban left out
    yield oldest + 7 * DAY + 1234, NOW + 1
    yield oldest + 29 * DAY + HOUR // 2, latest - 3 * HOUR - 17
    yield NOW - 400 * DAY, NOW - 5 * DAY + 77


FILTERS = [
    {},
    {"jail": "sshd"},
    {"origin": "manual"},
    {"jail": "postfix", "origin": "jail"},
]


def _countries(events) -> list[str]:
    return [c for c, _ in Counter(e["country_code"] for e in events).most_common(3) if c]


def _totals_snapshot() -> tuple[list, list]:
    totals = sorted(
        BanRollup.objects.filter(grain=BanRollup.Grain.TOTAL, host="*").values_list(
            "period", "jail", "country_code", "origin", "bans"
        )
    )
    last_seen = sorted(LastSeenRollup.objects.values_list("day", "country_code", "ips"))
    return totals, last_seen


def test_totals_and_last_seen_rollups_equal_the_archive(archive):
    totals, last_seen = _totals_snapshot()
    # The all-time rows are the archive's counts by jail, country and origin (and "*").
    want: Counter[tuple] = Counter()
    for e in archive:
        for jail in (e["jail"], ROLLUP_ALL):
            for country in (e["country_code"], ROLLUP_ALL):
                want[(0, jail, country, e["origin"])] += 1
    assert totals == sorted((*key, n) for key, n in want.items())
    # Addresses per day of their last ban: from the events, not from IPSummary.
    last: dict[str, tuple[int, str]] = {}
    for e in archive:
        if e["ip"] not in last or e["timeofban"] > last[e["ip"]][0]:
            last[e["ip"]] = (e["timeofban"], e["country_code"])
    days: Counter[tuple] = Counter()
    for when, country in last.values():
        days[(when - when % DAY, country)] += 1
        days[(when - when % DAY, ROLLUP_ALL)] += 1
    assert last_seen == sorted((*key, n) for key, n in days.items())
    # And what the sync and the purge kept step by step equals a rebuild.
    summaries_rebuild()
    assert _totals_snapshot() == (totals, last_seen)


def test_long_window_counts_equal_brute_force_and_read_the_totals(archive):
    filters = FILTERS + [{"country": c} for c in _countries(archive)]
    filters.append({"jail": "sshd", "country": _countries(archive)[0]})
    for start, end in long_windows(archive):
        for extra in filters:
            f = HistoryFilter(start=start, end=end, **extra)
            expected = brute(archive, f)
            with CaptureQueriesContext(connection) as queries:
                assert history.bans_count(f).get(None, 0) == len(expected), (start, end, extra)
            # The shortcut is taken, not just a direct count that happens to agree.
            assert any(f'"grain" = {BanRollup.Grain.TOTAL}' in q["sql"] for q in queries)
            for group, field in (
                ("jail", "jail"),
                ("country", "country_code"),
                ("origin", "origin"),
            ):
                want = Counter(e[field] for e in expected)
                got = history.bans_count(f, group=group)
                assert got == dict(want), (start, end, extra, group)


def test_short_window_counts_equal_brute_force_without_the_totals(archive):
    rng = random.Random(9)
    latest = max(e["timeofban"] for e in archive)
    for _ in range(8):
        start = latest - rng.randrange(60 * DAY)
        f = HistoryFilter(start=start, end=start + rng.randrange(HOUR, 20 * DAY))
        with CaptureQueriesContext(connection) as queries:
            assert history.bans_count(f, group="country") == dict(
                Counter(e["country_code"] for e in brute(archive, f))
            )
        assert not any(f'"grain" = {BanRollup.Grain.TOTAL}' in q["sql"] for q in queries)


def test_unique_addresses_equal_brute_force_for_windows_cutting_days(archive):
    latest = history.latest_ban_time()
    assert latest is not None
    for days in (1, 7, 30, 365, 500):
        for offset in (0, 1, HOUR + 7, DAY - 1):
            for country in ["", *_countries(archive)]:
                f = HistoryFilter(start=NOW - days * DAY + offset, end=NOW + 1, country=country)
                want = len({e["ip"] for e in brute(archive, f)})
                assert history.unique_ips_count(f, latest=latest) == want, (days, offset, country)


def test_last_seen_rollup_follows_an_address_that_moves_country(archive):
    from jails.history.services.summaries import summaries_refresh

    ip, country = next((e["ip"], e["country_code"]) for e in archive if e["country_code"])
    BanEvent.objects.filter(ip=ip).update(country_code="ZZ")
    summaries_refresh({ip}, set())
    kept = _totals_snapshot()[1]
    last_seen_rebuild()
    assert _totals_snapshot()[1] == kept
    latest = history.latest_ban_time()
    f = HistoryFilter(start=NOW - 500 * DAY, end=NOW + 1, country="ZZ")
    assert history.unique_ips_count(f, latest=latest) == 1
    f = dataclasses.replace(f, country=country)
    assert history.unique_ips_count(f, latest=latest) == (
        IPSummary.objects.filter(country_code=country).count()
    )


@pytest.mark.parametrize("before_counted", ["here", "in-sql"])
def test_top_offenders_over_most_of_the_archive_equal_brute_force(
    archive, before_counted, monkeypatch
):
    if before_counted == "in-sql":
        # The bans before the window counted by the database, as for a large remainder.
        monkeypatch.setattr(history, "RAW_RANKING_LIMIT", 0)
    latest = history.latest_ban_time()
    for start, end in long_windows(archive):
        f = HistoryFilter(start=start, end=end)
        expected = brute(archive, f)
        for key, fn in (("ip", history.top_ips), ("network", history.top_networks)):
            counts = Counter(e[key] for e in expected)
            want = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:7]
            assert [(o.key, o.bans) for o in fn(f, limit=7, latest=latest)] == want


def test_dashboard_for_a_year_equals_brute_force(archive):
    f = HistoryFilter(start=NOW - 365 * DAY, end=NOW + 1)
    board = history.dashboard_get(f=f)
    expected = brute(archive, f)
    assert board.total_bans == len(expected)
    assert dict(board.by_jail) == dict(Counter(e["jail"] for e in expected))
    assert dict(board.by_country) == dict(Counter(e["country_code"] for e in expected))
    assert board.by_origin == dict(Counter(e["origin"] for e in expected))
    assert board.unique_ips == len({e["ip"] for e in expected})
    assert sum(n for _, n in board.trend) == len(expected)


def test_migration_fills_totals_and_last_seen_from_an_existing_archive(archive):
    kept = _totals_snapshot()
    migration = importlib.import_module("jails.history.migrations.0002_totals_and_last_seen")
    # 0002 ran before the rollups had a host (0003): only the "every host" rows existed.
    BanRollup.objects.exclude(host="*").delete()
    BanRollup.objects.filter(grain=BanRollup.Grain.TOTAL).delete()
    LastSeenRollup.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(migration.FILL_TOTALS)
        cursor.execute(migration.FILL_LAST_SEEN)
    assert _totals_snapshot() == kept
