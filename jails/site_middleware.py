"""First-run redirect and the display time zone, both from the runtime state."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone

from jails.apps import runtime_state
from jails.models import SiteSettings

SETUP_PATH = "/setup/"
HEALTHZ_PATH = "/healthz"


class SetupRequiredMiddleware:
    """Until the first-run setup is complete every URL redirects to /setup/.

    Once the database says setup is complete, the state remembers it and this middleware
    never queries again in this process.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        state = runtime_state()
        if state.setup_pending and not _always_open(request.path_info):
            if SiteSettings.objects.filter(singleton=1, setup_complete=True).exists():
                # Completed by another process: its watcher applies the settings shortly.
                state.setup_pending = False
            else:
                response = HttpResponseRedirect(SETUP_PATH)
                if getattr(request, "htmx", False) or request.headers.get("HX-Request"):
                    response["HX-Redirect"] = SETUP_PATH
                return response
        return self.get_response(request)


def _always_open(path: str) -> bool:
    """What works before the setup: the wizard itself, the health check, static files."""
    return path == HEALTHZ_PATH or path.startswith((SETUP_PATH, settings.STATIC_URL))


class DisplayTimeZoneMiddleware:
    """Pages show times in the display time zone from the runtime settings."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            zone = ZoneInfo(runtime_state().settings.display_time_zone)
        except (ValueError, KeyError):  # validated on save; a bad seed falls back to UTC
            zone = ZoneInfo("UTC")
        with timezone.override(zone):
            return self.get_response(request)
