"""The status bar (its own URL for polling) and the health check."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required, permission_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from jails.apps import runtime_state
from jails.context_processors import status_bar_context
from jails.requests import HtmxHttpRequest
from jails.roles import PERM_VIEW
from jails.services import health as health_service


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def status_bar(request: HtmxHttpRequest) -> HttpResponse:
    """The status bar alone, for HTMX polling."""
    return render(request, "base.html#status-bar", status_bar_context(request))


@require_GET
@never_cache
@login_not_required
def healthz(request: HtmxHttpRequest) -> HttpResponse:
    """200 when fail2ban and the session storage answer, 503 otherwise; no login.

    The body names what is down ("agent unreachable", "fail2ban unreachable"...) and nothing
    more: no path, no reason, as anyone may ask.
    """
    # Untranslated on purpose: load balancers and monitoring read this body, not people.
    problem = health_service.health_problem(runtime_state())
    if problem is not None:
        return HttpResponse(f"unavailable: {problem}\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")
