"""How every action on a jail's page answers: HTMX gets the changed parts, a browser the page.

An HTMX form posts with ``hx-swap="none"`` and gets back only out-of-band fragments (the
message, the confirmation panel, counters, settings, ignore list and ban table), so the
acted-on row disappears and the counters change in place. Without JavaScript the same
POST redirects back to the page with a message, or shows the page with the confirmation
step or the error.

The server page's answer (`server_page`) and the decorator every jail action wears
(`jail_action`) live here too: both the ban and the control views use them, and neither
of those modules may import the other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy
from django.views.decorators.http import require_POST

from jails.apps import runtime_state
from jails.fail2ban import InvalidArgument, UnknownJail
from jails.fail2ban.validation import validate_jail_name
from jails.hosts.services.fleet import HostScope
from jails.requests import HtmxHttpRequest, host_for_request, is_fleet_request
from jails.roles import PERM_OPERATE
from jails.services import control as control_service
from jails.services import jails as jail_service
from jails.state import RuntimeState

TEMPLATE = "jails/jail_detail.html"
OOB_PARTIALS = (
    "action-message",
    "action-confirm",
    "jail-counters",
    "jail-settings",
    "ban-form",
    "jail-ignore",
    "jail-bans",
)
MAX_QUERY = 64
MAX_FIELD = 200  # characters of one posted address or phrase that are looked at

JailView = Callable[..., HttpResponse]

# The per-jail routes: `jails:jail-<route>` (/jails/<name>/...) and, for a host of the fleet,
# `jails:host-jail-<route>` (/hosts/<host>/jails/<name>/...).
JAIL_ROUTES = ("detail", "ban", "bulk-ban", "unban", "unban-all", "ignore", "tune", "control")


@dataclass(frozen=True)
class JailAt:
    """The jail a page or action is about: its host's scoped state and how its URLs look.

    `host` is the host named in the URL; None for the pre-fleet URLs (/jails/<name>/...),
    which mean the local host, so a single-host site keeps its URLs and links.
    """

    state: RuntimeState
    name: str
    host: str | None = None

    def url(self, route: str = "detail") -> str:
        if self.host is None:
            return reverse(f"jails:jail-{route}", args=[self.name])
        return reverse(f"jails:host-jail-{route}", args=[self.host, self.name])

    def urls(self) -> dict[str, str]:
        """Every action URL of the jail, reversed once per page (the template reads them)."""
        return {route.replace("-", "_"): self.url(route) for route in JAIL_ROUTES}

    def list_url(self) -> str:
        url = reverse("jails:jail-list")
        return f"{url}?{urlencode({'host': self.host})}" if self.host else url


def jail_at(request: HtmxHttpRequest, name: str, host: str | None, perm: str) -> JailAt:
    """The jail in the URL on its host: 404 for a bad name or host, 403 without `perm` there."""
    try:
        validate_jail_name(name)
    except InvalidArgument:
        raise Http404("no such jail") from None
    scope = host_for_request(request, runtime_state(), host, perm)
    return JailAt(state=scope.state, name=name, host=host)


def jail_missing_response(request: HtmxHttpRequest, at: JailAt) -> HttpResponse:
    """fail2ban on that host has no such jail (stopped or removed): 404, with Start."""
    context = {
        "jail_name": at.name,
        "host_name": at.host,
        "start_url": at.url("control"),
        "list_url": at.list_url(),
    }
    return render(request, "jails/jail_missing.html", context, status=404)


@dataclass
class Confirmation:
    """A second step: what will happen, and the form that does it (with confirm=yes)."""

    title: str
    url: str
    fields: list[tuple[str, str]]
    button: str
    details: list[str] = field(default_factory=list)
    danger: bool = True
    cancel: str = ""  # where "Cancel" goes (default: the page the form is on)
    htmx: bool = True  # posted with hx-post (pages that answer with OOB fragments)


@dataclass
class Outcome:
    """What an action has to say: a message, a pending confirmation, form errors."""

    message: str = ""
    level: str = "success"
    confirm: Confirmation | None = None
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    # An action on several hosts: one line per host (shown on the page, not as a message).
    results: list[HostResult] = field(default_factory=list)

    @property
    def shows_form(self) -> bool:
        return self.confirm is not None or bool(self.errors) or bool(self.results)


@dataclass(frozen=True)
class HostResult:
    """What an action did on one host: done, held back for confirmation, or why not."""

    host: str
    status: str  # "ok", "info" (nothing to do), "held back", "error", "unreachable", ...
    message: str

    @property
    def status_label(self) -> str:
        """The status as the page says it (`status` itself is a value: the CSS class)."""
        return str(HOST_STATUS_LABELS.get(self.status, self.status))


HOST_STATUS_LABELS = {
    "ok": pgettext_lazy("host result", "ok"),
    "info": pgettext_lazy("host result", "info"),
    "held back": pgettext_lazy("host result", "held back"),
    "error": pgettext_lazy("host result", "error"),
    "unreachable": pgettext_lazy("host result", "unreachable"),
    "not permitted": pgettext_lazy("host result", "not permitted"),
}


def list_state(request: HtmxHttpRequest) -> tuple[str, int]:
    """The ban table's search text and page, carried through the action's form."""
    data = request.POST if request.method == "POST" else request.GET
    query = data.get("q", "").strip()[:MAX_QUERY]
    try:
        page = max(int(data.get("page", "1")), 1)
    except ValueError:
        page = 1
    return query, page


def list_fields(request: HtmxHttpRequest) -> list[tuple[str, str]]:
    """Hidden fields that keep the ban table's search and page through a confirmation."""
    query, page = list_state(request)
    return [("q", query), ("page", str(page))]


def jail_url(at: JailAt, request: HtmxHttpRequest | None = None) -> str:
    url = at.url()
    if request is None:
        return url
    query, page = list_state(request)
    params = {k: v for k, v in (("q", query), ("page", str(page))) if v and v != "1"}
    return f"{url}?{urlencode(params)}" if params else url


def jail_page_context(
    request: HtmxHttpRequest, at: JailAt, outcome: Outcome, *, query: str, page_number: int
) -> dict[str, Any]:
    """The jail page's context (the page view and every action's answer build it here)."""
    state = at.state
    detail, bans = jail_service.jail_page_get(state, name=at.name, search=query)
    page = Paginator(bans, state.settings.page_size).get_page(page_number)
    return {
        "jail": detail,
        "counters": detail.summary,
        "page": page,
        "query": query,
        "now": timezone.now(),
        "capabilities": jail_service.capabilities_get(state),
        "poll_seconds": state.settings.poll_seconds,
        "outcome": outcome,
        "jail_urls": at.urls(),
        "host_name": at.host,
        "list_url": at.list_url(),
    }


def jail_action_response(request: HtmxHttpRequest, at: JailAt, outcome: Outcome) -> HttpResponse:
    """Answer a jail-page action: OOB fragments for HTMX, else redirect or the page itself."""
    if not request.htmx and not outcome.shows_form:
        if outcome.message:
            messages.add_message(request, _LEVELS[outcome.level], outcome.message)
        return HttpResponseRedirect(jail_url(at, request))
    if outcome.confirm is not None and not outcome.confirm.cancel:
        outcome.confirm.cancel = jail_url(at, request)
    query, page_number = list_state(request)
    context = jail_page_context(request, at, outcome, query=query, page_number=page_number)
    if not request.htmx:
        return render(request, TEMPLATE, context)
    context["oob"] = True
    body = "".join(
        render_to_string(f"{TEMPLATE}#{partial}", context, request) for partial in OOB_PARTIALS
    )
    return HttpResponse(body)


def redirect_with_message(
    request: HtmxHttpRequest, url: str, message: str, *, level: str = "success"
) -> HttpResponse:
    """Go to `url` with a message; HTMX follows the HX-Redirect header."""
    messages.add_message(request, _LEVELS[level], message)
    if request.htmx:
        response = HttpResponse()
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url)


_LEVELS = {
    "success": messages.SUCCESS,
    "info": messages.INFO,
    "warning": messages.WARNING,
    "error": messages.ERROR,
}


def jail_action(view: JailView) -> JailView:
    """A POST on a jail: operators (on its host) only; bad name or host 404; a jail gone
    meanwhile → the jail list. The view gets the JailAt instead of the name and host."""

    @functools.wraps(view)
    def wrapper(request: HtmxHttpRequest, name: str, host: str | None = None) -> HttpResponse:
        at = jail_at(request, name, host, PERM_OPERATE)
        try:
            return view(request, at)
        except UnknownJail as exc:
            values = {"host": host, "jail": exc.jail}
            if host:
                text = _("fail2ban on %(host)s has no jail named %(jail)s (stopped or removed).")
            else:
                text = _("fail2ban has no jail named %(jail)s (stopped or removed).")
            return redirect_with_message(request, at.list_url(), text % values, level="error")

    return require_POST(permission_required(PERM_OPERATE, raise_exception=True)(wrapper))


def server_url(name: str, host: str | None) -> str:
    """A server page's URL: /server/… for the local host's pre-fleet URLs, else the host's."""
    if host is None:
        return reverse(f"jails:{name}")
    return reverse(f"jails:host-{name}", args=[host])


def server_scope(request: HtmxHttpRequest, host: str | None) -> HostScope:
    """The host a server page acts on (operators; 404/403 as for a host's jail pages)."""
    return host_for_request(request, runtime_state(), host, PERM_OPERATE)


def server_page(
    request: HtmxHttpRequest, outcome: Outcome, *, host: str | None = None, status: int = 200
) -> HttpResponse:
    """The server page (reload everything, unban everything) with an action's outcome."""
    scoped = server_scope(request, host)
    context = {
        "outcome": outcome,
        "reload_command": " ".join(control_service.reload_command(scoped.state, jail=None)),
        "server_host": scoped.name if host is not None or is_fleet_request(request) else "",
        "reload_url": server_url("server-reload", host),
        "unban_all_url": server_url("server-unban-all", host),
    }
    return render(request, "jails/server_actions.html", context, status=status)
