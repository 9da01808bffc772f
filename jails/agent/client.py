"""AgentLink: the HostLink that asks the jailadmin agent (jails/agent/protocol.py, version 1).

Connections are persistent and pooled: one handshake per connection, not per request. At
most `pool_size` idle connections are kept; a thread that finds none idle opens its own,
so concurrency is never capped here (the agent caps it). A connection is used by one thread
at a time, and one inherited across fork() (a gunicorn worker forked from a master that
already talked to the agent) is discarded, never used: two processes would read each
other's replies.

A request that fails on a reused connection before any byte of its reply arrived (the agent
closed an idle connection, or restarted) is sent once more on a fresh connection. Errors
are the typed errors of jails.fail2ban, re-created from the agent's error replies, plus
AgentUnreachable (no agent, or lost it) and AgentRefused (the agent said no).
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from jails.fail2ban.client import unix_connect
from jails.fail2ban.errors import (
    AgentRefused,
    AgentUnreachable,
    Fail2banError,
    ProtocolError,
    ReplyTooLarge,
)

from . import PROTOCOL_VERSION
from .link import HostInfo
from .logview import LogTail, tail_from_wire
from .operations import BanRow
from .protocol import HEADER, MAX_REPLY_BYTES, error_decode, frame_encode, message_decode
from .regex import RegexReport, RegexRequest, report_from_wire

MAX_COMMANDS = 10000  # per request, as the agent allows (jails.agent.server.MAX_COMMANDS)
# The agent answers a slow fail2ban with Fail2banUnreachable after its own timeout; wait a
# little longer than that, so the site is told "fail2ban is slow", not "the agent is gone".
REPLY_MARGIN = 5.0
_RECV_BYTES = 256 * 1024
_Send = Callable[[str, dict[str, Any]], Any]


# A handshake reply is a few hundred bytes. A first frame announcing more than this is not
# the agent talking (a shell's or a login banner's text read as a length): say so, rather
# than waiting for gigabytes that will never come.
HANDSHAKE_MAX_BYTES = 1024 * 1024
# How much of such a far side's output is read to show (and recognise) what it is.
_PREVIEW_BYTES = 512


class _Lost(Exception):
    """The connection broke; `before_reply`: not one byte of the reply had arrived;
    `received`: the bytes of the reply that had (an incomplete frame)."""

    def __init__(self, reason: str, *, before_reply: bool, received: bytes = b"") -> None:
        # Never shown: every request() is wrapped in `except _Lost`, which builds the
        # caller's error from `reason`, so the exception's own message changes nothing.
        super().__init__(reason)  # pragma: no mutate
        self.reason = reason
        self.before_reply = before_reply
        self.received = received


class AgentStream:
    """One open byte stream to an agent, as a transport opened it.

    The Unix transport's is just the socket. Another transport (SSH: jails.agent.ssh) keeps
    a process behind the socket and knows better why the stream failed: it overrides
    `failure` and `not_an_agent` to explain, `alive` to tell a dead idle one, and `close`.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def failure(self, error: Fail2banError, *, closed: bool) -> Fail2banError:
        """The error to raise for `error` on this stream (the transport may know the cause);
        `closed`: the far end closed the stream (not a timeout or a refusal)."""
        return error

    def not_an_agent(self, address: str, received: bytes) -> Fail2banError:
        """The error for a far side whose first bytes are not the agent's handshake."""
        return ProtocolError(
            f"{address} does not speak the jailadmin agent's protocol: it sent {received!r}"
        )

    def alive(self) -> bool:
        """False once the stream is known to be dead (an idle pooled one is then dropped)."""
        return True

    def close(self) -> None:
        self.sock.close()


class AgentTransport(Protocol):
    """How AgentLink opens a connection to an agent."""

    @property
    def address(self) -> str: ...

    def open(self, timeout: float) -> AgentStream:
        """A connected stream; AgentUnreachable if there is no agent to connect to."""
        ...


class UnixTransport:
    """How to reach an agent on this host: its Unix socket. (SSH: jails.agent.ssh.)"""

    def __init__(self, path: str) -> None:
        self.path = path

    @property
    def address(self) -> str:
        return f"unix:{self.path}"

    def open(self, timeout: float) -> AgentStream:
        """A connected socket; AgentUnreachable if there is no agent to connect to."""
        return AgentStream(
            unix_connect(
                self.path,
                timeout=timeout,
                fail=lambda reason: AgentUnreachable(self.address, reason),
                describe=_describe,
            )
        )


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "the socket does not exist (is the agent running?)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied on the socket (is this user in the agent's group?)"
    if exc.errno == errno.ECONNREFUSED:
        return "connection refused (is the agent running?)"
    return exc.strerror or str(exc)


class _AgentConnection:
    """One open, greeted connection: requests go one after the other, each with its reply."""

    def __init__(self, stream: AgentStream, address: str) -> None:
        self.stream = stream
        self.sock = stream.sock
        self.address = address
        self.pid = os.getpid()
        self.reused = False
        self.broken = False
        self._next_id = 0

    def request(self, op: str, args: dict[str, Any], *, timeout: float) -> Any:
        """Send one request and return its value; raise its typed error."""
        self._next_id += 1
        request_id = self._next_id
        message = (
            {"op": op, "protocol": PROTOCOL_VERSION, "id": request_id}
            if op == "hello"
            else {"id": request_id, "op": op, "args": args}
        )
        frame = frame_encode(message)
        # Marked broken until the whole reply is read: a late reply must never be taken as
        # the answer to the next request.
        self.broken = True
        deadline = time.monotonic() + timeout
        handshake = op == "hello" and request_id == 1
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(frame)
        except TimeoutError:
            raise AgentUnreachable(self.address, f"no answer within {timeout:g} s") from None
        except OSError as exc:
            # A far side that said something and hung up before our hello went out (a
            # shell's or a banner's text): what it said is the explanation, not the EPIPE.
            received = self._preview(deadline) if handshake else b""
            reason = exc.strerror or str(exc)
            raise _Lost(reason, before_reply=not received, received=received) from None
        reply = message_decode_reply(self._read_reply(deadline, timeout, handshake=handshake))
        if reply.get("id") != request_id:
            if reply.get("id") is None and reply.get("ok") is False:
                raise error_decode(reply.get("error"))  # a refusal of the connection itself
            raise ProtocolError("the agent's reply does not answer the request")
        self.broken = False
        if op != "hello":
            self.reused = True  # answered a request: a later failure may be a stale connection
        if reply.get("ok") is True:
            return reply.get("value")
        error = error_decode(reply.get("error"))
        if isinstance(error, AgentRefused):
            self.broken = True  # the agent may close after a refusal: start afresh
        raise error

    def _read_reply(self, deadline: float, timeout: float, *, handshake: bool) -> bytes:
        header = self._read(HEADER.size, deadline, timeout, first=True)
        (length,) = HEADER.unpack(header)
        if handshake and length > HANDSHAKE_MAX_BYTES:
            raise self.stream.not_an_agent(self.address, header + self._preview(deadline))
        if length > MAX_REPLY_BYTES:
            raise ReplyTooLarge(MAX_REPLY_BYTES)
        return self._read(length, deadline, timeout, first=False)

    def _preview(self, deadline: float) -> bytes:
        """What else the far side sends right away (up to _PREVIEW_BYTES, until it closes)."""
        buffer = bytearray()
        end = min(deadline, time.monotonic() + 1.0)
        while len(buffer) < _PREVIEW_BYTES:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(_PREVIEW_BYTES - len(buffer))
            except OSError:  # a timeout included: show what came
                break
            if not chunk:
                break
            buffer += chunk
        return bytes(buffer)

    def _read(self, count: int, deadline: float, timeout: float, *, first: bool) -> bytes:
        buffer = bytearray()
        while len(buffer) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AgentUnreachable(self.address, f"no answer within {timeout:g} s")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(min(count - len(buffer), _RECV_BYTES))
            except TimeoutError:
                raise AgentUnreachable(self.address, f"no answer within {timeout:g} s") from None
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise _Lost(reason, before_reply=first and not buffer) from None
            if not chunk:
                raise _Lost(
                    "the agent closed the connection",
                    before_reply=first and not buffer,
                    received=bytes(buffer) if first else b"",
                )
            buffer += chunk
        return bytes(buffer)

    def close(self) -> None:
        self.stream.close()


def message_decode_reply(body: bytes) -> dict[str, Any]:
    """A reply frame's object; ProtocolError if the agent sent something unreadable."""
    try:
        return message_decode(body)
    except Exception as exc:  # FrameError: bad UTF-8 or JSON from the agent
        raise ProtocolError(f"unreadable reply from the agent: {exc}") from None


class _Pool:
    """The idle connections of one process: replaced wholesale after a fork."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.idle: list[_AgentConnection] = []


class AgentLink:
    """A HostLink that asks the jailadmin agent at `address` ("unix:/run/jailadmin/agent.sock").

    `timeout` bounds connecting and each reply (plus REPLY_MARGIN, so the agent's own
    fail2ban timeout answers first); a reload may take `reload_timeout`. `transport`: how
    to reach the agent if not its Unix socket at `address` (then `address` is ignored and
    the transport's own is used; jails.agent.ssh builds such links).
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 5.0,
        pool_size: int = 8,
        reload_timeout: float = 120.0,
        transport: AgentTransport | None = None,
    ) -> None:
        if transport is None:
            if not address.startswith("unix:") or len(address) <= len("unix:"):
                raise ValueError(
                    f"the agent address must be unix:/path/agent.sock, not {address!r}"
                )
            transport = UnixTransport(address[len("unix:") :])
        self.transport: AgentTransport = transport
        self.address = self.transport.address
        self.timeout = timeout
        self.pool_size = pool_size
        self.reload_timeout = reload_timeout
        self._pool = _Pool()
        self._endpoint: tuple[int, ...] | None = None
        # Connections this link opened in this process (the pool's effect, for tests and
        # benchmarks: one handshake per connection, not per request).
        self.connections_opened = 0

    @property
    def location(self) -> str:
        return f"agent at {self.address}"

    # --- the pool ---------------------------------------------------------------------------
    def _current_pool(self) -> _Pool:
        pool = self._pool
        if pool.pid != os.getpid():
            # Forked: the parent's sockets are the parent's. Drop them (closing our copy of
            # the descriptor leaves the parent's connection alone) and start an empty pool.
            for conn in pool.idle:
                conn.close()
            pool = self._pool = _Pool()
            self.connections_opened = 0
        return pool

    def _acquire(self) -> _AgentConnection:
        pool = self._current_pool()
        while True:
            with pool.lock:
                conn = pool.idle.pop() if pool.idle else None
            if conn is None:
                return self._open()
            if conn.stream.alive():
                conn.reused = True
                return conn
            conn.close()  # its far end went away while idle (and the stream reaps it)

    def _open(self) -> _AgentConnection:
        conn = _AgentConnection(self.transport.open(self.timeout), self.address)
        pool = self._current_pool()
        with pool.lock:
            self.connections_opened += 1
        try:
            info = conn.request("hello", {}, timeout=self.timeout + REPLY_MARGIN)
        except _Lost as exc:
            error = (
                conn.stream.not_an_agent(self.address, exc.received)
                if exc.received
                else conn.stream.failure(AgentUnreachable(self.address, exc.reason), closed=True)
            )
            conn.close()
            raise error from None
        except Fail2banError as exc:
            error = conn.stream.failure(exc, closed=False)
            conn.close()
            if error is exc:
                raise
            raise error from None
        except BaseException:
            conn.close()
            raise
        self._remember_endpoint(info)
        return conn

    def _release(self, conn: _AgentConnection) -> None:
        pool = self._current_pool()
        if conn.broken or conn.pid != pool.pid:
            conn.close()
            return
        with pool.lock:
            if len(pool.idle) < self.pool_size:
                pool.idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the idle connections (the pool refills on the next request)."""
        pool = self._current_pool()
        with pool.lock:
            idle, pool.idle = pool.idle, []
        for conn in idle:
            conn.close()

    @contextmanager
    def _connection(self) -> Iterator[_AgentConnection]:
        conn = self._acquire()
        try:
            yield conn
        finally:
            self._release(conn)

    def _request_on(
        self, conn: _AgentConnection, op: str, args: dict[str, Any], *, timeout: float
    ) -> tuple[_AgentConnection, Any]:
        """The request on `conn`, or once more on a fresh one if a reused `conn` had gone
        stale; returns the connection that answered (the caller releases it)."""
        try:
            return conn, conn.request(op, args, timeout=timeout)
        except _Lost as exc:
            if not (exc.before_reply and conn.reused):
                error = conn.stream.failure(AgentUnreachable(self.address, exc.reason), closed=True)
                conn.close()
                raise error from None
            conn.close()
        fresh = self._open()
        try:
            return fresh, fresh.request(op, args, timeout=timeout)
        except _Lost as exc:
            error = fresh.stream.failure(AgentUnreachable(self.address, exc.reason), closed=True)
            fresh.close()
            raise error from None
        except BaseException:
            self._release(fresh)
            raise

    def _call(self, op: str, args: dict[str, Any], *, timeout: float | None = None) -> Any:
        conn = self._acquire()
        try:
            answered, value = self._request_on(
                conn, op, args, timeout=(timeout or self.timeout) + REPLY_MARGIN
            )
        except BaseException:
            self._release(conn)  # closed already if it broke: _release drops broken ones
            raise
        self._release(answered)
        return value

    # --- fail2ban commands ------------------------------------------------------------------
    def _remember_endpoint(self, value: Any) -> None:
        endpoint = value.get("endpoint") if isinstance(value, dict) else None
        if isinstance(endpoint, list) and all(isinstance(part, int) for part in endpoint):
            self._endpoint = tuple(endpoint)
        elif endpoint is None:
            self._endpoint = None

    def _outcomes(self, send: _Send, commands: Sequence[Sequence[str]]) -> list[Any]:
        """Each command's value, or its typed error in its place (one request per 10 000)."""
        outcomes: list[Any] = []
        for start in range(0, len(commands), MAX_COMMANDS):
            chunk = [list(command) for command in commands[start : start + MAX_COMMANDS]]
            value = send("fail2ban", {"commands": chunk})
            if not isinstance(value, dict) or not isinstance(value.get("results"), list):
                raise ProtocolError("the agent's fail2ban reply is malformed")
            self._remember_endpoint(value)
            results = value["results"]
            if len(results) != len(chunk):
                raise ProtocolError("the agent answered a different number of commands")
            for result in results:
                if not isinstance(result, dict):
                    raise ProtocolError("the agent's fail2ban reply is malformed")
                outcomes.append(
                    result.get("value")
                    if result.get("ok") is True
                    else error_decode(result.get("error"))
                )
        return outcomes

    def send(self, *command: str) -> Any:
        """One allow-listed command, answered by fail2ban through the agent."""
        (outcome,) = self._outcomes(self._call, [command])
        if isinstance(outcome, Fail2banError):
            raise outcome
        return outcome

    @contextmanager
    def connection(self) -> Iterator[AgentChannel]:
        """One agent connection held for several commands (as Fail2banClient.connection())."""
        with self._connection() as conn:
            yield AgentChannel(self, conn)

    def endpoint_identity(self) -> Hashable | None:
        """The fail2ban socket's identity the agent reported last (no round trip)."""
        return self._endpoint

    # --- the other operations ---------------------------------------------------------------
    def database_path(self) -> str | None:
        value = self._call("database_path", {})
        if value is not None and not isinstance(value, str):
            raise ProtocolError("the agent's database path is malformed")
        return value

    def database_bans(self, *, after: int, limit: int) -> list[BanRow]:
        value = self._call("database_bans", {"after": after, "limit": limit})
        rows = value.get("rows") if isinstance(value, dict) else None
        if not isinstance(rows, list):
            raise ProtocolError("the agent's database rows are malformed")
        return [_ban_row(row) for row in rows]

    def database_ban(self, *, rowid: int) -> tuple[str, str, int] | None:
        value = self._call("database_ban", {"rowid": rowid})
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not isinstance(value[0], str)
            or not isinstance(value[1], str)
            or not isinstance(value[2], int)
        ):
            raise ProtocolError("the agent's database row is malformed")
        return (value[0], value[1], value[2])

    def reload(self, *, jail: str | None) -> str:
        value = self._call("reload", {"jail": jail}, timeout=self.reload_timeout)
        output = value.get("output") if isinstance(value, dict) else None
        if not isinstance(output, str):
            raise ProtocolError("the agent's reload reply is malformed")
        return output

    def _dict_call(
        self, op: str, args: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        value = self._call(op, args, timeout=timeout)
        if not isinstance(value, dict):
            raise ProtocolError(f"the agent's {op} reply is malformed")
        return value

    def config_read(self, *, if_changed_from: str | None) -> dict[str, Any]:
        # The reader is a subprocess over the whole configuration: a reload's time, not a command's.
        args = {"if_changed_from": if_changed_from}
        return self._dict_call("config_read", args, timeout=self.reload_timeout)

    def config_file(self, *, path: str) -> dict[str, Any]:
        return self._dict_call("config_file", {"path": path})

    def config_apply(
        self, *, changes: list[dict[str, Any]], dry_run: bool = False
    ) -> dict[str, Any]:
        # Test, write, reload, verify and perhaps roll back and reload again.
        args = {"changes": changes, "dry_run": dry_run}
        return self._dict_call("config_apply", args, timeout=self.reload_timeout * 2)

    def config_definition(self, *, directory: str, name: str) -> dict[str, Any]:
        # fail2ban's reader in a subprocess (about 0.1 s): a reload's time, not a command's.
        args = {"directory": directory, "name": name}
        return self._dict_call("config_definition", args, timeout=self.reload_timeout)

    def regex_test(self, request: RegexRequest) -> RegexReport:
        # fail2ban-regex runs twice over up to 5 000 lines: a reload's time, not a command's.
        value = self._call("regex_test", request.wire(), timeout=self.reload_timeout)
        try:
            return report_from_wire(value)
        except (TypeError, ValueError):
            raise ProtocolError("the agent's regex_test reply is malformed") from None

    def log_tail(
        self, *, lines: int, level: str | None, search: str | None, cursor: str | None
    ) -> LogTail:
        args = {"lines": lines, "level": level, "search": search, "cursor": cursor}
        value = self._call("log_tail", args, timeout=self.reload_timeout)
        try:
            return tail_from_wire(value)
        except (TypeError, ValueError):
            raise ProtocolError("the agent's log_tail reply is malformed") from None

    def health(self) -> dict[str, Any]:
        """The agent's view of fail2ban: {"reachable", "version", "reason"}."""
        value = self._call("health", {})
        fail2ban = value.get("fail2ban") if isinstance(value, dict) else None
        if not isinstance(fail2ban, dict):
            raise ProtocolError("the agent's health reply is malformed")
        return fail2ban

    def hello(self) -> HostInfo:
        """A fresh handshake (live: the setup wizard and /settings/ check the agent with it)."""
        value = self._call("hello", {})
        if not isinstance(value, dict):
            raise ProtocolError("the agent's handshake is malformed")
        self._remember_endpoint(value)
        version = value.get("version")
        fail2ban_version = value.get("fail2ban_version")
        operations = value.get("operations")
        if (
            not isinstance(version, str)
            or not (fail2ban_version is None or isinstance(fail2ban_version, str))
            or not isinstance(operations, list)
            or not all(isinstance(name, str) for name in operations)
        ):
            raise ProtocolError("the agent's handshake is malformed")
        return HostInfo(
            agent_version=version, fail2ban_version=fail2ban_version, operations=tuple(operations)
        )


class AgentChannel:
    """Commands over one held agent connection (what AgentLink.connection() yields)."""

    def __init__(self, link: AgentLink, conn: _AgentConnection) -> None:
        self._link = link
        self._conn = conn

    def _send(self, op: str, args: dict[str, Any]) -> Any:
        timeout = self._link.timeout + REPLY_MARGIN
        answered, value = self._link._request_on(self._conn, op, args, timeout=timeout)
        if answered is not self._conn:
            # The held connection went stale and a fresh one answered: hold that one now.
            self._conn.close()
            self._conn = answered
        return value

    def send(self, *command: str) -> Any:
        (outcome,) = self._link._outcomes(self._send, [command])
        if isinstance(outcome, Fail2banError):
            raise outcome
        return outcome

    def send_batch(self, commands: Sequence[Sequence[str]]) -> list[Any]:
        """Several commands in one round trip; the first refusal is raised after all ran."""
        outcomes = self.send_batch_outcomes(commands)
        refusal = next((o for o in outcomes if isinstance(o, Fail2banError)), None)
        if refusal is not None:
            raise refusal
        return outcomes

    def send_batch_outcomes(self, commands: Sequence[Sequence[str]]) -> list[Any]:
        """Several commands in one round trip; each refusal is returned in its place."""
        if not commands:
            return []
        return list(self._link._outcomes(self._send, commands))


def _ban_row(row: Any) -> BanRow:
    if (
        isinstance(row, list)
        and len(row) == 7
        and all(isinstance(row[i], int) and not isinstance(row[i], bool) for i in (0, 3, 4, 5))
        and isinstance(row[1], str)
        and isinstance(row[2], str)
        and (row[6] is None or isinstance(row[6], str))
    ):
        return (row[0], row[1], row[2], row[3], row[4], row[5], row[6])
    raise ProtocolError("the agent's database row is malformed")
