"""The history sync's write path at its edges: read and commit boundaries, duplicates, the
parse fast paths (canonical IPv4 without ipaddress, shared `data` blobs).

Rows come from real fail2ban database files (jails.fail2ban.dbfile, fail2ban's schema v4),
read by the same code that reads a host's database.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime

import pytest

from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create
from jails.history.geo import public_address
from jails.history.models import BanEvent, HistorySource, IPSummary
from jails.history.services import sync as history
from tests.history.test_history_sync import assert_summaries_match_archive

pytestmark = [pytest.mark.django_db]

DAY = 86400
# Midday of a UTC day some days ago: bans a few seconds apart stay on that day.
NOON = int(datetime.now(UTC).timestamp()) // DAY * DAY - 5 * DAY + DAY // 2


def test_duplicates_inside_a_batch_and_across_read_and_commit_boundaries_archive_once(
    runtime, tmp_path
):
    path = tmp_path / "f2b.sqlite3"
    fail2ban_db_create(path)
    a, b, c = "203.0.113.10", "203.0.113.11", "2001:db8::5"
    rows = [
        Fail2banBan("sshd", a, NOON, matches=["one"]),  # read batch 1 (2 rows per read)
        Fail2banBan("sshd", a, NOON, matches=["one"]),  # the same ban again, same read
        Fail2banBan("sshd", b, NOON + 1),  # read 2; reads 1+2 exceed 3 rows: commit 1
        Fail2banBan("sshd", a, NOON + 10),  # a's second ban, same UTC day
        Fail2banBan("sshd", b, NOON + 1),  # b again, in the next commit: already archived
        Fail2banBan("sshd", a, NOON + DAY),  # a's ban on the next day
        Fail2banBan("mail", c, NOON + 2),
        Fail2banBan("sshd", a, NOON + 10),  # a duplicate of row 4, one commit later
    ]
    fail2ban_db_add(path, rows)

    result = history.history_sync(runtime, dbfile=str(path), batch_size=2, commit_rows=3)

    assert (result.read, result.archived, result.already, result.skipped) == (8, 5, 3, 0)
    assert result.batches == 4
    assert sorted(BanEvent.objects.values_list("jail", "ip", "timeofban")) == sorted(
        [
            ("sshd", a, NOON),
            ("sshd", a, NOON + 10),
            ("sshd", a, NOON + DAY),
            ("sshd", b, NOON + 1),
            ("mail", c, NOON + 2),
        ]
    )
    # Two bans on one day and one on the next, archived in three different commits.
    summary = IPSummary.objects.get(ip=a)
    assert (summary.bans, summary.days, summary.first_seen, summary.last_seen) == (
        3,
        2,
        NOON,
        NOON + DAY,
    )
    assert IPSummary.objects.get(ip=b).bans == 1
    assert_summaries_match_archive()
    assert HistorySource.objects.get().last_rowid == len(rows)

    # A full re-read (a lost cursor) finds every row archived and changes no summary.
    HistorySource.objects.all().delete()
    again = history.history_sync(runtime, dbfile=str(path), batch_size=3, commit_rows=2)
    assert (again.read, again.archived, again.already) == (8, 0, 8)
    assert BanEvent.objects.count() == 5
    assert_summaries_match_archive()


def test_canonical_and_other_address_forms_parse_alike():
    def parsed(ip: str) -> tuple[str, str] | None:
        ban = history.parse_ban_row(("sshd", ip, NOON, 600, 1, None), cache={})
        return None if ban is None else (ban.ip, ban.network)

    assert parsed("203.0.113.77") == ("203.0.113.77", "203.0.113.0/24")
    assert parsed("0.0.0.9") == ("0.0.0.9", "0.0.0.0/24")
    assert parsed("255.255.255.255") == ("255.255.255.255", "255.255.255.0/24")
    # Not canonical: the parse decides, as before the fast path.
    assert parsed(" 203.0.113.77 ") == ("203.0.113.77", "203.0.113.0/24")
    assert parsed("::ffff:203.0.113.77") == ("203.0.113.77", "203.0.113.0/24")
    assert parsed("203.0.113.0/24") == ("203.0.113.0/24", "203.0.113.0/24")
    assert parsed("2001:DB8::1") == ("2001:db8::1", "2001:db8::/64")
    for bad in ("203.0.113.077", "203.0.113.256", "203.0.113", "203.0.113.7.1", "+1.2.3.4"):
        assert parsed(bad) is None, bad


def test_public_address_reads_canonical_ipv4_like_ipaddress_does():
    for text in ("8.8.8.8", "1.0.0.1", "203.0.114.1", "223.255.255.254"):
        assert public_address(text) == ipaddress.IPv4Address(text), text
    for text in ("10.1.2.3", "100.64.0.1", "127.0.0.1", "192.0.2.1", "224.0.0.1", "0.0.0.0"):
        assert public_address(text) is None, text  # private, shared, documentation, ...
    assert public_address("8.8.8.08") is None  # ipaddress refuses leading zeros
    assert public_address("::ffff:8.8.8.8") == ipaddress.IPv4Address("8.8.8.8")


def test_identical_short_data_blobs_and_distinct_ones_each_keep_their_own_content():
    shared: dict = {}
    manual = json.dumps({"matches": [], "failures": 0})
    detected = json.dumps({"matches": ["x"], "failures": 3})
    long_blob = json.dumps({"matches": ["a long matched line " * 5], "failures": 7})
    assert len(long_blob) > history.SHARED_DATA_CHARS >= len(detected)

    def parse(data: object) -> tuple[int, str]:
        ban = history.parse_ban_row(("sshd", "203.0.113.1", NOON, 600, 1, data), shared=shared)
        assert ban is not None
        return ban.failures, ban.matches

    for _ in range(3):
        assert parse(manual) == (0, "")
        assert parse(manual.encode()) == (0, "")
        assert parse(detected) == (3, "x")
        assert parse(long_blob) == (7, "a long matched line " * 5)
    assert parse(None) == (0, "")
    assert set(shared) == {manual, manual.encode(), detected}  # the long blob is not kept
