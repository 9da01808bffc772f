"""The filter tester and "why was this address not banned?" (issue 11, item 5).

Operators only: the lines tested come from the jails' logs (other people's addresses, user
names and requests), and each test runs fail2ban-regex on the fail2ban host.
"""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.http import HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from jails.configuration.forms_filtertest import BanExplainForm, FilterTestForm
from jails.configuration.services import filtertest
from jails.configuration.views.scoping import config_host, page
from jails.fail2ban import InvalidArgument, UnknownJail
from jails.requests import HtmxHttpRequest
from jails.roles import PERM_OPERATE

STATUSES = ("matched", "ignored", "missed")


@require_http_methods(["GET", "POST"])
@permission_required(PERM_OPERATE, raise_exception=True)
@vary_on_headers("HX-Request")
def filter_test(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """The form (GET; `?jail=` preselects a jail's log); POST runs the test and shows it,
    on the page's host (its filters, its jails' logs, its fail2ban-regex)."""
    where = config_host(request, host, PERM_OPERATE)
    result = None
    if request.method == "POST":
        form = FilterTestForm(request.POST)
        if form.is_valid():
            try:
                result = filtertest.filter_test(where.state, **form.service_arguments())
            except UnknownJail:
                form.add_error("jail", _("No such jail in the running fail2ban."))
            except InvalidArgument as exc:
                form.add_error(None, str(exc))
    else:
        jail = request.GET.get("jail", "")[:64]
        initial = {"source": "jail", "jail": jail} if jail else {}
        form = FilterTestForm(initial=initial)
    context = {
        "form": form,
        "result": result,
        "groups": _groups(result),
    }
    template = "configuration/filter_test.html"
    if request.htmx:
        template += "#filter-test-result"
    return page(request, where, template, context)


def _groups(result: filtertest.FilterTestResult | None) -> list[tuple[str, tuple]]:
    if result is None or result.error:
        return []
    return [(status, result.of_status(status)) for status in STATUSES]


@require_GET
@permission_required(PERM_OPERATE, raise_exception=True)
@vary_on_headers("HX-Request")
def ban_explain(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """Why an address was (not) banned in a jail: its lines against the filter and limits."""
    where = config_host(request, host, PERM_OPERATE)
    explanation = None
    form = BanExplainForm(request.GET or None)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            explanation = filtertest.ban_explain(
                where.state,
                jail=data["jail"],
                address=data["address"],
                log_lines=data.get("log_lines") or filtertest.EXPLAIN_LOG_LINES,
            )
        except UnknownJail:
            form.add_error("jail", _("No such jail in the running fail2ban."))
        except InvalidArgument as exc:
            form.add_error(None, str(exc))
    template = "configuration/filter_test_explain.html"
    if request.htmx:
        template += "#ban-explanation"
    return page(request, where, template, {"form": form, "explanation": explanation})
