"""The status bar on every full page."""

from __future__ import annotations

from typing import Any

from django.apps import apps as django_apps
from django.http import HttpRequest
from django.urls import get_script_prefix
from django.utils.functional import SimpleLazyObject
from django.utils.translation import get_language

from jails.apps import runtime_state
from jails.fail2ban import Fail2banError
from jails.requests import (
    fleet_overviews_for_request,
    fleet_overviews_if_fetched,
    is_fleet_request,
    overview_for_request,
    overview_if_fetched,
    scopes_for_request,
)
from jails.roles import PERM_VIEW
from jails.services.health import connection_problem
from jails.state import RuntimeState


def status_bar_context(request: HttpRequest) -> dict[str, Any]:
    """fail2ban reachable or not, version, jails, bans and failures."""
    state = runtime_state()
    if is_fleet_request(request):
        return {"status_bar": fleet_status(request)}
    try:
        overview = overview_for_request(request, state)
    except Fail2banError as exc:
        problem = connection_problem(exc, agent=state.settings.fail2ban_agent)
        # The error itself is fail2ban's (or the client's) text, shown as it is.
        bar = {"ok": False, "problem": problem.label_shown, "error": str(exc)}
        return {"status_bar": bar}
    bar = {"ok": True, "overview": overview, "alerts": status_bar_alerts(state)}
    return {"status_bar": bar}


def fleet_status(request: HttpRequest) -> dict[str, Any]:
    """Several hosts: how many of those the user may view are up, and their bans in total.

    Each host is asked within the per-host deadline (in parallel), so a dead host costs
    the bar no more than that; the bar polls itself, so a host that comes back shows up.
    """
    state = runtime_state()
    outcomes = fleet_overviews_if_fetched(request)
    if outcomes is None:
        scopes = scopes_for_request(request, state, PERM_VIEW)
        outcomes = fleet_overviews_for_request(request, state, scopes, every_viewable=True)
    up = [outcome.value for outcome in outcomes if outcome.value is not None]
    return {
        "fleet": True,
        "hosts_up": len(up),
        "hosts_total": len(outcomes),
        "hosts_down": [outcome.name for outcome in outcomes if outcome.value is None],
        "jail_count": sum(overview.jail_count for overview in up),
        "currently_banned": sum(overview.currently_banned for overview in up),
        "alerts": status_bar_alerts(state),
    }


def status_bar_alerts(state: RuntimeState) -> tuple[tuple[str, str], ...]:
    """Warnings the domain apps put in the bar, as (text, link) pairs.

    Each app that has some defines ``status_bar_alerts()`` on its AppConfig (the blocklists:
    sources failing in a row), so the core imports no domain app, as with jails.jobs.
    They are database reads that every page and every poll of the bar would repeat (the
    blocklists' was about a tenth of a /jails/ request), so this process keeps them for at
    most the bar's own poll interval: an alert shows up no later than the bar's next poll
    would have shown it anyway. Per script prefix and language, which the texts and links
    depend on.
    """
    key = ("status-bar-alerts", get_script_prefix(), get_language())
    return state.pages.recent(key, _alerts_collect, max_age=state.settings.poll_seconds)


def _alerts_collect() -> tuple[tuple[str, str], ...]:
    alerts: list[tuple[str, str]] = []
    for app in django_apps.get_app_configs():
        hook = getattr(app, "status_bar_alerts", None)
        if hook is not None:
            alerts.extend(hook())
    return tuple(alerts)


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
    if is_fleet_request(request):
        fetched: object = fleet_overviews_if_fetched(request)
    else:
        fetched = overview_if_fetched(request)
    if fetched is None:
        return {"status_bar": {"deferred": True}, "poll_seconds": poll_seconds}
    return {
        "status_bar": SimpleLazyObject(lambda: status_bar_context(request)["status_bar"]),
        "poll_seconds": poll_seconds,
    }
