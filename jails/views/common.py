"""Helpers shared by the views (request helpers the admin needs too: jails.requests)."""

from __future__ import annotations

from django.http import HttpRequest


def page_number(request: HttpRequest) -> int:
    """The requested page number; anything unreadable is page 1."""
    try:
        return max(int(request.GET.get("page", "1")), 1)
    except ValueError:
        return 1
