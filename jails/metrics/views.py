"""/metrics: Prometheus' text format, behind its own token or address list (no login)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from jails.apps import runtime_state
from jails.metrics.services.access import Access, metrics_access
from jails.metrics.services.exposition import metrics_render
from jails.metrics.state import metrics_state


@require_safe
@never_cache
@login_not_required
def metrics(request: HttpRequest) -> HttpResponse:
    """The exposition for an allowed scraper; 404 when off, 403/401 with no details else.

    The client address is REMOTE_ADDR as jails.middleware.TrustedProxyMiddleware left it:
    the real client behind a trusted proxy, the connection's peer otherwise.
    """
    access = metrics_access(
        token=settings.JAILADMIN_METRICS_TOKEN,
        allowed=settings.JAILADMIN_METRICS_ALLOWED,
        client_address=request.META.get("REMOTE_ADDR", ""),
        authorization=request.headers.get("Authorization", ""),
    )
    if access is Access.OFF:
        raise Http404
    if access is Access.ADDRESS_REFUSED:
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    if access is Access.TOKEN_REFUSED:
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="jailadmin metrics"'
        return response
    body = metrics_render(
        runtime_state(),
        directory=metrics_state().directory,
        max_age=settings.JAILADMIN_METRICS_CACHE_SECONDS,
    )
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
