"""Talking to fail2ban: protocol, allow-listed commands, validation, typed errors.

Nothing in this package imports Django, so it can be used by tests, benchmarks and the
private-server harness alike.
"""

from .client import DEFAULT_SOCKET, Connection, Fail2banClient
from .errors import (
    CommandRejected,
    Fail2banError,
    Fail2banUnreachable,
    InvalidArgument,
    ProtocolError,
    ReplyTooLarge,
    UnknownJail,
    UnsupportedCommand,
)

__all__ = [
    "DEFAULT_SOCKET",
    "CommandRejected",
    "Connection",
    "Fail2banClient",
    "Fail2banError",
    "Fail2banUnreachable",
    "InvalidArgument",
    "ProtocolError",
    "ReplyTooLarge",
    "UnknownJail",
    "UnsupportedCommand",
]
