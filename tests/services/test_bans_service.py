"""The ban service against the real private fail2ban: what fail2ban holds after each action."""
# Fixtures imported by name from tests/support/fixtures_bans.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

import pytest

from jails.models import AuditEntry
from jails.services import bans as ban_service
from jails.services.audit import Actor
from jails.services.bans import LineStatus
from jails.services.operations import entries_parse
from tests.support.fixtures_bans import quiet_f2b, quiet_server  # noqa: F401

# Every test that uses `runtime` runs directly against fail2ban and again through the agent.
RUNTIME_MODES = ("direct", "agent")
pytestmark = pytest.mark.django_db

ACTOR = Actor(name="tester", source="command", address="192.0.2.200")


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


def records(**filters) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(**filters).order_by("id"))


# Parsing ----------------------------------------------------------------------------------------
def test_entries_parse_normalises_and_skips_blank_lines_and_comments():
    entries = entries_parse(
        ["  203.0.113.7 ", "", "# a comment", "2001:DB8::1", "1.2.3.4/24 ; SBL123", "nope"]
    )
    assert [(e.number, e.address) for e in entries] == [
        (1, "203.0.113.7"),
        (4, "2001:db8::1"),
        (5, "1.2.3.0/24"),
        (6, ""),
    ]
    assert entries[-1].error == "not an IP address or network"


def test_entries_parse_refuses_more_than_the_limit():
    with pytest.raises(ValueError, match="too many addresses"):
        entries_parse(["10.0.0.1"] * 11, max_entries=10)


# Ban ----------------------------------------------------------------------------------------------
def test_ips_ban_single_address_is_banned_and_audited_once(runtime, f2b):
    report = ban_service.ips_ban(runtime, jail="sshd", lines=["203.0.113.7"], actor=ACTOR)
    assert report.ok and report.changed == 1
    assert banned(f2b, "sshd") == {"203.0.113.7"}
    [entry] = records()
    assert (entry.action, entry.jail, entry.ips, entry.ok) == ("ban", "sshd", ["203.0.113.7"], True)
    assert entry.actor == "tester" and entry.source == "command"


def test_ips_ban_bulk_reports_every_line(runtime, f2b):
    f2b.client().send("set", "postfix", "banip", "198.51.100.1")
    lines = [
        "198.51.100.1",  # already banned
        "198.51.100.2",
        "not-an-ip",
        "198.51.100.2",  # duplicate
        "2001:DB8:0:0::9",  # normalised
        "203.0.113.0/24",  # a network
        "999.1.1.1",
    ]
    report = ban_service.ips_ban(runtime, jail="postfix", lines=lines, actor=ACTOR, batch_size=2)
    statuses = [(line.number, line.status, line.address) for line in report.lines]
    assert statuses == [
        (1, LineStatus.ALREADY_BANNED, "198.51.100.1"),
        (2, LineStatus.BANNED, "198.51.100.2"),
        (3, LineStatus.INVALID, ""),
        (4, LineStatus.SKIPPED, "198.51.100.2"),
        (5, LineStatus.BANNED, "2001:db8::9"),
        (6, LineStatus.BANNED, "203.0.113.0/24"),
        (7, LineStatus.INVALID, ""),
    ]
    assert report.lines[3].reason == "duplicate of line 2"
    assert report.batches == 2 and report.sent == 3 and report.changed == 3
    assert banned(f2b, "postfix") == {
        "198.51.100.1",
        "198.51.100.2",
        "2001:db8::9",
        "203.0.113.0/24",
    }
    [entry] = records(action="ban")
    assert entry.ok and entry.ip_count == 3
    assert entry.parameters["counts"] == {
        "banned": 3,
        "already banned": 1,
        "invalid": 2,
        "skipped": 1,
    }


def test_ips_ban_sends_batches_not_one_command_per_address(runtime_at, quiet_f2b):
    from tests.support.recording_proxy import RecordingProxy

    ips = [f"11.9.{i // 250}.{i % 250 + 1}" for i in range(2500)]  # public: none held back
    with RecordingProxy(str(quiet_f2b.socket_path)) as proxy:
        state = runtime_at(proxy.path, timeout=10, recorded_by=proxy)
        report = ban_service.ips_ban(state, jail="bulk", lines=ips, actor=ACTOR, batch_size=1000)
    ban_commands = [c for c in proxy.commands if c[:3] == ["set", "bulk", "banip"]]
    assert [len(c) - 3 for c in ban_commands] == [1000, 1000, 500]
    assert report.changed == 2500
    assert banned(quiet_f2b, "bulk") == set(ips)


@pytest.mark.slow
def test_ips_ban_100k_lines_in_one_go(quiet_f2b):
    from jails.apps import runtime_state

    ips = [f"11.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(100_000)]
    report = ban_service.ips_ban(runtime_state(), jail="bulk", lines=ips, actor=ACTOR)
    assert report.ok and report.changed == 100_000
    assert report.batches == 50
    assert len(banned(quiet_f2b, "bulk")) == 100_000
    [entry] = records()
    assert entry.ip_count == 100_000 and len(entry.ips) == 1000


def test_ips_ban_only_invalid_input_sends_nothing_and_records_failure(runtime_at, f2b):
    from tests.support.recording_proxy import RecordingProxy

    with RecordingProxy(str(f2b.socket_path)) as proxy:
        state = runtime_at(proxy.path, recorded_by=proxy)
        report = ban_service.ips_ban(
            state, jail="sshd", lines=["--all", "1.2.3.4<F2B_END_COMMAND>"], actor=ACTOR
        )
    assert proxy.commands == []
    assert not report.ok and report.count(LineStatus.INVALID) == 2
    [entry] = records()
    assert entry.ok is False and "not an IP address" in entry.error


def test_ips_ban_own_address_is_held_back_until_confirmed(runtime, f2b):
    report = ban_service.ips_ban(runtime, jail="sshd", lines=["192.0.2.200"], actor=ACTOR)
    assert report.needs_confirmation == ["192.0.2.200"]
    assert report.lines[0].status is LineStatus.SKIPPED
    assert "you are connected from" in report.lines[0].reason
    assert banned(f2b, "sshd") == set()
    report = ban_service.ips_ban(
        runtime, jail="sshd", lines=["192.0.2.200"], actor=ACTOR, confirmed=True
    )
    assert report.count(LineStatus.BANNED) == 1
    assert banned(f2b, "sshd") == {"192.0.2.200"}


def test_ips_ban_network_containing_own_address_needs_confirmation(runtime, f2b):
    reasons = ban_service.ban_confirmations(
        runtime, jail="sshd", lines=["192.0.2.0/24", "198.51.100.4"], actor=ACTOR
    )
    assert reasons == {
        "192.0.2.0/24": "this network contains the address you are connected from (192.0.2.200)"
    }


def test_ips_ban_ignored_address_needs_confirmation(runtime, f2b):
    f2b.client().send("set", "sshd", "addignoreip", "10.0.0.0/8")
    report = ban_service.ips_ban(runtime, jail="sshd", lines=["10.1.2.3", "11.1.2.3"], actor=ACTOR)
    assert [line.status for line in report.lines] == [LineStatus.SKIPPED, LineStatus.BANNED]
    assert "ignore list (10.0.0.0/8)" in report.lines[0].reason
    assert banned(f2b, "sshd") == {"11.1.2.3"}


def test_ips_ban_unknown_jail_reports_error_and_sends_no_ban(runtime, f2b):
    report = ban_service.ips_ban(runtime, jail="nosuchjail", lines=["203.0.113.1"], actor=ACTOR)
    assert report.error == "unknown jail: nosuchjail"
    assert report.lines[0].status is LineStatus.SKIPPED
    [entry] = records()
    assert entry.ok is False and entry.error == "unknown jail: nosuchjail"


def test_ips_ban_invalid_jail_name_is_refused_before_anything_is_sent(runtime, f2b):
    report = ban_service.ips_ban(runtime, jail="--all", lines=["203.0.113.1"], actor=ACTOR)
    assert "invalid jail name" in report.error
    assert records()[0].ok is False


def test_ips_ban_when_fail2ban_is_down_reports_and_audits_the_failure(runtime_at):
    state = runtime_at("/tmp/jailadmin-no-such.sock")
    report = ban_service.ips_ban(state, jail="sshd", lines=["203.0.113.1"], actor=ACTOR)
    assert "not reachable" in report.error
    [entry] = records()
    assert entry.ok is False and "not reachable" in entry.error


def test_ips_ban_cidr_network_is_held_by_fail2ban(runtime, f2b):
    # fail2ban 1.0.2 keeps a network as one ban entry (its IPAddr has a CIDR form).
    report = ban_service.ips_ban(
        runtime, jail="nginx-http-auth", lines=["203.0.113.77/24", "2001:db8:1::/48"], actor=ACTOR
    )
    assert report.changed == 2
    assert banned(f2b, "nginx-http-auth") == {"203.0.113.0/24", "2001:db8:1::/48"}


# Unban --------------------------------------------------------------------------------------------
def test_ips_unban_one_jail_reports_unbanned_and_not_banned(runtime, f2b):
    f2b.client().send("set", "sshd", "banip", "203.0.113.1", "203.0.113.2")
    f2b.client().send("set", "postfix", "banip", "203.0.113.1")
    report = ban_service.ips_unban(
        runtime, jail="sshd", lines=["203.0.113.1", "203.0.113.9", "x"], actor=ACTOR
    )
    assert [line.status for line in report.lines] == [
        LineStatus.UNBANNED,
        LineStatus.NOT_BANNED,
        LineStatus.INVALID,
    ]
    assert banned(f2b, "sshd") == {"203.0.113.2"}
    assert banned(f2b, "postfix") == {"203.0.113.1"}  # other jails untouched
    [entry] = records()
    assert entry.action == "unban" and entry.jail == "sshd"


def test_ips_unban_everywhere_removes_address_from_every_jail(runtime, f2b):
    for jail in ("sshd", "postfix", "nginx-http-auth"):
        f2b.client().send("set", jail, "banip", "198.51.100.50")
    f2b.client().send("set", "sshd", "banip", "198.51.100.51")
    report = ban_service.ips_unban(runtime, jail=None, lines=["198.51.100.50"], actor=ACTOR)
    assert report.jails_by_address == {"198.51.100.50": ["sshd", "nginx-http-auth", "postfix"]}
    assert banned(f2b, "sshd") == {"198.51.100.51"}
    assert banned(f2b, "postfix") == set() and banned(f2b, "nginx-http-auth") == set()
    [entry] = records()
    assert entry.action == "unban_everywhere" and entry.jail == ""


def test_jail_unban_all_empties_one_jail_only(runtime, f2b):
    f2b.client().send("set", "sshd", "banip", *[f"10.0.0.{i}" for i in range(1, 30)])
    f2b.client().send("set", "postfix", "banip", "10.0.0.1")
    count = ban_service.jail_unban_all(runtime, jail="sshd", actor=ACTOR, batch_size=10)
    assert count == 29
    assert banned(f2b, "sshd") == set() and banned(f2b, "postfix") == {"10.0.0.1"}
    [entry] = records()
    assert entry.action == "unban_jail" and entry.ip_count == 29


def test_everything_unban_empties_every_jail(runtime, f2b):
    f2b.client().send("set", "sshd", "banip", "10.0.0.1")
    f2b.client().send("set", "postfix", "banip", "10.0.0.2", "10.0.0.3")
    assert ban_service.everything_unban(runtime, actor=ACTOR) == 3
    assert all(not banned(f2b, jail) for jail in ("sshd", "postfix", "nginx-http-auth"))
    assert records()[0].action == "unban_all"


# Where --------------------------------------------------------------------------------------------
def test_ip_where_finds_exact_bans_networks_and_ignore_lists(runtime, f2b):
    f2b.client().send("set", "sshd", "banip", "203.0.113.5")
    f2b.client().send("set", "postfix", "banip", "203.0.113.0/24")
    f2b.client().send("set", "nginx-http-auth", "addignoreip", "203.0.112.0/23")
    report = ban_service.ip_where(runtime, address="203.0.113.5")
    assert [(b.jail, b.entry, b.exact) for b in report.bans] == [
        ("postfix", "203.0.113.0/24", False),
        ("sshd", "203.0.113.5", True),
    ]
    sshd = report.bans[1]
    assert sshd.bantime == 600
    assert (sshd.ends_at - sshd.banned_at).total_seconds() == 600
    assert [(i.jail, i.entry) for i in report.ignored_by] == [("nginx-http-auth", "203.0.112.0/23")]
    assert report.exact_jails == ["sshd"]


def test_ip_where_for_network_lists_bans_inside_it(runtime, f2b):
    f2b.client().send("set", "sshd", "banip", "198.51.100.7", "198.51.101.7")
    report = ban_service.ip_where(runtime, address="198.51.100.0/24")
    assert [b.entry for b in report.bans] == ["198.51.100.7"]


def test_ip_where_permanent_ban_has_no_end(runtime, f2b):
    f2b.client().send("set", "sshd", "bantime", "-1")
    f2b.client().send("set", "sshd", "banip", "198.51.100.8")
    [ban] = ban_service.ip_where(runtime, address="198.51.100.8").bans
    assert ban.permanent and ban.ends_at is None


def test_ip_where_refuses_invalid_address(runtime, f2b):
    with pytest.raises(ValueError, match="not an IP address"):
        ban_service.ip_where(runtime, address="example.com")
