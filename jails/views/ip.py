"""Where is this address? `/ip/<address>/`: the jails that ban it now, with actions.

The history of the address (archived bans) is the history app's part of this page:
it is added to ``templates/jails/ip_detail.html`` with one include (see the marker there),
and its context by :func:`ip_history_context`, which reads the history app's selector
(a core view may use a domain app's selectors, never its views).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from jails.apps import runtime_state
from jails.fail2ban import Fail2banError, InvalidArgument, UnknownJail
from jails.fail2ban.validation import JAIL_NAME_RE
from jails.history.selectors import archive as history_selectors
from jails.requests import HtmxHttpRequest, actor_from_request
from jails.roles import PERM_OPERATE, PERM_VIEW
from jails.services import bans as ban_service
from jails.services import control as control_service
from jails.services.bans import LineStatus
from jails.services.control import describe_error
from jails.services.operations import entry_parse
from jails.state import RuntimeState
from jails.views.bans import unban_outcome
from jails.views.control import LOST_ON_RELOAD
from jails.views.jail_page import MAX_FIELD, Confirmation, Outcome, redirect_with_message

TEMPLATE = "jails/ip_detail.html"
OOB_PARTIALS = ("ip-message", "ip-confirm", "ip-live")
EVERY_JAIL = "*"


def ip_url(address: str) -> str:
    # The pattern takes a path, so a network's slash stays a slash.
    return reverse("jails:ip-detail", args=[address])


def ip_context(
    request: HtmxHttpRequest, state: RuntimeState, address: str, outcome: Outcome
) -> dict[str, Any]:
    """Everything the page shows about the address right now."""
    where = ban_service.ip_where(state, address=address)
    return {
        "address": where.address,
        "where": where,
        "now": timezone.now(),
        "outcome": outcome,
        "search": where.address,
        # The archived bans of the address (the history app's section).
        **ip_history_context(request, state, where.address),
    }


def ip_history_context(
    request: HtmxHttpRequest, state: RuntimeState, address: str
) -> dict[str, Any]:
    """Context for templates/history/_ip_history.html (the archived bans of the address)."""
    try:
        found = history_selectors.ip_history_get(ip=address)
    except InvalidArgument:
        return {"ip_history": None}
    try:
        number = max(int(request.GET.get("hpage", "1")), 1)
    except ValueError:
        number = 1
    return {
        "ip_history": found,
        "ip_history_page": Paginator(found.events, state.settings.page_size).get_page(number),
    }


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def ip_search(request: HtmxHttpRequest) -> HttpResponse:
    """The header's search box: go to the address's page, or say why not."""
    text = request.GET.get("q", "")[:MAX_FIELD]
    entry = entry_parse(text)
    if entry.valid:
        return HttpResponseRedirect(ip_url(entry.address))
    error = "" if not entry.text else f"“{entry.text}” is {entry.error}."
    return render(
        request,
        TEMPLATE,
        {"search": text.strip(), "search_error": error},
        status=400 if error else 200,
    )


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
@vary_on_headers("HX-Request")
def ip_detail(request: HtmxHttpRequest, address: str) -> HttpResponse:
    """Which jails ban the address now (since, until), with actions per permission."""
    entry = entry_parse(address)
    if not entry.valid:
        context = {"search": entry.text, "search_error": f"“{entry.text}” is {entry.error}."}
        return render(request, TEMPLATE, context, status=404)
    if entry.address != address:
        return HttpResponseRedirect(ip_url(entry.address))
    context = ip_context(request, runtime_state(), entry.address, Outcome())
    template = TEMPLATE + ("#ip-live" if request.htmx else "")
    return render(request, template, context)


def _ip_response(request: HtmxHttpRequest, address: str, outcome: Outcome) -> HttpResponse:
    if not request.htmx and not outcome.shows_form:
        return (
            redirect_with_message(request, ip_url(address), outcome.message, level=outcome.level)
            if outcome.message
            else HttpResponseRedirect(ip_url(address))
        )
    if outcome.confirm is not None and not outcome.confirm.cancel:
        outcome.confirm.cancel = ip_url(address)
    context = ip_context(request, runtime_state(), address, outcome)
    if not request.htmx:
        return render(request, TEMPLATE, context)
    context["oob"] = True
    return HttpResponse(
        "".join(render_to_string(f"{TEMPLATE}#{p}", context, request) for p in OOB_PARTIALS)
    )


def _ip_action(
    request: HtmxHttpRequest, address: str, *, every_jail_allowed: bool
) -> tuple[str, str] | HttpResponse:
    """The canonical address and the chosen jail; or the response for a bad request."""
    entry = entry_parse(address)
    if not entry.valid:
        return render(
            request,
            TEMPLATE,
            {"search": entry.text, "search_error": f"“{entry.text}” is {entry.error}."},
            status=404,
        )
    jail = request.POST.get("jail", "")[:80]
    named = JAIL_NAME_RE.fullmatch(jail) is not None
    if not (named or (every_jail_allowed and jail == EVERY_JAIL)):
        return _ip_response(request, entry.address, Outcome(errors={"jail": "Choose a jail."}))
    return entry.address, jail


@require_POST
@permission_required(PERM_OPERATE, raise_exception=True)
def ip_unban(request: HtmxHttpRequest, address: str) -> HttpResponse:
    """Unban the address (or the network entry that holds it) from one jail or every jail."""
    checked = _ip_action(request, address, every_jail_allowed=True)
    if isinstance(checked, HttpResponse):
        return checked
    address, jail = checked
    target = request.POST.get("entry", "")[:MAX_FIELD] or address
    report = ban_service.ips_unban(
        runtime_state(),
        jail=None if jail == EVERY_JAIL else jail,
        lines=[target],
        actor=actor_from_request(request),
    )
    outcome = unban_outcome(report)
    if isinstance(report.failure, UnknownJail):
        outcome = Outcome(f"fail2ban has no jail named {jail}.", "error")
    return _ip_response(request, address, outcome)


@require_POST
@permission_required(PERM_OPERATE, raise_exception=True)
def ip_ban(request: HtmxHttpRequest, address: str) -> HttpResponse:
    """Ban the address in a jail (own, ignored, special-use or wide: confirm first)."""
    checked = _ip_action(request, address, every_jail_allowed=False)
    if isinstance(checked, HttpResponse):
        return checked
    address, jail = checked
    state = runtime_state()
    actor = actor_from_request(request)
    confirmed = request.POST.get("confirm") == "yes"
    try:
        reasons = (
            {}
            if confirmed
            else ban_service.ban_confirmations(state, jail=jail, lines=[address], actor=actor)
        )
    except UnknownJail:
        return _ip_response(
            request, address, Outcome(f"fail2ban has no jail named {jail}.", "error")
        )
    if reasons:
        confirm = Confirmation(
            title=f"Ban {address} in {jail}?",
            details=[f"{address}: {reasons[address]}."],
            url=reverse("jails:ip-ban", args=[address]),
            fields=[("jail", jail), ("confirm", "yes")],
            button="Ban anyway",
        )
        return _ip_response(request, address, Outcome(confirm=confirm))
    report = ban_service.ips_ban(
        state, jail=jail, lines=[address], actor=actor, confirmed=confirmed
    )
    if report.error:
        outcome = Outcome(f"Could not ban {address} in {jail}: {report.error}", "error")
    elif report.count(LineStatus.ALREADY_BANNED):
        outcome = Outcome(f"{address} was already banned in {jail}.", "info")
    else:
        outcome = Outcome(f"Banned {address} in {jail}.")
    return _ip_response(request, address, outcome)


@require_POST
@permission_required(PERM_OPERATE, raise_exception=True)
def ip_ignore(request: HtmxHttpRequest, address: str) -> HttpResponse:
    """Put the address on a jail's ignore list (a runtime change)."""
    checked = _ip_action(request, address, every_jail_allowed=False)
    if isinstance(checked, HttpResponse):
        return checked
    address, jail = checked
    try:
        control_service.ignore_add(
            runtime_state(), jail=jail, address=address, actor=actor_from_request(request)
        )
    except Fail2banError as exc:
        return _ip_response(request, address, Outcome(describe_error(exc), "error"))
    outcome = Outcome(
        f"Added {address} to the ignore list of {jail}: its log failures no longer lead to a"
        f" ban there (a current ban stays until unbanned). {LOST_ON_RELOAD}"
    )
    return _ip_response(request, address, outcome)
