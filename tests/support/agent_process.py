"""A real jailadmin agent process for tests: `python -m jails.agent --listen unix:PATH`.

AgentProcess starts the agent in front of a (private) fail2ban socket, waits until it
answers a handshake, and stops it (SIGTERM, then SIGKILL) however the test ends. The
`f2b_agent` fixture in tests/conftest.py gives one in front of the session's private
fail2ban server; build your own for other options (a short frame timeout, another mode,
another interpreter such as /usr/bin/python3 -I).
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from jails.agent import PROTOCOL_VERSION
from jails.agent.client import AgentLink
from jails.agent.protocol import HEADER, frame_encode, message_decode
from jails.fail2ban import AgentUnreachable
from jails.fail2ban.server import PrivateServer
from tests.support import mutmut_hits
from tests.support.processes import process_tree_stop

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0  # a cold interpreter on a loaded 1-core box; normally ~0.2 s


def agent_environment(**extra: str) -> dict[str, str]:
    """The agent's environment: ours without PYTHON*, with the checkout importable."""
    # COVERAGE_* (COVERAGE_PROCESS_CONFIG, COVERAGE_FILE) stay: `make coverage` measures
    # the agent through them (an agent on the system's python3 has no coverage, and is not).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    # Under mutmut only: a sitecustomize that tells mutmut which tests reach the agent's code
    # and switches on the mutants of `python -m jails.agent` (tests/support/mutmut_hits.py).
    env["PYTHONPATH"] = os.pathsep.join([*mutmut_hits.subprocess_pythonpath(), str(REPO_ROOT)])
    env.update(extra)
    return env


def agent_argv(
    *,
    fail2ban_socket: str,
    way: Sequence[str],
    python: Sequence[str] = (sys.executable,),
    options: Sequence[str] = (),
) -> list[str]:
    """`python -m jails.agent <way> --socket <fail2ban_socket> <options>`."""
    return [*python, "-m", "jails.agent", *way, "--socket", fail2ban_socket, *options]


def server_options(server: PrivateServer) -> list[str]:
    """What an agent needs to reload a private server: its configuration and its client."""
    assert server.install is not None
    return ["--config-dir", str(server.conf_dir), "--fail2ban-client", server.install.client]


class AgentProcess:
    """One `--listen` agent in a private directory; a context manager that always stops it."""

    def __init__(
        self,
        fail2ban_socket: str,
        *,
        options: Sequence[str] = (),
        python: Sequence[str] = (sys.executable,),
        env: dict[str, str] | None = None,
    ) -> None:
        self.fail2ban_socket = fail2ban_socket
        self.options = list(options)
        self.python = list(python)
        self.env = env if env is not None else agent_environment()
        self.directory = Path(tempfile.mkdtemp(prefix="ja-agent-", dir="/tmp"))
        self.path = self.directory / "agent.sock"
        self.stderr_path = self.directory / "agent.stderr"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"unix:{self.path}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def argv(self) -> list[str]:
        return agent_argv(
            fail2ban_socket=self.fail2ban_socket,
            way=["--listen", self.address],
            python=self.python,
            options=self.options,
        )

    def start(self, *, timeout: float = START_TIMEOUT) -> None:
        """Start the agent and wait until it answers a handshake."""
        if self.is_running():
            return
        with open(self.stderr_path, "ab") as stderr:
            self.process = subprocess.Popen(
                self.argv(),
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        link = AgentLink(self.address, timeout=2.0, pool_size=0)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the agent exited ({self.process.returncode}): {self.stderr()}")
            try:
                link.hello()
                return
            except AgentUnreachable:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the agent did not answer in {timeout} s") from None
                time.sleep(0.05)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, timeout: float = 15.0) -> None:
        """SIGTERM (the agent removes its socket), SIGKILL if it does not go; the same for
        anything it started (a reload's fail2ban-client)."""
        process, self.process = self.process, None
        if process is not None:
            process_tree_stop(process, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: an agent that dies without cleaning up (its socket file stays)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=15.0)

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def rss_kb(self) -> int:
        """The agent's resident memory now, in kB (VmRSS, as `ps -o rss` shows it)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> AgentProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()


def stdio_agent(
    fail2ban_socket: str,
    *,
    options: Sequence[str] = (),
    python: Sequence[str] = (sys.executable,),
) -> subprocess.Popen[bytes]:
    """An agent serving one connection on its stdin/stdout pipes (the caller closes stdin
    and waits; the agent exits when its input ends)."""
    return subprocess.Popen(
        agent_argv(
            fail2ban_socket=fail2ban_socket, way=["--stdio"], python=python, options=options
        ),
        cwd=REPO_ROOT,
        env=agent_environment(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def stdio_agent_end(process: subprocess.Popen[bytes]) -> None:
    """End a stdio_agent() the way its peer hanging up does; it must exit cleanly (0)."""
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=60) == 0
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    process.stderr.close()


class RawAgentConnection:
    """A hand-driven connection to an agent: frames (or any bytes) exactly as a test wants.

    Works on a Unix socket (`connect`) or on a --stdio agent's pipes (`over_pipes`).
    """

    def __init__(self, send: Callable[[bytes], None], recv: Callable[[int, float], bytes]) -> None:
        self._send = send
        self._recv = recv
        self._next_id = 0

    @classmethod
    def connect(cls, path: str | Path, *, timeout: float = 30.0) -> RawAgentConnection:
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(str(path))
                break
            except BlockingIOError:  # the backlog is full for a moment: retry, as AgentLink does
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

        def recv(count: int, wait: float) -> bytes:
            sock.settimeout(wait)
            return sock.recv(count)

        raw = cls(sock.sendall, recv)
        raw.sock = sock
        return raw

    @classmethod
    def over_pipes(cls, process: subprocess.Popen[bytes]) -> RawAgentConnection:
        assert process.stdin is not None and process.stdout is not None
        stdin, stdout = process.stdin, process.stdout

        def send(data: bytes) -> None:
            stdin.write(data)
            stdin.flush()

        def recv(count: int, wait: float) -> bytes:
            ready, _, _ = select.select([stdout], [], [], wait)
            if not ready:
                raise TimeoutError
            return os.read(stdout.fileno(), count)

        return cls(send, recv)

    sock: socket.socket | None = None

    def send_raw(self, data: bytes) -> None:
        self._send(data)

    def send(self, message: dict[str, Any]) -> None:
        self._send(frame_encode(message))

    def read(self, *, timeout: float = 30.0) -> dict[str, Any] | None:
        """The next reply frame, or None if the agent closed the connection."""
        header = self._read_exactly(HEADER.size, timeout)
        if header is None:
            return None
        (length,) = HEADER.unpack(header)
        body = self._read_exactly(length, timeout) if length else b""
        assert body is not None, "the agent closed the connection in the middle of a frame"
        return message_decode(body)

    def closed(self, *, timeout: float = 30.0) -> bool:
        """True once the agent has closed the connection (waits up to `timeout`)."""
        try:
            return self._recv(1, timeout) == b""
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True

    def _read_exactly(self, count: int, timeout: float) -> bytes | None:
        buffer = b""
        while len(buffer) < count:
            chunk = self._recv(count - len(buffer), timeout)
            if not chunk:
                assert not buffer, "the agent closed the connection in the middle of a frame"
                return None
            buffer += chunk
        return buffer

    def request(self, op: str, args: dict[str, Any] | None = None) -> dict[str, Any] | None:
        self._next_id += 1
        self.send({"id": self._next_id, "op": op, "args": args or {}})
        return self.read()

    def hello(self) -> dict[str, Any]:
        self.send({"op": "hello", "protocol": PROTOCOL_VERSION, "id": 0})
        reply = self.read()
        assert reply is not None and reply["ok"] is True, reply
        return reply["value"]

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
