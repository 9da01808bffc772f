"""Helpers shared by the views."""

from __future__ import annotations

from django.http import HttpRequest

from jails.services import jails as jail_service
from jails.services.jails import Overview
from jails.state import RuntimeState

_OVERVIEW_ATTR = "_jailadmin_overview"


def overview_for_request(request: HttpRequest, state: RuntimeState) -> Overview:
    """The server overview, fetched at most once per request (view and status bar share it)."""
    cached = getattr(request, _OVERVIEW_ATTR, None)
    if cached is None:
        cached = jail_service.overview_get(state)
        setattr(request, _OVERVIEW_ATTR, cached)
    return cached


def page_number(request: HttpRequest) -> int:
    """The requested page number; anything unreadable is page 1."""
    try:
        return max(int(request.GET.get("page", "1")), 1)
    except ValueError:
        return 1
