"""The health check behind /healthz, and how the pages name a connection problem.

In agent mode two things can be down: the agent itself (AgentUnreachable, a subclass of
Fail2banUnreachable so every page that handles one handles both) or fail2ban behind a
running agent (the agent answers with Fail2banUnreachable). An operator fixes them in
different places, so the status bar, the error pages and /healthz say which one it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext, gettext_noop

from jails.fail2ban import (
    AgentRefused,
    AgentUnreachable,
    Fail2banError,
    Fail2banUnreachable,
    ProtocolError,
)
from jails.sessions import SessionStorageUnavailable
from jails.state import RuntimeState

# English on /healthz and in notifications (machines and rules read them); pages show them
# through label_shown(), translated (gettext_noop only marks them for the catalogue).
AGENT_UNREACHABLE = gettext_noop("agent unreachable")
FAIL2BAN_UNREACHABLE = gettext_noop("fail2ban unreachable")
AGENT_REFUSED = gettext_noop("agent refused the request")
FAIL2BAN_GARBLED = gettext_noop("fail2ban answered garbage")
FAIL2BAN_ERROR = gettext_noop("fail2ban error")
SESSIONS_UNAVAILABLE = gettext_noop("session storage unavailable")


@dataclass(frozen=True)
class ConnectionProblem:
    """A connection error, named for an operator: what is down and where to look."""

    label: str  # one of the constants above: short, for the status bar and /healthz
    title: str  # title and advice: translated, for a page
    advice: str

    @property
    def label_shown(self) -> str:
        """The label in the request's language (the status bar, the error pages)."""
        return gettext(self.label)


def connection_problem(exc: Fail2banError, *, agent: str) -> ConnectionProblem:
    """Name `exc` for an operator; `agent` is the connection setting ("" = direct socket)."""
    if isinstance(exc, AgentUnreachable):
        return ConnectionProblem(
            AGENT_UNREACHABLE,
            gettext("The jailadmin agent is not reachable at %(address)s")
            % {"address": exc.address},
            gettext(
                "The site talks to fail2ban only through the agent. Check that the agent runs "
                "(systemctl status jailadmin-agent.socket) and that this site's user is in the "
                "group of its socket. This page works again as soon as the agent answers."
            ),
        )
    if isinstance(exc, AgentRefused):
        return ConnectionProblem(
            AGENT_REFUSED,
            gettext("The jailadmin agent refused the request"),
            gettext(
                "The agent answers but would not do this. Are the site and the agent the same "
                "version? Rebuild the agent with `manage.py agent_bundle` after an upgrade."
            ),
        )
    if isinstance(exc, Fail2banUnreachable):
        return ConnectionProblem(
            FAIL2BAN_UNREACHABLE,
            gettext("fail2ban is not reachable behind the agent at %(agent)s") % {"agent": agent}
            if agent
            else gettext("fail2ban is not reachable at %(socket)s") % {"socket": exc.socket_path},
            gettext(
                "The agent is running, but fail2ban does not answer on its socket: check "
                "that fail2ban runs (systemctl status fail2ban). This page works again as "
                "soon as fail2ban answers."
            )
            if agent
            else gettext(
                "Check that fail2ban is running and that this site may use its socket. "
                "This page works again as soon as fail2ban answers."
            ),
        )
    if isinstance(exc, ProtocolError):
        return ConnectionProblem(
            FAIL2BAN_GARBLED,
            gettext("fail2ban's answer could not be read"),
            gettext(
                "Something answered, but not like fail2ban (through the agent). "
                "Check that the socket setting points at fail2ban."
            )
            if agent
            else gettext(
                "Something answered, but not like fail2ban. "
                "Check that the socket setting points at fail2ban."
            ),
        )
    # The advice is fail2ban's own refusal, passed through as it is.
    return ConnectionProblem(FAIL2BAN_ERROR, gettext("fail2ban refused the request"), str(exc))


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
