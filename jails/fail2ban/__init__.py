"""Talking to fail2ban: protocol, allow-listed commands, validation, typed errors.

Nothing in this package imports Django, so it can be used by tests, benchmarks and the
private-server harness alike.
"""

from .client import DEFAULT_SOCKET, Connection, Fail2banClient
from .errors import (
    AgentRefused,
    AgentUnreachable,
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

__all__ = [
    "DEFAULT_SOCKET",
    "AgentRefused",
    "AgentUnreachable",
    "CommandRejected",
    "Connection",
    "DatabaseUnavailable",
    "Fail2banClient",
    "Fail2banError",
    "Fail2banUnreachable",
    "InvalidArgument",
    "ProtocolError",
    "ReloadFailed",
    "ReplyTooLarge",
    "UnknownJail",
    "UnsupportedCommand",
]
