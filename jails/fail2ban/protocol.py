"""fail2ban's socket protocol: pickled requests, restricted unpickling of replies.

A request is a pickled list of strings followed by END. A reply is a pickled
``(rc, value)`` followed by END; rc 1 carries the exception the server raised.
Replies are decoded by :class:`RestrictedUnpickler`, which only builds plain data:
the stock unpickler would run whatever a compromised or fake server sent.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from typing import Any

END = b"<F2B_END_COMMAND>"
CLOSE = b"<F2B_CLOSE_COMMAND>"

# Constructors a reply may name: fail2ban pickles IPAddr as str(...), sets as set(...).
_PLAIN_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "tuple": tuple,
    "dict": dict,
    "set": set,
    "frozenset": frozenset,
}

# Exceptions the server may send back; they become RemoteException data, never objects
# of those classes.
_REMOTE_EXCEPTION_MODULES = ("builtins", "exceptions", "fail2ban.")


@dataclass
class RemoteException:
    """An exception raised inside fail2ban, as data: its class name and arguments."""

    type_name: str
    args: tuple[Any, ...] = ()
    state: dict[str, Any] = field(default_factory=dict)

    def __setstate__(self, state: Any) -> None:
        # BUILD after REDUCE: keep attributes as data, never call anything.
        if isinstance(state, dict):
            self.state = dict(state)

    @property
    def message(self) -> str:
        return " ".join(str(a) for a in self.args)


class _RemoteExceptionFactory:
    """What find_class returns for an exception class: builds RemoteException data."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __call__(self, *args: Any) -> RemoteException:
        return RemoteException(self.type_name, tuple(args))


def _looks_like_exception_name(name: str) -> bool:
    return name.endswith(("Exception", "Error")) or name in {"StopIteration", "KeyboardInterrupt"}


class ForbiddenPickle(pickle.UnpicklingError):
    """The reply asked for a global that a plain-data reply never needs."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that builds plain data only and maps exceptions to RemoteException."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in _PLAIN_TYPES:
            return _PLAIN_TYPES[name]
        if module.startswith(_REMOTE_EXCEPTION_MODULES) and _looks_like_exception_name(name):
            return _RemoteExceptionFactory(name)
        raise ForbiddenPickle(f"forbidden global in reply: {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise ForbiddenPickle("persistent ids are not allowed in a reply")


class _BufferReader:
    """A read-only file over a reply buffer: io.BytesIO would copy a bytearray whole."""

    def __init__(self, data: bytes | bytearray) -> None:
        self._data = data
        self._view = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else self._pos + size
        piece = bytes(self._view[self._pos : end])
        self._pos += len(piece)
        return piece

    def readinto(self, target: Any) -> int:
        out = memoryview(target).cast("B")
        piece = self._view[self._pos : self._pos + len(out)]
        out[: len(piece)] = piece
        self._pos += len(piece)
        return len(piece)

    def readline(self) -> bytes:
        newline = self._data.find(b"\n", self._pos)
        return self.read(-1 if newline < 0 else newline + 1 - self._pos)


def restricted_loads(data: bytes | bytearray) -> Any:
    """Decode one pickled reply with the restricted unpickler."""
    if isinstance(data, bytes):
        return RestrictedUnpickler(io.BytesIO(data)).load()  # BytesIO shares bytes: no copy
    return RestrictedUnpickler(_BufferReader(data)).load()


def encode_request(command: list[str]) -> bytes:
    """Pickle a validated command (a list of str) and append the end marker."""
    return pickle.dumps(list(command), protocol=4) + END
