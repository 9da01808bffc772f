"""The fleet's worker threads (jails.hosts.services.fleet._start): a page over several hosts
hands each host's call to an idle worker kept from an earlier page instead of starting a
thread per host; a forked process starts its own; no worker opens a database connection
while /jails/ asks the hosts. Real private fail2ban servers play the hosts (kind "socket")."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
from django.apps import apps
from django.urls import reverse

from jails.hosts.services import fleet
from jails.services import jails as jail_service
from jails.state import RuntimeState

pytestmark = pytest.mark.django_db

DEADLINE = 30.0  # a loaded 1-core box; every host here answers at once when all is well
SETTLE = 30.0  # how long a worker may take to offer itself again after its call ended


def idle_workers_at_least(state: RuntimeState, count: int) -> None:
    """Wait until `count` workers are idle again: a worker offers itself after the caller
    already has its answer, so the next call could otherwise start a thread of its own."""
    deadline = time.monotonic() + SETTLE
    while True:
        with state.fleet.lock:
            if len(state.fleet.idle_workers) >= count:
                return
        assert time.monotonic() < deadline, "the workers did not offer themselves again"
        time.sleep(0.01)


def names_on_worker(seen: list[tuple[int, str]], hosts: int) -> Any:
    """jail_names_list, noting which thread (ident, name) ran it. Every call waits for the
    others to start: a worker done early would otherwise take a second host's call."""
    together = threading.Barrier(hosts, timeout=DEADLINE)

    def call(scoped: RuntimeState) -> list[str]:
        seen.append((threading.get_ident(), threading.current_thread().name))
        together.wait()
        return jail_service.jail_names_list(scoped)

    return call


def test_the_next_call_reuses_the_workers_of_the_last(web_hosts: dict[str, Any]) -> None:
    state = apps.get_app_config("jails").state
    scopes = fleet.scopes_list(state)
    assert len(scopes) == 3
    first: list[tuple[int, str]] = []
    outcomes = fleet.fleet_map(scopes, names_on_worker(first, len(scopes)), deadline=DEADLINE)
    assert all(outcome.ok for outcome in outcomes), outcomes
    # Each host's call ran on a thread named after it (logs, and the tests' db_threads).
    assert sorted(name for _, name in first) == sorted(f"fleet-{s.name}" for s in scopes)
    assert len({ident for ident, _ in first}) == 3
    idle_workers_at_least(state, 3)

    second: list[tuple[int, str]] = []
    outcomes = fleet.fleet_map(scopes, names_on_worker(second, len(scopes)), deadline=DEADLINE)
    assert all(outcome.ok for outcome in outcomes), outcomes
    assert {ident for ident, _ in second} == {ident for ident, _ in first}
    assert sorted(name for _, name in second) == sorted(f"fleet-{s.name}" for s in scopes)


def test_a_forked_process_starts_workers_of_its_own(web_hosts: dict[str, Any]) -> None:
    """A gunicorn worker forked from a master that asked the hosts inherits the idle list,
    not the threads: handing a call to one of those would wait for the deadline in vain."""
    state = apps.get_app_config("jails").state
    scopes = fleet.scopes_list(state)
    seen: list[tuple[int, str]] = []
    fleet.fleet_map(scopes, names_on_worker(seen, len(scopes)), deadline=DEADLINE, record=False)
    idle_workers_at_least(state, len(scopes))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        code = 1
        try:
            os.close(read)
            outcomes = fleet.fleet_map(
                scopes, jail_service.jail_names_list, deadline=DEADLINE, record=False
            )
            report = ";".join(f"{o.name}:{o.ok}:{o.timed_out}:{o.error}" for o in outcomes)
            os.write(write, report.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(report.split(";")) == sorted(f"{s.name}:True:False:" for s in scopes)


def test_the_jail_list_asks_the_hosts_without_touching_the_database(
    web_hosts: dict[str, Any], logged_in_client: Any, db_threads: list[str]
) -> None:
    """Each worker closes its connections after every call (a connection is never left to
    a thread that may not run again), so one query there would open a connection per host
    per page: the workers only talk to the hosts."""
    for _ in range(2):  # the first page starts the workers, the second reuses them
        response = logged_in_client.get(reverse("jails:jail-list"))
        assert response.status_code == 200
        page = response.content.decode()
        assert all(name in page for name in web_hosts)
    assert not [name for name in db_threads if name.startswith("fleet-")]


def test_the_jail_list_reads_the_host_rows_once(
    web_hosts: dict[str, Any], logged_in_client: Any
) -> None:
    """Whether the site is a fleet and which hosts to ask come from one read of the rows."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    logged_in_client.get(reverse("jails:jail-list"))  # the session and the links, warmed
    with CaptureQueriesContext(connection) as queries:
        response = logged_in_client.get(reverse("jails:jail-list"))
    assert response.status_code == 200
    assert all(name in response.content.decode() for name in web_hosts)
    host_reads = [
        query["sql"]
        for query in queries.captured_queries
        if query["sql"].startswith("SELECT")
        and 'FROM "hosts_host"' in query["sql"]
        and "hosts_host_groups" not in query["sql"]  # the user's per-host limits, not the rows
    ]
    assert len(host_reads) == 1, host_reads
