"""deploy/grafana/jailadmin.json is built on the metric names /metrics really exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser
import pytest
from django.urls import reverse
from django.utils import timezone

from jails.history.services import sync as history
from jails.jobs import job_acquire, job_release
from tests.metrics.helpers import TOKEN, sample_names, samples

pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "jailadmin.json"
# Grafana's variables, as Grafana substitutes them before Prometheus sees the query.
VARIABLES = {"$__rate_interval": "5m", "$host": ".*", "$jail": ".*"}
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")
# The nodes of promql_parser's tree that hold further expressions.
CHILDREN = ("lhs", "rhs", "expr", "args", "param", "vector_selector")


def queries(node) -> list[str]:
    """Every PromQL string in the dashboard: panel targets and template variables."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                found.append(value)
            else:
                found.extend(queries(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(queries(item))
    return found


def parsed(query: str):
    """The query's syntax tree (a label_values() variable: its selector); raises when
    Prometheus would refuse it (syntax, or a function given the wrong type)."""
    for name, value in VARIABLES.items():
        query = query.replace(name, value)
    match = LABEL_VALUES.match(query)
    return promql_parser.parse(match["selector"] if match else query)


def selector_names(node) -> set[str]:
    if type(node).__name__ == "VectorSelector":
        return {node.name}
    names: set[str] = set()
    for attribute in CHILDREN:
        child = getattr(node, attribute, None)
        for item in child if isinstance(child, list | tuple) else [child]:
            if item is not None:
                names |= selector_names(item)
    return names


def dashboard_metric_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {name for query in queries(dashboard) for name in selector_names(parsed(query))}


@pytest.fixture
def everything_exposed(settings, runtime, f2b, client) -> set[str]:
    """A scrape with every family present: fail2ban up, an archive, jobs, requests."""
    settings.JAILADMIN_METRICS_TOKEN = TOKEN
    settings.JAILADMIN_METRICS_ALLOWED = []
    f2b.client().send("set", "sshd", "banip", "203.0.113.31")
    history.history_sync(runtime)
    now = timezone.now()
    assert job_acquire(name="grafana-job", owner="t", now=now, lease=timezone.timedelta(minutes=1))
    job_release(name="grafana-job", owner="t", now=now, ok=True, message="", next_run_at=None)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    client.get(reverse("jails:metrics:scrape"), headers=headers)  # a request to count
    response = client.get(reverse("jails:metrics:scrape"), headers=headers)
    assert response.status_code == 200
    return sample_names(samples(response.content))


def test_grafana_dashboard_uses_only_exposed_metric_names(everything_exposed):
    used = dashboard_metric_names()
    assert len(used) >= 10, used
    assert used <= everything_exposed, sorted(used - everything_exposed)


def test_grafana_dashboard_queries_are_valid_promql():
    dashboard = json.loads(DASHBOARD.read_text())
    found = queries(dashboard)
    assert len(found) >= 20
    for query in found:
        parsed(query)  # raises ValueError naming the problem
    with pytest.raises(ValueError):
        parsed("sum(rate(jailadmin_http_requests_total[$__rate_interval])")  # the check bites


def test_grafana_dashboard_shows_every_exposed_family(everything_exposed):
    used = dashboard_metric_names()
    suffixes = ("_bucket", "_sum", "_count", "_total", "_info")
    families = {
        name.removesuffix(s) for name in everything_exposed for s in suffixes if name.endswith(s)
    }
    families |= {name for name in everything_exposed if not name.endswith(suffixes)}
    unused = {family for family in families if not any(name.startswith(family) for name in used)}
    assert not unused, sorted(unused)


def test_grafana_dashboard_is_importable_json():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "jailadmin"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "host", "jail"} <= variables
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
