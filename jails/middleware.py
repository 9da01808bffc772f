"""Site-wide request handling: Content Security Policy, fail2ban errors as pages."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

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

        from jails.apps import runtime_state
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
        from django.conf import settings

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
