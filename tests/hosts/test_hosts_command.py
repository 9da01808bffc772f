"""`manage.py hosts list|add|remove|check|confirm-key|install-agent`, with --json, against real
private fail2ban servers (socket hosts) and the real private sshd (SSH hosts)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jails.agent import ssh
from jails.fail2ban.server import JailSpec, PrivateServer
from jails.hosts.models import LOCAL_HOST, Host
from jails.models import AuditEntry, SiteSettings
from tests.conftest import point_state_at, user_with_role
from tests.hosts.conftest import quiet_servers, server_ready, ssh_host_rows

pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]

REPO = Path(__file__).resolve().parents[2]
OTHER_JAILS = (JailSpec("web", bantime="1h"), JailSpec("mail", bantime="1h"))


@pytest.fixture(scope="module")
def other_server() -> Iterator[PrivateServer]:
    for servers in quiet_servers("jhc-", ["other"], OTHER_JAILS):
        yield servers["other"]


@pytest.fixture
def other(other_server: PrivateServer) -> PrivateServer:
    return server_ready(other_server)


@pytest.fixture(autouse=True)
def _site(f2b: PrivateServer) -> None:
    # The local host is our server, in the stored settings and in the test's state. A
    # generous timeout: the agent's cold start over ssh is slow on a loaded 1-core box.
    SiteSettings.objects.update_or_create(
        singleton=1, defaults={"setup_complete": True, "fail2ban_socket": str(f2b.socket_path)}
    )
    point_state_at(str(f2b.socket_path), timeout=20.0)


def call(*args: str) -> str:
    out = StringIO()
    call_command("hosts", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def fails(*args: str) -> tuple[int, str, str]:
    """Run a command that must fail: (exit code, message, stdout)."""
    out = StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("hosts", *args, stdout=out, stderr=StringIO())
    return failure.value.returncode, str(failure.value), out.getvalue()


def test_add_socket_and_agent_hosts_and_list_them(other):
    out = call("add", "web1", "--socket", str(other.socket_path), "--note", "rack 3")
    assert "added web1" in out and "manage.py hosts check web1" in out
    data = json.loads(call("add", "web2", "--agent", "unix:/run/jailadmin/a.sock", "--json"))
    assert data == {
        "ok": True,
        "host": "web2",
        "kind": "agent",
        "address": "unix:/run/jailadmin/a.sock",
    }
    listed = json.loads(call("list", "--json"))["hosts"]
    assert [row["host"] for row in listed] == [LOCAL_HOST, "web1", "web2"]
    assert listed[1]["kind"] == "socket" and listed[1]["note"] == "rack 3"
    text = call("list")
    assert text.splitlines()[0].startswith(LOCAL_HOST) and "not asked yet" in text
    records = AuditEntry.objects.filter(action="host-add").order_by("pk")
    assert [(r.parameters["host"], r.actor, r.source) for r in records] == [
        ("web1", "system", "command"),
        ("web2", "system", "command"),
    ]


def test_add_refusals(other):
    code, message, _ = fails("add", "web1", "--socket", "relative.sock")
    assert code == 1 and "absolute path" in message
    code, message, _ = fails("add", "web1")
    assert code == 2 and "DESTINATION" in message
    code, message, _ = fails("add", "web1", "root@h", "--socket", str(other.socket_path))
    assert code == 2
    code, message, _ = fails("add", LOCAL_HOST, "--socket", str(other.socket_path))
    assert code == 2 and "already a host" in message
    code, message, _ = fails("add", "web1", "nobody-at-all")
    assert code == 1 and "names no user" in message
    code, message, out = fails("add", "web1", "root@h", "--time-zone", "Mars/Base", "--json")
    assert code == 1 and json.loads(out)["ok"] is False
    assert list(Host.objects.values_list("name", flat=True)) == [LOCAL_HOST]


def test_add_as_a_user_needs_the_administer_permission(django_user_model, other):
    user_with_role(django_user_model, "operator", username="op")
    code, message, _ = fails("add", "web1", "--socket", str(other.socket_path), "--as", "op")
    assert code == 2 and "administer" in message
    user_with_role(django_user_model, "administrator", username="boss")
    call("add", "web1", "--socket", str(other.socket_path), "--as", "boss")
    assert AuditEntry.objects.get(action="host-add").actor == "boss"


def test_add_ssh_prints_the_authorized_keys_line_and_steps_never_the_private_key():
    out = call("add", "far", "root@far.example.org:2222", "--time-zone", "UTC")
    host = Host.objects.get(name="far")
    assert host.ssh_private_key and host.address == "root@far.example.org:2222"
    line = ssh.authorized_keys_line(host.ssh_public_key, command=ssh.AGENT_COMMAND)
    assert line in out.splitlines()
    assert "/root/.ssh/authorized_keys" in out
    assert "scp -P 2222 agent.pyz root@far.example.org:/tmp/jailadmin-agent.pyz" in out
    assert "manage.py hosts confirm-key far" in out
    steps = json.loads(call("install-agent", "far", "--json"))
    assert steps["authorized_keys_line"] == line
    assert steps["on_host"][-1] == f"echo '{line}' >> /root/.ssh/authorized_keys"
    assert call("install-agent", "far") == out.split("\n", 1)[1]
    for text in (out, json.dumps(steps), call("list"), call("list", "--json")):
        assert "PRIVATE KEY" not in text
        for secret_line in host.ssh_private_key.splitlines()[1:-1]:
            assert secret_line not in text


def test_install_agent_and_confirm_key_only_for_ssh_hosts(other):
    call("add", "web1", "--socket", str(other.socket_path))
    code, message, _ = fails("install-agent", "web1")
    assert code == 1 and "not reached over SSH" in message
    code, message, _ = fails("confirm-key", "web1")
    assert code == 1 and "not reached over SSH" in message


def test_unknown_hosts_are_usage_errors():
    for args in (
        ("remove", "nope", "--yes"),
        ("check", "nope"),
        ("confirm-key", "nope"),
        ("install-agent", "nope"),
    ):
        code, message, _ = fails(*args)
        assert code == 2 and "no host named 'nope'" in message, args
    code, _, out = fails("check", "nope", "--json")
    assert json.loads(out) == {"ok": False, "error": "no host named 'nope' (manage.py hosts list)"}
    code, message, _ = fails("check")
    assert code == 2 and "--all" in message


def test_remove_needs_yes_and_never_removes_the_local_host(other):
    call("add", "web1", "--socket", str(other.socket_path))
    code, message, _ = fails("remove", "web1")
    assert code == 1 and "--yes" in message
    assert Host.objects.filter(name="web1").exists()
    assert call("remove", "web1", "--yes").strip() == "removed web1"
    assert not Host.objects.filter(name="web1").exists()
    assert AuditEntry.objects.get(action="host-remove").parameters["host"] == "web1"
    code, message, _ = fails("remove", LOCAL_HOST, "--yes")
    assert code == 1 and "cannot be removed" in message
    assert Host.objects.filter(name=LOCAL_HOST).exists()


def test_check_one_and_all_with_json(other, f2b):
    call("add", "web1", "--socket", str(other.socket_path))
    out = call("check", "web1")
    assert out.startswith("web1") and " ok " in out and "2 jails: " in out
    (row,) = json.loads(call("check", "web1", "--json"))["hosts"]
    assert row["ok"] and set(row["jails"]) == {"web", "mail"} and row["fail2ban_version"]
    assert row["agent_version"] is None and row["error"] is None
    call("add", "gone", "--socket", "/tmp/jailadmin-no-such-host.sock")
    call("add", "off", "--socket", "/tmp/jailadmin-off.sock")
    Host.objects.filter(name="off").update(enabled=False)
    out = StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("hosts", "check", "--all", "--json", stdout=out, stderr=StringIO())
    assert failure.value.returncode == 1 and "gone" in str(failure.value)
    rows = {row["host"]: row for row in json.loads(out.getvalue())["hosts"]}
    assert list(rows) == [LOCAL_HOST, "gone", "off", "web1"]
    assert rows[LOCAL_HOST]["ok"] and set(rows[LOCAL_HOST]["jails"]) == {
        spec.name for spec in f2b.jails
    }
    assert not rows["gone"]["ok"] and "jailadmin-no-such-host.sock" in rows["gone"]["error"]
    assert rows["gone"]["unreachable_since"] is not None
    assert rows["off"]["checked"] is False and rows["off"]["error"] == "disabled"
    code, message, out_text = fails("check", "gone")
    assert code == 1 and "UNREACHABLE since" in out_text


def test_confirm_key_prints_then_confirms_only_the_fingerprint_given(ssh_hosts, fleet_sshd):
    h1 = ssh_hosts[0]
    Host.objects.create(
        name="h1",
        kind=Host.Kind.SSH,
        address=h1.destination,
        ssh_private_key=h1.private_key,
        ssh_public_key=h1.public_key,
    )
    expected = ssh.fingerprint(fleet_sshd.host_key_line())
    # Without --yes or --fingerprint: shows what it would confirm, stores nothing.
    out = call("confirm-key", "h1")
    assert f"h1 presents ssh-ed25519 {expected}" in out
    assert f"--fingerprint {expected}" in out
    data = json.loads(call("confirm-key", "h1", "--json"))
    assert data["would_confirm"] == expected and data["confirmed"] is None
    assert Host.objects.get(name="h1").ssh_host_key == ""
    # A check before confirming does not contact the host.
    code, message, out_text = fails("check", "h1")
    assert code == 1 and "not confirmed" in out_text
    # Another fingerprint: refused.
    code, message, _ = fails("confirm-key", "h1", "--fingerprint", ssh.fingerprint(h1.public_key))
    assert code == 1 and "does not present the key" in message
    assert Host.objects.get(name="h1").ssh_host_key == ""
    out = call("confirm-key", "h1", "--fingerprint", expected)
    assert f"confirmed h1's key {expected}" in out
    assert Host.objects.get(name="h1").ssh_host_key == fleet_sshd.host_key_line()
    assert AuditEntry.objects.get(action="host-key-confirm").parameters["fingerprint"] == expected
    # Confirmed: the check goes through sshd and the forced agent.
    (row,) = json.loads(call("check", "h1", "--json"))["hosts"]
    assert row["ok"] and row["agent_version"] and set(row["jails"]) == {"sshd", "web"}
    out = call("confirm-key", "h1")
    assert "already confirmed: nothing to do" in out


def test_confirm_key_yes_and_a_changed_key_warning(ssh_hosts, fleet_sshd):
    h1, h2 = ssh_hosts[0], ssh_hosts[1]
    (row,) = ssh_host_rows([h1])
    old = " ".join(h2.public_key.split()[:2])
    Host.objects.filter(pk=row.pk).update(ssh_host_key=old)
    code, message, out_text = fails("check", "h1")
    assert code == 1 and "the host's key changed" in out_text
    err = StringIO()
    out = StringIO()
    call_command("hosts", "confirm-key", "h1", stdout=out, stderr=err)
    assert "WARNING" in err.getvalue() and ssh.fingerprint(old) in err.getvalue()
    assert Host.objects.get(pk=row.pk).ssh_host_key == old
    data = json.loads(call("confirm-key", "h1", "--yes", "--json"))
    assert data["changed"] is True and data["confirmed_before"] == ssh.fingerprint(old)
    assert data["confirmed"] == ssh.fingerprint(fleet_sshd.host_key_line())
    assert Host.objects.get(pk=row.pk).ssh_host_key == fleet_sshd.host_key_line()
    (checked,) = json.loads(call("check", "h1", "--json"))["hosts"]
    assert checked["ok"]


def test_the_printed_install_steps_run_as_written(tmp_path):
    """The steps `install-agent` prints, run by a shell as an administrator would (the host's
    directories moved into a temp dir, the scp replaced by a copy): the bundle answers
    --version and the authorized_keys file holds exactly the printed line."""
    call("add", "far", "root@far.example.org")
    steps = json.loads(call("install-agent", "far", "--json"))
    moved = {
        "/usr/local/lib/jailadmin": str(tmp_path / "lib"),
        "/root/.ssh": str(tmp_path / "ssh"),
        "/tmp/jailadmin-agent.pyz": str(tmp_path / "upload.pyz"),
    }

    def relocated(line: str) -> str:
        for original, replacement in moved.items():
            line = line.replace(original, replacement)
        return line

    def run(line: str) -> str:
        line = relocated(line)
        result = subprocess.run(
            ["bash", "-euc", line],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "JAILADMIN_DEBUG": "true"},
        )
        assert result.returncode == 0, (line, result.stderr)
        return result.stdout

    build, upload = steps["on_site"]
    assert upload.startswith("scp ")
    run(build.replace(".venv/bin/python manage.py", f"{sys.executable} {REPO / 'manage.py'}"))
    shutil.copy(tmp_path / "agent.pyz", tmp_path / "upload.pyz")
    outputs = [run(line) for line in steps["on_host"]]
    assert outputs[2].startswith("jailadmin-agent ")
    keys_file = Path(moved["/root/.ssh"]) / "authorized_keys"
    assert keys_file.read_text() == relocated(steps["authorized_keys_line"]) + "\n"
    assert (tmp_path / "lib" / "agent.pyz").read_bytes() == (tmp_path / "agent.pyz").read_bytes()
