"""Jail pages: the list of every jail and one jail's settings, counters and bans."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from jails.apps import runtime_state
from jails.fail2ban import InvalidArgument
from jails.fail2ban.validation import validate_jail_name
from jails.requests import HtmxHttpRequest, overview_for_request
from jails.roles import PERM_VIEW
from jails.services import jails as jail_service
from jails.views.common import page_number

JAIL_SORT_KEYS = {
    "name": lambda j: j.name,
    "failed": lambda j: j.currently_failed,
    "total_failed": lambda j: j.total_failed,
    "banned": lambda j: j.currently_banned,
    "total_banned": lambda j: j.total_banned,
    "backend": lambda j: j.backend or "",
    "filter": lambda j: ",".join(j.log_sources),
    "idle": lambda j: (j.idle is None, bool(j.idle)),
}


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
@vary_on_headers("HX-Request")
def jail_list(request: HtmxHttpRequest) -> HttpResponse:
    """Every jail with its counters; sortable, filterable, paginated, polled in place."""
    state = runtime_state()
    overview = overview_for_request(request, state)
    query = request.GET.get("q", "").strip()[:64]
    sort = request.GET.get("sort", "name")
    if sort.lstrip("-") not in JAIL_SORT_KEYS:
        sort = "name"
    descending = sort.startswith("-")
    jails = [j for j in overview.jails if query.lower() in j.name.lower()]
    jails.sort(key=JAIL_SORT_KEYS[sort.lstrip("-")], reverse=descending)
    page = Paginator(jails, state.settings.page_size).get_page(page_number(request))
    context = {
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


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
@vary_on_headers("HX-Request")
def jail_detail(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """One jail: settings, counters and its current bans (paginated, searchable)."""
    state = runtime_state()
    try:
        validate_jail_name(name)
    except InvalidArgument:
        raise Http404("no such jail") from None
    template = "jails/jail_detail.html"
    if request.htmx and request.htmx.target != "jail-bans":
        # The counters poll: every few seconds per open tab against a single-threaded
        # fail2ban, so it asks only what it shows (one `status J short`).
        counters = jail_service.jail_counters_get(state, name=name)
        context = {"counters": counters, "poll_seconds": state.settings.poll_seconds}
        return render(request, template + "#jail-counters", context)
    search = request.GET.get("q", "").strip()[:64]
    detail, bans = jail_service.jail_page_get(state, name=name, search=search)
    page = Paginator(bans, state.settings.page_size).get_page(page_number(request))
    context = {
        "jail": detail,
        "counters": detail.summary,
        "page": page,
        "query": search,
        "now": timezone.now(),
        "capabilities": jail_service.capabilities_get(state),
        "poll_seconds": state.settings.poll_seconds,
    }
    if request.htmx:
        template += "#jail-bans"
    return render(request, template, context)
