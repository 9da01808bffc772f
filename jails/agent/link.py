"""What the service layer talks to: one fail2ban host, directly or through the host agent.

A HostLink is everything the site needs from the fail2ban host: its allow-listed commands,
its database rows, a reload and a handshake. DirectLink does it all in this process (the
socket, the database file and fail2ban-client: the demo and root installs); AgentLink
(jails.agent.client) asks the agent, the only part that runs as root. The services see
the same interface and the same typed errors (jails.fail2ban.errors) either way.

Nothing Django in here: standard library and jails.fail2ban only.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from jails.fail2ban import DatabaseUnavailable, Fail2banClient, InvalidArgument

from . import configfiles, operations
from .logview import LogTail, log_tail
from .operations import BanRow, HostConfig
from .regex import RegexReport, RegexRequest, regex_test_run

# What a link can do for the site; the agent reports its own list in the handshake.
OPERATIONS: tuple[str, ...] = (
    "fail2ban",
    "database_path",
    "database_bans",
    "database_ban",
    "reload",
    "health",
    # The filter tester and the log viewer (jails.agent.regex, jails.agent.logview).
    "regex_test",
    "log_tail",
    # fail2ban's configuration files (jails.agent.configfiles): read, one file, the safe change.
    "config_read",
    "config_file",
    "config_apply",
    "config_definition",
)


@dataclass(frozen=True)
class HostInfo:
    """The handshake: who answers (agent_version None: this process) and for which fail2ban."""

    agent_version: str | None
    fail2ban_version: str | None
    operations: tuple[str, ...]


class CommandChannel(Protocol):
    """One open channel to fail2ban: commands go back to back (jails.fail2ban.Connection)."""

    def send(self, *command: str) -> Any: ...

    def send_batch(self, commands: Sequence[Sequence[str]]) -> list[Any]: ...

    def send_batch_outcomes(self, commands: Sequence[Sequence[str]]) -> list[Any]:
        """send_batch(), but each refusal (a Fail2banError) comes back in its command's place."""
        ...


class HostLink(Protocol):
    """One fail2ban host as the service layer sees it."""

    @property
    def location(self) -> str:
        """Where the host is, for messages: the socket path, or "agent at unix:/run/…"."""
        ...

    def send(self, *command: str) -> Any: ...

    def connection(self) -> AbstractContextManager[CommandChannel]: ...

    def endpoint_identity(self) -> Hashable | None:
        """Without a round trip: changes when fail2ban restarts (the capability cache's key)."""
        ...

    def database_path(self) -> str | None: ...

    def database_bans(self, *, after: int, limit: int) -> list[BanRow]: ...

    def database_ban(self, *, rowid: int) -> tuple[str, str, int] | None: ...

    def reload(self, *, jail: str | None) -> str: ...

    def regex_test(self, request: RegexRequest) -> RegexReport: ...

    def log_tail(
        self, *, lines: int, level: str | None, search: str | None, cursor: str | None
    ) -> LogTail: ...

    def config_read(self, *, if_changed_from: str | None) -> dict[str, Any]: ...

    def config_file(self, *, path: str) -> dict[str, Any]: ...

    # The protocol's default is never used (its body never runs: the links have their own).
    def config_apply(
        self,
        *,
        changes: list[dict[str, Any]],
        dry_run: bool = False,  # pragma: no mutate
    ) -> dict[str, Any]: ...

    def config_definition(self, *, directory: str, name: str) -> dict[str, Any]: ...

    def hello(self) -> HostInfo: ...

    def close(self) -> None:
        """Let go of idle connections now (a link built only for a check)."""
        ...


class DirectLink(Fail2banClient):
    """The host in this process: fail2ban's socket, its database file, its fail2ban-client.

    A Fail2banClient, so everything that takes one still works with it.
    """

    def __init__(self, config: HostConfig) -> None:
        super().__init__(config.socket, timeout=config.timeout)
        self.config = config

    @property
    def location(self) -> str:
        return self.socket_path

    def database_path(self) -> str | None:
        return operations.database_path(self)

    def _database_required(self) -> str:
        path = self.database_path()
        if path is None:
            raise DatabaseUnavailable("fail2ban keeps no database (dbfile is :memory: or unset)")
        return path

    def database_bans(self, *, after: int, limit: int) -> list[BanRow]:
        # The path fail2ban reports, asked each time: the same answer the agent would give.
        return operations.database_bans(self._database_required(), after=after, limit=limit)

    def database_ban(self, *, rowid: int) -> tuple[str, str, int] | None:
        return operations.database_ban(self._database_required(), rowid=rowid)

    def reload(self, *, jail: str | None) -> str:
        return operations.reload(self.config, jail=jail)

    def regex_test(self, request: RegexRequest) -> RegexReport:
        return regex_test_run(self.config, self.send, request)

    def log_tail(
        self, *, lines: int, level: str | None, search: str | None, cursor: str | None
    ) -> LogTail:
        return log_tail(self.send, lines=lines, level=level, search=search, cursor=cursor)

    def config_read(self, *, if_changed_from: str | None) -> dict[str, Any]:
        return configfiles.config_read(self.config, if_changed_from=if_changed_from)

    def config_file(self, *, path: str) -> dict[str, Any]:
        return configfiles.file_read(self.config, path=path)

    def config_apply(
        self, *, changes: list[dict[str, Any]], dry_run: bool = False
    ) -> dict[str, Any]:
        return configfiles.config_apply(self.config, self, changes=changes, dry_run=dry_run)

    def config_definition(self, *, directory: str, name: str) -> dict[str, Any]:
        return configfiles.definition_read(self.config, directory=directory, name=name)

    def close(self) -> None:
        pass  # every command opens and closes its own connection: nothing is kept

    def hello(self) -> HostInfo:
        version = self.send("version")
        return HostInfo(
            agent_version=None,
            fail2ban_version=None if version is None else str(version),
            operations=OPERATIONS,
        )


MAX_UNIX_PATH = 107  # bytes: sun_path holds 108 with its terminating NUL


def agent_address_check(address: str) -> str:
    """The agent's address, checked: "" (no agent) or "unix:/absolute/path/agent.sock"."""
    address = address.strip()
    if not address:
        return ""
    path = address.removeprefix("unix:")
    if path == address or not path.startswith("/"):
        raise InvalidArgument(
            f"the agent address must look like unix:/run/jailadmin/agent.sock, not {address!r}"
        )
    if len(path.encode()) > MAX_UNIX_PATH or "\x00" in path:
        raise InvalidArgument(f"the agent's socket path is longer than {MAX_UNIX_PATH} bytes")
    return address


def link_build(*, agent: str, config: HostConfig) -> HostLink:
    """The link for a connection setting: "" talks to the socket here, else the agent there."""
    if not agent:
        return DirectLink(config)
    # Imported here: jails.agent.client imports this module (HostInfo).
    from .client import AgentLink

    return AgentLink(agent, timeout=config.timeout, reload_timeout=config.reload_timeout)
