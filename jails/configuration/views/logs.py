"""fail2ban's own log: last lines, level filter, search, follow by HTMX poll (issue 11, item 6).

Operators only: fail2ban's log names the addresses, user names and requests of everyone
who reached this host, which the viewer role (dashboards, ban lists) does not need.
"""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from jails.configuration.forms_filtertest import LogViewForm
from jails.configuration.links import config_reverse
from jails.configuration.services import logs
from jails.configuration.views.scoping import ConfigHost, config_host, page
from jails.fail2ban import InvalidArgument
from jails.requests import HtmxHttpRequest
from jails.roles import PERM_OPERATE

FOLLOW_SECONDS = 2


def _follow_url(form: LogViewForm, cursor: str | None, where: ConfigHost) -> str | None:
    if cursor is None:
        return None
    data = form.cleaned_data
    query = {"cursor": cursor, "level": data.get("level") or "", "q": data.get("q") or ""}
    # The cursor is a position in this host's log: the poll must ask the same host.
    return config_reverse("log-follow", where.url_host, query=query)


@require_GET
@permission_required(PERM_OPERATE, raise_exception=True)
@vary_on_headers("HX-Request")
def log_view(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """The last lines of the host's fail2ban log, filtered; the page then follows it."""
    where = config_host(request, host, PERM_OPERATE)
    form = LogViewForm(request.GET)
    tail = None
    error = None
    if form.is_valid():
        try:
            tail = logs.log_tail(where.state, **form.service_arguments())
        except InvalidArgument as exc:
            error = str(exc)
    context = {
        "form": form,
        "tail": tail,
        "error": error,
        "follow_url": _follow_url(form, tail.cursor, where) if tail and form.is_valid() else None,
        "follow_seconds": FOLLOW_SECONDS,
    }
    template = "configuration/log_view.html"
    if request.htmx:
        template += "#log-lines"
    return page(request, where, template, context)


@require_GET
@permission_required(PERM_OPERATE, raise_exception=True)
def log_follow(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """The lines written since `cursor`, and the poller that asks again from the new one."""
    where = config_host(request, host, PERM_OPERATE)
    form = LogViewForm(request.GET)
    tail = None
    if form.is_valid() and form.cleaned_data.get("cursor"):
        arguments = form.service_arguments()
        try:
            tail = logs.log_tail(where.state, **arguments, cursor=form.cleaned_data["cursor"])
        except InvalidArgument:
            tail = None
    cursor = tail.cursor if tail is not None else None
    context = {
        "tail": tail,
        "follow_url": _follow_url(form, cursor, where) if form.is_valid() else None,
        "follow_seconds": FOLLOW_SECONDS,
    }
    return page(request, where, "configuration/log_view.html#log-follow", context)
