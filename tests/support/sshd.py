"""A private OpenSSH server for the fleet tests (DESIGN.md, "A private sshd for fleet tests").

Debian's `/usr/sbin/sshd`, run by the tests as root on a free port of 127.0.0.1 with its own
ed25519 host key, config and authorized_keys: no system file is read or written (bar
/run/sshd, the privilege-separation directory sshd insists on). Each key in its
authorized_keys carries a forced command, so one sshd serves several simulated hosts: the
key the site uses for "h1" runs the agent in front of h1's fail2ban, and so on, reached
exactly as a remote host is.

stop() ends the listener and every process below it (sshd gives each connection its own
session, so a process group would not reach them): every client sees its connection end,
which is what a host going down looks like, not just new connections refused.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from jails.agent.ssh import authorized_keys_line, host_keys_scan
from jails.fail2ban import AgentUnreachable
from jails.fail2ban.server import PrivateServer
from tests.support.agent_process import REPO_ROOT, server_options
from tests.support.processes import descendants, process_tree_stop

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 30.0  # sshd itself starts in ~50 ms; a loaded 1-core box is slower


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def agent_command(
    server: PrivateServer, *, options: Sequence[str] = (), python: str = sys.executable
) -> str:
    """The forced command that runs THE agent of this checkout in front of `server`.

    sshd clears the environment, so what the agent needs (the checkout on PYTHONPATH) is
    passed on the command line through `env`. No double quotes: authorized_keys refuses them.
    """
    argv = [
        "env",
        "-i",
        "PATH=/usr/bin:/bin",
        f"PYTHONPATH={REPO_ROOT}",
        python,
        "-m",
        "jails.agent",
        "--stdio",
        "--socket",
        str(server.socket_path),
        *server_options(server),
        *options,
    ]
    return shlex.join(argv)


class PortTaken(RuntimeError):
    """sshd could not listen: the free port picked was taken before it bound it."""


class PrivateSshd:
    """One sshd on 127.0.0.1:<free port>; a context manager that always stops it."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir)
        self.port = free_port()
        self.config_path = self.base_dir / "sshd_config"
        self.authorized_keys = self.base_dir / "authorized_keys"
        self.log_path = self.base_dir / "sshd.log"
        self.pid_path = self.base_dir / "sshd.pid"
        self.host_key_path = self.base_dir / "ssh_host_ed25519_key"
        self.process: subprocess.Popen[bytes] | None = None
        self.started = False  # once started, the port is kept (restarts, links)

    # --- files ----------------------------------------------------------------------------
    def _prepare(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if not self.host_key_path.exists():
            self.host_key_new()
        self.authorized_keys.touch(mode=0o600, exist_ok=True)
        self.config_path.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key_path}",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    f"PidFile {self.pid_path}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    # A key without a forced command gets a shell, as on a host whose admin
                    # forgot it: the site must refuse such a key itself.
                    "PermitRootLogin prohibit-password",
                    "LogLevel VERBOSE",
                    "PrintMotd no",
                    "AcceptEnv none",
                    "PermitUserEnvironment no",
                    # The default (10:30:100) starts refusing at 10 handshakes at once; the
                    # tests open tens of connections from several threads.
                    "MaxStartups 200",
                    "",
                ]
            )
        )
        self.config_path.chmod(0o600)

    def host_key_new(self) -> None:
        """A new host key (takes effect at the next start: a reinstalled host)."""
        for path in (self.host_key_path, self.host_key_path.with_suffix(".pub")):
            path.unlink(missing_ok=True)
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "",
                "-f",
                str(self.host_key_path),
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )

    def host_key_line(self) -> str:
        """The host key as the site stores it: "ssh-ed25519 AAAA…"."""
        fields = self.host_key_path.with_suffix(".pub").read_text().split()
        return f"{fields[0]} {fields[1]}"

    def add_key(self, public_line: str, command: str | None) -> None:
        """Append an authorized_keys line: `command` forced, or (None) a key that gets a shell.

        sshd reads the file at each login: no restart needed.
        """
        if command is None:
            line = public_line.strip()
        else:
            line = authorized_keys_line(public_line, command=command)
        with self.authorized_keys.open("a") as handle:
            handle.write(line + "\n")

    def remove_key(self, public_line: str) -> None:
        blob = public_line.split()[1]
        kept = [line for line in self.authorized_keys.read_text().splitlines() if blob not in line]
        self.authorized_keys.write_text("".join(line + "\n" for line in kept))

    def destination(self, user: str = "root") -> str:
        return f"{user}@127.0.0.1:{self.port}"

    # --- the process ----------------------------------------------------------------------
    def start(self, *, timeout: float = START_TIMEOUT) -> None:
        """Start sshd and wait until ssh-keyscan gets its host key.

        The first start takes another free port if the one picked was taken meanwhile (by
        another test process); a restart keeps its port, which the links have.
        """
        if self.is_running():
            return
        if os.geteuid() != 0 or not Path(SSHD).exists():
            raise RuntimeError(
                f"the fleet tests run {SSHD} as root (Debian openssh-server: make test-install)"
            )
        for attempt in range(3):
            try:
                self._start(timeout=timeout)
                self.started = True
                return
            except PortTaken:
                if self.started or attempt == 2:
                    raise
                self.port = free_port()

    def _start(self, *, timeout: float) -> None:
        self._prepare()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-f", str(self.config_path), "-E", str(self.log_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                said = self.log_path.read_bytes()[log_start:].decode(errors="replace")
                if "Address already in use" in said:
                    raise PortTaken(said)
                raise RuntimeError(f"sshd exited ({code}): {said[-4000:]}")
            try:
                keys = host_keys_scan("127.0.0.1", self.port, timeout=5)
            except AgentUnreachable:
                keys = []
            if self.host_key_line() in keys:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd did not answer in {timeout} s: {self.log()}")
            time.sleep(0.05)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, timeout: float = 15.0) -> None:
        """End sshd and every connection it serves (the listener and all below it)."""
        process, self.process = self.process, None
        if process is not None:
            process_tree_stop(process, timeout=timeout)

    def connection_pids(self) -> list[int]:
        """The processes serving connections now (per-connection sshd, the agents below)."""
        return descendants(self.process.pid) if self.process is not None else []

    def restart(self) -> None:
        """Stop and start again on the same port (the same host key unless host_key_new())."""
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PrivateSshd:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()
