"""Every request counted and timed by its view, for /metrics (prometheus_client's files)."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from jails.metrics.state import metrics_state

# Anything else is "other": a client choosing the method must not choose new time series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNRESOLVED = "unresolved"  # no URL pattern matched (a 404, or a static file)


def metrics_enabled() -> bool:
    """/metrics exists when a token or allowed addresses are configured."""
    return bool(settings.JAILADMIN_METRICS_TOKEN or settings.JAILADMIN_METRICS_ALLOWED)


class RequestMetricsMiddleware:
    """Counts requests and observes their latency by view name (the URL's name, never the
    raw path: /jails/<name>/ is one series whatever the jail, and a scanner's random paths
    are all "unresolved"). Outermost, so the time covers every other middleware too.

    Not used at all while /metrics is off: then nothing would ever read the counts.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not metrics_enabled():
            raise MiddlewareNotUsed
        self.get_response = get_response
        self.state = metrics_state()
        # prometheus_client opens this process's value files here on the first request.
        self.state.directory.mkdir(parents=True, exist_ok=True)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        view = view_name(request)
        method = request.method if request.method in METHODS else "other"
        self.state.requests.labels(view, method, str(response.status_code)).inc()
        self.state.latency.labels(view).observe(elapsed)
        return response


def view_name(request: HttpRequest) -> str:
    """The request's URL name ("jails:jail-detail"), even when a middleware answered first
    (the setup redirect, a lockout) and Django never resolved the URL itself."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNRESOLVED
    return match.view_name or UNRESOLVED
