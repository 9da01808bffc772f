"""A tiny fake fail2ban socket server for fault injection.

It speaks just enough of fail2ban's framing (requests end with END, CLOSE + END closes)
to let each test decide what the "server" does with a request: answer properly, answer
garbage, hang, hang up half-way, or answer with a malicious pickle. Every raw byte and
every framed request it receives is recorded, so a test can assert that nothing reached
the socket.

Usage::

    with FakeFail2ban(reply_value(0, "pong")) as fake:
        Fail2banClient(fake.path, timeout=0.3).send("ping")
        assert fake.decoded_requests() == [["ping"]]

A behaviour is a callable ``(conn, payload) -> bool | None``: it writes whatever it likes
to ``conn`` and returns False to hang up after it. A list of behaviours is used one per
request, in order (the last one repeats).
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import tempfile
import threading
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

from jails.fail2ban.protocol import CLOSE, END

Behaviour = Callable[[socket.socket, bytes], "bool | None"]

MAX_UNIX_PATH = 107
_SETTLE = b"<FAKE_SETTLE>"  # the fake server's own probe (see settle()), never recorded


# Behaviours -------------------------------------------------------------------------------
def reply_raw(data: bytes) -> Behaviour:
    """Send exactly ``data`` (nothing appended)."""

    def behaviour(conn: socket.socket, payload: bytes) -> None:
        conn.sendall(data)

    return behaviour


def pickled_reply(rc: int, value: Any) -> bytes:
    """The bytes a real fail2ban sends for ``(rc, value)``, marker included."""
    return pickle.dumps((rc, value), protocol=pickle.HIGHEST_PROTOCOL) + END


def reply_value(rc: int, value: Any) -> Behaviour:
    """A proper fail2ban reply: pickled ``(rc, value)`` + END."""
    return reply_raw(pickled_reply(rc, value))


def reply_garbage(garbage: bytes = b"\x00\xffthis is not a pickle\x80") -> Behaviour:
    """Bytes that are no pickle at all, properly terminated by END."""
    return reply_raw(garbage + END)


def reply_chunked(data: bytes, *, chunk_size: int = 1, pause: float = 0.002) -> Behaviour:
    """Send ``data`` in tiny chunks with a pause between them, so the reader sees many reads."""

    def behaviour(conn: socket.socket, payload: bytes) -> None:
        for start in range(0, len(data), chunk_size):
            conn.sendall(data[start : start + chunk_size])
            time.sleep(pause)

    return behaviour


def reply_for_each(answer: Callable[[list[str]], bytes]) -> Behaviour:
    """Answer with ``answer(command)``; the command is decoded with the stock pickle.

    The stock unpickler is fine here: the requests come from our own client in tests.
    """

    def behaviour(conn: socket.socket, payload: bytes) -> None:
        conn.sendall(answer(pickle.loads(payload)))

    return behaviour


def disconnect_mid_reply(value: Any = "a rather long answer" * 10) -> Behaviour:
    """Send the first half of a proper reply, then hang up."""
    data = pickled_reply(0, value)

    def behaviour(conn: socket.socket, payload: bytes) -> bool:
        conn.sendall(data[: len(data) // 2])
        return False

    return behaviour


class _Hang:
    """Never answer (until the fake server is shut down)."""

    def __init__(self) -> None:
        self.stop = threading.Event()

    def __call__(self, conn: socket.socket, payload: bytes) -> bool:
        self.stop.wait()
        return False


def hang() -> Behaviour:
    return _Hang()


class _SystemCall:
    """Pickles to ``os.system(command)``: the stock unpickler would run the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def malicious_pickle(sentinel: str | os.PathLike[str], *, via: str = "os.system") -> bytes:
    """A pickle that creates ``sentinel`` when loaded by the stock unpickler.

    ``via`` picks the global it names: ``os.system`` (pickled as ``posix.system``),
    ``posix.system`` spelled out by hand, ``builtins.eval`` or ``subprocess.Popen``.
    """
    path = os.fspath(sentinel)
    shell = f"touch {path}"
    if via == "os.system":
        return pickle.dumps(_SystemCall(shell), protocol=2)
    if via == "posix.system":
        return _global_call_pickle("posix", "system", shell)
    if via == "builtins.eval":
        return _global_call_pickle("builtins", "eval", f"open({path!r}, 'w').close()")
    if via == "subprocess.Popen":
        # Popen(["touch", path]): a one-element args tuple holding a list.
        return (
            b"csubprocess\nPopen\n("
            + b"(lp0\n"
            + b"Vtouch\na"
            + b"V"
            + path.encode()
            + b"\na"
            + b"tR."
        )
    raise ValueError(f"unknown malicious pickle kind: {via}")


def _global_call_pickle(module: str, name: str, arg: str) -> bytes:
    """Protocol 0 pickle of ``module.name(arg)`` written by hand (GLOBAL, MARK, arg, REDUCE)."""
    return b"c%s\n%s\n(V%s\ntR." % (module.encode(), name.encode(), arg.encode())


def reply_malicious(
    sentinel: str | os.PathLike[str], *, via: str = "os.system", as_reply: bool = True
) -> Behaviour:
    """Reply with a malicious pickle + END (inside an ``(rc, value)`` pair if ``as_reply``)."""
    evil = malicious_pickle(sentinel, via=via)
    if as_reply:
        # (0, <evil>) in protocol 0: MARK, INT 0, <evil without its STOP>, TUPLE, STOP.
        evil = b"(I0\n" + evil[:-1] + b"t."
    return reply_raw(evil + END)


def fake_fail2ban_exceptions() -> tuple[types.ModuleType, types.ModuleType]:
    """Stand-ins for the ``fail2ban`` package and ``fail2ban.exceptions``.

    fail2ban is not importable from the venv, but pickle must find a class under its
    module and name to write ``fail2ban.exceptions.UnknownJailException``. Put both
    modules into ``sys.modules`` (monkeypatch.setitem) while pickling.
    """
    package = types.ModuleType("fail2ban")
    module = types.ModuleType("fail2ban.exceptions")

    class UnknownJailException(KeyError):
        pass

    class DuplicateJailException(Exception):
        pass

    for cls in (UnknownJailException, DuplicateJailException):
        cls.__module__ = module.__name__
        cls.__qualname__ = cls.__name__
        setattr(module, cls.__name__, cls)
    package.exceptions = module  # type: ignore[attr-defined]
    return package, module


# The server -------------------------------------------------------------------------------
class FakeFail2ban:
    """A threaded Unix-socket server that plays fail2ban according to ``behaviour``."""

    def __init__(self, behaviour: Behaviour | Sequence[Behaviour] | None = None) -> None:
        if behaviour is None:
            behaviour = reply_value(0, "pong")
        self._behaviours: list[Behaviour] = [behaviour] if callable(behaviour) else list(behaviour)
        if not self._behaviours:
            raise ValueError("at least one behaviour is required")
        self._dir = tempfile.mkdtemp(prefix="ff2b", dir="/tmp")
        self.path = os.path.join(self._dir, "s.sock")
        if len(self.path) > MAX_UNIX_PATH:
            raise ValueError(f"socket path too long for AF_UNIX: {self.path}")
        self.raw = bytearray()  # every byte received, across all connections
        self.requests: list[bytes] = []  # framed requests (marker stripped), CLOSE excluded
        self.closes = 0  # CLOSE commands received
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._served = 0

    # Life cycle ----------------------------------------------------------------------------
    def __enter__(self) -> FakeFail2ban:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(16)
        listener.settimeout(0.05)
        self._listener = listener
        thread = threading.Thread(target=self._accept_loop, name="fakef2b-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        for behaviour in self._behaviours:
            if isinstance(behaviour, _Hang):
                behaviour.stop.set()
        self._threads[0].join(timeout=5)  # the accept loop: no new connections after this
        for thread in list(self._threads[1:]):
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def reset(self) -> None:
        """Forget what was received so far (for property tests sharing one server)."""
        with self._lock:
            self.raw.clear()
            self.requests.clear()
            self.closes = 0
            self.connections = 0
            self._served = 0

    def alive_threads(self) -> list[threading.Thread]:
        return [thread for thread in self._threads if thread.is_alive()]

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until every connection handled so far is finished (the client hung up).

        Recording happens in the server's threads: call this before asserting on what
        arrived after the last reply (such as the CLOSE a connection sends on exit).
        A connection stuck in ``hang()`` is waited for until ``timeout``.
        """
        deadline = time.monotonic() + timeout
        # Connections are accepted in order: once a probe connection has been answered,
        # every connection the test made before it has been accepted.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout)
            probe.connect(self.path)
            probe.sendall(_SETTLE + END)
            probe.recv(16)
        for thread in list(self._threads[1:]):
            thread.join(timeout=max(deadline - time.monotonic(), 0))

    # What was received -----------------------------------------------------------------------
    def decoded_requests(self) -> list[Any]:
        """The framed requests, unpickled with the stock pickle (test-only: they are ours)."""
        with self._lock:
            return [pickle.loads(request) for request in self.requests]

    # Serving ---------------------------------------------------------------------------------
    def _next_behaviour(self) -> Behaviour:
        with self._lock:
            index = min(self._served, len(self._behaviours) - 1)
            self._served += 1
        return self._behaviours[index]

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            thread = threading.Thread(
                target=self._serve, args=(conn,), name="fakef2b-conn", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        buffer = b""
        try:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                if not buffer and chunk == _SETTLE + END:
                    with self._lock:
                        self.connections -= 1  # the probe is not the test's connection
                    conn.sendall(b"ok")
                    return
                with self._lock:
                    self.raw.extend(chunk)
                buffer += chunk
                while END in buffer:
                    payload, buffer = buffer.split(END, 1)
                    if payload == CLOSE:
                        with self._lock:
                            self.closes += 1
                        return
                    with self._lock:
                        self.requests.append(payload)
                    conn.settimeout(None)  # a behaviour writes at its own pace
                    try:
                        keep_open = self._next_behaviour()(conn, payload)
                    except OSError:
                        return  # the client went away while we were answering
                    conn.settimeout(0.05)
                    if keep_open is False:
                        return
        finally:
            conn.close()
