"""Jail pages: the list of every jail and one jail's settings, counters and bans.

With several hosts (jails.hosts) the list asks every host the user may view in parallel,
each within the per-host deadline, and a jail's page lives at /hosts/<host>/jails/<name>/;
/jails/<name>/ then finds the host that has the jail (or lists them when several do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from jails.apps import runtime_state
from jails.fail2ban import InvalidArgument, UnknownJail
from jails.fail2ban.validation import validate_jail_name
from jails.hosts.services import fleet
from jails.requests import (
    HtmxHttpRequest,
    fleet_overviews_for_request,
    host_for_request,
    is_fleet_request,
    overview_for_request,
    scopes_for_request,
)
from jails.roles import PERM_VIEW
from jails.services import jails as jail_service
from jails.services.jails import JailSummary
from jails.state import RuntimeState
from jails.views.common import page_number
from jails.views.jail_page import (
    JailAt,
    Outcome,
    jail_at,
    jail_missing_response,
    jail_page_context,
)

JAIL_SORT_KEYS: dict[str, Callable[[JailSummary], Any]] = {
    "name": lambda j: j.name,
    "failed": lambda j: j.currently_failed,
    "total_failed": lambda j: j.total_failed,
    "banned": lambda j: j.currently_banned,
    "total_banned": lambda j: j.total_banned,
    "backend": lambda j: j.backend or "",
    "filter": lambda j: ",".join(j.log_sources),
    "idle": lambda j: (j.idle is None, bool(j.idle)),
}


@dataclass(frozen=True)
class FleetRow:
    """One jail of one host in the list across hosts."""

    host: str
    jail: JailSummary


@dataclass(frozen=True)
class HostLine:
    """One host's line above the list: its totals, or why it could not be asked."""

    name: str
    ok: bool
    jail_count: int = 0
    currently_banned: int = 0
    total_failed: int = 0
    skipped_jail_names: tuple[str, ...] = ()
    error: str = ""
    unreachable_since: datetime | None = None


def _sort_spec(request: HtmxHttpRequest, *, fleet_page: bool) -> tuple[str, str, bool]:
    sort = request.GET.get("sort", "name")
    key = sort.lstrip("-")
    if key not in JAIL_SORT_KEYS and not (fleet_page and key == "host"):
        sort, key = "name", "name"
    return sort, key, sort.startswith("-")


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
@vary_on_headers("HX-Request")
def jail_list(request: HtmxHttpRequest) -> HttpResponse:
    """Every jail with its counters; sortable, filterable, paginated, polled in place."""
    state = runtime_state()
    if is_fleet_request(request):
        return _fleet_jail_list(request, state)
    state = host_for_request(request, state, None, PERM_VIEW).state
    overview = overview_for_request(request, state)
    query = request.GET.get("q", "").strip()[:64]
    sort, key, descending = _sort_spec(request, fleet_page=False)
    jails = [j for j in overview.jails if query.lower() in j.name.lower()]
    jails.sort(key=JAIL_SORT_KEYS[key], reverse=descending)
    page = Paginator(jails, state.settings.page_size).get_page(page_number(request))
    context = {
        "fleet": False,
        "host_filter": "",
        "overview": overview,
        "page": page,
        "query": query,
        "sort": sort,
        "poll_seconds": state.settings.poll_seconds,
    }
    template = "jails/jail_list.html"
    if request.htmx:
        template += "#jail-table"
    return render(request, template, context)


def _fleet_jail_list(request: HtmxHttpRequest, state: RuntimeState) -> HttpResponse:
    """The list across hosts: every viewable host (or the one in ?host=) asked in parallel."""
    viewable = scopes_for_request(request, state, PERM_VIEW)
    host_filter = request.GET.get("host", "").strip()[:63]
    # A host in the filter is checked like a host in a URL: 404 unknown, 403 not permitted.
    scopes = [host_for_request(request, state, host_filter, PERM_VIEW)] if host_filter else viewable
    outcomes = fleet_overviews_for_request(request, state, scopes, every_viewable=not host_filter)
    query = request.GET.get("q", "").strip()[:64]
    sort, key, descending = _sort_spec(request, fleet_page=True)
    rows: list[FleetRow] = []
    hosts: list[HostLine] = []
    for outcome in outcomes:
        overview = outcome.value
        if overview is None:
            hosts.append(
                HostLine(
                    outcome.name,
                    ok=False,
                    error=outcome.error,
                    unreachable_since=outcome.host.unreachable_since,
                )
            )
            continue
        hosts.append(
            HostLine(
                outcome.name,
                ok=True,
                jail_count=overview.jail_count,
                currently_banned=overview.currently_banned,
                total_failed=overview.total_failed,
                skipped_jail_names=overview.skipped_jail_names,
            )
        )
        rows.extend(
            FleetRow(outcome.name, jail)
            for jail in overview.jails
            if query.lower() in jail.name.lower()
        )
    # Sorted twice, stably: by host first, so equal keys (the same jail name) keep host order.
    rows.sort(key=lambda row: row.host)
    if key != "host":
        jail_key = JAIL_SORT_KEYS[key]
        rows.sort(key=lambda row: jail_key(row.jail), reverse=descending)
    elif descending:
        rows.reverse()
    page = Paginator(rows, state.settings.page_size).get_page(page_number(request))
    context = {
        "fleet": True,
        "hosts": hosts,
        "host_names": [scope.name for scope in viewable],
        "host_filter": host_filter,
        "banned_total": sum(line.currently_banned for line in hosts),
        "page": page,
        "query": query,
        "sort": sort,
        "poll_seconds": state.settings.poll_seconds,
    }
    template = "jails/jail_list.html"
    if request.htmx:
        template += "#jail-table"
    return render(request, template, context)


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
@vary_on_headers("HX-Request")
def jail_detail(request: HtmxHttpRequest, name: str, host: str | None = None) -> HttpResponse:
    """One jail: settings, counters and its current bans (paginated, searchable)."""
    if host is None and is_fleet_request(request):
        return _jail_which_host(request, name)
    at = jail_at(request, name, host, PERM_VIEW)
    try:
        return _jail_page(request, at)
    except UnknownJail:
        return jail_missing_response(request, at)


def _jail_page(request: HtmxHttpRequest, at: JailAt) -> HttpResponse:
    state, name = at.state, at.name
    template = "jails/jail_detail.html"
    if request.htmx and request.htmx.target != "jail-bans":
        # The counters poll: every few seconds per open tab against a single-threaded
        # fail2ban, so it asks only what it shows (one `status J short`).
        counters = jail_service.jail_counters_get(state, name=name)
        context = {
            "counters": counters,
            "poll_seconds": state.settings.poll_seconds,
            "jail_urls": {"detail": at.url()},
        }
        return render(request, template + "#jail-counters", context)
    search = request.GET.get("q", "").strip()[:64]
    context = jail_page_context(
        request, at, Outcome(), query=search, page_number=page_number(request)
    )
    if request.htmx:
        template += "#jail-bans"
    return render(request, template, context)


def _jail_which_host(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """/jails/<name>/ with several hosts: the one host that has the jail, or a choice.

    A redirect only when exactly one host has it and every host answered: with a host
    unreachable the name might be ambiguous, and the page must not guess.
    """
    try:
        validate_jail_name(name)
    except InvalidArgument:
        raise Http404("no such jail") from None
    state = runtime_state()
    scopes = scopes_for_request(request, state, PERM_VIEW)
    outcomes = fleet.fleet_map(
        scopes, jail_service.jail_names_list, deadline=state.settings.host_deadline
    )
    having = [outcome.name for outcome in outcomes if outcome.value and name in outcome.value]
    unanswered = [outcome for outcome in outcomes if not outcome.ok]
    if len(having) == 1 and not unanswered:
        at = JailAt(state=state, name=name, host=having[0])
        query = request.GET.urlencode()
        return HttpResponseRedirect(f"{at.url()}?{query}" if query else at.url())
    links = [(host, JailAt(state=state, name=name, host=host).url()) for host in having]
    context = {"jail_name": name, "links": links, "unanswered": unanswered}
    return render(request, "jails/jail_hosts.html", context, status=200 if having else 404)
