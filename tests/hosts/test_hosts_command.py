"""`manage.py hosts list|add|remove|check|confirm-key|install-agent`, with --json, against real
private fail2ban servers (socket hosts) and the real private sshd (SSH hosts)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jails.agent import ssh
from jails.blocklists.models import BlocklistSource
from jails.fail2ban.server import JailSpec, PrivateServer
from jails.hosts.models import LOCAL_HOST, Host
from jails.management.commands.agent_bundle import JAILS_DIR, bundle_bytes
from jails.models import AuditEntry, SiteSettings
from tests.conftest import point_state_at, user_with_role
from tests.hosts.conftest import quiet_servers, server_ready, ssh_host_rows
from tests.support.host_traces import KEPT, REMOVED, traces_count, traces_make
from tests.support.sshd import PrivateSshd

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
    # The host's system python3 in isolated mode, as the local agent's systemd unit runs it.
    forced = 'command="/usr/bin/python3 -I /usr/local/lib/jailadmin/agent.pyz --stdio",restrict '
    assert line.startswith(forced)
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
    assert call("remove", "web1", "--yes").splitlines()[0] == "removed web1"
    assert not Host.objects.filter(name="web1").exists()
    assert AuditEntry.objects.get(action="host-remove").parameters["host"] == "web1"
    code, message, _ = fails("remove", LOCAL_HOST, "--yes")
    assert code == 1 and "cannot be removed" in message
    assert Host.objects.filter(name=LOCAL_HOST).exists()


def test_remove_keeps_the_history_and_removes_the_live_bookkeeping(other):
    call("add", "web1", "--socket", str(other.socket_path))
    web1 = Host.objects.get(name="web1")
    local = Host.objects.get(name=LOCAL_HOST)
    only_web1 = BlocklistSource.objects.create(name="only-web1", url="https://example.org/a")
    only_web1.hosts.set([web1])
    shared = BlocklistSource.objects.create(name="shared", url="https://example.org/b")
    shared.hosts.set([web1, local])
    for name in ("web1", LOCAL_HOST):
        traces_make(name, shared)
    before_local = traces_count(LOCAL_HOST)
    before = traces_count("web1")  # its audit records: the traces' and its host-add
    # Without --yes: what it would keep and remove, and nothing changes.
    code, _, out = fails("remove", "web1")
    assert code == 1
    assert "keeps (history): 1 archived ban, 1 ban statistics row, 1 configuration" in out
    assert "removes: 1 blocklist entry held on it, 2 blocklists choosing it" in out
    assert "1 cached configuration snapshot, 1 history sync cursor" in out
    assert "disables the blocklists that imported into web1 alone: only-web1" in out
    assert traces_count("web1") == before
    out = call("remove", "web1", "--yes")
    assert out.splitlines()[0] == "removed web1"
    assert out.splitlines()[1].startswith("kept (history): 1 archived ban,")
    counts = traces_count("web1")
    # Kept, and one more audit record: the removal's own, under the host's name.
    assert {label: counts[label] for label in KEPT} == {
        label: before[label] + (label == "AuditEntry") for label in KEPT
    }
    assert {label: counts[label] for label in REMOVED} == dict.fromkeys(REMOVED, 0)
    assert traces_count(LOCAL_HOST) == before_local  # another host's rows: untouched
    # A list that imported into web1 alone is off (with no host it would go to the local
    # host); one shared with another host goes on there.
    only_web1.refresh_from_db()
    shared.refresh_from_db()
    assert not only_web1.enabled and list(only_web1.hosts.all()) == []
    assert shared.enabled and list(shared.hosts.all()) == [local]
    record = AuditEntry.objects.get(action="host-remove")
    assert record.parameters["kept"]["archived bans"] == 1
    assert record.parameters["removed"]["history sync cursors"] == 1
    assert record.parameters["disabled_sources"] == ["only-web1"]


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


# --- install-agent --perform over a one-time administrator login ------------------------------
@pytest.fixture(scope="module")
def install_sshd() -> Iterator[PrivateSshd]:
    """A private sshd of this module's own: the install writes into its authorized_keys."""
    with PrivateSshd(Path(tempfile.mkdtemp(prefix="jia-", dir="/tmp"))) as sshd:
        yield sshd


@dataclass(frozen=True)
class Target:
    """An SSH host row pointing at install_sshd, an administrator key for it, the paths."""

    sshd: PrivateSshd
    admin_key: Path
    agent_path: Path
    f2b: PrivateServer

    def perform(self, name: str, *extra: str, key: Path | None = None) -> list[str]:
        return [
            "install-agent",
            name,
            "--perform",
            "--login-key",
            str(key or self.admin_key),
            "--agent-path",
            str(self.agent_path),
            "--authorized-keys",
            str(self.sshd.authorized_keys),
            # The test's fail2ban, not the system's; the system python3 runs the bundle.
            "--agent-option=--socket",
            f"--agent-option={self.f2b.socket_path}",
            *extra,
        ]


def _key_file(directory: Path, name: str) -> tuple[Path, str]:
    private, public = ssh.key_pair_generate(name)
    path = directory / name
    path.write_text(private)
    path.chmod(0o600)  # ssh ignores a key file others can read
    return path, public


@pytest.fixture
def target(install_sshd: PrivateSshd, tmp_path: Path, f2b: PrivateServer) -> Iterator[Target]:
    install_sshd.start()
    admin_key, admin_public = _key_file(tmp_path, "login-key-file")
    # The administrator's own key: no forced command, it gets a shell (root's login).
    install_sshd.authorized_keys.write_text(admin_public + "\n")
    call("add", "far", install_sshd.destination())
    call("confirm-key", "far", "--yes")
    yield Target(install_sshd, admin_key, tmp_path / "lib" / "jailadmin" / "agent.pyz", f2b)
    install_sshd.authorized_keys.write_text("")


def _site_lines(sshd: PrivateSshd, host: Host) -> list[str]:
    blob = host.ssh_public_key.split()[1]
    return [line for line in sshd.authorized_keys.read_text().splitlines() if blob in line]


def test_perform_installs_the_agent_and_the_site_then_reaches_it(target, f2b):
    host = Host.objects.get(name="far")
    # Before: the site's key is not authorized; a check is refused by the host.
    code, _, out = fails("check", "far")
    assert code == 1 and "did not accept the site's key" in out
    out = call(*target.perform("far"))
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines[:5]] == [
        "ok     login",
        "ok     agent bundle",
        "ok     agent runs",
        "ok     authorized_keys",
        "ok     check",
    ]
    assert "presented the confirmed host key " + ssh.fingerprint(host.ssh_host_key) in lines[0]
    assert lines[-1] == "far: the agent is installed and answers the site"
    # The bundle is the one agent_bundle builds, and it runs on the system python3.
    assert target.agent_path.read_bytes() == bundle_bytes(JAILS_DIR)
    assert oct(target.agent_path.stat().st_mode & 0o777) == "0o644"
    version = subprocess.run(
        ["/usr/bin/python3", "-I", str(target.agent_path), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert version.stdout.startswith("jailadmin-agent ")
    # Exactly one forced-command line for the site's key: the agent, isolated, and nothing else.
    forced = ssh.agent_command(
        "/usr/bin/python3", str(target.agent_path), "--socket", str(f2b.socket_path)
    )
    assert "/usr/bin/python3 -I " in forced
    assert _site_lines(target.sshd, host) == [
        ssh.authorized_keys_line(host.ssh_public_key, command=forced)
    ]
    # The host now works through the site's key, as the site reaches it: `status` included.
    (row,) = json.loads(call("check", "far", "--json"))["hosts"]
    assert row["ok"] and row["agent_version"]
    assert set(row["jails"]) == {spec.name for spec in f2b.jails}
    # Audited, with where the agent went; never the login (destination or key file).
    record = AuditEntry.objects.get(action="host-agent-install")
    assert record.ok and record.host == "far" and record.actor == "system"
    assert record.parameters["agent_path"] == str(target.agent_path)
    assert [step["step"] for step in record.parameters["steps"]][-1] == "check"
    stored = json.dumps(record.parameters) + record.error
    assert "login-key-file" not in stored, stored
    assert "127.0.0.1" not in stored, stored
    assert "PRIVATE KEY" not in out


def test_perform_again_changes_nothing_twice(target):
    call(*target.perform("far"))
    before = target.sshd.authorized_keys.read_text()
    data = json.loads(call(*target.perform("far", "--json")))
    assert data["ok"] is True
    steps = {step["step"]: step for step in data["steps"]}
    assert "already holds the line: not added again" in steps["authorized_keys"]["detail"]
    assert target.sshd.authorized_keys.read_text() == before
    assert len(_site_lines(target.sshd, Host.objects.get(name="far"))) == 1


def test_perform_with_a_key_the_host_refuses_writes_nothing(target, tmp_path):
    wrong, _ = _key_file(tmp_path, "stranger")
    before = target.sshd.authorized_keys.read_text()
    code, message, out = fails(*target.perform("far", key=wrong))
    assert code == 1 and "stopped at 'login'" in message
    assert "did not accept the login key" in message
    assert out.splitlines()[-1].startswith("FAILED login: ")
    assert not target.agent_path.exists() and not target.agent_path.parent.exists()
    assert target.sshd.authorized_keys.read_text() == before
    # Nothing changed on the host: nothing to audit.
    assert not AuditEntry.objects.filter(action="host-agent-install").exists()


def test_perform_refuses_an_unconfirmed_or_changed_host_key(target):
    before = target.sshd.authorized_keys.read_text()
    Host.objects.filter(name="far").update(ssh_host_key="")
    code, message, out = fails(*target.perform("far"))
    assert code == 1 and "host key is not confirmed" in message and "confirm-key far" in message
    assert out == ""  # refused before ssh ran at all
    # A confirmed key the host does not present (another machine answering): ssh refuses.
    other_key = Host.objects.get(name="far").ssh_public_key
    Host.objects.filter(name="far").update(ssh_host_key=" ".join(other_key.split()[:2]))
    code, message, _ = fails(*target.perform("far"))
    assert code == 1 and "stopped at 'login'" in message and "key changed" in message
    assert not target.agent_path.exists()
    assert target.sshd.authorized_keys.read_text() == before


def test_perform_stops_at_the_first_failing_step(target):
    """The python given does not exist there: the bundle is written, its run fails, the
    authorized_keys file is not touched, and the failure says which step and why."""
    before = target.sshd.authorized_keys.read_text()
    code, message, out = fails(*target.perform("far", "--python", "/nonexistent/python3"))
    assert code == 1 and "stopped at 'agent runs'" in message
    assert [line.split(":")[0] for line in out.splitlines()] == [
        "ok     login",
        "ok     agent bundle",
        "FAILED agent runs",
    ]
    assert target.sshd.authorized_keys.read_text() == before
    record = AuditEntry.objects.get(action="host-agent-install")
    assert record.ok is False and record.error.startswith("agent runs: ")


def test_perform_leaves_the_sites_key_with_other_options_alone(target):
    """The site's key already on the host without the forced command (a shell): the run
    stops there and says so; the line is an administrator's to fix, not the command's."""
    host = Host.objects.get(name="far")
    target.sshd.add_key(host.ssh_public_key, None)
    before = target.sshd.authorized_keys.read_text()
    code, message, out = fails(*target.perform("far"))
    assert code == 1 and "stopped at 'authorized_keys'" in message
    assert "with other options" in message and "nothing changed" in message
    assert out.splitlines()[-1].startswith("FAILED authorized_keys: ")
    assert target.sshd.authorized_keys.read_text() == before


def test_perform_usage_errors(target):
    code, message, _ = fails("install-agent", "far", "--perform")
    assert code == 2 and "--login-key" in message
    code, message, _ = fails(*target.perform("far", "--agent-option=$(reboot)"))
    assert code == 1 and "characters a shell reads" in message
    code, message, _ = fails(*target.perform("far", "--agent-path", "relative/agent.pyz"))
    assert code == 1 and "absolute path" in message
    assert not target.agent_path.exists()
