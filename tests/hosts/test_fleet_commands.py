"""`manage.py jails ... --host NAME / --all-hosts` over real private fail2ban servers.

The session's server is the local host; two more private servers are hosts of kind "socket"
(reached exactly like the local one, each through its own link); a fake server that never
answers plays a hung host. Every change is checked in fail2ban itself, on every host.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from jails.fail2ban.server import PrivateServer
from jails.hosts.models import LOCAL_HOST, Host
from jails.models import AuditEntry
from jails.roles import OPERATOR
from tests.conftest import runtime_install, user_with_role
from tests.hosts.conftest import LINK_TIMEOUT
from tests.support.fakeserver import FakeFail2ban, hang

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]

# web_hosts (tests/hosts/conftest.py): every host has an sshd jail (so "ban sshd" means
# something everywhere); only the local host has postfix.


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    kwargs = {"stdout": out, "stderr": err}
    if stdin is not None:
        kwargs["stdin"] = io.StringIO(stdin)
    try:
        call_command("jails", *args, **kwargs)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), f"{err.getvalue()}{exc}"
    return 0, out.getvalue(), err.getvalue()


def banned(server: PrivateServer, jail: str = "sshd") -> set[str]:
    return {str(ip) for ip in server.client().send("get", jail, "banip")}


def test_fleet_default_is_the_local_host_and_json_names_it(web_hosts):
    web_hosts["web1"].client().send("set", "sshd", "banip", "203.0.113.1")
    code, out, _ = run("status", "--json")
    data = json.loads(out)
    assert code == 0 and data["host"] == LOCAL_HOST  # one record, as before, with its host
    assert {row["jail"] for row in data["jails"]} == {"sshd", "nginx-http-auth", "postfix"}
    assert {row["host"] for row in data["jails"]} == {LOCAL_HOST}
    code, out, _ = run("ban", "sshd", "198.51.100.7")
    assert code == 0 and "== " not in out  # no host sections without a host option
    assert banned(web_hosts[LOCAL_HOST]) == {"198.51.100.7"}
    assert banned(web_hosts["web1"]) == {"203.0.113.1"} and banned(web_hosts["web2"]) == set()


def test_fleet_status_all_hosts_prints_every_host(web_hosts):
    web_hosts["web2"].client().send("set", "web", "banip", "203.0.113.8", "203.0.113.9")
    code, out, _ = run("status", "--all-hosts", "--json")
    records = json.loads(out)
    assert code == 0
    assert [r["host"] for r in records] == [LOCAL_HOST, "web1", "web2"]
    web2 = {row["jail"]: row for row in records[2]["jails"]}
    assert set(web2) == {"sshd", "web"} and web2["web"]["currently_banned"] == 2
    assert {row["host"] for row in records[2]["jails"]} == {"web2"}
    code, out, _ = run("status", "--all-hosts")
    assert code == 0
    sections = out.split("== ")[1:]
    assert [s.split(" ==")[0] for s in sections] == [LOCAL_HOST, "web1", "web2"]
    assert "postfix" in sections[0] and "postfix" not in sections[1]


def test_fleet_ban_all_hosts_bans_on_every_server_and_audits_each(web_hosts):
    code, out, _ = run("ban", "sshd", "203.0.113.50", "2001:db8::/64", "--all-hosts", "--json")
    records = json.loads(out)
    assert code == 0
    assert [(r["host"], r["counts"]) for r in records] == [
        (name, {"banned": 2}) for name in (LOCAL_HOST, "web1", "web2")
    ]
    for server in web_hosts.values():
        assert banned(server) == {"203.0.113.50", "2001:db8::/64"}
        assert server.client().send("get", "sshd", "banned", "203.0.113.50") == 1
    entries = AuditEntry.objects.filter(action="ban").order_by("id")
    assert [e.host for e in entries] == [LOCAL_HOST, "web1", "web2"]
    # ...and unban everywhere.
    code, out, _ = run("unban", "203.0.113.50", "--all-hosts")
    assert code == 0 and out.count("unban in every jail: 1 unbanned") == 3
    for server in web_hosts.values():
        assert banned(server) == {"2001:db8::/64"}


def test_fleet_chosen_hosts_only(web_hosts):
    code, out, _ = run("ban", "sshd", "203.0.113.60", "--host", "web2", "--host", "web1")
    assert code == 0
    assert out.index("== web2 ==") < out.index("== web1 ==")  # the order asked
    assert banned(web_hosts["web1"]) == banned(web_hosts["web2"]) == {"203.0.113.60"}
    assert banned(web_hosts[LOCAL_HOST]) == set()
    code, out, _ = run("where", "203.0.113.60", "--host", "web1", "--json")
    [record] = json.loads(out)  # a host option: a list, even of one
    assert code == 0 and record["host"] == "web1" and record["banned"] is True


def test_fleet_addresses_from_stdin_reach_every_host(web_hosts):
    code, _, _ = run("ban", "sshd", "--all-hosts", stdin="198.51.100.1\n198.51.100.2\n")
    assert code == 0
    for server in web_hosts.values():
        assert banned(server) == {"198.51.100.1", "198.51.100.2"}


def test_fleet_held_back_addresses_per_host_until_yes(web_hosts):
    web_hosts["web1"].client().send("set", "sshd", "addignoreip", "198.51.100.0/24")
    code, out, err = run("ban", "sshd", "198.51.100.5", "--all-hosts")
    assert code == 1
    assert "1 address held back" in err and "run again with --yes" in err
    # Held back on web1 (its ignore list), banned on the others.
    assert banned(web_hosts["web1"]) == set()
    assert banned(web_hosts[LOCAL_HOST]) == banned(web_hosts["web2"]) == {"198.51.100.5"}
    web1 = out.split("== web1 ==")[1].split("== web2 ==")[0]
    assert "1 held back: run again with --yes" in web1
    code, _, _ = run("ban", "sshd", "198.51.100.5", "--all-hosts", "--yes")
    assert code == 0 and banned(web_hosts["web1"]) == {"198.51.100.5"}


def test_fleet_a_down_host_fails_alone_and_is_recorded(web_hosts):
    Host.objects.create(name="gone", kind=Host.Kind.SOCKET, address="/tmp/jc-no-such-host.sock")
    code, out, err = run("ban", "sshd", "203.0.113.70", "--all-hosts", "--json")
    assert code == 1
    records = {r["host"]: r for r in json.loads(out)}
    assert records["gone"]["ok"] is False and "not reachable" in records["gone"]["error"]
    assert all(records[name]["ok"] for name in web_hosts)
    for server in web_hosts.values():
        assert banned(server) == {"203.0.113.70"}
    assert "gone: error: " in err and "failed on 1 of 4 hosts: gone" in err
    row = Host.objects.get(name="gone")
    assert row.unreachable_since is not None and "jc-no-such-host.sock" in row.last_error


def test_fleet_a_refusal_is_a_failure_but_not_unreachable(web_hosts):
    code, out, err = run("status", "postfix", "--all-hosts", "--json")
    assert code == 1
    records = {r["host"]: r for r in json.loads(out)}
    assert records[LOCAL_HOST]["jails"][0]["jail"] == "postfix"
    assert records["web1"] == {
        "host": "web1",
        "ok": False,
        "error": "fail2ban has no jail named postfix",
    }
    assert "failed on 2 of 3 hosts: web1, web2" in err
    # The host answered: it is not marked unreachable.
    assert Host.objects.get(name="web1").unreachable_since is None


def test_fleet_hung_host_misses_the_deadline_and_the_others_print(web_hosts, f2b):
    # A long link timeout: only the per-host deadline can end the wait for the hung host.
    runtime_install(f2b, agent=None, host_deadline=1.0, fail2ban_timeout=60.0)
    web_hosts["web2"].client().send("set", "sshd", "banip", "203.0.113.80")
    with FakeFail2ban(hang()) as hung:
        Host.objects.create(name="stuck", kind=Host.Kind.SOCKET, address=hung.path)
        code, out, err = run("status", "--all-hosts", "--json")
        records = {r["host"]: r for r in json.loads(out)}
        assert code == 1
        assert records["stuck"] == {
            "host": "stuck",
            "ok": False,
            "error": "no answer within 1 s",
            "timed_out": True,
        }
        web2 = {row["jail"]: row for row in records["web2"]["jails"]}
        assert web2["sshd"]["currently_banned"] == 1
        assert records[LOCAL_HOST]["version"] and records["web1"]["version"]
        assert "stuck: error: no answer within 1 s" in err
        code, out, _ = run("status", "--all-hosts")
        assert code == 1 and "== web2 ==" in out and "== stuck ==" not in out
    assert Host.objects.get(name="stuck").unreachable_since is not None


def test_fleet_unknown_or_disabled_host_is_a_usage_error(web_hosts):
    Host.objects.filter(name="web2").update(enabled=False)
    assert run("status", "--host", "nosuch")[0] == 2
    assert run("ban", "sshd", "203.0.113.90", "--host", "web2")[0] == 2
    assert run("status", "--host", "web1", "--all-hosts")[0] == 2
    code, out, _ = run("ban", "sshd", "203.0.113.90", "--all-hosts", "--json")
    assert code == 0 and [r["host"] for r in json.loads(out)] == [LOCAL_HOST, "web1"]
    assert banned(web_hosts["web2"]) == set()


def test_fleet_as_user_is_limited_to_the_hosts_of_its_group(web_hosts, django_user_model):
    limited = Group.objects.create(name="web1-operators")
    limited.permissions.set(Group.objects.get(name=OPERATOR).permissions.all())
    Host.objects.get(name="web1").groups.add(limited)
    user = user_with_role(django_user_model, "viewer", username="webop")
    user.groups.add(limited)
    # --all-hosts means every host this user may operate: web1 alone.
    code, out, _ = run("ban", "sshd", "203.0.113.95", "--all-hosts", "--as", "webop", "--json")
    assert code == 0 and [r["host"] for r in json.loads(out)] == ["web1"]
    assert banned(web_hosts["web1"]) == {"203.0.113.95"}
    assert banned(web_hosts[LOCAL_HOST]) == banned(web_hosts["web2"]) == set()
    # A host named outside its limits, or the local default, is refused before anything runs.
    code, _, err = run("ban", "sshd", "203.0.113.96", "--host", "web2", "--as", "webop")
    assert code == 2 and "may not act on host web2" in err
    assert run("ban", "sshd", "203.0.113.96", "--as", "webop")[0] == 2
    assert banned(web_hosts[LOCAL_HOST]) == banned(web_hosts["web2"]) == set()
    [entry] = AuditEntry.objects.filter(action="ban")
    assert (entry.actor, entry.host) == ("webop", "web1")
    # Reads with --as: the viewer role holds everywhere, so every host is shown.
    code, out, _ = run("status", "--all-hosts", "--as", "webop", "--json")
    assert code == 0 and len(json.loads(out)) == 3


def test_fleet_ban_status_and_unban_everywhere_over_ssh(f2b, ssh_hosts, ssh_host_records):
    """Five hosts reached as remote hosts are (the agent behind sshd's forced command)."""
    runtime_install(f2b, agent=None, fail2ban_timeout=LINK_TIMEOUT, host_deadline=LINK_TIMEOUT)
    names = sorted([LOCAL_HOST] + [host.name for host in ssh_hosts])  # by name
    code, out, _ = run("ban", "sshd", "203.0.113.33", "--all-hosts", "--json")
    assert code == 0
    assert [(r["host"], r["counts"]) for r in json.loads(out)] == [
        (name, {"banned": 1}) for name in names
    ]
    for host in ssh_hosts:
        assert host.server.client().send("get", "sshd", "banned", "203.0.113.33") == 1
    assert banned(f2b) == {"203.0.113.33"}
    code, out, _ = run("status", "sshd", "--all-hosts", "--json")
    assert code == 0
    assert [(r["host"], r["jails"][0]["currently_banned"]) for r in json.loads(out)] == [
        (name, 1) for name in names
    ]
    code, out, _ = run("unban", "203.0.113.33", "--host", "h2", "--host", "h4")
    assert code == 0 and out.count("1 unbanned") == 2
    still = {host.name for host in ssh_hosts if banned(host.server) == {"203.0.113.33"}}
    assert still == {"h1", "h3", "h5"}
    assert [
        e.host for e in AuditEntry.objects.filter(action="unban_everywhere").order_by("id")
    ] == [
        "h2",
        "h4",
    ]


def test_fleet_hung_host_in_a_real_process_prints_the_others_and_exits_1(f2b, tmp_path):
    """`manage.py jails status --all-hosts` as a shell runs it: the hung host's error on
    stderr, the local host's table on stdout, exit 1, and the process ends (the hung request
    ends at the link's own timeout)."""
    env = {
        **os.environ,
        "JAILADMIN_DATABASE_URL": f"sqlite:///{tmp_path / 'cmd.sqlite3'}",
        "JAILADMIN_FAIL2BAN_SOCKET": str(f2b.socket_path),
        "JAILADMIN_VAR_DIR": str(tmp_path),
        "JAILADMIN_SECRET_KEY": "test-only-secret-key-for-the-fleet-command-shell-test",
        "JAILADMIN_DEBUG": "false",
        "JAILADMIN_HOST_DEADLINE": "1",
        "JAILADMIN_FAIL2BAN_TIMEOUT": "3",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, capture_output=True)
    with FakeFail2ban(hang()) as hung:
        create = (
            "from jails.hosts.models import Host; "
            f"Host.objects.create(name='stuck', kind='socket', address={hung.path!r})"
        )
        subprocess.run([*manage, "shell", "-c", create], env=env, check=True, capture_output=True)
        result = subprocess.run(
            [*manage, "jails", "status", "--all-hosts"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,  # a guard against a process that never ends, not a measurement
        )
    assert result.returncode == 1
    assert "== local ==" in result.stdout and "sshd" in result.stdout
    assert "== stuck ==" not in result.stdout
    assert "stuck: error: no answer within 1 s" in result.stderr
    assert "failed on 1 of 2 hosts: stuck" in result.stderr
