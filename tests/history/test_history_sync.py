"""The ban archive against a real private fail2ban server: sync, origin, unban, purge."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create
from jails.history.models import BanEvent, BanRollup, HistorySource, IPSummary, NetworkSummary
from jails.history.services import sync as history
from jails.history.services.summaries import summaries_rebuild
from jails.models import AuditEntry
from jails.services.audit import Actor, audit_record
from tests.conftest import wait_until

# `fail2ban`: `make test` runs this module again on fail2ban 1.1.
# Every test that uses `runtime` runs directly against fail2ban and again through the agent.
RUNTIME_MODES = ("direct", "agent")
pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


def ban_from_log(f2b, jail: str, ips: list[str], *, count: int = 3) -> None:
    f2b.append_failures(jail, ips, count=count)
    wait_until(lambda: set(ips) <= banned(f2b, jail))


def ips_in_fail2ban_db(f2b) -> set[str]:
    import sqlite3

    db = sqlite3.connect(f"file:{f2b.dbfile}?mode=ro", uri=True)
    try:
        return {row[0] for row in db.execute("SELECT ip FROM bans")}
    finally:
        db.close()


def archived(*ips: str) -> list[str]:
    """The archived bans of these addresses (a late ban from another test may add others)."""
    return sorted(BanEvent.objects.filter(ip__in=ips).values_list("ip", flat=True))


def rows_in_fail2ban_db(f2b) -> int:
    import sqlite3

    db = sqlite3.connect(f"file:{f2b.dbfile}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM bans").fetchone()[0]
    finally:
        db.close()


def summaries_snapshot() -> tuple:
    rollups = sorted(
        BanRollup.objects.values_list(
            "grain", "period", "host", "jail", "country_code", "origin", "bans"
        )
    )
    ips = sorted(
        IPSummary.objects.values_list("ip", "network", "first_seen", "last_seen", "bans", "days")
    )
    nets = sorted(
        NetworkSummary.objects.values_list("network", "first_seen", "last_seen", "bans", "ips")
    )
    return rollups, ips, nets


def assert_summaries_match_archive() -> None:
    """The incrementally kept summaries equal a rebuild from the archive."""
    incremental = summaries_snapshot()
    summaries_rebuild()
    assert incremental == summaries_snapshot()


def test_history_sync_archives_bans_fail2ban_made_from_log_lines(runtime, f2b):
    ban_from_log(f2b, "sshd", ["203.0.113.7", "2001:db8::7"])
    wait_until(lambda: {"203.0.113.7", "2001:db8::7"} <= ips_in_fail2ban_db(f2b))

    result = history.history_sync(runtime)

    assert result.archived >= 2
    assert archived("203.0.113.7", "2001:db8::7") == ["2001:db8::7", "203.0.113.7"]
    event = BanEvent.objects.get(ip="203.0.113.7")
    assert event.jail == "sshd"
    assert event.origin == BanEvent.Origin.JAIL
    assert event.failures >= 3
    assert "AUTH FAIL user=user0 from 203.0.113.7" in event.matches
    assert event.bantime == 600
    assert event.network == "203.0.113.0/24"
    assert abs(event.timeofban - datetime.now(UTC).timestamp()) < 120
    assert BanEvent.objects.get(ip="2001:db8::7").network == "2001:db8::/64"
    assert IPSummary.objects.get(ip="203.0.113.7").bans == 1
    assert HistorySource.objects.get(dbfile=str(f2b.dbfile)).last_rowid >= 2
    assert_summaries_match_archive()


def test_history_sync_second_run_adds_nothing(runtime, f2b):
    ban_from_log(f2b, "nginx-http-auth", ["198.51.100.1"], count=2)
    wait_until(lambda: "198.51.100.1" in ips_in_fail2ban_db(f2b))
    first = history.history_sync(runtime)
    assert first.archived >= 1  # ours, and possibly a late ban from an earlier test's log lines
    HistorySource.objects.update(last_rowid=0)  # make the next sync read every row again
    again = history.history_sync(runtime)
    assert again.archived == 0
    assert again.already == again.read >= first.archived
    assert archived("198.51.100.1") == ["198.51.100.1"]
    month = BanRollup.objects.get(grain=BanRollup.Grain.MONTH, host="*", jail="*", country_code="*")
    assert month.bans == BanEvent.objects.count()  # nothing counted twice


def test_history_survives_unban_and_unban_all_in_fail2ban(runtime, f2b):
    mine = ("203.0.113.20", "203.0.113.21", "203.0.113.22")
    ban_from_log(f2b, "sshd", list(mine))
    wait_until(lambda: set(mine) <= ips_in_fail2ban_db(f2b))
    history.history_sync(runtime)
    assert archived(*mine) == list(mine)

    f2b.client().send("unban", "203.0.113.21")
    wait_until(lambda: "203.0.113.21" not in ips_in_fail2ban_db(f2b))
    history.history_sync(runtime)
    f2b.client().send("unban", "--all")
    wait_until(lambda: rows_in_fail2ban_db(f2b) == 0)
    history.history_sync(runtime)

    assert archived(*mine) == list(mine)
    assert_summaries_match_archive()


def test_history_sync_finds_new_bans_in_rowids_fail2ban_reused(runtime, f2b):
    # Unbanning the newest bans frees their rowids; SQLite hands them to the next bans.
    f2b.client().send("set", "postfix", "banip", "192.0.2.1")
    f2b.client().send("set", "postfix", "banip", "192.0.2.2")
    wait_until(lambda: {"192.0.2.1", "192.0.2.2"} <= ips_in_fail2ban_db(f2b))
    history.history_sync(runtime)
    f2b.client().send("unban", "192.0.2.2")
    wait_until(lambda: "192.0.2.2" not in ips_in_fail2ban_db(f2b))
    f2b.client().send("set", "postfix", "banip", "192.0.2.3")
    wait_until(lambda: "192.0.2.3" in ips_in_fail2ban_db(f2b))

    result = history.history_sync(runtime)

    assert result.rescanned
    assert archived("192.0.2.1", "192.0.2.2", "192.0.2.3") == [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
    ]


def test_history_sync_marks_jailadmin_manual_bans_with_the_actor(runtime, f2b):
    actor = Actor(name="alice", source=AuditEntry.Source.WEB, user_id=None, address="127.0.0.1")
    f2b.client().send("set", "sshd", "banip", "198.51.100.50")
    audit_record(actor=actor, action="ban", jail="sshd", ips=["198.51.100.50"])
    f2b.client().send("set", "sshd", "banip", "198.51.100.51")  # by hand, not by jailadmin
    wait_until(lambda: {"198.51.100.50", "198.51.100.51"} <= ips_in_fail2ban_db(f2b))

    history.history_sync(runtime)

    by_jailadmin = BanEvent.objects.get(ip="198.51.100.50")
    assert by_jailadmin.origin == BanEvent.Origin.MANUAL
    assert by_jailadmin.banned_by == "alice"
    by_hand = BanEvent.objects.get(ip="198.51.100.51")
    assert by_hand.origin == BanEvent.Origin.MANUAL
    assert by_hand.banned_by == ""
    assert by_hand.failures == 0 and by_hand.matches == ""


def test_history_sync_keeps_script_in_a_log_line_as_text(runtime, f2b):
    stamp = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo(f2b.tz))
    line = f"{stamp:%Y-%m-%d %H:%M:%S} AUTH FAIL user=<script>alert(1)</script> from 203.0.113.66\n"
    with f2b.log_path("sshd").open("a") as log:
        log.write(line * 3)
    wait_until(lambda: "203.0.113.66" in ips_in_fail2ban_db(f2b))
    history.history_sync(runtime)
    event = BanEvent.objects.get(ip="203.0.113.66")
    assert "user=<script>alert(1)</script> from 203.0.113.66" in event.matches


def test_history_sync_reads_a_database_file_and_skips_unusable_rows(runtime, tmp_path):
    path = tmp_path / "f2b.sqlite3"
    fail2ban_db_create(path)
    now = int(datetime.now(UTC).timestamp())
    fail2ban_db_add(
        path,
        [
            Fail2banBan("sshd", "203.0.113.9", now - 100, matches=["line one", "line two"]),
            Fail2banBan("sshd", "not-an-ip", now - 90),
            Fail2banBan("--all", "203.0.113.10", now - 80),
            Fail2banBan("sshd", "192.0.2.0/24", now - 70, failures=0),
        ],
    )
    result = history.history_sync(runtime, dbfile=str(path))
    assert (result.read, result.archived, result.skipped) == (4, 2, 2)
    assert BanEvent.objects.get(ip="203.0.113.9").matches == "line one\nline two"
    assert BanEvent.objects.get(ip="192.0.2.0/24").network == "192.0.2.0/24"


def _old_and_new_bans(path, now: int) -> None:
    fail2ban_db_create(path)
    fail2ban_db_add(
        path,
        [
            Fail2banBan("sshd", "203.0.113.1", now - 40 * 86400, matches=["old"]),
            Fail2banBan("sshd", "203.0.113.1", now - 5 * 86400, matches=["recent"]),
            Fail2banBan("postfix", "203.0.113.2", now - 31 * 86400, matches=["old"]),
            Fail2banBan("postfix", "198.51.100.3", now - 29 * 86400, matches=["kept"]),
            Fail2banBan("postfix", "198.51.100.4", now - 1000, matches=["new"]),
        ],
    )


def test_history_purge_deletes_only_bans_older_than_the_retention(runtime, tmp_path):
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    path = tmp_path / "f2b.sqlite3"
    _old_and_new_bans(path, int(now.timestamp()))
    history.history_sync(runtime, dbfile=str(path))

    result = history.history_purge(
        retention_days=30, now=now, actor=Actor.system("test", source=AuditEntry.Source.JOB)
    )

    assert result.deleted == 2
    kept = sorted(BanEvent.objects.values_list("ip", "matches"))
    assert kept == [("198.51.100.3", "kept"), ("198.51.100.4", "new"), ("203.0.113.1", "recent")]
    assert not IPSummary.objects.filter(ip="203.0.113.2").exists()
    assert IPSummary.objects.get(ip="203.0.113.1").bans == 1
    assert AuditEntry.objects.get(action="history_purge").parameters["deleted"] == 2
    assert_summaries_match_archive()
    assert history.history_purge(retention_days=30, now=now).deleted == 0
