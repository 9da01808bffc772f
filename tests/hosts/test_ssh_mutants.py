"""The SSH transport's checks (jails.agent.ssh) pinned down to what a caller sees: which
destinations, aliases and keys are refused and with which message, and the exact canonical
form of what passes (the destination stored, the authorized_keys line a host gets).

Written for `make mutation MUTANTS='jails.agent.ssh*'` (issue 17): these run in this process,
so each mutant of a check is judged without starting sshd.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from jails.agent import ssh
from jails.fail2ban import InvalidArgument
from tests.support.sshd import PrivateSshd


def refused(function, *args, **kwargs) -> str:
    with pytest.raises(InvalidArgument) as error:
        function(*args, **kwargs)
    return str(error.value)


def key_line(key_type="ssh-ed25519", inner=None, body=b"\x00" * 36, comment=""):
    inner = (inner or key_type).encode()
    blob = len(inner).to_bytes(4, "big") + inner + body
    line = f"{key_type} {base64.b64encode(blob).decode()}"
    return f"{line} {comment}" if comment else line


# --- The forced command ---------------------------------------------------------------------------
def test_agent_command_runs_the_bundle_isolated_on_stdio():
    assert ssh.AGENT_COMMAND == "/usr/bin/python3 -I /usr/local/lib/jailadmin/agent.pyz --stdio"
    assert ssh.agent_command("/opt/py", "/srv/a.pyz", "--timeout", "5") == (
        "/opt/py -I /srv/a.pyz --stdio --timeout 5"
    )


def test_authorized_keys_line_restricts_the_key_to_the_command():
    line = key_line(comment="jailadmin@site")
    assert ssh.authorized_keys_line(line) == (f'command="{ssh.AGENT_COMMAND}",restrict {line}')
    bare = key_line()
    assert ssh.authorized_keys_line(bare, command="/x --stdio") == (
        f'command="/x --stdio",restrict {bare}'
    )
    for command in ('a"b', "a\\b", "a\nb", "", "   "):
        assert refused(ssh.authorized_keys_line, bare, command=command) == (
            "the forced command must be one printable line without double quotes or backslashes"
        )


# --- Destinations ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("destination", "parsed"),
    [
        ("root@host", ("root", "host", 22)),
        ("root@Host.Example.COM.", ("root", "host.example.com", 22)),
        ("a@h:1", ("a", "h", 1)),
        ("a@h:65535", ("a", "h", 65535)),
        ("a@h:00022", ("a", "h", 22)),
        ("_x.y-z@10.0.0.1:2222", ("_x.y-z", "10.0.0.1", 2222)),
        ("u@[2001:DB8::1]", ("u", "2001:db8::1", 22)),
        ("u@[2001:db8:0::1]:2200", ("u", "2001:db8::1", 2200)),
        ("u" * 32 + "@h", ("u" * 32, "h", 22)),
        ("u@" + "l" * 63 + ".x", ("u", "l" * 63 + ".x", 22)),
        ("u@a-b.c", ("u", "a-b.c", 22)),
    ],
)
def test_destinations_that_pass(destination, parsed):
    assert ssh.destination_parse(destination) == parsed
    user, host, port = parsed
    shown = f"[{host}]" if ":" in host else host
    assert ssh.destination_check(destination) == f"{user}@{shown}:{port}"


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ("", "the SSH destination is empty: write user@host or user@host:port"),
        (None, "the SSH destination is empty: write user@host or user@host:port"),
        (" a@h", "the SSH destination must not contain spaces"),
        ("a@h ", "the SSH destination must not contain spaces"),
        ("a@h\t", "the SSH destination must not contain spaces"),
        ("a b@h", "the SSH destination must not contain spaces"),
        ("a@h\x00", "the SSH destination must be printable ASCII"),
        ("a@hé", "the SSH destination must be printable ASCII"),
        ("host", "'host' names no user: write user@host or user@host:port"),
        ("@host", "'@host' has an empty user name"),
        (
            "-oProxy@h",
            "'-oProxy' is not a plain user name (letters, digits, . _ -, not starting with -)",
        ),
        (
            "u" * 33 + "@h",
            f"'{'u' * 33}' is not a plain user name (letters, digits, . _ -, not starting with -)",
        ),
        ("a@b@h", "'a@b@h' has more than one @"),
        ("a@[::1", "'a@[::1': an IPv6 address in [brackets] is not closed"),
        ("a@[::1]22", "'a@[::1]22': only :port may follow [address]"),
        ("a@[::1]:", "'a@[::1]:' ends with ':' but gives no port"),
        ("a@[host]", "'a@[host]': only an IPv6 address goes in [brackets]"),
        ("a@h:", "'a@h:' ends with ':' but gives no port"),
        ("a@::1", "'a@::1': write an IPv6 address in brackets, user@[2001:db8::1]:22"),
        ("a@:22", "'a@:22' names no host"),
        ("a@", "'a@' names no host"),
        ("a@h:0", "'0' is not a port (1-65535)"),
        ("a@h:65536", "'65536' is not a port (1-65535)"),
        ("a@h:123456", "'123456' is not a port (1-65535)"),
        ("a@h:-1", "'-1' is not a port (1-65535)"),
        ("a@h:2x", "'2x' is not a port (1-65535)"),
        ("a@[::1]:99999", "'99999' is not a port (1-65535)"),
        ("a@[fe80::1%eth0]", "'fe80::1%eth0': an IPv6 address with a %zone is not supported"),
        ("a@[1:2:3]", "'1:2:3' is not an IPv6 address"),
        ("a@-h", "'-h' is not a host name or address (letters, digits, dots and inner dashes)"),
        ("a@h-", "'h-' is not a host name or address (letters, digits, dots and inner dashes)"),
        ("a@h_x", "'h_x' is not a host name or address (letters, digits, dots and inner dashes)"),
        ("a@h..x", "'h..x' is not a host name or address (letters, digits, dots and inner dashes)"),
        ("a@*", "'*' is not a host name or address (letters, digits, dots and inner dashes)"),
        (
            "a@" + "l" * 64,
            f"'{'l' * 64}' is not a host name or address (letters, digits, dots and inner dashes)",
        ),
    ],
)
def test_destinations_that_are_refused(destination, message):
    assert refused(ssh.destination_parse, destination) == message


# --- Public keys ----------------------------------------------------------------------------------
def test_host_key_check_keeps_type_and_blob_only():
    line = key_line(comment="root@host extra words")
    assert ssh.host_key_check("  " + line + "  ") == line.rsplit(" ", 3)[0]
    rsa = key_line("rsa-sha2-512", inner="ssh-rsa")
    assert ssh.host_key_check(rsa) == rsa
    for key_type in ssh.HOST_KEY_TYPES:
        inner = "ssh-rsa" if key_type.startswith("rsa-sha2") else key_type
        assert ssh.host_key_check(key_line(key_type, inner=inner)) == key_line(key_type, inner)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (key_line() + "\n" + key_line(), "a public key is one line"),
        (key_line() + "\r", "a public key is one line"),
        (key_line() + "\x00", "a public key is one line"),
        ("ssh-ed25519", "a public key line is 'TYPE BASE64 [comment]'"),
        ("", "a public key line is 'TYPE BASE64 [comment]'"),
        ("ssh-ed25519 AAAA", "'ssh-ed25519' … is not an OpenSSH public key"),
        ("SSH-ED25519 " + "A" * 20, "'SSH-ED25519' … is not an OpenSSH public key"),
        ("ssh-ed25519 " + "A" * 17, "the public key's base64 is damaged"),
        # Under four bytes cannot get past the pattern (16 base64 characters are 12 bytes): a blob
        # of zeros names an empty type.
        ("ssh-ed25519 " + "A" * 20, "the public key says 'ssh-ed25519' but holds another type"),
        (key_line(inner="ssh-rsa"), "the public key says 'ssh-ed25519' but holds another type"),
        (
            key_line("ssh-rsa", inner="rsa-sha2-512"),
            "the public key says 'ssh-rsa' but holds another type",
        ),
        (key_line("ssh-dss"), "'ssh-dss' is not a host key type OpenSSH uses"),
    ],
)
def test_host_keys_that_are_refused(line, message):
    assert refused(ssh.host_key_check, line) == message


def test_fingerprint_is_ssh_keygens_form():
    line = key_line()
    blob = base64.b64decode(line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode()
    assert ssh.fingerprint(line) == "SHA256:" + digest.rstrip("=")
    assert not ssh.fingerprint(line).endswith("=")


# --- Targets, key files and the ssh command line --------------------------------------------------
PRIVATE = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    + "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n" * 3
    + "-----END OPENSSH PRIVATE KEY-----\n"
)


def target(destination="root@h1.example:2222", *, alias="h1", private_key=PRIVATE, host_key=None):
    return ssh.SshTarget.from_destination(
        destination,
        alias=alias,
        private_key=private_key,
        host_key=key_line() if host_key is None else host_key,
    )


def test_target_from_destination_keeps_canonical_fields():
    made = target(
        host_key="  " + key_line(comment="root@h1") + "\n",
        private_key=PRIVATE.replace("\n", "\r\n"),
    )
    assert made == ssh.SshTarget(
        user="root",
        host="h1.example",
        port=2222,
        alias="h1",
        private_key=PRIVATE,
        host_key=key_line(),
    )
    assert made.destination == "root@h1.example:2222"
    assert target("u@[2001:db8::2]").destination == "u@[2001:db8::2]:22"
    # No key yet and no confirmed host key: both stay empty.
    bare = target(private_key="", host_key="  ")
    assert bare.private_key == "" and bare.host_key == ""


def test_target_refusals():
    for alias in ("", "-h", "a b", "a" * 129, "h,i"):
        assert refused(target, alias=alias) == f"the host key alias {alias!r} is not a plain name"
    assert target(alias="a" * 128).alias == "a" * 128
    for private_key in (
        "ssh-ed25519 AAAA",
        PRIVATE.replace("OPENSSH PRIVATE", "OPENSSH PUBLIC", 1),
    ):
        assert refused(target, private_key=private_key) == (
            "the private key is not an OpenSSH PEM private key"
        )
    assert refused(target, host_key=key_line("ssh-dss")) == (
        "'ssh-dss' is not a host key type OpenSSH uses"
    )


def test_client_argv_fixes_every_option(tmp_path):
    argv = ssh.client_argv(
        target(), key_path=tmp_path / "k", known_hosts=tmp_path / "kh", timeout=2.2, command="c"
    )
    assert argv[0].endswith("/ssh")
    assert argv[1:] == [
        "-F", "/dev/null", "-i", str(tmp_path / "k"), "-p", "2222",
        "-l", "root", "-T", "-x", "-a",
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={tmp_path / 'kh'}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "HostKeyAlias=h1",
        "-o", "HostKeyAlgorithms=ssh-ed25519",
        "-o", "UpdateHostKeys=no",
        "-o", "CheckHostIP=no",
        "-o", "ConnectTimeout=3",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=3",
        "-o", "IdentitiesOnly=yes",
        "-o", "IdentityAgent=none",
        "-o", "PreferredAuthentications=publickey",
        "-o", "PasswordAuthentication=no",
        "-o", "KbdInteractiveAuthentication=no",
        "-o", "ControlMaster=no",
        "-o", "ControlPath=none",
        "-o", "ClearAllForwardings=yes",
        "-o", "ForwardAgent=no",
        "-o", "ForwardX11=no",
        "-o", "PermitLocalCommand=no",
        "-o", "RequestTTY=no",
        "-o", "EscapeChar=none",
        "--", "h1.example", "c",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("key_type", "algorithms"),
    [
        ("ssh-rsa", "rsa-sha2-512,rsa-sha2-256"),
        ("rsa-sha2-256", "rsa-sha2-512,rsa-sha2-256"),
        ("rsa-sha2-512", "rsa-sha2-512,rsa-sha2-256"),
        ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"),
    ],
)
def test_client_argv_accepts_only_the_confirmed_keys_type(tmp_path, key_type, algorithms):
    inner = "ssh-rsa" if key_type.startswith("rsa") else key_type
    argv = ssh.client_argv(
        target(host_key=key_line(key_type, inner=inner)),
        key_path="k",
        known_hosts="kh",
        timeout=0.1,
        command="c",
    )
    assert f"HostKeyAlgorithms={algorithms}" in argv
    assert "ConnectTimeout=1" in argv


def test_transport_writes_private_key_files_once_and_refuses_without_keys(tmp_path):
    runtime = tmp_path / "run" / "ssh"
    transport = ssh.SshTransport(target(), runtime_dir=str(runtime))
    assert transport.address == "ssh:root@h1.example:2222"
    argv = transport.argv("probe", timeout=5)
    key_path = argv[argv.index("-i") + 1]
    known = next(a for a in argv if a.startswith("UserKnownHostsFile=")).split("=", 1)[1]
    assert Path(key_path).read_text() == PRIVATE
    assert Path(known).read_text() == f"h1 {key_line()}\n"
    for path in (key_path, known):
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert oct(os.stat(runtime).st_mode & 0o777) == "0o700"
    assert argv[-2:] == ["h1.example", "probe"]
    inode = os.stat(key_path).st_ino
    assert transport.argv("probe", timeout=5) == argv
    assert os.stat(key_path).st_ino == inode  # unchanged: not written again
    assert sorted(os.listdir(runtime)) == sorted(
        [os.path.basename(key_path), os.path.basename(known)]
    )
    # The names are the content's digest: another key is another file.
    other = ssh.SshTransport(
        target(private_key=PRIVATE.replace("b3Bl", "c3Bl", 1)), runtime_dir=str(runtime)
    )
    assert other.argv("p", timeout=5)[argv.index("-i") + 1] != key_path

    with pytest.raises(ssh.HostKeyUnconfirmed) as unconfirmed:
        ssh.SshTransport(target(host_key=""), runtime_dir=str(runtime)).open(5)
    assert unconfirmed.value.address == "ssh:root@h1.example:2222"
    assert unconfirmed.value.reason == (
        "the host's key is not confirmed: confirm the host's key first"
        " (compare its fingerprint with `ssh-keygen -lf` on the host)"
    )
    with pytest.raises(ssh.SiteKeyRejected) as no_key:
        ssh.SshTransport(target(private_key=""), runtime_dir=str(runtime)).open(5)
    assert "the site has no key for this host yet" in str(no_key.value)
    with pytest.raises(ssh.HostKeyUnconfirmed) as text:
        ssh.known_hosts_text(target(host_key=""))
    assert "the host's key is not confirmed: confirm it first" in str(text.value)


# --- What ssh said ------------------------------------------------------------------------------
A = "ssh:root@h:22"


@pytest.mark.parametrize(
    ("said", "kind", "reason"),
    [
        (
            "Host key verification failed.\n",
            ssh.HostKeyMismatch,
            "the host's key changed / does not match the confirmed key: refused"
            " (if the host was reinstalled, confirm its new key)",
        ),
        (
            "@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @\n",
            ssh.HostKeyMismatch,
            "the host's key changed / does not match the confirmed key: refused"
            " (if the host was reinstalled, confirm its new key)",
        ),
        (
            "Unable to negotiate with 127.0.0.1 port 22: no matching host key type found.",
            ssh.HostKeyMismatch,
            "the host does not offer the confirmed key's type: the key changed; refused",
        ),
        (
            "root@h: Permission denied (publickey).\n",
            ssh.SiteKeyRejected,
            "the host did not accept the site's key (add its authorized_keys line on the host)",
        ),
        (
            "ssh: connect to host h port 22: Connection refused\n",
            ssh.AgentUnreachable,
            "connection refused (is sshd running there?)",
        ),
        (
            "ssh: connect to host h port 22: Connection timed out\n",
            ssh.AgentUnreachable,
            "no answer from the host's sshd (connection timed out)",
        ),
        (
            "ssh: Could not resolve hostname h: Name or service not known\n",
            ssh.AgentUnreachable,
            "the host name does not resolve",
        ),
        ("connect to host h: No route to host", ssh.AgentUnreachable, "no route to the host"),
        ("connect: Network is unreachable", ssh.AgentUnreachable, "no route to the host"),
        (
            "Connection closed by 127.0.0.1 port 22\n",
            ssh.AgentUnreachable,
            "the host's sshd closed the connection",
        ),
        ("Connection reset by peer", ssh.AgentUnreachable, "the host's sshd closed the connection"),
        ("first\n  something else  \n\n", ssh.AgentUnreachable, "ssh failed: something else"),
    ],
)
def test_ssh_failure_on_sshs_own_exit_status(said, kind, reason):
    error = ssh.ssh_failure(A, said, 255)
    assert type(error) is kind
    assert error.address == A
    assert error.reason == reason


def test_ssh_failure_otherwise():
    assert ssh.ssh_failure(A, "", 255) is None
    assert ssh.ssh_failure(A, "  \n \n", 255) is None
    assert ssh.ssh_failure(A, "", 1) is None
    assert ssh.ssh_failure(A, "", None) is None
    # Not ssh's own status: the far side's last words, even if they look like ssh's.
    ended = ssh.ssh_failure(A, "Permission denied (publickey).\nTraceback: boom  \n", 1)
    assert type(ended) is ssh.AgentUnreachable and ended.address == A
    assert ended.reason == "the agent ended (exit status 1): Traceback: boom"
    assert (
        ssh.ssh_failure(A, "x" * 400, 2).reason == f"the agent ended (exit status 2): {'x' * 300}"
    )
    assert ssh.ssh_failure(A, "y" * 400, 255).reason == f"ssh failed: {'y' * 300}"


def test_key_pair_and_scan_refuse_bad_arguments():
    for comment in ("two words", "tab\there", "nl\n", "\x00", "c" * 201):
        assert refused(ssh.key_pair_generate, comment) == (
            "the key comment must be one printable word"
        )
    # The longest comment taken: 200 characters, in the public key as given.
    assert ssh.key_pair_generate("c" * 200)[1].endswith(" " + "c" * 200)
    for port in (0, 65536):
        assert refused(ssh.host_keys_scan, "h", port) == f"{port} is not a port (1-65535)"
    assert "is not a host name" in refused(ssh.host_keys_scan, "-oProxyCommand=x")


# --- The stream around one ssh process ------------------------------------------------------------
def stream(tmp_path, script, *, stderr_bytes=b""):
    """An SshStream whose process runs `script` (python) with our socketpair as stdin/stdout."""
    ours, theirs = socket.socketpair()
    stderr = tempfile.TemporaryFile(dir=tmp_path)  # noqa: SIM115 (the stream closes it)
    stderr.write(stderr_bytes)
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdin=theirs, stdout=theirs, stderr=stderr
    )
    theirs.close()
    return ssh.SshStream(ours, process, stderr, address=A, probe="jailadmin-shell-probe-ab")


def test_stream_said_is_the_last_4096_bytes_of_stderr_decoded_leniently(tmp_path):
    tail = "t" * 4095 + "\xe9"
    quiet = stream(tmp_path, "pass", stderr_bytes=b"h" * 100 + tail.encode("latin-1"))
    try:
        assert quiet.said() == "t" * 4095 + "\ufffd"
    finally:
        quiet.close()
    assert quiet.said() == ""  # the file is closed: nothing more to say


def test_stream_failure_explains_an_exited_ssh_and_passes_other_errors_on(tmp_path):
    lost = ssh.AgentUnreachable(A, "the agent closed the connection")
    exited = stream(tmp_path, "import sys; sys.exit(255)", stderr_bytes=b"Connection refused\n")
    try:
        explained = exited.failure(lost, closed=True)
        assert type(explained) is ssh.AgentUnreachable
        assert explained.address == A
        assert explained.reason == "connection refused (is sshd running there?)"
        assert exited.alive() is False
        # Not an unreachable agent (a refusal, a garbled reply): ssh's stderr is not the cause.
        garbled = ssh.ProtocolError("garbled")
        assert exited.failure(garbled, closed=True) is garbled
        # In a forked child the process is the parent's: the error as it is.
        exited.pid = os.getpid() + 1
        assert exited.failure(lost, closed=True) is lost
    finally:
        exited.close()
    silent = stream(tmp_path, "import sys; sys.exit(255)")
    try:
        assert silent.failure(lost, closed=True) is lost  # ssh said nothing: nothing to add
    finally:
        silent.close()


def test_stream_failure_of_a_running_ssh_is_the_error_itself(tmp_path):
    lost = ssh.AgentUnreachable(A, "no answer within 5 s")
    running = stream(tmp_path, "import sys; sys.stdin.buffer.read()", stderr_bytes=b"timed out\n")
    try:
        assert running.alive() is True
        assert running.failure(lost, closed=False) is lost
    finally:
        running.close()
    assert running.process.returncode is not None  # closing ended and reaped it
    assert running.alive() is False


# An ssh that has closed its end but does not exit, and ignores SIGTERM: a hung one. (Its
# 120 s only bound what a broken close would leave behind; a working one kills it at 3 s.)
STUCK = (
    "import os, signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "os.write(1, b'ready')\n"
    "os.close(0); os.close(1)\n"
    "time.sleep(120)\n"
)


def test_stream_failure_does_not_wait_forever_for_a_closed_ssh_to_exit(tmp_path):
    lost = ssh.AgentUnreachable(A, "the agent closed the connection")
    stuck = stream(tmp_path, STUCK, stderr_bytes=b"Connection refused\n")
    try:
        assert stuck.sock.recv(5) == b"ready"
        # It said why, but has not exited (3 s allowed): no explanation, the error itself.
        assert stuck.failure(lost, closed=True) is lost
    finally:
        stuck.close()
    # SIGTERM was ignored: closing killed it after its 3 s.
    assert stuck.process.returncode == -signal.SIGKILL


def test_stream_close_in_a_forked_child_leaves_the_parents_ssh_running(tmp_path):
    running = stream(tmp_path, "import sys; sys.stdin.buffer.read()")
    try:
        running.pid = os.getpid() + 1
        running.close()
        assert running.process.poll() is None
    finally:
        running.process.kill()
        running.process.wait()


def test_stream_names_a_shell_or_a_stranger_exactly(tmp_path):
    quiet = stream(tmp_path, "pass")
    try:
        shell = quiet.not_an_agent("ssh:root@h:22", b"motd\njailadmin-shell-probe-ab\n")
        assert type(shell) is ssh.ShellKeyRefused
        assert str(shell) == (
            "the site's key opens a shell on ssh:root@h:22: add"
            f' command="{ssh.AGENT_COMMAND}",restrict to its authorized_keys line; refused'
        )
        stranger = quiet.not_an_agent("ssh:root@h:22", b"x" * 300)
        assert type(stranger) is ssh.ProtocolError
        assert str(stranger) == (
            "ssh:root@h:22 does not run the jailadmin agent for the site's key (is the forced"
            f" command right?): it sent {b'x' * 200!r}"
        )
    finally:
        quiet.close()


def test_missing_openssh_tools_are_named_with_their_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ssh.AgentUnreachable) as missing:
        ssh.key_pair_generate("site")
    assert missing.value.address == "ssh:ssh-keygen"
    assert missing.value.reason == "ssh-keygen is not installed (Debian package openssh-client)"


def test_a_changed_key_file_is_replaced_whole_and_private(tmp_path):
    path = tmp_path / "k.key"
    path.write_text("old and longer content\n")
    path.chmod(0o644)
    ssh._private_file(path, "new\n")
    assert path.read_text() == "new\n"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert os.listdir(tmp_path) == ["k.key"]  # no scratch file left behind


def test_ssh_link_build_passes_the_transport_and_its_bounds(tmp_path):
    link = ssh.ssh_link_build(target(), timeout=7.0, runtime_dir=str(tmp_path))
    assert link.address == "ssh:root@h1.example:2222"
    assert (link.timeout, link.pool_size, link.reload_timeout) == (7.0, 8, 120.0)
    assert isinstance(link.transport, ssh.SshTransport)
    assert link.transport.runtime_dir == tmp_path
    link.close()
    other = ssh.ssh_link_build(
        target(), timeout=3.0, runtime_dir=str(tmp_path), pool_size=2, reload_timeout=9.0
    )
    assert (other.timeout, other.pool_size, other.reload_timeout) == (3.0, 2, 9.0)
    other.close()


def test_key_files_are_named_by_24_hex_digits_of_their_content(tmp_path):
    argv = ssh.SshTransport(target(), runtime_dir=str(tmp_path)).argv("p", timeout=5)
    digest = hashlib.sha256(PRIVATE.encode()).hexdigest()
    assert argv[argv.index("-i") + 1] == str(tmp_path / f"{digest[:24]}.key")


def test_scanning_a_port_nobody_listens_on_names_the_address_and_why():
    # Bound but not listening: a connection there is refused at once.
    with socket.socket() as closed_port:
        closed_port.bind(("127.0.0.1", 0))
        port = closed_port.getsockname()[1]
        with pytest.raises(ssh.AgentUnreachable) as unreachable:
            ssh.host_keys_scan("127.0.0.1", port, timeout=2)
    assert unreachable.value.address == f"ssh:127.0.0.1:{port}"
    assert unreachable.value.reason == "no host key: no SSH server answered"


def test_an_ssh_that_cannot_be_run_is_unreachable_with_the_hosts_address(monkeypatch, tmp_path):
    # A damaged install: an executable "ssh" on the PATH that is no program at all.
    broken = tmp_path / "ssh"
    broken.write_bytes(b"\x00\x01 not a program\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    transport = ssh.SshTransport(target(), runtime_dir=str(tmp_path / "run"))
    with pytest.raises(ssh.AgentUnreachable) as unreachable:
        transport.open(5)
    assert unreachable.value.address == "ssh:root@h1.example:2222"
    assert unreachable.value.reason == f"cannot run ssh: [Errno 8] Exec format error: '{broken}'"


def test_scanning_a_server_that_greets_and_hangs_up_leaves_ssh_keyscans_comments_out():
    # ssh-keyscan prints "# HOST:PORT BANNER" on stderr for the greeting: its own comment,
    # not a reason.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def greet_and_hang_up() -> None:
            with contextlib.suppress(OSError):
                while True:
                    peer, _ = listener.accept()
                    with peer:
                        peer.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")

        thread = threading.Thread(target=greet_and_hang_up, daemon=True)
        thread.start()
        try:
            with pytest.raises(ssh.AgentUnreachable) as unreachable:
                ssh.host_keys_scan("127.0.0.1", port, timeout=2)
        finally:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() with an OSError
            thread.join(timeout=30)
    assert unreachable.value.reason == "no host key: no SSH server answered"


class _TwoKeySshd(PrivateSshd):
    """A private sshd with an ECDSA host key besides its ed25519 one."""

    def _prepare(self) -> None:
        super()._prepare()
        ecdsa = self.base_dir / "ssh_host_ecdsa_key"
        if not ecdsa.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-C", "", "-f", str(ecdsa)],
                check=True,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
            )
        with self.config_path.open("a") as config:
            config.write(f"HostKey {ecdsa}\n")


def test_scanned_host_keys_come_ed25519_first_whatever_the_name_order(tmp_path):
    with _TwoKeySshd(tmp_path / "sshd") as sshd:
        keys = ssh.host_keys_scan("127.0.0.1", sshd.port, timeout=10)
        ed25519 = sshd.host_key_line()
        ecdsa = (sshd.base_dir / "ssh_host_ecdsa_key.pub").read_text().split()
    assert keys == [ed25519, f"{ecdsa[0]} {ecdsa[1]}"]
    assert ecdsa[0] == "ecdsa-sha2-nistp256"  # sorts before "ssh-ed25519" by name
