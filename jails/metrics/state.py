"""The metrics app's per-process things: the request counter and latency histogram.

prometheus_client keeps metric objects in its global REGISTRY unless told otherwise, which is
module-level mutable state shared by every test in a process. These are built with
``registry=None`` and held by MetricsConfig instead. In multiprocess mode (always on here:
PROMETHEUS_MULTIPROC_DIR is set by the settings) their values live in one file per process
under JAILADMIN_METRICS_DIR, and a scrape sums every worker's files, so no registry needs to
hold them at all. The only module-level state left is prometheus_client's own bookkeeping of
those files, which the library requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.apps import apps as django_apps
from prometheus_client import Counter, Histogram

# Pages take 10 ms to a few seconds (a bulk ban of 100 000 addresses is the slow end).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class MetricsState:
    """What one process records about the requests it serves, and where the files go."""

    directory: Path
    requests: Counter
    latency: Histogram


def metrics_state_build(directory: Path) -> MetricsState:
    """The request metrics for one process. No I/O: a value file is opened on first use."""
    return MetricsState(
        directory=directory,
        requests=Counter(
            "jailadmin_http_requests",
            "Requests served, by view (URL name), method and status code.",
            ["view", "method", "status"],
            registry=None,
        ),
        latency=Histogram(
            "jailadmin_http_request_duration_seconds",
            "Time to answer a request, by view (URL name).",
            ["view"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        ),
    )


def metrics_state() -> MetricsState:
    """The state MetricsConfig.ready() built for this process."""
    state = getattr(django_apps.get_app_config("metrics"), "state", None)
    assert isinstance(state, MetricsState), "MetricsConfig.ready() has not run"
    return state
