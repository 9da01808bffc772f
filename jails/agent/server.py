"""The agent's server side: the operation registry, dispatch, and the two ways in.

Every request names one operation from OPERATIONS; each operation validates its own
arguments (the caller is not trusted: in production it is the unprivileged web process,
which may be compromised) and does one fixed thing. There is no generic "run this"
operation. fail2ban commands go through jails.fail2ban's allow-list before anything is sent.

Serving (asyncio, one thread for all connections, blocking work in a small thread pool):

- `--stdio`: one connection on stdin/stdout (SSH forced command, systemd Accept=yes).
- `--listen unix:PATH`: many connections. Limits, all in ServerLimits:
  at most `max_connections` open at once (256: a connection waiting for its next request
  costs a few KB; one more is answered with AgentRefused and closed); quick requests
  (INLINE_OPERATIONS, at most INLINE_MAX_COMMANDS commands) are answered on the loop, long
  ones by at most `workers` threads (4: fail2ban's server is single-threaded, more would
  only queue there), later requests wait their turn; a connection with no request for `idle_timeout`
  seconds is closed (a new one must say hello within `frame_timeout`); once a frame's first
  byte has arrived, the whole frame must arrive within `frame_timeout` (a slow-loris client
  is dropped); a reply the client does not read within `write_timeout` drops it too.
- A bad client only ever loses its own connection: a frame over MAX_REQUEST_BYTES is refused
  by its length prefix, without reading the body; bad UTF-8 or JSON, a request before hello
  or a wrong protocol version are answered with AgentRefused, then the connection is closed.
  An unknown operation or a bad argument is answered (AgentRefused, InvalidArgument) and the
  connection stays usable.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import signal
import socket
import stat
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from jails.fail2ban import (
    AgentRefused,
    DatabaseUnavailable,
    Fail2banClient,
    Fail2banError,
    Fail2banUnreachable,
    InvalidArgument,
)
from jails.fail2ban.commands import check_command
from jails.fail2ban.validation import validate_jail_name

from . import (
    AGENT_NAME,
    AGENT_VERSION,
    PROTOCOL_VERSION,
    configfiles,
    logview,
    operations,
    regex,
)
from .operations import MAX_BATCH_ROWS, HostConfig
from .protocol import (
    HEADER,
    MAX_REQUEST_BYTES,
    FrameError,
    error_encode,
    frame_encode,
    frame_length,
    message_decode,
    wire_value,
)

logger = logging.getLogger("jailadmin.agent")

MAX_COMMANDS = 10000  # fail2ban commands in one request (a bulk ban sends a few hundred)
# Connections the kernel queues until the loop accepts them; past it a connect() gets
# EAGAIN, which the client retries with a short backoff.
LISTEN_BACKLOG = 256


@dataclass(frozen=True)
class ServerLimits:
    """How much one agent serves at once and how long it waits (see the module docstring)."""

    max_request_bytes: int = MAX_REQUEST_BYTES
    frame_timeout: float = 10.0
    idle_timeout: float = 300.0
    write_timeout: float = 60.0
    max_connections: int = 256
    workers: int = 4


@dataclass(frozen=True)
class Agent:
    """What the operations work with: this host's fail2ban and how to reach it."""

    config: HostConfig
    client: Fail2banClient

    @classmethod
    def build(cls, config: HostConfig) -> Agent:
        # Never allow_server_stop: no caller of the agent may shut fail2ban down.
        return cls(config, Fail2banClient(config.socket, timeout=config.timeout))


# --- Operations -----------------------------------------------------------------------------------
def _arguments(args: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(args) - allowed
    if unknown:
        raise InvalidArgument(f"unexpected arguments: {', '.join(sorted(unknown))[:200]}")


def _whole_number(args: Mapping[str, Any], key: str, *, minimum: int, maximum: int) -> int:
    value = args.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidArgument(f"{key} must be a whole number from {minimum} to {maximum}")
    return value


def _endpoint(agent: Agent) -> list[int] | None:
    identity = agent.client.endpoint_identity()
    return None if identity is None else list(identity)


def _op_fail2ban(agent: Agent, args: Mapping[str, Any]) -> Any:
    _arguments(args, frozenset({"commands"}))
    commands = args.get("commands")
    if not isinstance(commands, list) or not 1 <= len(commands) <= MAX_COMMANDS:
        raise InvalidArgument(f"commands must be a list of 1 to {MAX_COMMANDS} commands")
    # Every command is checked before the first is sent: one refused command sends none.
    checked: list[list[str]] = []
    for command in commands:
        if not isinstance(command, list):
            raise InvalidArgument("a command must be a list of words")
        checked.append(check_command(command, allow_server_stop=False))
    endpoint = _endpoint(agent)
    with agent.client.connection() as conn:
        outcomes = conn.send_batch_outcomes(checked)
    results = [
        {"ok": False, "error": error_encode(outcome)}
        if isinstance(outcome, Fail2banError)
        else {"ok": True, "value": wire_value(outcome)}
        for outcome in outcomes
    ]
    return {"results": results, "endpoint": endpoint}


def _database(agent: Agent) -> str:
    # Always the path fail2ban itself reports: a caller never names a file to read.
    path = operations.database_path(agent.client)
    if path is None:
        raise DatabaseUnavailable("fail2ban keeps no database (dbfile is unset or :memory:)")
    return path


def _op_database_path(agent: Agent, args: Mapping[str, Any]) -> Any:
    _arguments(args, frozenset())
    return operations.database_path(agent.client)


def _op_database_bans(agent: Agent, args: Mapping[str, Any]) -> Any:
    _arguments(args, frozenset({"after", "limit"}))
    after = _whole_number(args, "after", minimum=0, maximum=2**63 - 1)
    limit = _whole_number(args, "limit", minimum=1, maximum=MAX_BATCH_ROWS)
    path = _database(agent)
    rows = operations.database_bans(path, after=after, limit=limit)
    return {"path": path, "rows": [list(row) for row in rows]}


def _op_database_ban(agent: Agent, args: Mapping[str, Any]) -> Any:
    _arguments(args, frozenset({"rowid"}))
    rowid = _whole_number(args, "rowid", minimum=-(2**63), maximum=2**63 - 1)
    row = operations.database_ban(_database(agent), rowid=rowid)
    return None if row is None else list(row)


def _op_reload(agent: Agent, args: Mapping[str, Any]) -> Any:
    _arguments(args, frozenset({"jail"}))
    jail = args.get("jail")
    if jail is not None:
        if not isinstance(jail, str):
            raise InvalidArgument("jail must be a jail name or null")
        validate_jail_name(jail)
    return {"output": operations.reload(agent.config, jail=jail)}


def _op_health(agent: Agent, args: Mapping[str, Any]) -> Any:
    _arguments(args, frozenset())
    return {"fail2ban": _fail2ban_health(agent)}


def _fail2ban_health(agent: Agent) -> dict[str, Any]:
    try:
        version = agent.client.send("version")
    except Fail2banUnreachable as exc:
        return {"reachable": False, "version": None, "reason": exc.reason}
    except Fail2banError as exc:
        return {"reachable": False, "version": None, "reason": str(exc)}
    return {"reachable": True, "version": str(version), "reason": None}


Operation = Callable[[Agent, Mapping[str, Any]], Any]

# The whole allow-list of operations. The configuration issue adds its file operations here,
# each with its own argument checks; never a generic command runner.
OPERATIONS: Mapping[str, Operation] = MappingProxyType(
    {
        "fail2ban": _op_fail2ban,
        "database_path": _op_database_path,
        "database_bans": _op_database_bans,
        "database_ban": _op_database_ban,
        "reload": _op_reload,
        "health": _op_health,
        # The filter tester and the log viewer (jails/agent/regex.py, logview.py): each
        # checks its arguments; the files read are the ones fail2ban itself names.
        "regex_test": lambda agent, args: regex.op_regex_test(agent.config, agent.client, args),
        "log_tail": lambda agent, args: logview.op_log_tail(agent.client, args),
        # fail2ban's configuration files (jails/agent/configfiles.py checks every path itself).
        "config_read": lambda agent, args: configfiles.op_config_read(
            agent.config, agent.client, args
        ),
        "config_file": lambda agent, args: configfiles.op_config_file(
            agent.config, agent.client, args
        ),
        "config_apply": lambda agent, args: configfiles.op_config_apply(
            agent.config, agent.client, args
        ),
        "config_definition": lambda agent, args: configfiles.op_config_definition(
            agent.config, agent.client, args
        ),
    }
)


def hello(agent: Agent) -> dict[str, Any]:
    """The handshake's answer: who this agent is, which fail2ban it serves, what it does."""
    health = _fail2ban_health(agent)
    return {
        "agent": AGENT_NAME,
        "version": AGENT_VERSION,
        "protocol": PROTOCOL_VERSION,
        "fail2ban_version": health["version"],
        "operations": sorted(OPERATIONS),
        "endpoint": _endpoint(agent),
    }


def _reply_error(request_id: Any, exc: Fail2banError) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": error_encode(exc)}


def dispatch(agent: Agent, request: Mapping[str, Any]) -> dict[str, Any]:
    """Run one (greeted) request; always returns a reply, never raises."""
    request_id = request.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, int):
        return _reply_error(None, AgentRefused("a request needs a whole-number id"))
    name = request.get("op")
    args = request.get("args", {})
    operation = OPERATIONS.get(name) if isinstance(name, str) else None
    if operation is None:
        shown = repr(name)[:80]
        return _reply_error(request_id, AgentRefused(f"unknown operation: {shown}"))
    if not isinstance(args, dict):
        return _reply_error(request_id, AgentRefused("args must be a JSON object"))
    try:
        return {"id": request_id, "ok": True, "value": operation(agent, args)}
    except Fail2banError as exc:
        return _reply_error(request_id, exc)
    except Exception as exc:  # a bug must cost one request, never the agent
        logger.exception("operation %s failed", name)
        return _reply_error(request_id, AgentRefused(f"the agent failed: {type(exc).__name__}"))


def handshake(agent: Agent, request: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """Answer the connection's first request: (reply, whether the connection may go on)."""
    request_id = request.get("id")
    if request.get("op") != "hello":
        refusal = AgentRefused("the first request on a connection must be hello")
        return _reply_error(request_id, refusal), False
    if request.get("protocol") != PROTOCOL_VERSION:
        refusal = AgentRefused(
            f"protocol version {str(request.get('protocol'))[:20]} is not spoken here"
            f" (this agent speaks {PROTOCOL_VERSION})"
        )
        return _reply_error(request_id, refusal), False
    return {"id": request_id, "ok": True, "value": hello(agent)}, True


# --- Serving --------------------------------------------------------------------------------------
class _Closed(Exception):
    """The client went away or was too slow: close the connection, nothing to answer."""


async def _read_frame(reader: asyncio.StreamReader, limits: ServerLimits, *, wait: float) -> bytes:
    # Waiting for a request may take `wait`; once its first byte is here, the rest of the
    # frame must follow within frame_timeout (a client that stalls mid-frame is dropped).
    # asyncio.timeout, not wait_for: wait_for wraps every read in a new task, which cost
    # a request more than the whole of fail2ban's answer.
    try:
        async with asyncio.timeout(wait):
            first = await reader.readexactly(1)
        async with asyncio.timeout(limits.frame_timeout):
            header = first + await reader.readexactly(HEADER.size - 1)
            length = frame_length(header, limit=limits.max_request_bytes)
            return await reader.readexactly(length)
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
        raise _Closed(type(exc).__name__) from None


async def _write(
    writer: asyncio.StreamWriter, message: Mapping[str, Any], limits: ServerLimits
) -> None:
    try:
        writer.write(frame_encode(message))
        async with asyncio.timeout(limits.write_timeout):
            await writer.drain()
    except (TimeoutError, ConnectionError) as exc:
        raise _Closed(type(exc).__name__) from None


# Requests answered on the event loop's own thread: a hand-off to the worker pool costs
# 50-200 µs (a thread wake-up each way), as much as fail2ban's whole answer to `status J`.
# A few commands keep the loop busy about a millisecond; long work (a reload, a batch of
# ban rows, a bulk ban's big batches) goes to the pool so other connections are still read.
INLINE_OPERATIONS = frozenset({"fail2ban", "database_path", "database_ban", "health"})
INLINE_MAX_COMMANDS = 64


def _quick(request: Mapping[str, Any]) -> bool:
    """Whether a request is short work, answered without leaving the event loop."""
    if request.get("op") not in INLINE_OPERATIONS:
        return False
    args = request.get("args")
    commands = args.get("commands") if isinstance(args, dict) else None
    return not isinstance(commands, list) or len(commands) <= INLINE_MAX_COMMANDS


class AgentServer:
    """Serves connections for one Agent within ServerLimits.

    `inline`: every request is answered on the loop's thread (`--stdio` serves a single
    connection, so nothing else waits for the loop); otherwise only quick ones are.
    """

    def __init__(self, agent: Agent, limits: ServerLimits, *, inline: bool = False) -> None:
        self.agent = agent
        self.limits = limits
        self.inline = inline
        self._executor = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="op")
        self._open = 0

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def _dispatch(self, request: Mapping[str, Any]) -> dict[str, Any]:
        if self.inline or _quick(request):
            return dispatch(self.agent, request)
        reply: dict[str, Any] = await self._run(dispatch, self.agent, request)
        return reply

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection, from hello to close; a misbehaving client only loses this one."""
        self._open += 1
        try:
            if self._open > self.limits.max_connections:
                busy = AgentRefused(
                    f"the agent is serving its limit of {self.limits.max_connections} connections"
                )
                await _write(writer, _reply_error(None, busy), self.limits)
                return
            await self._conversation(reader, writer)
        except _Closed:
            pass
        except asyncio.CancelledError:
            # The agent is stopping (SIGTERM) with this connection open: the connection
            # ends here, quietly (re-raised, asyncio's stream callback logs a traceback).
            pass
        except Exception:  # never let one connection take the server down
            logger.exception("connection failed")
        finally:
            self._open -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _conversation(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        greeted = False
        while True:
            wait = self.limits.idle_timeout if greeted else self.limits.frame_timeout
            try:
                request = message_decode(await _read_frame(reader, self.limits, wait=wait))
            except FrameError as exc:  # too large, bad UTF-8 or JSON: out of step, so close
                await _write(writer, _reply_error(None, AgentRefused(str(exc))), self.limits)
                return
            if not greeted:
                reply, greeted = await self._run(handshake, self.agent, request)
                await _write(writer, reply, self.limits)
                if not greeted:
                    return
                continue
            if request.get("op") == "hello":
                reply, _ = await self._run(handshake, self.agent, request)
            else:
                reply = await self._dispatch(request)
            await _write(writer, reply, self.limits)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def listen_socket(path: str, *, group: str | None, mode: int) -> socket.socket:
    """A listening Unix socket at `path`, owned by `group`, with `mode` from the first moment."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)  # left over from an agent that did not stop cleanly
    except FileNotFoundError:
        pass
    gid = grp.getgrnam(group).gr_gid if group else -1
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # No moment in which anyone else could connect: bind under a umask that leaves the
    # socket owner-only, then widen it to `mode` once the group is set.
    previous = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(previous)
    if gid != -1:
        os.chown(path, -1, gid)
    os.chmod(path, mode)
    sock.listen(LISTEN_BACKLOG)
    return sock


async def serve_listen(
    agent: Agent, limits: ServerLimits, *, path: str, group: str | None, mode: int
) -> None:
    """Serve `--listen unix:PATH` until SIGTERM or SIGINT; removes the socket on the way out."""
    server_side = AgentServer(agent, limits)
    sock = listen_socket(path, group=group, mode=mode)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await asyncio.start_unix_server(server_side.serve, sock=sock, backlog=LISTEN_BACKLOG)
    try:
        async with server:
            await stop.wait()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        server_side.close()


async def serve_stdio(agent: Agent, limits: ServerLimits) -> None:
    """Serve one connection on stdin/stdout (pipes, or the socket systemd passes)."""
    server_side = AgentServer(agent, limits, inline=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    # Duplicates: closing the transports must not close fds 0 and 1 under the interpreter.
    stdin = os.fdopen(os.dup(0), "rb", buffering=0)
    stdout = os.fdopen(os.dup(1), "wb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, stdout)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    try:
        await server_side.serve(reader, writer)
    finally:
        server_side.close()
