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
from django.views.decorators.http import require_POST

from jails.apps import runtime_state
from jails.fail2ban import InvalidArgument, UnknownJail
from jails.fail2ban.validation import validate_jail_name
from jails.requests import HtmxHttpRequest
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

    @property
    def shows_form(self) -> bool:
        return self.confirm is not None or bool(self.errors)


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


def jail_url(name: str, request: HtmxHttpRequest | None = None) -> str:
    url = reverse("jails:jail-detail", args=[name])
    if request is None:
        return url
    query, page = list_state(request)
    params = {k: v for k, v in (("q", query), ("page", str(page))) if v and v != "1"}
    return f"{url}?{urlencode(params)}" if params else url


def jail_page_context(
    request: HtmxHttpRequest, state: RuntimeState, name: str, outcome: Outcome
) -> dict[str, Any]:
    """The jail page's context (as the page view builds it) plus the action's outcome."""
    query, page_number = list_state(request)
    detail, bans = jail_service.jail_page_get(state, name=name, search=query)
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
    }


def jail_action_response(
    request: HtmxHttpRequest, state: RuntimeState, name: str, outcome: Outcome
) -> HttpResponse:
    """Answer a jail-page action: OOB fragments for HTMX, else redirect or the page itself."""
    if not request.htmx and not outcome.shows_form:
        if outcome.message:
            messages.add_message(request, _LEVELS[outcome.level], outcome.message)
        return HttpResponseRedirect(jail_url(name, request))
    if outcome.confirm is not None and not outcome.confirm.cancel:
        outcome.confirm.cancel = jail_url(name, request)
    context = jail_page_context(request, state, name, outcome)
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
    """A POST on a jail: operators only; bad name 404; a jail gone meanwhile → the jail list."""

    @functools.wraps(view)
    def wrapper(request: HtmxHttpRequest, name: str, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            validate_jail_name(name)
        except InvalidArgument:
            raise Http404("no such jail") from None
        try:
            return view(request, name, *args, **kwargs)
        except UnknownJail as exc:
            return redirect_with_message(
                request,
                reverse("jails:jail-list"),
                f"fail2ban has no jail named {exc.jail} (stopped or removed).",
                level="error",
            )

    return require_POST(permission_required(PERM_OPERATE, raise_exception=True)(wrapper))


def server_page(request: HtmxHttpRequest, outcome: Outcome, *, status: int = 200) -> HttpResponse:
    """The server page (reload everything, unban everything) with an action's outcome."""
    state = runtime_state()
    context = {
        "outcome": outcome,
        "reload_command": " ".join(control_service.reload_command(state, jail=None)),
    }
    return render(request, "jails/server_actions.html", context, status=status)
