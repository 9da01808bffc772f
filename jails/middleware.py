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
from django.shortcuts import resolve_url
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers

from jails.apps import runtime_state
from jails.models import SiteSettings

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
    """Every typed fail2ban error is a page with its reason — never a 500.

    An unknown jail is a 404; fail2ban down or answering garbage a 503 (it may come back);
    an argument refused before sending a 400; any other refusal (CommandRejected,
    UnsupportedCommand, a failed reload...) a 502: the upstream fail2ban said no.
    HTMX requests get the page's partial, so a polling fragment shows the reason in place.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from django.shortcuts import render
        from django.utils.translation import gettext

        from jails.fail2ban import (
            AgentRefused,
            CommandRejected,
            Fail2banError,
            Fail2banUnreachable,
            InvalidArgument,
            ProtocolError,
            UnknownJail,
        )
        from jails.services.health import connection_problem

        if isinstance(exception, UnknownJail):
            return render(
                request, "jails/jail_missing.html", {"jail_name": exception.jail}, status=404
            )
        htmx = getattr(request, "htmx", False)
        snap = runtime_state().snapshot
        context: dict[str, object] = {
            "socket_path": snap.jail_service.client.location,
            "reason": str(exception),
        }
        if isinstance(exception, Fail2banError):
            # Agent mode: say whether the agent or fail2ban behind it is the one down.
            problem = connection_problem(exception, agent=snap.settings.fail2ban_agent)
            context.update(problem=problem.label_shown, title=problem.title, advice=problem.advice)
        if isinstance(exception, Fail2banUnreachable | ProtocolError | AgentRefused):
            template = "jails/fail2ban_unavailable.html"
            if htmx:
                template += "#fail2ban-unavailable"
            return render(request, template, context, status=503)
        if isinstance(exception, Fail2banError):
            if isinstance(exception, CommandRejected):
                context["command"] = " ".join(exception.command)
            status = 400 if isinstance(exception, InvalidArgument) else 502
            context["title"] = (
                gettext("Refused before anything was sent to fail2ban")
                if status == 400
                else gettext("fail2ban refused the request")
            )
            template = "jails/fail2ban_error.html"
            if htmx:
                template += "#fail2ban-error"
            return render(request, template, context, status=status)
        return None


class TrustedProxyMiddleware:
    """Behind a reverse proxy, the client's address and scheme come from X-Forwarded-*.

    Only when the connection comes from one of JAILADMIN_TRUSTED_PROXIES: then REMOTE_ADDR
    becomes the right-most X-Forwarded-For address that is not itself a trusted proxy, so
    the audit log, the login lockout and the "your own address" check all see the real
    client, and X-Forwarded-Proto says whether the client used HTTPS (what
    SecurityMiddleware's redirect, secure cookies and CSRF's origin check rely on).
    Anyone else's X-Forwarded-* headers are ignored (they are trivially forged), which is
    why settings.py leaves Django's SECURE_PROXY_SSL_HEADER unset: it would believe
    X-Forwarded-Proto from every client.
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
        if not self.proxies or not self._trusted(request.META.get("REMOTE_ADDR", "")):
            return self.get_response(request)
        # Like Django's SECURE_PROXY_SSL_HEADER: the left-most value, set by our proxy.
        proto = request.META.get("HTTP_X_FORWARDED_PROTO", "").split(",", 1)[0].strip()
        if proto.lower() in ("http", "https"):
            # request.META is the WSGI environ: the scheme Django reports comes from here.
            request.META["wsgi.url_scheme"] = proto.lower()
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            for hop in reversed(forwarded.split(",")):
                hop = hop.strip()
                if self._trusted(hop):
                    continue
                # A garbage hop keeps the proxy's own address.
                with contextlib.suppress(ValueError):
                    request.META["REMOTE_ADDR"] = str(ipaddress.ip_address(hop))
                break
        return self.get_response(request)


# Views where a long list is the point: the bulk ban (a pasted or uploaded list, and its
# confirmation step posting the held-back lines again). Later: the blocklist upload.
LARGE_LIST_VIEWS = frozenset({"jails:jail-bulk-ban"})


class LargeListBodyMiddleware:
    """Request bodies above Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) only where a long
    list is the point, and only for users who may ban (up to JAILADMIN_LARGE_LIST_MAX_BYTES).

    Everyone else, the anonymous /login/ included, keeps Django's limit: a larger body is a
    400. Django reads the limit from the settings while it parses, and changing them
    per request would race between threads; so for the allowed requests this reads the
    body itself (bounded by the larger limit) before anything touches request.POST, and
    parses a multipart body with MultipartFormHandler (Django's parser would apply its
    site-wide limit to the pasted list, a form field). It runs after AuthenticationMiddleware
    and, like every middleware's request phase, before CsrfViewMiddleware reads the POST.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            length = _content_length(request)
            if (
                settings.DATA_UPLOAD_MAX_MEMORY_SIZE is not None
                and settings.DATA_UPLOAD_MAX_MEMORY_SIZE
                < length
                <= settings.JAILADMIN_LARGE_LIST_MAX_BYTES
                and _large_list_allowed(request)
            ):
                _read_large_body(request, length)
        return self.get_response(request)


def _content_length(request: HttpRequest) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _large_list_allowed(request: HttpRequest) -> bool:
    from django.urls import Resolver404, resolve

    from jails.roles import PERM_OPERATE

    try:
        view_name = resolve(request.path_info).view_name
    except Resolver404:
        return False
    user = request.user
    return view_name in LARGE_LIST_VIEWS and user.is_authenticated and user.has_perm(PERM_OPERATE)


def _read_large_body(request: HttpRequest, length: int) -> None:
    from io import BytesIO

    from django.http import UnreadablePostError

    try:
        body = request.read(length)
    except OSError as exc:
        raise UnreadablePostError(*exc.args) from exc
    # What HttpRequest.body does after its size check: Django parses from these from now
    # on (URL-encoded forms directly, multipart ones through the upload handlers).
    request._body = body
    request._stream = BytesIO(body)
    if request.content_type == "multipart/form-data":
        from jails.uploads import MultipartFormHandler

        # The setter, not insert(): typed as a list to assign, and it refuses (as insert on
        # the frozen list would) once the body has been parsed.
        request.upload_handlers = [MultipartFormHandler(request), *request.upload_handlers]


class SetupRequiredMiddleware:
    """Until the first-run setup is complete every URL redirects to /setup/.

    Once the database says setup is complete, the state remembers it and this middleware
    never queries again in this process.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        state = runtime_state()
        if state.setup_pending and not _always_open(request):
            if SiteSettings.objects.filter(singleton=1, setup_complete=True).exists():
                # Completed by another process: its watcher applies the settings shortly.
                state.setup_pending = False
            else:
                return HttpResponseRedirect(reverse("jails:setup"))
        return self.get_response(request)


def _always_open(request: HttpRequest) -> bool:
    """What works before the setup: the wizard itself, the health check, static files."""
    # request.path carries JAILADMIN_URL_PREFIX like every reverse()d URL and STATIC_URL.
    path = request.path
    # /metrics too: Prometheus must not be sent to the wizard (it has its own token).
    # The language selector too: the wizard's page has it (it needs no session there).
    open_paths = (
        reverse("jails:healthz"),
        reverse("jails:metrics:scrape"),
        reverse("jails:language"),
    )
    return path in open_paths or path.startswith((reverse("jails:setup"), settings.STATIC_URL))


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
        # Resolved here, not at import: they carry JAILADMIN_URL_PREFIX.
        login_url = resolve_url(settings.LOGIN_URL)
        if not location.startswith((login_url, reverse("admin:login"), reverse("jails:setup"))):
            return response
        # `next` would be the fragment's URL: return to the page the user is on instead.
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        if location.startswith(login_url) and current.path.startswith("/"):
            target = current.path + (f"?{current.query}" if current.query else "")
            if not target.startswith("//"):
                location = f"{login_url}?{urlencode({'next': target})}"
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
