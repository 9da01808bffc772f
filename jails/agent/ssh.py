"""Reaching a host's agent over OpenSSH (issue 12; DESIGN.md 3a).

The site holds one key per host. On the host, that key's authorized_keys line forces the
agent (`command="…agent.pyz --stdio",restrict`), so whatever the site asks for, sshd runs
the agent and nothing else: no shell, no forwarding. The client side here runs the system
`ssh` with a fixed option set (no user configuration, no ssh-agent, the stored host key
only) and gives its stdin/stdout to the agent protocol through a socketpair, so AgentLink's
framing, handshake and pool work unchanged.

Nothing here imports Django (the import contract `agent-plain`): the site's hosts app and
the tests build targets from their own records.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import math
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from jails.fail2ban.errors import (
    AgentRefused,
    AgentUnreachable,
    Fail2banError,
    InvalidArgument,
    ProtocolError,
)

from .client import AgentLink, AgentStream

# The forced command a host's authorized_keys line carries by default: the bundled agent
# (`manage.py agent_bundle`) on the host's system python3, which imports fail2ban's modules.
# Isolated mode (-I), as the local agent's systemd unit runs it: no PYTHON* variables, no
# user site-packages and not the working directory on sys.path, so nothing in root's
# environment or home decides which code the agent imports.
AGENT_PYTHON = "/usr/bin/python3"
AGENT_PATH = "/usr/local/lib/jailadmin/agent.pyz"


def agent_command(python: str = AGENT_PYTHON, path: str = AGENT_PATH, *options: str) -> str:
    """The forced command that runs the bundled agent at `path` on `python`, isolated."""
    return " ".join([python, "-I", path, "--stdio", *options])


AGENT_COMMAND = agent_command()
DEFAULT_PORT = 22

# A POSIX-ish login name: never starts with "-" (ssh would read it as an option).
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,31}")
# A DNS name: labels of letters, digits and inner dashes. No "-" first (an option), no "%",
# "*", "!" or "," (ssh patterns and tokens), no spaces (argv and known_hosts fields).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_PORT = re.compile(r"[0-9]{1,5}")
# A known_hosts alias is one field of that file: the same alphabet as a host name.
_ALIAS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
# The host key types OpenSSH 9 offers; ed25519 is what it prefers and what we scan first.
HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
)
_PUBLIC_KEY = re.compile(r"(?P<type>[a-z0-9@.-]{3,64}) (?P<blob>[A-Za-z0-9+/]{16,8192}={0,3})")
# "-----BEGIN OPENSSH PRIVATE KEY-----" and friends; the body is base64 lines.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?P<label>[A-Z0-9 ]{1,40}) KEY-----\n(?:[A-Za-z0-9+/=]{1,100}\n){1,400}"
    r"-----END (?P=label) KEY-----\n?"
)
_TOOL_TIMEOUT = 30.0


@dataclass(frozen=True)
class SshTarget:
    """Where and how to reach one host's agent: destination, known_hosts alias, keys.

    `host` is bare (an IPv6 address without brackets); `host_key` is the host's confirmed
    public key ("ssh-ed25519 AAAA…"), "" while nobody confirmed one (never contacted then).
    """

    user: str
    host: str
    port: int
    alias: str
    private_key: str
    host_key: str

    @classmethod
    def from_destination(
        cls, destination: str, *, alias: str, private_key: str, host_key: str
    ) -> SshTarget:
        """Parse `user@host:port` / `user@host` / `user@[v6addr]:port`; InvalidArgument if bad."""
        user, host, port = destination_parse(destination)
        if not _ALIAS.fullmatch(alias):
            raise InvalidArgument(f"the host key alias {alias!r} is not a plain name")
        private_key = private_key.replace("\r\n", "\n")
        if private_key and not _PRIVATE_KEY.fullmatch(private_key.strip() + "\n"):
            raise InvalidArgument("the private key is not an OpenSSH PEM private key")
        return cls(
            user=user,
            host=host,
            port=port,
            alias=alias,
            private_key=private_key,
            host_key=host_key_check(host_key) if host_key.strip() else "",
        )

    @property
    def destination(self) -> str:
        """The canonical `user@host:port` (brackets around an IPv6 address)."""
        return destination_format(self.user, self.host, self.port)


def destination_parse(destination: str) -> tuple[str, str, int]:
    """(user, bare host, port) of `user@host[:port]` / `user@[v6][:port]`; InvalidArgument."""
    if not isinstance(destination, str) or not destination:
        raise InvalidArgument("the SSH destination is empty: write user@host or user@host:port")
    if destination != destination.strip() or any(c.isspace() for c in destination):
        raise InvalidArgument("the SSH destination must not contain spaces")
    if not destination.isprintable() or not destination.isascii():
        raise InvalidArgument("the SSH destination must be printable ASCII")
    user, at, rest = destination.partition("@")
    if not at:
        raise InvalidArgument(f"{destination!r} names no user: write user@host or user@host:port")
    if not user:
        raise InvalidArgument(f"{destination!r} has an empty user name")
    if not _USER.fullmatch(user):
        raise InvalidArgument(
            f"{user!r} is not a plain user name (letters, digits, . _ -, not starting with -)"
        )
    if "@" in rest:
        raise InvalidArgument(f"{destination!r} has more than one @")
    port_text = ""
    if rest.startswith("["):
        inner, closing, after = rest[1:].partition("]")
        if not closing:
            raise InvalidArgument(f"{destination!r}: an IPv6 address in [brackets] is not closed")
        if after:
            if not after.startswith(":"):
                raise InvalidArgument(f"{destination!r}: only :port may follow [address]")
            port_text = after[1:]
            if not port_text:
                raise InvalidArgument(f"{destination!r} ends with ':' but gives no port")
        if ":" not in inner:
            raise InvalidArgument(f"{destination!r}: only an IPv6 address goes in [brackets]")
        host = host_name_check(inner)
    else:
        host, colon, port_text = rest.partition(":")
        if colon and not port_text:
            raise InvalidArgument(f"{destination!r} ends with ':' but gives no port")
        if ":" in port_text:
            raise InvalidArgument(
                f"{destination!r}: write an IPv6 address in brackets, user@[2001:db8::1]:22"
            )
        if not host:
            raise InvalidArgument(f"{destination!r} names no host")
        host = host_name_check(host)
    port = DEFAULT_PORT
    if port_text:
        if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            raise InvalidArgument(f"{port_text!r} is not a port (1-65535)")
        port = int(port_text)
    return user, host, port


def host_name_check(host: str) -> str:
    """A host name or address as ssh gets it (IPv6 bare, names lower-case); InvalidArgument."""
    if ":" in host:
        if "%" in host:  # a zone index: "%" is also ssh's token character
            raise InvalidArgument(f"{host!r}: an IPv6 address with a %zone is not supported")
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise InvalidArgument(f"{host!r} is not an IPv6 address") from None
    if not _HOSTNAME.fullmatch(host):
        raise InvalidArgument(
            f"{host!r} is not a host name or address (letters, digits, dots and inner dashes)"
        )
    return host.lower().rstrip(".")


def destination_format(user: str, host: str, port: int) -> str:
    """`user@host:port`, an IPv6 address in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"{user}@{shown}:{port}"


def destination_check(destination: str) -> str:
    """The destination in its canonical form `user@host:port`; InvalidArgument if it is bad."""
    return destination_format(*destination_parse(destination))


def _public_key_parts(line: str) -> tuple[str, str, bytes, str]:
    """(type, base64 blob, decoded blob, comment) of a public key line; InvalidArgument."""
    if "\n" in line.strip() or "\r" in line or "\0" in line:
        raise InvalidArgument("a public key is one line")
    fields = line.strip().split(None, 2)
    if len(fields) < 2:
        raise InvalidArgument("a public key line is 'TYPE BASE64 [comment]'")
    key_type, blob_text = fields[0], fields[1]
    comment = fields[2] if len(fields) == 3 else ""
    if not _PUBLIC_KEY.fullmatch(f"{key_type} {blob_text}"):
        raise InvalidArgument(f"{key_type!r} … is not an OpenSSH public key")
    try:
        blob = base64.b64decode(blob_text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("the public key's base64 is damaged") from None
    # The blob starts with its own type as an SSH string: it must agree with the first field.
    if len(blob) < 4:
        raise InvalidArgument("the public key is too short")
    length = int.from_bytes(blob[:4], "big")
    inner_type = blob[4 : 4 + length]
    expected = key_type.encode()
    if key_type in ("rsa-sha2-256", "rsa-sha2-512"):
        expected = b"ssh-rsa"  # a signature algorithm name; the key itself is ssh-rsa
    if inner_type != expected:
        raise InvalidArgument(f"the public key says {key_type!r} but holds another type")
    return key_type, blob_text, blob, comment


def host_key_check(line: str) -> str:
    """A host's public key as `TYPE BASE64` (a comment dropped); InvalidArgument if it is not."""
    key_type, blob_text, _, _ = _public_key_parts(line)
    if key_type not in HOST_KEY_TYPES:
        raise InvalidArgument(f"{key_type!r} is not a host key type OpenSSH uses")
    return f"{key_type} {blob_text}"


def fingerprint(public_key_line: str) -> str:
    """`SHA256:…` of a public key, exactly as `ssh-keygen -lf` prints it."""
    _, _, blob, _ = _public_key_parts(public_key_line)
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def authorized_keys_line(public_key_line: str, *, command: str = AGENT_COMMAND) -> str:
    """The host's authorized_keys line: the key may run `command` and nothing else."""
    if '"' in command or "\\" in command or not command.isprintable() or not command.strip():
        raise InvalidArgument(
            "the forced command must be one printable line without double quotes or backslashes"
        )
    key_type, blob_text, _, comment = _public_key_parts(public_key_line)
    key = f"{key_type} {blob_text}" + (f" {comment}" if comment else "")
    return f'command="{command}",restrict {key}'


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AgentUnreachable(
            f"ssh:{name}", f"{name} is not installed (Debian package openssh-client)"
        )
    return path


def key_pair_generate(comment: str) -> tuple[str, str]:
    """A new ed25519 key pair: (private key in OpenSSH PEM, "ssh-ed25519 AAAA… comment")."""
    if not comment.isprintable() or any(c.isspace() for c in comment) or len(comment) > 200:
        raise InvalidArgument("the key comment must be one printable word")
    with tempfile.TemporaryDirectory(prefix="jailadmin-keygen-") as scratch:
        path = Path(scratch) / "key"
        result = subprocess.run(
            [_tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_TOOL_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise InvalidArgument(f"ssh-keygen failed: {result.stderr.strip()}")
        private = path.read_text()
        public = path.with_suffix(".pub").read_text().strip()
    return private, public


def host_keys_scan(host: str, port: int = DEFAULT_PORT, *, timeout: float = 5.0) -> list[str]:
    """The host's public keys as `TYPE BASE64`, ed25519 first (for an administrator to confirm).

    AgentUnreachable with the reason if no SSH server answered.
    """
    host = host_name_check(host)
    if not 1 <= port <= 65535:
        raise InvalidArgument(f"{port} is not a port (1-65535)")
    seconds = max(1, round(timeout))
    address = "ssh:" + destination_format("", host, port)[1:]
    try:
        result = subprocess.run(
            [_tool("ssh-keyscan"), "-T", str(seconds), "-p", str(port), "--", host],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            # ssh-keyscan's -T bounds each phase, not the whole run.
            timeout=seconds * 3 + 5,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AgentUnreachable(address, f"no SSH server answered within {seconds} s") from None
    keys: list[str] = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) < 3 or line.startswith("#"):
            continue
        try:
            key = host_key_check(f"{fields[1]} {fields[2]}")
        except InvalidArgument:
            continue
        if key not in keys:
            keys.append(key)
    if not keys:
        said = " ".join(
            line.strip() for line in result.stderr.splitlines() if not line.startswith("#")
        )
        reason = said or "no SSH server answered"
        raise AgentUnreachable(address, f"no host key: {reason}")
    return sorted(keys, key=lambda key: HOST_KEY_TYPES.index(key.split()[0]))


# --- the transport -----------------------------------------------------------------------------
class HostKeyMismatch(AgentUnreachable):
    """The host presented another key than the confirmed one: never contacted further."""


class SiteKeyRejected(AgentUnreachable):
    """The host did not accept the site's key (not in its authorized_keys, or another key)."""


class HostKeyUnconfirmed(AgentUnreachable):
    """No administrator has confirmed the host's key yet: ssh is not even started."""


class ShellKeyRefused(AgentRefused):
    """The site's key opens a shell on the host (no forced command): the site will not use it."""


# ssh keeps a quiet connection alive and notices a dead peer within interval x count seconds.
SERVER_ALIVE_INTERVAL = 15
SERVER_ALIVE_COUNT = 3
# How long a failed ssh may take to exit and say why (it has closed its stdout already).
_EXPLAIN_WAIT = 3.0
_STDERR_TAIL = 4096
_PROBE_PREFIX = "jailadmin-shell-probe-"


def _private_file(path: Path, content: str) -> None:
    """Write `content` to `path` (mode 0600) unless it holds exactly that already."""
    try:
        if path.read_text() == content:
            return
    except OSError:
        pass
    scratch = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.replace(scratch, path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise


def _host_key_algorithms(key_type: str) -> str:
    """What ssh may accept from the host: the confirmed key's type (RSA: its SHA-2 names)."""
    if key_type in ("ssh-rsa", "rsa-sha2-256", "rsa-sha2-512"):
        return "rsa-sha2-512,rsa-sha2-256"
    return key_type


class SshTransport:
    """Runs `ssh … <probe>` for each connection; its stdin/stdout are one end of a socketpair.

    The files ssh needs (the site's private key, a known_hosts holding only the confirmed
    key under the host's alias) are written to `runtime_dir`, mode 0600, named by a hash of
    their content so that a changed key is a new file and an unchanged one is written once.
    """

    def __init__(self, target: SshTarget, *, runtime_dir: str) -> None:
        self.target = target
        self.runtime_dir = Path(runtime_dir)

    @property
    def address(self) -> str:
        return f"ssh:{self.target.destination}"

    def _files(self) -> tuple[Path, Path]:
        target = self.target
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_text = target.private_key.strip() + "\n"
        key_path = self.runtime_dir / f"{_digest(key_text)}.key"
        known = known_hosts_text(target)
        known_path = self.runtime_dir / f"{_digest(known)}.known_hosts"
        _private_file(key_path, key_text)
        _private_file(known_path, known)
        return key_path, known_path

    def argv(self, probe: str, *, timeout: float) -> list[str]:
        """The ssh command line: no user configuration, no ssh-agent, the stored keys only."""
        key_path, known_path = self._files()
        return client_argv(
            self.target, key_path=key_path, known_hosts=known_path, timeout=timeout, command=probe
        )

    def open(self, timeout: float) -> SshStream:
        target = self.target
        if not target.host_key:
            raise HostKeyUnconfirmed(
                self.address,
                "the host's key is not confirmed: confirm the host's key first"
                " (compare its fingerprint with `ssh-keygen -lf` on the host)",
            )
        if not target.private_key.strip():
            raise SiteKeyRejected(self.address, "the site has no key for this host yet")
        # What a shell would echo back; the agent behind a forced command never runs it.
        probe = f"{_PROBE_PREFIX}{secrets.token_hex(8)}"
        argv = self.argv(f"echo {probe}", timeout=timeout)
        ours, theirs = socket.socketpair()
        # A file, not a pipe: the far agent's own stderr arrives here too, for as long as the
        # connection lives, and an unread pipe would fill and stall ssh. The stream closes it.
        stderr = tempfile.TemporaryFile(dir=self.runtime_dir)  # noqa: SIM115
        try:
            process = subprocess.Popen(
                argv,
                stdin=theirs.fileno(),
                stdout=theirs.fileno(),
                stderr=stderr,
                # The C locale: ssh's messages are read below. Nothing of this process's
                # environment (an ssh-agent socket, a DISPLAY) is passed on.
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                # Its own session: a terminal's Ctrl-C or a page's worker signals are not its.
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            ours.close()
            stderr.close()
            raise AgentUnreachable(self.address, f"cannot run ssh: {exc}") from None
        finally:
            theirs.close()
        return SshStream(ours, process, stderr, address=self.address, probe=probe)


def known_hosts_text(target: SshTarget) -> str:
    """A known_hosts file that holds the confirmed key alone, under the host's alias."""
    if not target.host_key:
        raise HostKeyUnconfirmed(
            f"ssh:{target.destination}", "the host's key is not confirmed: confirm it first"
        )
    return f"{target.alias} {target.host_key}\n"


def client_argv(
    target: SshTarget,
    *,
    key_path: Path | str,
    known_hosts: Path | str,
    timeout: float,
    command: str,
) -> list[str]:
    """`ssh … -- HOST COMMAND` with a fixed option set: no user configuration, no ssh-agent,
    only the key file `key_path`, only the host key in `known_hosts` (strict, never updated).

    The site's own transport and an administrator's one-time login (the agent install) both
    run this, so both check the host's key by the same rules."""
    options = {
        "BatchMode": "yes",
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": str(known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "HostKeyAlias": target.alias,
        "HostKeyAlgorithms": _host_key_algorithms(target.host_key.split()[0]),
        "UpdateHostKeys": "no",
        "CheckHostIP": "no",
        "ConnectTimeout": str(max(1, math.ceil(timeout))),
        "ServerAliveInterval": str(SERVER_ALIVE_INTERVAL),
        "ServerAliveCountMax": str(SERVER_ALIVE_COUNT),
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "PreferredAuthentications": "publickey",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "ControlMaster": "no",
        "ControlPath": "none",
        "ClearAllForwardings": "yes",
        "ForwardAgent": "no",
        "ForwardX11": "no",
        "PermitLocalCommand": "no",
        "RequestTTY": "no",
        "EscapeChar": "none",
    }
    argv = [_tool("ssh"), "-F", "/dev/null", "-i", str(key_path), "-p", str(target.port)]
    argv += ["-l", target.user, "-T", "-x", "-a"]
    for name, value in options.items():
        argv += ["-o", f"{name}={value}"]
    return [*argv, "--", target.host, command]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class SshStream(AgentStream):
    """One ssh process and our end of its socketpair; closing it ends and reaps the process."""

    def __init__(
        self,
        sock: socket.socket,
        process: subprocess.Popen[bytes],
        stderr: IO[bytes],
        *,
        address: str,
        probe: str,
    ) -> None:
        super().__init__(sock)
        self.process = process
        self.stderr = stderr
        self.address = address
        self.probe = probe
        self.pid = os.getpid()

    def said(self) -> str:
        """The end of what ssh wrote to stderr (its own errors and the far side's)."""
        try:
            self.stderr.seek(0, os.SEEK_END)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - _STDERR_TAIL))
            return self.stderr.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def failure(self, error: Fail2banError, *, closed: bool) -> Fail2banError:
        if not isinstance(error, AgentUnreachable) or os.getpid() != self.pid:
            return error
        if closed:
            try:
                # ssh closed its end: it is exiting, and what it says then is the reason.
                self.process.wait(timeout=_EXPLAIN_WAIT)
            except subprocess.TimeoutExpired:
                return error
        elif self.process.poll() is None:
            return error  # still running: the far end is slow, not gone
        return ssh_failure(self.address, self.said(), self.process.returncode) or error

    def not_an_agent(self, address: str, received: bytes) -> Fail2banError:
        if self.probe.encode() in received:
            return ShellKeyRefused(
                f"the site's key opens a shell on {address}: add"
                f' command="{AGENT_COMMAND}",restrict to its authorized_keys line; refused'
            )
        return ProtocolError(
            f"{address} does not run the jailadmin agent for the site's key (is the forced"
            f" command right?): it sent {received[:200]!r}"
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self.sock.close()
        self.stderr.close()
        if os.getpid() != self.pid:
            return  # a forked child's copy: the ssh process is the parent's, still in use
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=_EXPLAIN_WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def ssh_failure(address: str, said: str, returncode: int | None) -> AgentUnreachable | None:
    """What ssh's stderr says went wrong, as a typed error with a clear reason; None if unknown.

    ssh exits with 255 for its own errors and with the remote command's status otherwise;
    the far agent's stderr arrives in the same stream, so its words are never read as ssh's.
    """
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    if returncode != 255:
        if not lines:
            return None
        return AgentUnreachable(
            address, f"the agent ended (exit status {returncode}): {lines[-1][:300]}"
        )
    text = said.lower()
    if "host key verification failed" in text or "remote host identification has changed" in text:
        return HostKeyMismatch(
            address,
            "the host's key changed / does not match the confirmed key: refused"
            " (if the host was reinstalled, confirm its new key)",
        )
    if "no matching host key type found" in text:
        return HostKeyMismatch(
            address, "the host does not offer the confirmed key's type: the key changed; refused"
        )
    if "permission denied (" in text:  # "Permission denied (publickey)."
        return SiteKeyRejected(
            address,
            "the host did not accept the site's key (add its authorized_keys line on the host)",
        )
    if "connection refused" in text:
        return AgentUnreachable(address, "connection refused (is sshd running there?)")
    if "timed out" in text:
        return AgentUnreachable(address, "no answer from the host's sshd (connection timed out)")
    if "could not resolve hostname" in text:
        return AgentUnreachable(address, "the host name does not resolve")
    if "no route to host" in text or "network is unreachable" in text:
        return AgentUnreachable(address, "no route to the host")
    if "connection closed" in text or "connection reset" in text:
        return AgentUnreachable(address, "the host's sshd closed the connection")
    if lines:
        return AgentUnreachable(address, f"ssh failed: {lines[-1][:300]}")
    return None


def ssh_link_build(
    target: SshTarget,
    *,
    timeout: float,
    runtime_dir: str,
    pool_size: int = 8,
    reload_timeout: float = 120.0,
) -> AgentLink:
    """An AgentLink to the host's agent over ssh: one ssh process per pooled connection."""
    transport = SshTransport(target, runtime_dir=runtime_dir)
    return AgentLink(
        transport.address,
        timeout=timeout,
        pool_size=pool_size,
        reload_timeout=reload_timeout,
        transport=transport,
    )
