"""The agent's wire protocol (version 1): length-prefixed JSON frames, typed errors as data.

A frame is a 4-byte unsigned big-endian length, then that many bytes of UTF-8 JSON holding
one object. JSON, not pickle: the caller is not trusted, and a JSON decoder builds nothing
but plain data. Limits:

- a request frame is at most MAX_REQUEST_BYTES (16 MiB: a 100 000-address bulk ban is about
  2 MB); a larger length prefix is refused before a byte of the body is read;
- a reply frame is at most MAX_REPLY_BYTES (64 MiB: twice the fail2ban client's own limit on
  a reply, since JSON text is longer than the pickle it came from); the client refuses more.

Errors cross as {"type": NAME, "message": ..., fields} where NAME is one of the typed errors
of jails.fail2ban and the fields are what its constructor needs, so the client raises the
same exception the in-process (direct) mode would.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Mapping
from typing import Any

from jails.fail2ban.errors import (
    AgentRefused,
    CommandRejected,
    DatabaseUnavailable,
    Fail2banError,
    Fail2banUnreachable,
    InvalidArgument,
    ProtocolError,
    ReloadFailed,
    ReplyTooLarge,
    UnknownJail,
    UnsupportedCommand,
)

HEADER = struct.Struct(">I")
MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_REPLY_BYTES = 64 * 1024 * 1024

# Nesting deeper than this in a value passed on from fail2ban is refused rather than recursed
# into; fail2ban's deepest real reply (`stats`) is four levels.
_MAX_DEPTH = 32


class FrameError(Exception):
    """A frame that cannot be taken: the connection is out of step and must be closed."""


class FrameTooLarge(FrameError):
    """The length prefix announces more than the limit; the body is never read."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"a frame of {length:,} bytes is larger than the limit of {limit:,}")
        self.length = length
        self.limit = limit


def frame_encode(message: Mapping[str, Any]) -> bytes:
    """One frame: the length prefix and the message as compact UTF-8 JSON."""
    body = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    data = body.encode("utf-8")
    return HEADER.pack(len(data)) + data


def frame_length(header: bytes, *, limit: int) -> int:
    """The body length a 4-byte header announces; FrameTooLarge past `limit`."""
    (length,) = HEADER.unpack(header)
    if length > limit:
        raise FrameTooLarge(length, limit)
    return int(length)


def message_decode(body: bytes) -> dict[str, Any]:
    """A frame's body as a JSON object; FrameError for bad UTF-8, bad JSON or a non-object."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("the frame is not valid UTF-8") from None
    try:
        message = json.loads(text)
    except ValueError as exc:  # JSONDecodeError
        raise FrameError(f"the frame is not valid JSON: {exc}") from None
    except RecursionError:  # "[[[[...": nesting deeper than the interpreter's stack
        raise FrameError("the frame's JSON is nested too deeply") from None
    if not isinstance(message, dict):
        raise FrameError("a frame must hold one JSON object")
    return message


def wire_value(value: Any, *, depth: int = 0) -> Any:
    """fail2ban's reply value as JSON data: tuples become lists, sets sorted lists.

    The values come from the restricted unpickler (plain data only); anything else is a
    ProtocolError, as a reply the direct client could not decode would be.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if depth > _MAX_DEPTH:
        raise ProtocolError("fail2ban's reply is nested too deeply to pass on")
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [wire_value(item, depth=depth + 1) for item in value]
    if isinstance(value, set | frozenset):
        items = [wire_value(item, depth=depth + 1) for item in value]
        try:
            return sorted(items)
        except TypeError:  # mixed types: any fixed order will do, the set had none
            return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise ProtocolError("fail2ban's reply has a key that JSON cannot carry")
            result[str(key)] = wire_value(item, depth=depth + 1)
        return result
    raise ProtocolError(f"fail2ban's reply holds a {type(value).__name__}, not plain data")


# --- Typed errors as data -----------------------------------------------------------------------
def error_encode(exc: Fail2banError) -> dict[str, Any]:
    """The error as a JSON object the client turns back into the same type."""
    for cls in type(exc).__mro__:
        encode = _ENCODERS.get(cls.__name__)
        if encode is not None and cls.__module__ == Fail2banError.__module__:
            return {"type": cls.__name__, **encode(exc)}
    return {"type": "ProtocolError", "message": str(exc)}


def error_decode(data: Any) -> Fail2banError:
    """The typed error an error object describes; ProtocolError if it is malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return ProtocolError("the agent sent a malformed error")
    decode = _DECODERS.get(data["type"])
    if decode is None:
        return ProtocolError(f"the agent sent an unknown error type: {data['type'][:80]!r}")
    try:
        return decode(data)
    except (KeyError, TypeError, ValueError):
        return ProtocolError(f"the agent sent a malformed {data['type']} error")


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        # error_decode() turns any TypeError into its own message: this one is never seen.
        raise TypeError(key)  # pragma: no mutate
    return value


def _words(data: Mapping[str, Any]) -> list[str]:
    value = data["command"]
    if not isinstance(value, list) or not all(isinstance(word, str) for word in value):
        # error_decode() turns any TypeError into its own message: this one is never seen.
        raise TypeError("command")  # pragma: no mutate
    return list(value)


def _rejected(exc: Fail2banError) -> dict[str, Any]:
    assert isinstance(exc, CommandRejected)
    return {"message": exc.message, "command": list(exc.command), "remote_type": exc.remote_type}


def _unknown_jail(exc: Fail2banError) -> dict[str, Any]:
    assert isinstance(exc, UnknownJail)
    return {"message": str(exc), "command": list(exc.command), "jail": exc.jail}


def _unreachable(exc: Fail2banError) -> dict[str, Any]:
    assert isinstance(exc, Fail2banUnreachable)
    return {"message": str(exc), "socket_path": exc.socket_path, "reason": exc.reason}


def _too_large(exc: Fail2banError) -> dict[str, Any]:
    assert isinstance(exc, ReplyTooLarge)
    return {"message": str(exc), "limit": exc.limit}


def _reload_failed(exc: Fail2banError) -> dict[str, Any]:
    assert isinstance(exc, ReloadFailed)
    return {"message": exc.summary, "output": exc.output}


def _message(exc: Fail2banError) -> dict[str, Any]:
    return {"message": str(exc)}


def _limit(data: Mapping[str, Any]) -> int:
    value = data["limit"]
    if not isinstance(value, int) or isinstance(value, bool):
        # error_decode() turns any TypeError into its own message: this one is never seen.
        raise TypeError("limit")  # pragma: no mutate
    return value


# Keyed by class name; AgentUnreachable is absent on purpose: only the client raises it (an
# agent never reaches another agent), and Fail2banUnreachable from the agent means fail2ban.
_ENCODERS: dict[str, Callable[[Fail2banError], dict[str, Any]]] = {
    "UnknownJail": _unknown_jail,
    "UnsupportedCommand": _rejected,
    "CommandRejected": _rejected,
    "InvalidArgument": _message,
    "Fail2banUnreachable": _unreachable,
    "ReplyTooLarge": _too_large,
    "ProtocolError": _message,
    "DatabaseUnavailable": _message,
    "ReloadFailed": _reload_failed,
    "AgentRefused": _message,
}

_DECODERS: dict[str, Callable[[Mapping[str, Any]], Fail2banError]] = {
    "UnknownJail": lambda d: UnknownJail(_words(d), _text(d, "jail")),
    "UnsupportedCommand": lambda d: UnsupportedCommand(
        _words(d), _text(d, "remote_type"), _text(d, "message")
    ),
    "CommandRejected": lambda d: CommandRejected(
        _words(d), _text(d, "remote_type"), _text(d, "message")
    ),
    "InvalidArgument": lambda d: InvalidArgument(_text(d, "message")),
    "Fail2banUnreachable": lambda d: Fail2banUnreachable(
        _text(d, "socket_path"), _text(d, "reason")
    ),
    "ReplyTooLarge": lambda d: ReplyTooLarge(_limit(d)),
    "ProtocolError": lambda d: ProtocolError(_text(d, "message")),
    "DatabaseUnavailable": lambda d: DatabaseUnavailable(_text(d, "message")),
    "ReloadFailed": lambda d: ReloadFailed(_text(d, "message"), _text(d, "output")),
    "AgentRefused": lambda d: AgentRefused(_text(d, "message")),
}
