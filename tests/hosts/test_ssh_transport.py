"""The SSH transport (jails/agent/ssh.py) against a real sshd and real agents (issue 12).

Five simulated hosts (tests/hosts/conftest.py): one private sshd whose authorized_keys
forces, for each host's key, the agent of this checkout in front of that host's own private
fail2ban. Faults are real too: a far end that never answers, sshd stopped and started, a
host key that changed, a key that gets a shell, a forced command that prints garbage.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from jails.agent.client import AgentLink, AgentStream
from jails.agent.ssh import (
    AGENT_COMMAND,
    HostKeyMismatch,
    HostKeyUnconfirmed,
    ShellKeyRefused,
    SiteKeyRejected,
    SshTarget,
    authorized_keys_line,
    destination_check,
    fingerprint,
    host_keys_scan,
    key_pair_generate,
    ssh_link_build,
)
from jails.fail2ban.errors import (
    AgentRefused,
    AgentUnreachable,
    Fail2banUnreachable,
    InvalidArgument,
    ProtocolError,
)
from tests.conftest import FAIL2BAN_VERSION
from tests.hosts.conftest import LINK_TIMEOUT, SshHost
from tests.support.fakeserver import FakeFail2ban, hang
from tests.support.processes import process_stats
from tests.support.sshd import PrivateSshd, agent_command, free_port

# A hung far end: the forced command reads its input and never writes. (It ends when the
# connection does, so no process outlives the test, unlike `sleep`.)
HUNG_COMMAND = "cat >/dev/null"
GARBAGE_COMMAND = "echo hello; cat /etc/hostname"
HANG_TIMEOUT = 1.0  # the link's timeout in the hang test: it must fail on its own, not hang


@pytest.fixture
def runtime_dir():
    """A private directory for the link's key and known_hosts files (as FleetState's)."""
    path = tempfile.mkdtemp(prefix="jrt-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def links():
    """Links a test builds: closed at the end however it ends (they own ssh processes)."""
    built: list[AgentLink] = []
    yield built
    for link in built:
        link.close()


@pytest.fixture
def extra_key(fleet_sshd: PrivateSshd):
    """extra_key(command) -> (private, public): a new key in sshd's authorized_keys with
    `command` forced (None: no forced command), removed again after the test."""
    added: list[str] = []

    def add(command: str | None) -> tuple[str, str]:
        private, public = key_pair_generate("jailadmin-extra")
        fleet_sshd.add_key(public, command)
        added.append(public)
        return private, public

    yield add
    for public in added:
        fleet_sshd.remove_key(public)


def ssh_children() -> list[tuple[int, str]]:
    """(pid, state) of this process's `ssh` children (a zombie's state is "Z")."""
    me = os.getpid()
    return [
        (pid, fields[0])
        for pid, comm, fields in process_stats()
        if comm == "ssh" and int(fields[1]) == me
    ]


def banned(host: SshHost, jail: str) -> set[str]:
    """What the host's fail2ban itself says is banned in `jail` (its socket, not the link)."""
    return {str(ip) for ip in host.server.client().send("get", jail, "banip")}


# --- destinations, keys, fingerprints ---------------------------------------------------------
@pytest.mark.parametrize(
    ("destination", "canonical"),
    [
        ("root@127.0.0.1:2222", "root@127.0.0.1:2222"),
        ("root@host.example", "root@host.example:22"),
        ("admin@Host.Example.", "admin@host.example:22"),
        ("jail_admin@10.0.0.1:22", "jail_admin@10.0.0.1:22"),
        ("root@[2001:db8::1]:2200", "root@[2001:db8::1]:2200"),
        ("root@[2001:DB8:0::1]", "root@[2001:db8::1]:22"),
    ],
)
def test_ssh_destination_check_accepts_and_canonicalises(destination, canonical):
    assert destination_check(destination) == canonical
    target = SshTarget.from_destination(destination, alias="h1", private_key="", host_key="")
    assert target.destination == canonical
    assert target.port == int(canonical.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ("", "empty"),
        ("127.0.0.1", "names no user"),
        ("@127.0.0.1", "empty user"),
        ("-oProxyCommand=sh@host", "not a plain user name"),
        ("root@-oProxyCommand=touch /tmp/x", "spaces"),
        ("root@-oProxyCommand=id", "not a host name"),
        ("root@host -p 1", "spaces"),
        ("root@host\n", "spaces"),
        ("root@host\t", "spaces"),
        ("root@ho\x00st", "printable"),
        ("root@hôst", "printable ASCII"),
        ("root@host:", "gives no port"),
        ("root@host:0", "not a port"),
        ("root@host:65536", "not a port"),
        ("root@host:22x", "not a port"),
        ("root@host:-1", "not a port"),
        ("root@::1", "brackets"),
        ("root@host:22:23", "brackets"),
        ("root@[::1", "not closed"),
        ("root@[::1]x", "only :port"),
        ("root@[1.2.3.4]:22", "only an IPv6"),
        ("root@[fe80::1%eth0]:22", "zone"),
        ("root@[fe80::zz]:22", "not an IPv6"),
        ("root@a@b", "more than one @"),
        ("root@host,other", "not a host name"),
        ("root@*.example", "not a host name"),
        ("root@%h", "not a host name"),
        ("root@", "names no host"),
        ("ro ot@host", "spaces"),
    ],
)
def test_ssh_destination_check_refuses_hostile_input(destination, message):
    with pytest.raises(InvalidArgument, match=message):
        destination_check(destination)
    with pytest.raises(InvalidArgument):
        SshTarget.from_destination(destination, alias="h1", private_key="", host_key="")


def test_ssh_target_refuses_a_bad_alias_key_or_host_key():
    private, public = key_pair_generate("t")
    with pytest.raises(InvalidArgument, match="alias"):
        SshTarget.from_destination("root@h", alias="a b", private_key=private, host_key=public)
    with pytest.raises(InvalidArgument, match="private key"):
        SshTarget.from_destination("root@h", alias="a", private_key="junk", host_key=public)
    with pytest.raises(InvalidArgument, match="one line"):
        SshTarget.from_destination(
            "root@h", alias="a", private_key=private, host_key=public + "\n* " + public
        )
    with pytest.raises(InvalidArgument):
        SshTarget.from_destination("root@h", alias="a", private_key=private, host_key="ssh-ed25519")
    # A blob that claims another type than its first field.
    blob = public.split()[1]
    with pytest.raises(InvalidArgument, match="another type"):
        SshTarget.from_destination(
            "root@h", alias="a", private_key=private, host_key=f"ssh-rsa {blob}"
        )
    target = SshTarget.from_destination("root@h", alias="a", private_key=private, host_key=public)
    assert target.host_key == " ".join(public.split()[:2])  # the comment is not stored


def test_ssh_key_pair_generate_gives_a_matching_ed25519_pair(tmp_path):
    private, public = key_pair_generate("jailadmin-site")
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert public.startswith("ssh-ed25519 AAAA") and public.endswith(" jailadmin-site")
    key = tmp_path / "key"
    key.write_text(private)
    key.chmod(0o600)
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert derived[:2] == public.split()[:2]
    assert key_pair_generate("jailadmin-site") != (private, public)  # a new pair each time


def test_ssh_fingerprint_equals_ssh_keygen(tmp_path, fleet_sshd):
    _, public = key_pair_generate("fp")
    for line in (public, fleet_sshd.host_key_line()):
        path = tmp_path / "key.pub"
        path.write_text(line + "\n")
        printed = subprocess.run(
            ["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()
        assert fingerprint(line) == printed[1]
        assert printed[1].startswith("SHA256:")


def test_ssh_authorized_keys_line_forces_the_command_and_refuses_quotes():
    _, public = key_pair_generate("ak")
    assert authorized_keys_line(public, command=AGENT_COMMAND) == (
        f'command="{AGENT_COMMAND}",restrict {public}'
    )
    assert authorized_keys_line(public).startswith(f'command="{AGENT_COMMAND}",restrict ')
    for command in ('echo "x"', "a\nb", "a\\b", "", "a\x00b"):
        with pytest.raises(InvalidArgument):
            authorized_keys_line(public, command=command)


def test_ssh_host_keys_scan_returns_the_servers_key(fleet_sshd):
    keys = host_keys_scan("127.0.0.1", fleet_sshd.port, timeout=10)
    assert keys == [fleet_sshd.host_key_line()]


def test_ssh_host_keys_scan_with_nothing_listening_is_unreachable():
    with pytest.raises(AgentUnreachable, match="no host key"):
        host_keys_scan("127.0.0.1", free_port(), timeout=2)
    with pytest.raises(InvalidArgument):
        host_keys_scan("-oProxyCommand=id", 22, timeout=2)


# --- the link against the five hosts ----------------------------------------------------------
def test_ssh_link_bans_unbans_and_reads_status_on_each_of_five_hosts(ssh_hosts, runtime_dir, links):
    assert len(ssh_hosts) == 5
    for index, host in enumerate(ssh_hosts, start=1):
        link = host.link(runtime_dir)
        links.append(link)
        address = f"203.0.113.{index}"
        status = dict(link.send("status"))
        assert [name.strip() for name in status["Jail list"].split(",")] == ["sshd", "web"]
        assert link.send("set", "sshd", "banip", address) == 1
        # fail2ban's own state on that host, and on that host only.
        assert banned(host, "sshd") == {address}
        for other in ssh_hosts:
            if other is not host:
                assert address not in banned(other, "sshd")
        jail_status = dict(link.send("status", "sshd"))
        assert address in dict(jail_status["Actions"])["Banned IP list"]
        assert link.send("set", "sshd", "unbanip", address) == 1
        assert banned(host, "sshd") == set()
        assert link.connections_opened == 1


def test_ssh_link_each_host_reaches_its_own_server(ssh_hosts, runtime_dir, links):
    for host in ssh_hosts:
        link = host.link(runtime_dir)
        links.append(link)
        assert link.send("get", "dbfile") == str(host.server.dbfile)
        assert link.hello().fail2ban_version == FAIL2BAN_VERSION


def test_ssh_hosts_through_the_fleet_service_layer(ssh_host_records, ssh_hosts):
    """The site's own path: Host rows -> host_state -> the unchanged services."""
    from django.apps import apps

    from jails.hosts.services.fleet import fleet_map, scopes_list
    from jails.services.jails import jail_bans_list, overview_get

    ssh_hosts[2].server.client().send("set", "web", "banip", "198.51.100.7")
    state = apps.get_app_config("jails").state
    scopes = scopes_list(state, names=[host.name for host in ssh_hosts])
    outcomes = fleet_map(scopes, overview_get, deadline=60.0)
    assert [outcome.name for outcome in outcomes] == ["h1", "h2", "h3", "h4", "h5"]
    assert all(outcome.ok for outcome in outcomes), [outcome.error for outcome in outcomes]
    assert [outcome.value.currently_banned for outcome in outcomes] == [0, 0, 1, 0, 0]
    h3 = scopes[2].state
    assert h3.snapshot.host == "h3"
    assert [entry.ip for entry in jail_bans_list(h3, name="web")] == ["198.51.100.7"]


# --- the pool ---------------------------------------------------------------------------------
def test_ssh_link_reuses_one_ssh_process_for_many_requests(ssh_hosts, runtime_dir, links):
    link = ssh_hosts[0].link(runtime_dir)
    links.append(link)
    for _ in range(50):
        assert link.send("ping") == "pong"
    assert link.connections_opened == 1
    assert len(ssh_children()) == 1
    link.close()
    assert ssh_children() == []  # closing the link ended and reaped its ssh


def test_ssh_link_threads_share_the_pool(ssh_hosts, runtime_dir, links):
    link = ssh_hosts[1].link(runtime_dir)
    links.append(link)
    answers: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                answers.append(link.send("ping"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and answers == ["pong"] * 40
    assert 1 <= link.connections_opened <= 4
    assert len(ssh_children()) == link.connections_opened  # one ssh per pooled connection
    link.close()
    assert ssh_children() == []


def test_ssh_link_replaces_a_connection_whose_ssh_died_while_idle(ssh_hosts, runtime_dir, links):
    link = ssh_hosts[0].link(runtime_dir)
    links.append(link)
    assert link.send("ping") == "pong"
    ((pid, _),) = ssh_children()
    os.kill(pid, signal.SIGKILL)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # dead (not reaped: the link does that)
    assert link.send("ping") == "pong"
    assert link.connections_opened == 2
    assert [child for child, _ in ssh_children()] != [pid]  # the dead one was reaped
    assert all(state != "Z" for _, state in ssh_children())


def test_ssh_link_discards_connections_inherited_across_fork(ssh_hosts, runtime_dir, links):
    link = ssh_hosts[0].link(runtime_dir)
    links.append(link)
    assert link.send("ping") == "pong"
    (parent_conn,) = link._pool.idle
    pid = os.fork()
    if pid == 0:  # the child: its own ssh, never the parent's connection (nor its process)
        code = 1
        try:
            if link.send("ping") == "pong" and link.connections_opened == 1:
                code = 0 if link._pool.idle[0] is not parent_conn else 2
            link.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert link.send("ping") == "pong"  # the parent's ssh was left alone by the child
    assert link._pool.idle == [parent_conn]
    assert link.connections_opened == 1


# --- faults -----------------------------------------------------------------------------------
def test_ssh_link_to_a_hung_far_end_fails_within_its_timeout(extra_key, ssh_hosts, runtime_dir):
    private, _ = extra_key(HUNG_COMMAND)
    link = ssh_hosts[0].link(runtime_dir, timeout=HANG_TIMEOUT, private_key=private)
    try:
        with pytest.raises(AgentUnreachable, match="no answer within"):
            link.send("ping")
    finally:
        link.close()
    assert ssh_children() == []  # the hung connection's ssh was ended and reaped


def test_ssh_link_to_a_hung_fail2ban_answers_unreachable(extra_key, ssh_hosts, runtime_dir):
    """The agent is up but the fail2ban behind it never answers: the agent's own timeout
    answers (Fail2banUnreachable), the link stays usable."""
    with FakeFail2ban(hang()) as fake:
        command = agent_command(ssh_hosts[0].server, options=["--timeout", "1"])
        command = command.replace(str(ssh_hosts[0].server.socket_path), fake.path)
        private, _ = extra_key(command)
        link = ssh_hosts[0].link(runtime_dir, private_key=private)
        try:
            with pytest.raises(Fail2banUnreachable, match="did not answer|timed out|no answer"):
                link.send("status")
        finally:
            link.close()


def test_ssh_sshd_stopped_is_unreachable_and_the_same_link_works_after_restart(
    fleet_sshd, ssh_hosts, runtime_dir, links
):
    link = ssh_hosts[3].link(runtime_dir)
    links.append(link)
    assert link.send("ping") == "pong"
    fleet_sshd.stop()
    try:
        with pytest.raises(AgentUnreachable) as unreachable:
            link.send("ping")
        assert "connection refused" in str(unreachable.value)
        assert unreachable.value.address == f"ssh:{ssh_hosts[3].destination}"
    finally:
        fleet_sshd.start()
    assert link.send("ping") == "pong"  # the same link, not rebuilt
    assert dict(link.send("status"))["Number of jail"] == 2


def test_ssh_a_host_whose_sshd_never_greets_times_out_on_connect(ssh_hosts, runtime_dir):
    """A port that accepts and says nothing (a hung sshd, a black hole): ConnectTimeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the connection; no one ever answers
        port = silent.getsockname()[1]
        target = SshTarget.from_destination(
            f"root@127.0.0.1:{port}",
            alias="jailadmin-silent",
            private_key=ssh_hosts[0].private_key,
            host_key=ssh_hosts[0].host_key,
        )
        link = ssh_link_build(target, timeout=HANG_TIMEOUT, runtime_dir=runtime_dir)
        try:
            with pytest.raises(AgentUnreachable, match="connection timed out"):
                link.send("ping")
        finally:
            link.close()
    assert ssh_children() == []


def test_ssh_changed_host_key_is_refused_never_accepted(ssh_hosts, runtime_dir, links):
    """A host reinstalled with a new key (its own sshd here, so the session's key stays)."""
    sshd = PrivateSshd(Path(tempfile.mkdtemp(prefix="jsk-", dir="/tmp")))
    try:
        sshd.start()
        host = ssh_hosts[0]
        sshd.add_key(host.public_key, agent_command(host.server))
        target = SshTarget.from_destination(
            sshd.destination(),
            alias="jailadmin-rekeyed",
            private_key=host.private_key,
            host_key=sshd.host_key_line(),
        )
        link = ssh_link_build(target, timeout=LINK_TIMEOUT, runtime_dir=runtime_dir)
        links.append(link)
        assert link.send("ping") == "pong"
        confirmed = sshd.host_key_line()
        sshd.host_key_new()
        sshd.restart()
        assert sshd.host_key_line() != confirmed
        for _ in range(2):  # and again: nothing was learnt from the first attempt
            with pytest.raises(HostKeyMismatch) as mismatch:
                link.send("ping")
            assert "the host's key changed / does not match the confirmed key: refused" in str(
                mismatch.value
            )
        known_hosts = list(Path(runtime_dir).glob("*.known_hosts"))
        assert [path.read_text() for path in known_hosts] == [f"jailadmin-rekeyed {confirmed}\n"]
    finally:
        sshd.cleanup()


def test_ssh_a_wrong_stored_host_key_is_refused(ssh_hosts, runtime_dir):
    _, other = key_pair_generate("not-the-host")
    link = ssh_hosts[0].link(runtime_dir, host_key=other)
    try:
        with pytest.raises(HostKeyMismatch, match="does not match the confirmed key: refused"):
            link.send("ping")
    finally:
        link.close()
    assert ssh_children() == []


def test_ssh_an_unconfirmed_host_key_is_never_contacted(ssh_hosts, runtime_dir):
    link = ssh_hosts[0].link(runtime_dir, host_key="")
    with pytest.raises(HostKeyUnconfirmed, match="confirm the host's key first"):
        link.send("ping")
    assert ssh_children() == []
    assert list(Path(runtime_dir).iterdir()) == []  # not even a key file written


def test_ssh_a_key_that_gets_a_shell_is_refused(extra_key, ssh_hosts, runtime_dir):
    private, _ = extra_key(None)  # no forced command: sshd gives this key a shell
    link = ssh_hosts[0].link(runtime_dir, private_key=private)
    try:
        with pytest.raises(ShellKeyRefused) as refused:
            link.send("ping")
    finally:
        link.close()
    assert isinstance(refused.value, AgentRefused)
    assert "opens a shell" in str(refused.value)
    assert f'command="{AGENT_COMMAND}",restrict' in str(refused.value)
    assert ssh_children() == []


def test_ssh_a_forced_command_printing_garbage_is_a_protocol_error(
    extra_key, ssh_hosts, runtime_dir
):
    private, _ = extra_key(GARBAGE_COMMAND)
    link = ssh_hosts[0].link(runtime_dir, private_key=private)
    try:
        with pytest.raises(ProtocolError) as garbage:
            link.send("ping")
    finally:
        link.close()
    assert "does not run the jailadmin agent" in str(garbage.value)
    assert "hello" in str(garbage.value)  # what it sent, shown


def test_ssh_a_short_garbage_answer_is_a_protocol_error(extra_key, ssh_hosts, runtime_dir):
    private, _ = extra_key("printf hi")  # fewer bytes than a frame header, then the end
    link = ssh_hosts[0].link(runtime_dir, private_key=private)
    try:
        with pytest.raises(ProtocolError, match="b'hi'"):
            link.send("ping")
    finally:
        link.close()


def test_ssh_a_forced_command_whose_agent_is_missing_says_why(extra_key, ssh_hosts, runtime_dir):
    """install-agent half done: the key is in place, the bundle is not."""
    private, _ = extra_key("/usr/bin/python3 -I /nonexistent/jailadmin/agent.pyz --stdio")
    link = ssh_hosts[0].link(runtime_dir, private_key=private)
    try:
        with pytest.raises(AgentUnreachable) as unreachable:
            link.send("ping")
    finally:
        link.close()
    assert not isinstance(unreachable.value, SiteKeyRejected | HostKeyMismatch)
    assert "the agent ended (exit status 2)" in str(unreachable.value)
    assert "/nonexistent/jailadmin/agent.pyz" in str(unreachable.value)


def test_ssh_a_wrong_site_key_is_not_accepted(ssh_hosts, runtime_dir):
    private, _ = key_pair_generate("unknown-to-the-host")
    link = ssh_hosts[0].link(runtime_dir, private_key=private)
    try:
        with pytest.raises(SiteKeyRejected, match="the host did not accept the site's key"):
            link.send("ping")
    finally:
        link.close()


def test_ssh_key_files_are_private_and_written_once(ssh_hosts, runtime_dir, links):
    link = ssh_hosts[0].link(runtime_dir)
    links.append(link)
    link.send("ping")
    files = sorted(Path(runtime_dir).iterdir(), key=lambda path: path.suffix)
    assert [path.suffix for path in files] == [".key", ".known_hosts"]
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in files)
    stamps = [path.stat().st_mtime_ns for path in files]
    link.close()
    link.send("ping")  # a new connection: the same files, not rewritten
    assert [path.stat().st_mtime_ns for path in files] == stamps


def test_ssh_a_site_without_a_key_for_the_host_starts_no_ssh(ssh_hosts, runtime_dir):
    link = ssh_hosts[0].link(runtime_dir, private_key="")
    with pytest.raises(SiteKeyRejected, match="no key"):
        link.send("ping")
    assert ssh_children() == []


# --- the generalised client, on its Unix transport --------------------------------------------
def test_agent_link_names_a_unix_peer_that_is_not_an_agent():
    """What the shell probe builds on, for every transport: a first frame header that is
    text (here an SSH banner) is reported as such, not read as a 1.4 GB reply."""
    directory = tempfile.mkdtemp(prefix="jnb-", dir="/tmp")
    path = os.path.join(directory, "not-an-agent.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def banner() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)  # the hello
            conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u6\r\n")

    thread = threading.Thread(target=banner)
    thread.start()
    try:
        with pytest.raises(ProtocolError) as garbage:
            AgentLink(f"unix:{path}", timeout=LINK_TIMEOUT).send("ping")
        assert "does not speak the jailadmin agent's protocol" in str(garbage.value)
        assert "SSH-2.0-OpenSSH" in str(garbage.value)
    finally:
        thread.join()
        listener.close()
        shutil.rmtree(directory, ignore_errors=True)


class _SaidAndLeft:
    """A transport whose far side has already written `said` and closed (a shell that
    echoed and exited before the hello went out)."""

    address = "test:said-and-left"

    def __init__(self, said: bytes) -> None:
        self.said = said

    def open(self, timeout: float) -> AgentStream:
        ours, theirs = socket.socketpair()
        theirs.sendall(self.said)
        theirs.close()
        return AgentStream(ours)


@pytest.mark.parametrize(
    ("said", "error", "message"),
    [
        (
            b"This account is currently not available.\n",
            ProtocolError,
            "test:said-and-left does not speak the jailadmin agent's protocol: "
            "it sent b'This account is currently not available.\\n'",
        ),
        # Silent and gone: unreachable, with why writing the hello failed (EPIPE).
        (
            b"",
            AgentUnreachable,
            "the jailadmin agent is not reachable at test:said-and-left: Broken pipe",
        ),
    ],
)
def test_agent_link_reads_what_a_peer_said_before_it_hung_up(said, error, message):
    link = AgentLink("", transport=_SaidAndLeft(said), timeout=10.0)
    with pytest.raises(error) as refused:
        link.health()
    assert type(refused.value) is error and str(refused.value) == message
