"""The health check behind /healthz, and how the pages name a connection problem.

In agent mode two things can be down: the agent itself (AgentUnreachable, a subclass of
Fail2banUnreachable so every page that handles one handles both) or fail2ban behind a
running agent (the agent answers with Fail2banUnreachable). An operator fixes them in
different places, so the status bar, the error pages and /healthz say which one it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from jails.fail2ban import (
    AgentRefused,
    AgentUnreachable,
    Fail2banError,
    Fail2banUnreachable,
    ProtocolError,
)
from jails.sessions import SessionStorageUnavailable
from jails.state import RuntimeState

AGENT_UNREACHABLE = "agent unreachable"
FAIL2BAN_UNREACHABLE = "fail2ban unreachable"
AGENT_REFUSED = "agent refused the request"
FAIL2BAN_GARBLED = "fail2ban answered garbage"
FAIL2BAN_ERROR = "fail2ban error"
SESSIONS_UNAVAILABLE = "session storage unavailable"


@dataclass(frozen=True)
class ConnectionProblem:
    """A connection error, named for an operator: what is down and where to look."""

    label: str  # one of the constants above: short, for the status bar and /healthz
    title: str
    advice: str


def connection_problem(exc: Fail2banError, *, agent: str) -> ConnectionProblem:
    """Name `exc` for an operator; `agent` is the connection setting ("" = direct socket)."""
    if isinstance(exc, AgentUnreachable):
        return ConnectionProblem(
            AGENT_UNREACHABLE,
            f"The jailadmin agent is not reachable at {exc.address}",
            "The site talks to fail2ban only through the agent. Check that the agent runs "
            "(systemctl status jailadmin-agent.socket) and that this site's user is in the "
            "group of its socket. This page works again as soon as the agent answers.",
        )
    if isinstance(exc, AgentRefused):
        return ConnectionProblem(
            AGENT_REFUSED,
            "The jailadmin agent refused the request",
            "The agent answers but would not do this. Are the site and the agent the same "
            "version? Rebuild the agent with `manage.py agent_bundle` after an upgrade.",
        )
    if isinstance(exc, Fail2banUnreachable):
        return ConnectionProblem(
            FAIL2BAN_UNREACHABLE,
            f"fail2ban is not reachable behind the agent at {agent}"
            if agent
            else f"fail2ban is not reachable at {exc.socket_path}",
            (
                "The agent is running, but fail2ban does not answer on its socket: check "
                "that fail2ban runs (systemctl status fail2ban)."
                if agent
                else "Check that fail2ban is running and that this site may use its socket."
            )
            + " This page works again as soon as fail2ban answers.",
        )
    if isinstance(exc, ProtocolError):
        return ConnectionProblem(
            FAIL2BAN_GARBLED,
            "fail2ban's answer could not be read",
            "Something answered, but not like fail2ban"
            + (" (through the agent)." if agent else ".")
            + " Check that the socket setting points at fail2ban.",
        )
    return ConnectionProblem(FAIL2BAN_ERROR, "fail2ban refused the request", str(exc))


def health_problem(state: RuntimeState) -> str | None:
    """None when fail2ban answers `ping` and the session storage answers; else a short label
    (never a path or a reason: /healthz is public). Never raises for either."""
    snap = state.snapshot
    try:
        snap.jail_service.client.send("ping")
    except Fail2banError as exc:
        return connection_problem(exc, agent=snap.settings.fail2ban_agent).label
    try:
        snap.session_cache.check()
    except SessionStorageUnavailable:
        return SESSIONS_UNAVAILABLE
    return None


def health_check(state: RuntimeState) -> bool:
    """True when fail2ban answers `ping` and the session storage answers."""
    return health_problem(state) is None
