"""Typed errors for talking to fail2ban. Nothing Django in here."""

from __future__ import annotations


class Fail2banError(Exception):
    """Base class of every error the fail2ban client raises."""


class InvalidArgument(Fail2banError, ValueError):
    """An argument was refused before anything was sent to fail2ban."""


class Fail2banUnreachable(Fail2banError):
    """The socket is missing, refuses connections, or did not answer in time."""

    def __init__(self, socket_path: str, reason: str) -> None:
        super().__init__(f"fail2ban is not reachable at {socket_path}: {reason}")
        self.socket_path = socket_path
        self.reason = reason


class AgentUnreachable(Fail2banUnreachable):
    """The jailadmin agent cannot be reached (not running, refused, lost, no answer in time).

    A Fail2banUnreachable, so every page that handles that still works in agent mode; the
    status bar and /healthz tell the two apart by this type.
    """

    def __init__(self, address: str, reason: str) -> None:
        Fail2banError.__init__(self, f"the jailadmin agent is not reachable at {address}: {reason}")
        self.socket_path = address
        self.address = address
        self.reason = reason


class AgentRefused(Fail2banError):
    """The agent refused the request: unknown operation, malformed, too large, wrong version."""


class ProtocolError(Fail2banError):
    """The reply could not be decoded (garbage, forbidden pickle, cut off)."""


class ReplyTooLarge(ProtocolError):
    """fail2ban's reply grew past the client's limit (MAX_REPLY_BYTES); it was not read."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"fail2ban's reply is larger than {limit:,} bytes, the most this client reads"
            " (the biggest real reply, 100 000 bans with their times, is about 7 MB)"
        )
        self.limit = limit


class CommandRejected(Fail2banError):
    """fail2ban answered the command with an error."""

    def __init__(self, command: list[str], remote_type: str, message: str) -> None:
        super().__init__(message or remote_type)
        self.command = command
        self.remote_type = remote_type
        self.message = message


class UnknownJail(CommandRejected):
    """fail2ban does not know the jail the command named."""

    def __init__(self, command: list[str], jail: str) -> None:
        super().__init__(command, "UnknownJailException", f"unknown jail: {jail}")
        self.jail = jail


class UnsupportedCommand(CommandRejected):
    """This fail2ban version does not implement the command."""


class DatabaseUnavailable(Fail2banError):
    """fail2ban's database cannot be read: none kept, unreadable, not fail2ban's, stayed locked."""


class ReloadFailed(Fail2banError):
    """`fail2ban-client reload` did not succeed; carries what it printed."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message + (f"\n{output}" if output else ""))
        # The message alone, so the error can be sent across the agent protocol and
        # re-created without the output appearing twice.
        self.summary = message
        self.output = output
