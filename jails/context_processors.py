"""The status bar on every full page."""

from __future__ import annotations

from typing import Any

from django.apps import apps as django_apps
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from jails.apps import runtime_state
from jails.fail2ban import Fail2banError
from jails.requests import overview_for_request, overview_if_fetched
from jails.services.health import connection_problem


def status_bar_context(request: HttpRequest) -> dict[str, Any]:
    """fail2ban reachable or not, version, jails, bans and failures."""
    state = runtime_state()
    try:
        overview = overview_for_request(request, state)
    except Fail2banError as exc:
        problem = connection_problem(exc, agent=state.settings.fail2ban_agent)
        return {"status_bar": {"ok": False, "problem": problem.label, "error": str(exc)}}
    return {"status_bar": {"ok": True, "overview": overview, "alerts": status_bar_alerts()}}


def status_bar_alerts() -> list[tuple[str, str]]:
    """Warnings the domain apps put in the bar, as (text, link) pairs.

    Each app that has some defines ``status_bar_alerts()`` on its AppConfig (the blocklists:
    sources failing in a row), so the core imports no domain app, as with jails.jobs.
    """
    alerts: list[tuple[str, str]] = []
    for app in django_apps.get_app_configs():
        hook = getattr(app, "status_bar_alerts", None)
        if hook is not None:
            alerts.extend(hook())
    return alerts


def status_bar(request: HttpRequest) -> dict[str, Any]:
    """Inline when the view already has the overview, else deferred to /status-bar/.

    On fail2ban 1.0.2 the overview is `status` plus `status J short` per jail: with 50
    jails that was most of a jail page's time and most of the dashboard's fail2ban
    traffic, on every page load, for a bar that polls itself every few seconds anyway.
    So a page whose view did not need the overview ships the bar empty, and it loads
    itself at once (`hx-trigger="load"`). Admin pages don't show the bar at all.
    """
    user = getattr(request, "user", None)
    if getattr(request, "htmx", False) or user is None or not user.is_authenticated:
        return {}
    poll_seconds = runtime_state().settings.poll_seconds
    if overview_if_fetched(request) is None:
        return {"status_bar": {"deferred": True}, "poll_seconds": poll_seconds}
    return {
        "status_bar": SimpleLazyObject(lambda: status_bar_context(request)["status_bar"]),
        "poll_seconds": poll_seconds,
    }
