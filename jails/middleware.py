"""Site-wide request handling: the real client behind a trusted proxy, the Content Security
Policy, the first-run redirect to /setup/, HTMX requests sent to the login page or the
wizard, the display time zone, and fail2ban errors as pages."""

from __future__ import annotations

import contextlib
import ipaddress
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

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    """No inline scripts anywhere: htmx is vendored and configured without inline styles."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        return response


class Fail2banErrorMiddleware:
    """fail2ban down or confused is a 503 page, an unknown jail a 404 — never a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from django.shortcuts import render

        from jails.fail2ban import Fail2banUnreachable, ProtocolError, UnknownJail

        if isinstance(exception, UnknownJail):
            return render(
                request, "jails/jail_missing.html", {"jail_name": exception.jail}, status=404
            )
        if isinstance(exception, Fail2banUnreachable | ProtocolError):
            socket_path = runtime_state().settings.fail2ban_socket
            context = {"socket_path": socket_path, "reason": str(exception)}
            template = "jails/fail2ban_unavailable.html"
            if getattr(request, "htmx", False):
                template += "#fail2ban-unavailable"
            return render(request, template, context, status=503)
        return None


class TrustedProxyMiddleware:
    """Behind a reverse proxy, the client's address comes from X-Forwarded-For.

    Only when the connection comes from one of JAILADMIN_TRUSTED_PROXIES: then REMOTE_ADDR
    becomes the right-most X-Forwarded-For address that is not itself a trusted proxy, so
    the audit log, the login lockout and the "your own address" check all see the real
    client. Anyone else's X-Forwarded-For is ignored (it is trivially forged).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.proxies = tuple(
            ipaddress.ip_network(entry, strict=False)
            for entry in settings.JAILADMIN_TRUSTED_PROXIES
        )

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.proxies)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if self.proxies and forwarded and self._trusted(request.META.get("REMOTE_ADDR", "")):
            for hop in reversed(forwarded.split(",")):
                hop = hop.strip()
                if self._trusted(hop):
                    continue
                # A garbage hop keeps the proxy's own address.
                with contextlib.suppress(ValueError):
                    request.META["REMOTE_ADDR"] = str(ipaddress.ip_address(hop))
                break
        return self.get_response(request)


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
