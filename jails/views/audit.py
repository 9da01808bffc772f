"""The audit log (/audit/): every change anyone made, filterable, paginated."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from jails.apps import runtime_state
from jails.forms import AuditFilterForm
from jails.hosts.permissions import hosts_permitted
from jails.hosts.services.fleet import is_fleet
from jails.requests import HtmxHttpRequest
from jails.roles import PERM_VIEW
from jails.services import audit_log
from jails.views.common import page_number

FILTER_NAMES = ("user", "action", "host", "jail", "ip", "since", "until", "result")


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
@vary_on_headers("HX-Request")
def audit_list(request: HtmxHttpRequest) -> HttpResponse:
    """The log, newest first, with filters (user, action, host, jail, IP, time, result)."""
    state = runtime_state()
    # Records of hosts the user may not view are not shown (None: every host).
    permitted = hosts_permitted(request.user, PERM_VIEW)
    fleet = is_fleet()
    hosts: list[str] = []
    if fleet:
        hosts = [h for h in audit_log.audit_hosts() if permitted is None or h in permitted]
    form = AuditFilterForm(request.GET, actions=audit_log.audit_actions(), hosts=hosts)
    filters = (
        {name: value for name, value in form.cleaned_data.items() if value}
        if form.is_valid()
        else {}
    )
    entries = audit_log.audit_entries_filter(**filters, hosts=permitted)
    page = Paginator(entries, state.settings.page_size).get_page(page_number(request))
    query = request.GET.copy()
    query.pop("page", None)
    for name in list(query):
        if name not in FILTER_NAMES:
            query.pop(name)
    context = {
        "form": form,
        "page": page,
        "filter_query": query.urlencode(),
        "fleet": fleet,
    }
    template = "jails/audit_list.html"
    if request.htmx:
        template += "#audit-table"
    return render(request, template, context)
