"""The job runner: the database lease, one run per due job, two real runners, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jails.history.models import BanEvent
from jails.history.services.jobs import PURGE_JOB, SYNC_JOB
from jails.history.services.sync import HistoryError
from jails.jobs import (
    JobContext,
    JobRunner,
    JobSpec,
    default_jobs,
    job_acquire,
    job_heartbeat,
    job_release,
)
from jails.models import ScheduledJob
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db
# The service layer behind these runs the same in both connection modes (issue 10).
RUNTIME_MODES = ("direct", "agent")
REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=10)
# The runner closes its database connection around each job (close_old_connections), as a
# long-running process must. Inside the test's transaction that closes the test's own
# connection on PostgreSQL (SQLite's in-memory test database ignores close()), so tests that
# drive the runner commit for real and are flushed afterwards.
RUNNER_DB = pytest.mark.django_db(transaction=True)


def test_job_acquire_lets_only_one_owner_hold_a_due_job():
    assert job_acquire(name="j", owner="a", now=T0, lease=LEASE)
    assert not job_acquire(name="j", owner="b", now=T0, lease=LEASE)
    assert not job_acquire(name="j", owner="b", now=T0 + LEASE / 2, lease=LEASE)
    assert ScheduledJob.objects.get(name="j").locked_by == "a"


def test_job_release_schedules_the_next_run_and_frees_the_lock():
    job_acquire(name="j", owner="a", now=T0, lease=LEASE)
    assert job_release(
        name="j", owner="a", now=T0, ok=True, message="done", next_run_at=T0 + timedelta(minutes=1)
    )
    job = ScheduledJob.objects.get(name="j")
    assert (job.locked_by, job.locked_until, job.run_count, job.last_ok) == ("", None, 1, True)
    # Not due yet: nobody may run it, not even the runner that just did.
    assert not job_acquire(name="j", owner="b", now=T0 + timedelta(seconds=30), lease=LEASE)
    assert job_acquire(name="j", owner="b", now=T0 + timedelta(minutes=1), lease=LEASE)


def test_job_lock_of_a_dead_runner_expires_and_a_heartbeat_extends_it():
    job_acquire(name="j", owner="dead", now=T0, lease=LEASE)
    assert not job_acquire(name="j", owner="b", now=T0 + LEASE - timedelta(seconds=1), lease=LEASE)
    assert job_acquire(name="j", owner="b", now=T0 + LEASE + timedelta(seconds=1), lease=LEASE)
    # The dead runner's late release must not free b's lock.
    assert not job_release(name="j", owner="dead", now=T0, ok=True, message="", next_run_at=None)
    assert job_heartbeat(name="j", owner="b", now=T0 + 2 * LEASE, lease=LEASE)
    assert not job_acquire(name="j", owner="c", now=T0 + 2 * LEASE + LEASE / 2, lease=LEASE)


@RUNNER_DB
def test_job_runner_runs_a_due_job_once_and_records_failures(runtime):
    calls = []

    def work(ctx: JobContext) -> str:
        calls.append(ctx.now)
        return "fine"

    def broken(ctx: JobContext) -> str:
        raise RuntimeError("boom")

    clock = [T0]
    jobs = [
        JobSpec("work", timedelta(minutes=1), work),
        JobSpec("broken", timedelta(days=1), broken),
    ]
    runner = JobRunner(jobs, state_getter=lambda: runtime, owner="r1", clock=lambda: clock[0])
    first = runner.run_due()
    assert [(o.name, o.ok) for o in first] == [("work", True), ("broken", False)]
    assert runner.run_due() == []
    clock[0] = T0 + timedelta(minutes=1)
    assert [o.name for o in runner.run_due()] == ["work"]
    assert len(calls) == 2
    broken_row = ScheduledJob.objects.get(name="broken")
    assert broken_row.last_ok is False and "boom" in broken_row.last_message
    # A failed job is retried within minutes, not after its day-long interval.
    assert broken_row.next_run_at == T0 + timedelta(minutes=5)


@RUNNER_DB
def test_job_runner_reports_an_expected_error_as_a_failure_not_a_crash(runtime):
    def unreadable(ctx: JobContext) -> str:
        raise HistoryError("cannot read fail2ban's database")

    jobs = [
        JobSpec("expected", timedelta(minutes=1), unreadable, expected_errors=(HistoryError,)),
        JobSpec("unexpected", timedelta(minutes=1), unreadable),
    ]
    runner = JobRunner(jobs, state_getter=lambda: runtime, owner="r1", clock=lambda: T0)
    outcomes = {o.name: o for o in runner.run_due()}
    assert not outcomes["expected"].ok and not outcomes["unexpected"].ok
    assert outcomes["expected"].message == "HistoryError: cannot read fail2ban's database"
    # The runner knows no domain's errors: one the job did not declare is a crash.
    assert outcomes["unexpected"].message.startswith("internal error: HistoryError")


def test_default_jobs_are_listed_by_the_history_app_with_intervals_overridden():
    jobs = {job.name: job for job in default_jobs(intervals={SYNC_JOB: timedelta(seconds=30)})}
    # Other domain apps (blocklists, notifications) list jobs of their own beside these.
    assert {SYNC_JOB, PURGE_JOB} <= set(jobs)
    assert jobs[SYNC_JOB].interval == timedelta(seconds=30)
    assert jobs[PURGE_JOB].interval == timedelta(days=1)
    assert all(HistoryError in jobs[name].expected_errors for name in (SYNC_JOB, PURGE_JOB))


@RUNNER_DB
def test_job_runner_stops_between_passes_when_asked(runtime):
    stop = threading.Event()
    runs = []

    def work(ctx: JobContext) -> str:
        runs.append(1)
        stop.set()  # as SIGTERM would, while the job runs
        return "ok"

    runner = JobRunner(
        [JobSpec("work", timedelta(seconds=5), work)], state_getter=lambda: runtime, stop=stop
    )
    runner.run_forever()  # returns: no hang
    assert runs == [1]
    assert ScheduledJob.objects.get(name="work").locked_by == ""


# --- Two real runner processes against one database ----------------------------------------------
def _env(db: Path, f2b) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        JAILADMIN_DATABASE_URL=f"sqlite:///{db}",
        JAILADMIN_FAIL2BAN_SOCKET=str(f2b.socket_path),
        JAILADMIN_FAIL2BAN_TIME_ZONE=f2b.tz or "UTC",
        JAILADMIN_DEBUG="false",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.mark.slow
def test_two_job_runners_run_a_due_job_once_and_exit_cleanly_on_sigterm(f2b, tmp_path):
    import sqlite3

    db = tmp_path / "jobs.sqlite3"
    env = _env(db, f2b)
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=REPO, timeout=120)
    f2b.client().send("set", "sshd", "banip", "203.0.113.90", "203.0.113.91")

    runners = [
        subprocess.Popen(
            [*manage, "run_jobs", "-v2"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [[] for _ in runners]

    def read(i: int) -> None:
        for line in runners[i].stdout:
            outputs[i].append(line)

    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(2)]
    for reader in readers:
        reader.start()
    try:
        wait_until(
            lambda: all(any("pass complete" in line for line in out) for out in outputs),
            timeout=60,
        )
    finally:
        for proc in runners:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=30) for proc in runners]
        for reader in readers:
            reader.join(timeout=5)
    assert codes == [0, 0], outputs
    assert all(any("stopped" in line for line in out) for out in outputs), outputs
    ran_sync = [out for out in outputs if any(line.startswith("history-sync ok") for line in out)]
    assert len(ran_sync) == 1, outputs
    with sqlite3.connect(db) as conn:
        jobs = dict(conn.execute("SELECT name, run_count FROM jails_scheduledjob").fetchall())
        locked = conn.execute("SELECT COUNT(*) FROM jails_scheduledjob WHERE locked_by != ''")
        archived = {
            row[0]
            for row in conn.execute("SELECT ip FROM history_banevent WHERE ip LIKE '203.0.113.9%'")
        }
        assert locked.fetchone()[0] == 0
    history_jobs = {name: runs for name, runs in jobs.items() if name.startswith("history-")}
    assert history_jobs == {"history-sync": 1, "history-purge": 1}
    assert archived == {"203.0.113.90", "203.0.113.91"}
    assert not BanEvent.objects.exists()  # the runners used their own database, not the test's


def test_history_sync_command_syncs_purges_and_reports_json(runtime, f2b, tmp_path):
    import json
    from io import StringIO

    from django.core.management import call_command

    from jails.models import SiteSettings

    SiteSettings.objects.update_or_create(
        singleton=1,
        defaults={"fail2ban_socket": str(f2b.socket_path), "history_retention_days": 30},
    )
    f2b.client().send("set", "sshd", "banip", "203.0.113.55")
    wait_until(
        lambda: (
            __import__("sqlite3")
            .connect(f2b.dbfile)
            .execute("SELECT COUNT(*) FROM bans WHERE ip = '203.0.113.55'")
            .fetchone()[0]
            == 1
        )
    )
    out = StringIO()
    call_command("history_sync", "--purge", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["sync"]["archived"] >= 1
    assert report["purge"] == {"retention_days": 30, "deleted": 0}
    assert BanEvent.objects.filter(ip="203.0.113.55").exists()
    jobs = {j.name: j for j in ScheduledJob.objects.all()}
    assert jobs["history-sync"].last_ok and jobs["history-sync"].locked_by == ""
    assert jobs["history-purge"].last_ok


def test_history_sync_command_fails_clearly_when_fail2ban_is_down(db):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from tests.conftest import point_state_at

    point_state_at("/tmp/jailadmin-no-such.sock")
    with pytest.raises(CommandError, match="history sync failed"):
        call_command("history_sync")
    job = ScheduledJob.objects.get(name="history-sync")
    assert job.last_ok is False and job.locked_by == ""
