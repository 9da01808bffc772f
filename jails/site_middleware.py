"""First-run redirect and the display time zone, both from the runtime state."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.cache import patch_vary_headers

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
                return HttpResponseRedirect(SETUP_PATH)
        return self.get_response(request)


def _always_open(path: str) -> bool:
    """What works before the setup: the wizard itself, the health check, static files."""
    return path == HEALTHZ_PATH or path.startswith((SETUP_PATH, settings.STATIC_URL))


class HtmxAuthRedirectMiddleware:
    """An HTMX request sent to the login page or the wizard reloads the whole page there.

    The browser follows a 302 inside the XMLHttpRequest, so a polling fragment whose session
    ran out would get the login form swapped into it. HTMX requests get a 204 with
    HX-Redirect instead; a normal request keeps the plain redirect.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.headers.get("HX-Request") != "true" or response.status_code not in (301, 302):
            return response
        location = response.get("Location", "")
        if not location.startswith((settings.LOGIN_URL, "/admin/login/", SETUP_PATH)):
            return response
        # `next` would be the fragment's URL: return to the page the user is on instead.
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        if location.startswith(settings.LOGIN_URL) and current.path.startswith("/"):
            target = current.path + (f"?{current.query}" if current.query else "")
            if not target.startswith("//"):
                location = f"{settings.LOGIN_URL}?{urlencode({'next': target})}"
        redirect = HttpResponse(status=204)
        redirect["HX-Redirect"] = location
        patch_vary_headers(redirect, ("HX-Request",))
        return redirect


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
