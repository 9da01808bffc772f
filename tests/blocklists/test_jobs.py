"""Scheduled imports through the job runner: due sources only, a failing one blocks nobody."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from jails.blocklists.models import BlocklistSource, ImportRun
from jails.blocklists.services.fetch import FetchPolicy
from jails.blocklists.services.jobs import IMPORT_JOB, blocklists_import_job
from jails.jobs import JobContext, JobRunner, default_jobs
from tests.blocklists.conftest import Route, banned

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fail2ban]

POLICY = FetchPolicy(connect_timeout=5, read_timeout=5, attempts=1, backoff=0)


def scheduled(list_server, name, body=b"", status=200, **fields):
    list_server.routes[f"/{name}"] = Route(body, status=status)
    defaults = {"confirmed": True, "allow_private": True, "schedule": "hourly"}
    return BlocklistSource.objects.create(
        name=name, url=list_server.url(f"/{name}"), **{**defaults, **fields}
    )


def context(state):
    return JobContext(
        state=state, now=timezone.now(), should_stop=lambda: False, heartbeat=lambda: None
    )


def test_job_is_collected_by_the_runner():
    assert IMPORT_JOB in [job.name for job in default_jobs()]


def test_job_imports_due_sources_and_a_failing_one_blocks_nobody(bl_state, bl_f2b, list_server):
    scheduled(list_server, "aaa-broken", status=500)
    scheduled(list_server, "bbb-good", b"51.5.5.5\n")
    scheduled(list_server, "manual", b"52.5.5.5\n", schedule="manual")
    scheduled(list_server, "unconfirmed", b"53.5.5.5\n", confirmed=False)
    scheduled(list_server, "later", b"54.5.5.5\n", next_run_at=timezone.now() + timedelta(hours=1))
    message = blocklists_import_job(context(bl_state), policy=POLICY)
    assert message == "aaa-broken: failed; bbb-good: imported"
    assert banned(bl_f2b) == {"51.5.5.5"}
    good = BlocklistSource.objects.get(name="bbb-good")
    assert good.next_run_at is not None and good.next_run_at > timezone.now() + timedelta(
        minutes=50
    )
    broken = BlocklistSource.objects.get(name="aaa-broken")
    assert broken.consecutive_failures == 1
    assert broken.next_run_at < timezone.now() + timedelta(minutes=20)  # retried sooner
    # Not due any more: the next pass does nothing.
    assert blocklists_import_job(context(bl_state), policy=POLICY) == "no source due"


def test_job_runs_once_across_two_runners(bl_state, bl_f2b, list_server):
    scheduled(list_server, "once", b"55.5.5.5\n")
    jobs = [j for j in default_jobs() if j.name == IMPORT_JOB]
    runners = [JobRunner(jobs, state_getter=lambda: bl_state) for _ in range(2)]
    outcomes = []
    barrier = threading.Barrier(2)

    def go(runner):
        barrier.wait()
        outcomes.extend(runner.run_due())

    threads = [threading.Thread(target=go, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 1 and outcomes[0].ok
    assert ImportRun.objects.filter(source__name="once").count() == 1


def test_job_leaves_the_rest_due_after_a_slow_source(bl_state, bl_f2b, list_server):
    slow = scheduled(list_server, "aaa-slow", b"56.5.5.5\n")
    list_server.routes["/aaa-slow"].delay = 0.6
    scheduled(list_server, "bbb-next", b"57.5.5.5\n")
    message = blocklists_import_job(context(bl_state), policy=POLICY, budget=0.3)
    assert message == "aaa-slow: imported"  # the job stopped taking sources after its budget
    assert BlocklistSource.objects.get(name="bbb-next").next_run_at is None  # still due
    assert ImportRun.objects.filter(source=slow).count() == 1
    assert blocklists_import_job(context(bl_state), policy=POLICY) == "bbb-next: imported"
