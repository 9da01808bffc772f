"""The status bar on every full page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from jails.apps import runtime_state
from jails.fail2ban import Fail2banError


def status_bar_context(request: HttpRequest) -> dict[str, Any]:
    """fail2ban reachable or not, version, jails, bans and failures."""
    from jails.views.common import overview_for_request

    state = runtime_state()
    try:
        overview = overview_for_request(request, state)
    except Fail2banError as exc:
        return {"status_bar": {"ok": False, "error": str(exc)}}
    return {"status_bar": {"ok": True, "overview": overview}}


def status_bar(request: HttpRequest) -> dict[str, Any]:
    """Lazy: fail2ban is asked only if the template shows the status bar (admin pages don't)."""
    user = getattr(request, "user", None)
    if getattr(request, "htmx", False) or user is None or not user.is_authenticated:
        return {}
    return {
        "status_bar": SimpleLazyObject(lambda: status_bar_context(request)["status_bar"]),
        "poll_seconds": runtime_state().settings.poll_seconds,
    }
