"""`manage.py jails ...` against the real private fail2ban."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jails.models import AuditEntry

# Every test that uses `runtime` runs directly against fail2ban and again through the agent.
RUNTIME_MODES = ("direct", "agent")
pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    out = io.StringIO()
    err = io.StringIO()
    kwargs = {"stdout": out, "stderr": err}
    if stdin is not None:
        kwargs["stdin"] = io.StringIO(stdin)
    try:
        call_command("jails", *args, **kwargs)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


def test_command_status_lists_jails_as_json(runtime, f2b):
    f2b.client().send("set", "sshd", "banip", "203.0.113.1")
    code, out = run("status", "--json")
    data = json.loads(out)
    assert code == 0 and data["version"] == "1.0.2"
    by_name = {row["jail"]: row for row in data["jails"]}
    assert set(by_name) == {"sshd", "nginx-http-auth", "postfix"}
    assert by_name["sshd"]["currently_banned"] == 1


def test_command_status_of_one_jail_and_unknown_jail(runtime, f2b):
    code, out = run("status", "sshd")
    assert code == 0 and "sshd" in out and "postfix" not in out.split("\n", 1)[1]
    code, _ = run("status", "nosuch")
    assert code == 1


def test_command_show_jail(runtime, f2b):
    f2b.client().send("set", "postfix", "banip", "198.51.100.3")
    code, out = run("show", "postfix", "--json")
    data = json.loads(out)
    assert code == 0 and data["bantime"] == 86400 and data["maxretry"] == 5
    assert [b["ip"] for b in data["bans"]] == ["198.51.100.3"]


def test_command_ban_arguments_and_json_report(runtime, f2b):
    code, out = run("ban", "sshd", "203.0.113.5", "2001:db8::/64", "--json")
    data = json.loads(out)
    assert code == 0 and data["counts"] == {"banned": 2}
    assert banned(f2b, "sshd") == {"203.0.113.5", "2001:db8::/64"}
    [entry] = AuditEntry.objects.all()
    assert (entry.actor, entry.source, entry.action) == ("system", "command", "ban")


def test_command_ban_from_stdin_with_invalid_line_exits_1(runtime, f2b):
    code, out = run("ban", "postfix", stdin="198.51.100.1\nbogus\n\n# note\n198.51.100.2\n")
    assert code == 1
    assert "2 banned, 1 invalid" in out and "line 2: 'bogus' invalid" in out
    assert banned(f2b, "postfix") == {"198.51.100.1", "198.51.100.2"}


def test_command_ban_ignored_address_needs_yes(runtime, f2b):
    f2b.client().send("set", "sshd", "addignoreip", "10.0.0.0/8")
    code, out = run("ban", "sshd", "10.0.0.5")
    assert code == 1 and "run again with --yes" in out
    assert banned(f2b, "sshd") == set()
    code, _ = run("ban", "sshd", "10.0.0.5", "--yes")
    assert code == 0 and banned(f2b, "sshd") == {"10.0.0.5"}


def test_command_unban_variants(runtime, f2b):
    client = f2b.client()
    client.send("set", "sshd", "banip", "203.0.113.1", "203.0.113.2")
    client.send("set", "postfix", "banip", "203.0.113.1", "203.0.113.3")
    assert run("unban", "--jail", "sshd", "203.0.113.2")[0] == 0
    assert banned(f2b, "sshd") == {"203.0.113.1"}
    assert run("unban", "203.0.113.1")[0] == 0  # every jail
    assert banned(f2b, "sshd") == set() and banned(f2b, "postfix") == {"203.0.113.3"}
    client.send("set", "sshd", "banip", "203.0.113.9")
    code, out = run("unban", "--jail", "postfix", "--all", "--json")
    assert code == 0 and json.loads(out)["unbanned"] == 1
    assert banned(f2b, "postfix") == set() and banned(f2b, "sshd") == {"203.0.113.9"}
    assert run("unban", "--all")[0] == 0
    assert banned(f2b, "sshd") == set()
    assert [e.action for e in AuditEntry.objects.order_by("id")] == [
        "unban",
        "unban_everywhere",
        "unban_jail",
        "unban_all",
    ]


def test_command_ignore_add_remove(runtime, f2b):
    code, out = run("ignore", "add", "sshd", "192.0.2.0/24", "2001:db8::1", "--json")
    assert code == 0 and json.loads(out)["ignoreip"] == ["192.0.2.0/24", "2001:db8::1"]
    code, out = run("ignore", "remove", "sshd", "192.0.2.0/24", "10.9.9.9")
    assert code == 1 and "ignore list of sshd: 2001:db8::1" in out
    assert f2b.client().send("get", "sshd", "ignoreip") == ["2001:db8::1"]


def test_command_set_and_idle(runtime, f2b):
    code, out = run("set", "sshd", "bantime", "1w", "--json")
    assert code == 0 and json.loads(out)["changes"] == {"bantime": {"old": 600, "new": 604800}}
    assert f2b.client().send("get", "sshd", "bantime") == 604800
    assert run("set", "sshd", "maxretry", "many")[0] == 1
    assert f2b.client().send("get", "sshd", "maxretry") == 3
    assert run("idle", "sshd", "on")[0] == 0
    assert run("idle", "sshd", "off")[0] == 0


def test_command_stop_start_reload(runtime, f2b):
    assert run("stop", "postfix")[0] == 0
    assert "postfix" not in str(f2b.client().send("status"))
    code, out = run("start", "postfix", "--json")
    assert code == 0 and json.loads(out)["via_reload"] is True
    assert "postfix" in str(f2b.client().send("status"))
    assert run("reload")[0] == 0
    assert run("reload", "sshd")[0] == 0


def test_command_where(runtime, f2b):
    f2b.client().send("set", "sshd", "banip", "203.0.113.44")
    code, out = run("where", "203.0.113.44")
    assert code == 0 and "banned in sshd since" in out
    code, out = run("where", "203.0.113.45", "--json")
    assert json.loads(out)["banned"] is False


def test_command_as_user_needs_operate_permission(runtime, f2b, django_user_model):
    from django.contrib.auth.models import Group

    operator = django_user_model.objects.create_user("ops", password="x-long-password-1")
    operator.groups.add(Group.objects.get(name="operator"))
    viewer = django_user_model.objects.create_user("look", password="x-long-password-1")
    viewer.groups.add(Group.objects.get(name="viewer"))
    assert run("ban", "sshd", "203.0.113.1", "--as", "ops")[0] == 0
    entry = AuditEntry.objects.get(action="ban")
    assert entry.actor == "ops" and entry.user_id == operator.pk
    assert run("ban", "sshd", "203.0.113.2", "--as", "look")[0] == 2
    assert run("ban", "sshd", "203.0.113.2", "--as", "nobody")[0] == 2
    assert banned(f2b, "sshd") == {"203.0.113.1"}


def test_command_fail2ban_down_exits_1_with_message(runtime_at):
    runtime_at("/tmp/jailadmin-no-such.sock")
    code, out = run("unban", "203.0.113.1", "--json")
    assert code == 1 and "not reachable" in json.loads(out)["error"]
    code, _ = run("status")
    assert code == 1


def test_command_exit_codes_from_the_shell(f2b, tmp_path):
    """The real process: 0 ok, 1 failed, 2 usage (argparse)."""
    db = tmp_path / "cmd.sqlite3"
    env = {
        **os.environ,
        "JAILADMIN_DATABASE_URL": f"sqlite:///{db}",
        "JAILADMIN_FAIL2BAN_SOCKET": str(f2b.socket_path),
        "JAILADMIN_VAR_DIR": str(tmp_path),
        "JAILADMIN_SECRET_KEY": "test-only-secret-key-for-the-command-exit-code-test",
        "JAILADMIN_DEBUG": "false",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, capture_output=True)

    def code(*args: str, stdin: str = "") -> int:
        result = subprocess.run(
            [*manage, "jails", *args], env=env, input=stdin, capture_output=True, text=True
        )
        return result.returncode

    assert code("ban", "sshd", "-", stdin="203.0.113.120\n") == 0
    assert "203.0.113.120" in f2b.client().send("get", "sshd", "banip")
    assert code("ban", "sshd", "bad-address") == 1
    assert code("frobnicate") == 2
    assert code("set", "sshd", "colour", "red") == 2


# Wide and special-use addresses are held back unless --yes (issue 17) -------------------------
HELD_BACK = [
    ("10.1.2.3", "a private address"),
    ("fd00::7", "a private address"),
    ("127.0.0.2", "a loopback address"),
    ("fe80::1", "a link-local address"),
    ("100.64.0.1", "a carrier-grade NAT address"),
    ("ff02::1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("::", "the unspecified address"),
    ("10.0.0.0/8", "this network includes a private address"),
    ("11.0.0.0/8", "a wide network (16 777 216 addresses), wider than the /16 bound"),
    ("2a00::/32", "a wide network (2^96 addresses), wider than the /48 bound"),
]


@pytest.mark.parametrize(("address", "says"), HELD_BACK)
def test_command_ban_holds_back_special_and_wide_unless_yes(runtime, f2b, address, says):
    code, out = run("ban", "sshd", "203.0.113.77", address)
    assert code == 1
    assert f"line 2: '{address}' skipped ({says}" in out
    assert "1 held back: run again with --yes to ban it" in out
    assert banned(f2b, "sshd") == {"203.0.113.77"}
    code, out = run("ban", "sshd", "203.0.113.77", address, "--yes")
    assert code == 0 and "1 banned, 1 already banned" in out
    assert banned(f2b, "sshd") == {"203.0.113.77", address}


def test_command_ban_held_back_message_and_exit_code(runtime, f2b):
    with pytest.raises(CommandError) as raised:
        call_command("jails", "ban", "sshd", "10.0.0.0/8", "fe80::1", stdout=io.StringIO())
    assert raised.value.returncode == 1
    assert (
        str(raised.value)
        == "2 addresses held back (reasons above): run again with --yes to ban them too"
    )
    assert banned(f2b, "sshd") == set()


def test_command_ban_json_reports_held_back_addresses(runtime, f2b):
    code, out = run("ban", "sshd", "198.51.100.9", "100.64.0.0/10", "192.168.1.1", "--json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is True  # nothing failed; two wait for --yes
    assert data["needs_confirmation"] == ["100.64.0.0/10", "192.168.1.1"]
    assert data["counts"] == {"banned": 1, "skipped": 2}
    reasons = {line["address"]: line["reason"] for line in data["lines"]}
    assert reasons["198.51.100.9"] is None
    assert "carrier-grade NAT" in reasons["100.64.0.0/10"]
    assert reasons["192.168.1.1"].startswith("a private address")
    assert banned(f2b, "sshd") == {"198.51.100.9"}


def test_command_slash_zero_is_refused_even_with_yes(runtime, f2b):
    code, out = run("ban", "sshd", "0.0.0.0/0", "--yes")
    assert code == 1 and "'0.0.0.0/0' invalid" in out
    assert banned(f2b, "sshd") == set()


def test_command_ban_bounds_from_the_environment_in_the_shell(f2b, tmp_path):
    """The real process: JAILADMIN_BAN_MIN_PREFIX_V4 sets the bound; held back exits 1."""
    db = tmp_path / "cmd.sqlite3"
    env = {
        **os.environ,
        "JAILADMIN_DATABASE_URL": f"sqlite:///{db}",
        "JAILADMIN_FAIL2BAN_SOCKET": str(f2b.socket_path),
        "JAILADMIN_VAR_DIR": str(tmp_path),
        "JAILADMIN_SECRET_KEY": "test-only-secret-key-for-the-command-bound-test",
        "JAILADMIN_DEBUG": "false",
        "JAILADMIN_BAN_MIN_PREFIX_V4": "8",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, capture_output=True)

    def jails(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*manage, "jails", *args], env=env, capture_output=True, text=True)

    assert jails("ban", "sshd", "11.0.0.0/8").returncode == 0
    held = jails("ban", "sshd", "12.0.0.0/7")
    assert held.returncode == 1
    assert "wider than the /8 bound" in held.stdout
    assert "1 address held back (reasons above): run again with --yes" in held.stderr
    assert banned(f2b, "sshd") == {"11.0.0.0/8"}
    assert jails("status").returncode == 0
    env["JAILADMIN_BAN_MIN_PREFIX_V4"] = "33"
    refused = jails("status")
    assert (
        refused.returncode != 0
        and "JAILADMIN_BAN_MIN_PREFIX_V4 must be at most 32" in refused.stderr
    )
