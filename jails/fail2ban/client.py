"""A native client for fail2ban's Unix socket (no ``fail2ban-client`` subprocess).

One :class:`Fail2banClient` knows where the socket is and how long to wait; each call
opens a short-lived :class:`Connection` (a round trip costs well under a millisecond),
and a page that needs many answers sends them back to back over one connection.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from .commands import check_command
from .errors import (
    CommandRejected,
    Fail2banUnreachable,
    ProtocolError,
    ReplyTooLarge,
    UnknownJail,
    UnsupportedCommand,
)
from .protocol import CLOSE, END, RemoteException, encode_request, restricted_loads

DEFAULT_SOCKET = "/var/run/fail2ban/fail2ban.sock"
# The largest real reply is `get J banip --with-time` of a full jail: 100 000 bans (the
# bulk-ban limit) measured 6.4 MB with IPv4 addresses; IPv6 ones make a line about 1.4x
# longer. 32 MiB leaves a 3.5-5x margin and still stops a runaway or hostile server
# before it costs a worker hundreds of megabytes.
MAX_REPLY_BYTES = 32 * 1024 * 1024
_RECV_BYTES = 256 * 1024
_Reply = TypeVar("_Reply")
_RETRY_ERRNOS = frozenset({errno.EAGAIN, errno.ECONNREFUSED, errno.EWOULDBLOCK})
_BUSY_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK})
RETRY_BACKOFF = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


class Connection:
    """One open connection; commands go back to back, each waiting for its reply."""

    def __init__(
        self,
        sock: socket.socket,
        socket_path: str,
        timeout: float,
        *,
        allow_server_stop: bool,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self._sock = sock
        self._socket_path = socket_path
        self._timeout = timeout
        self._allow_server_stop = allow_server_stop
        self._max_reply_bytes = max_reply_bytes
        # Set when a reply was not read whole: a late or left-over answer would otherwise
        # be taken as the answer to the next command on this connection.
        self._broken = False

    def send(self, *command: str) -> Any:
        """Send one allow-listed command and return fail2ban's answer."""
        words = check_command(command, allow_server_stop=self._allow_server_stop)
        payload = self._exchange(encode_request(words), self._read_reply)
        try:
            value = _decode_reply(words, payload)
        except CommandRejected:
            self._broken = False  # a whole, well-formed error reply: still in step
            raise
        self._broken = False
        return value

    def send_batch(self, commands: Sequence[Sequence[str]]) -> list[Any]:
        """Send several allow-listed commands at once, then read their answers in order.

        fail2ban reads requests off a connection one after the other and answers each in
        turn, so a page that needs a dozen settings pays one round trip instead of a dozen.
        Every reply is read (the connection stays in step) before the first refusal is
        raised; an unreachable or garbled server breaks the connection as in send().
        """
        outcomes = self.send_batch_outcomes(commands)
        refusal = next((o for o in outcomes if isinstance(o, CommandRejected)), None)
        if refusal is not None:
            raise refusal
        return outcomes

    def send_batch_outcomes(self, commands: Sequence[Sequence[str]]) -> list[Any]:
        """send_batch(), but each refusal is returned in its command's place, not raised.

        The agent passes every command's own answer or refusal back to its caller.
        Every command is checked before anything is sent: one invalid command sends none.
        """
        checked = [
            check_command(tuple(command), allow_server_stop=self._allow_server_stop)
            for command in commands
        ]
        if not checked:
            return []
        request = b"".join(encode_request(words) for words in checked)
        payloads = self._exchange(request, lambda: self._read_replies(len(checked)))
        outcomes: list[Any] = []
        for words, payload in zip(checked, payloads, strict=True):
            try:
                outcomes.append(_decode_reply(words, payload))
            except CommandRejected as exc:
                outcomes.append(exc)
        self._broken = False
        return outcomes

    def _exchange(self, request: bytes, read: Callable[[], _Reply]) -> _Reply:
        # Leaves the connection marked broken: the caller clears the mark once the whole
        # reply is decoded, so a late or left-over answer is never taken for the next one.
        if self._broken:
            raise Fail2banUnreachable(
                self._socket_path, "the connection is unusable after an earlier error"
            )
        self._broken = True
        try:
            self._sock.sendall(request)
            return read()
        except TimeoutError:
            raise Fail2banUnreachable(
                self._socket_path, f"no answer within {self._timeout:g} s"
            ) from None
        except OSError as exc:
            raise Fail2banUnreachable(self._socket_path, exc.strerror or str(exc)) from None

    def _read_replies(self, count: int) -> list[bytearray]:
        # Replies of a batch arrive back to back: split on each end marker in turn. A
        # reply's pickle could only contain the marker inside a string value, which none
        # of the batched commands returns unvalidated; if one did, the truncated reply
        # would fail to decode (ProtocolError), never be misread as another's.
        deadline = time.monotonic() + self._timeout
        buffer = bytearray()
        replies: list[bytearray] = []
        searched = 0
        while True:
            index = buffer.find(END, searched)
            if index >= 0:
                replies.append(buffer[:index])
                del buffer[: index + len(END)]
                searched = 0
                if len(replies) == count:
                    if buffer:
                        raise ProtocolError("fail2ban sent more replies than requests")
                    return replies
                continue
            if len(buffer) > self._max_reply_bytes + len(END):
                raise ReplyTooLarge(self._max_reply_bytes)
            searched = max(len(buffer) - len(END) + 1, 0)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self._sock.settimeout(remaining)
            chunk = self._sock.recv(_RECV_BYTES)
            if not chunk:
                raise ProtocolError("fail2ban closed the connection in the middle of a reply")
            buffer += chunk

    def _read_reply(self) -> bytearray:
        # One growing buffer, decoded in place (no list of chunks joined into a second
        # copy, no slice without the marker as a third): a 6 MB reply costs 6 MB.
        deadline = time.monotonic() + self._timeout
        buffer = bytearray()
        limit = self._max_reply_bytes + len(END)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self._sock.settimeout(remaining)
            chunk = self._sock.recv(_RECV_BYTES)
            if not chunk:
                raise ProtocolError("fail2ban closed the connection in the middle of a reply")
            buffer += chunk
            if len(buffer) > limit:
                raise ReplyTooLarge(self._max_reply_bytes)
            # The marker may be split across two reads: look at the end of the whole buffer.
            if buffer.endswith(END):
                del buffer[-len(END) :]
                return buffer

    def close(self) -> None:
        try:
            self._sock.settimeout(0.5)
            self._sock.sendall(CLOSE + END)
        except OSError:
            pass
        finally:
            self._sock.close()


def _decode_reply(command: list[str], payload: bytes | bytearray) -> Any:
    try:
        reply = restricted_loads(payload)
    except Exception as exc:  # any unpickling failure is a protocol error, whatever its type
        raise ProtocolError(f"undecodable reply from fail2ban: {exc}") from None
    if isinstance(reply, str) and reply.startswith("ERROR:"):
        raise ProtocolError(f"fail2ban could not read the request: {reply[6:].strip()}")
    if not (isinstance(reply, tuple | list) and len(reply) == 2 and reply[0] in (0, 1)):
        raise ProtocolError("reply is not an (rc, value) pair")
    rc, value = reply
    if rc == 0:
        if isinstance(value, RemoteException):
            raise ProtocolError("success reply carries an exception")
        return value
    raise _rejection(command, value)


def _rejection(command: list[str], value: Any) -> CommandRejected:
    if not isinstance(value, RemoteException):
        return CommandRejected(command, "unknown", str(value))
    if value.type_name == "UnknownJailException":
        jail = str(value.args[0]) if value.args else "?"
        return UnknownJail(command, jail)
    message = value.message
    if message.startswith("Invalid command"):
        return UnsupportedCommand(command, value.type_name, message)
    return CommandRejected(command, value.type_name, message)


class Fail2banClient:
    """Where fail2ban listens and how patiently to talk to it."""

    def __init__(
        self,
        socket_path: str = DEFAULT_SOCKET,
        *,
        timeout: float = 5.0,
        retry_backoff: Sequence[float] = RETRY_BACKOFF,
        allow_server_stop: bool = False,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.max_reply_bytes = max_reply_bytes
        self.retry_backoff = tuple(retry_backoff)
        # Only the private-server harness may shut a whole server down.
        self.allow_server_stop = allow_server_stop

    def _connect(self) -> socket.socket:
        return unix_connect(
            self.socket_path,
            timeout=self.timeout,
            backoff=self.retry_backoff,
            fail=lambda reason: Fail2banUnreachable(self.socket_path, reason),
            describe=_describe_connect_error,
        )

    def endpoint_identity(self) -> tuple[int, int, int] | None:
        """The socket file's (device, inode, ctime): it changes whenever fail2ban restarts.

        fail2ban removes and re-creates its socket at every start, so this tells "same
        server as before" from "restarted, maybe upgraded" with one stat() and no round
        trip. None when the socket cannot be looked at.
        """
        try:
            info = os.stat(self.socket_path)
        except OSError:
            return None
        return (info.st_dev, info.st_ino, info.st_ctime_ns)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """Open one connection for several commands; closed on exit."""
        conn = Connection(
            self._connect(),
            self.socket_path,
            self.timeout,
            allow_server_stop=self.allow_server_stop,
            max_reply_bytes=self.max_reply_bytes,
        )
        try:
            yield conn
        finally:
            conn.close()

    def send(self, *command: str) -> Any:
        """Open a connection, send one command, close; return the answer."""
        with self.connection() as conn:
            return conn.send(*command)


def unix_connect(
    path: str,
    *,
    timeout: float,
    backoff: Sequence[float] = RETRY_BACKOFF,
    fail: Callable[[str], Exception],
    describe: Callable[[OSError], str],
) -> socket.socket:
    """A stream connected to the Unix socket at `path` (fail2ban's, or the host agent's).

    Raises fail(reason) when it cannot be: describe(error) words an OS error for people.
    """
    deadline = time.monotonic() + timeout
    delays = iter(backoff)
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            sock.connect(path)
            return sock
        except TimeoutError:
            sock.close()
            raise fail(f"no answer within {timeout:g} s") from None
        except OSError as exc:
            sock.close()
            # A busy server's backlog is full for a moment (EAGAIN/ECONNREFUSED); a missing
            # socket or a permission problem will not get better by waiting.
            delay = next(delays, None) if exc.errno in _RETRY_ERRNOS else None
            if delay is None and exc.errno in _BUSY_ERRNOS and backoff:
                # EAGAIN says the server is there and busy: fail2ban listens with a backlog
                # of 1, so under 50 connections on a starved CPU the backlog can stay full
                # longer than the backoff list (0.4 s) — /healthz answered 503 then (issue
                # 15). Busy is not down: keep trying at the last pace until the deadline.
                delay = backoff[-1]
            if delay is None or time.monotonic() + delay > deadline:
                raise fail(describe(exc)) from None
            time.sleep(delay)


def _describe_connect_error(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "the socket does not exist"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied on the socket"
    if exc.errno == errno.ECONNREFUSED:
        return "connection refused (is fail2ban running?)"
    if exc.errno == errno.ENOTSOCK:
        return "the path is not a socket"
    return exc.strerror or str(exc)
