"""The dashboard's figures from rollups and summaries equal a brute-force count of the archive."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create
from jails.history.models import BanEvent
from jails.history.selectors import archive as history
from jails.history.selectors.archive import HistoryFilter
from jails.history.services.summaries import summaries_rebuild
from jails.history.services.sync import history_sync
from tests.history.test_history_sync import assert_summaries_match_archive

pytestmark = pytest.mark.django_db

NOW = int(datetime(2026, 11, 28, 16, 47, 13, tzinfo=UTC).timestamp())
JAILS = ["sshd", "postfix", "nginx-http-auth", "dovecot"]
COUNTRIES = ["CN", "US", "RU", "DE", ""]


@pytest.fixture
def archive(runtime, tmp_path):
    """~1500 bans over 14 months from 120 addresses, archived through a fail2ban file."""
    rng = random.Random(5)
    ips = [f"203.0.{rng.randrange(4)}.{rng.randrange(1, 60)}" for _ in range(100)]
    ips += [f"2001:db8:{rng.randrange(3):x}::{rng.randrange(1, 9999):x}" for _ in range(20)]
    bans = []
    for _ in range(1500):
        # Most bans recent, some a year back; a few heavy hitters.
        age = int(rng.expovariate(1 / (40 * 86400))) % (420 * 86400)
        ip = ips[0] if rng.random() < 0.1 else rng.choice(ips)
        failures = 0 if rng.random() < 0.1 else 3
        bans.append(
            Fail2banBan(
                rng.choice(JAILS), ip, NOW - age, matches=["x"] * failures, failures=failures
            )
        )
    path = tmp_path / "f2b.sqlite3"
    fail2ban_db_create(path)
    fail2ban_db_add(path, bans)
    history_sync(runtime, dbfile=str(path), batch_size=200, commit_rows=300)
    # Summaries kept batch by batch (bans out of time order) equal a rebuild.
    assert_summaries_match_archive()
    for event in BanEvent.objects.all():
        event.country_code = COUNTRIES[hash(event.ip) % len(COUNTRIES)]
        event.save(update_fields=["country_code"])
    summaries_rebuild()
    return list(
        BanEvent.objects.values("jail", "ip", "network", "timeofban", "country_code", "origin")
    )


def brute(events, f: HistoryFilter):
    return [
        e
        for e in events
        if f.start <= e["timeofban"] < f.end
        and (not f.jail or e["jail"] == f.jail)
        and (not f.country or e["country_code"] == f.country)
        and (not f.origin or e["origin"] == f.origin)
    ]


def windows(rng):
    yield NOW - 86400, NOW + 1
    yield NOW - 7 * 86400, NOW + 1
    yield NOW - 30 * 86400, NOW + 1
    yield NOW - 365 * 86400, NOW + 1
    yield NOW - 500 * 86400, NOW + 1
    for _ in range(6):
        a = NOW - rng.randrange(430 * 86400)
        yield a, a + rng.randrange(1, 120 * 86400)


FILTERS = [
    {},
    {"jail": "sshd"},
    {"country": "CN"},
    {"origin": "manual"},
    {"jail": "postfix", "country": "US"},
    {"jail": "dovecot", "origin": "jail"},
]


def test_window_segments_tile_the_window_exactly():
    rng = random.Random(1)
    for start, end in windows(rng):
        segments = history.window_segments(start, end)
        assert segments[0][1] == start and segments[-1][2] == end
        assert all(a < b for _, a, b in segments)
        assert all(s[2] == t[1] for s, t in zip(segments, segments[1:], strict=False))


def test_bans_count_equals_brute_force_for_every_window_and_filter(archive):
    rng = random.Random(2)
    for start, end in windows(rng):
        for extra in FILTERS:
            f = HistoryFilter(start=start, end=end, **extra)
            expected = brute(archive, f)
            assert history.bans_count(f).get(None, 0) == len(expected)
            for group, field in (
                ("jail", "jail"),
                ("country", "country_code"),
                ("origin", "origin"),
            ):
                want = Counter(e[field] for e in expected)
                assert history.bans_count(f, group=group) == dict(want), (start, end, extra, group)


def test_bans_trend_equals_brute_force(archive):
    rng = random.Random(3)
    for start, end in windows(rng):
        for extra in FILTERS[:5]:
            f = HistoryFilter(start=start, end=end, **extra)
            grain = history.trend_grain_for(f)
            trend = history.bans_trend(f, grain=grain)
            want = Counter(history._bucket_floor(e["timeofban"], grain) for e in brute(archive, f))
            assert {b: n for b, n in trend if n} == dict(want)
            assert sum(n for _, n in trend) == len(brute(archive, f))


@pytest.mark.parametrize("strategy", ["direct", "summary-walk"])
def test_unique_ips_and_top_offenders_equal_brute_force(archive, strategy, monkeypatch):
    if strategy == "summary-walk":
        # Walk the summaries in small batches even for small windows.
        monkeypatch.setattr(history, "RAW_RANKING_LIMIT", 0)
        monkeypatch.setattr(history, "THRESHOLD_BATCH", 3)
    rng = random.Random(4)
    latest = history.latest_ban_time()
    for start, end in windows(rng):
        for extra in FILTERS:
            f = HistoryFilter(start=start, end=end, **extra)
            expected = brute(archive, f)
            assert history.unique_ips_count(f, latest=latest) == len({e["ip"] for e in expected})
            for key, fn in (("ip", history.top_ips), ("network", history.top_networks)):
                counts = Counter(e[key] for e in expected)
                want = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
                got = [(o.key, o.bans) for o in fn(f, limit=5, latest=latest)]
                assert got == want, (start, end, extra, key)


def test_dashboard_headline_figures(archive):
    f = HistoryFilter(start=NOW - 30 * 86400, end=NOW + 1)
    board = history.dashboard_get(f=f)
    expected = brute(archive, f)
    assert board.total_bans == len(expected)
    assert board.busiest_jail == Counter(e["jail"] for e in expected).most_common(1)[0]
    assert board.top_ips[0].repeat == (board.top_ips[0].days >= 2)
