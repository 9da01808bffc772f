"""The job runner behind `manage.py run_jobs`: periodic jobs, never inside a web worker.

Each job has a row in ScheduledJob that is both its schedule and its lock: a runner takes
a job with one conditional UPDATE (due, and not leased by anyone else), so two runners
started by mistake never run the same job at the same time, and a due job runs once. The
lock is a lease: a runner that dies leaves a lock that expires, and a long job renews its
lease as it makes progress (``JobContext.heartbeat``).

The runner is generic: each domain app lists its own jobs in its AppConfig's
``periodic_jobs()`` (the ban history's sync and purge: jails.history.apps), and
``default_jobs`` collects them from the app registry, so this module imports no domain app.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.apps import apps as django_apps
from django.db import DatabaseError, close_old_connections
from django.db.models import F, Q
from django.utils import timezone

from jails.fail2ban import Fail2banError
from jails.models import ScheduledJob
from jails.state import RuntimeState

logger = logging.getLogger(__name__)

RETRY_AFTER = timedelta(minutes=5)  # a failed job runs again this soon (or at its interval)


@dataclass(frozen=True)
class JobContext:
    """What a running job gets: the state, a stop flag and a way to renew its lease."""

    state: RuntimeState
    now: datetime
    should_stop: Callable[[], bool]
    heartbeat: Callable[[], None]


@dataclass(frozen=True)
class JobSpec:
    """A periodic job: its name (the lock), how often it runs, and what it does."""

    name: str
    interval: timedelta
    run: Callable[[JobContext], str]  # returns a one-line summary; raises on failure
    lease: timedelta = timedelta(minutes=10)
    # Failures the job expects (logged as a warning and retried, not reported as a crash):
    # the runner cannot name them itself without importing every domain app.
    expected_errors: tuple[type[Exception], ...] = ()


@dataclass(frozen=True)
class JobOutcome:
    name: str
    ok: bool
    message: str


def runner_id() -> str:
    """A name for this runner process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def priority_lower(niceness: int) -> int:
    """Lower this process's CPU priority to ``niceness`` (never raise it); the niceness now.

    The runner's bursts (a 10 000-ban evaluation, a delivery round) are background work: on
    a small box they must wait for the web workers' pages, as `nice` would make them.
    """
    # getpriority/setpriority, not os.nice(0): nice() calls setpriority even to read, which
    # the units' system-call filter (~@resources) refuses. Linux applies it to this thread,
    # and the threads started later inherit it: call it before starting any.
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness <= current:  # already as low (systemd's Nice=): raising it needs privilege
        return current
    try:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except OSError as exc:  # refused (a system-call filter): run on at the current priority
        logger.warning("job runner: cannot lower its priority to nice %d: %s", niceness, exc)
        return current
    return niceness


# --- The lock -------------------------------------------------------------------------------------
def job_acquire(
    *, name: str, owner: str, now: datetime, lease: timedelta, when_due: bool = True
) -> bool:
    """Take the job's lease if nobody holds it (and, with ``when_due``, if it is due)."""
    ScheduledJob.objects.get_or_create(name=name)
    free = Q(locked_until__isnull=True) | Q(locked_until__lt=now) | Q(locked_by="")
    jobs = ScheduledJob.objects.filter(free, name=name)
    if when_due:
        jobs = jobs.filter(Q(next_run_at__isnull=True) | Q(next_run_at__lte=now))
    # One UPDATE ... WHERE: the database lets exactly one runner match the row.
    return jobs.update(locked_by=owner, locked_until=now + lease, last_started_at=now) == 1


def job_heartbeat(*, name: str, owner: str, now: datetime, lease: timedelta) -> bool:
    """Extend a held lease; False if the lease is no longer ours."""
    return (
        ScheduledJob.objects.filter(name=name, locked_by=owner).update(locked_until=now + lease)
        == 1
    )


def job_release(
    *,
    name: str,
    owner: str,
    now: datetime,
    ok: bool,
    message: str,
    next_run_at: datetime | None,
) -> bool:
    """Record the outcome and give the lease back (``next_run_at`` None: keep the schedule)."""
    changes: dict[str, object] = {
        "locked_by": "",
        "locked_until": None,
        "last_finished_at": now,
        "last_ok": ok,
        "last_message": message[:4000],
        "run_count": F("run_count") + 1,
        "failure_count": F("failure_count") + (0 if ok else 1),
    }
    if next_run_at is not None:
        changes["next_run_at"] = next_run_at
    return ScheduledJob.objects.filter(name=name, locked_by=owner).update(**changes) == 1


@dataclass
class LeaseOutcome:
    """What a run outside the runner reports when it gives its lease back."""

    ok: bool = False
    message: str = "interrupted"  # unless the run says otherwise, it did not finish

    def succeeded(self, message: str) -> None:
        self.ok, self.message = True, message

    def failed(self, message: str) -> None:
        self.ok, self.message = False, message


@contextmanager
def job_lease_kept(*, name: str, owner: str) -> Iterator[LeaseOutcome]:
    """Around a run that already holds `name`'s lease: always release it with the outcome.

    For the runs outside the runner (`manage.py history_sync`, the sync right after the
    setup); the schedule is left as it is.
    """
    outcome = LeaseOutcome()
    try:
        yield outcome
    finally:
        job_release(
            name=name,
            owner=owner,
            now=timezone.now(),
            ok=outcome.ok,
            message=outcome.message,
            next_run_at=None,
        )


# --- The jobs -------------------------------------------------------------------------------------
def default_jobs(*, intervals: Mapping[str, timedelta] | None = None) -> list[JobSpec]:
    """Every periodic job of the site: what each installed app's ``periodic_jobs()`` lists.

    ``intervals`` overrides the interval of the jobs it names (`run_jobs --sync-interval`).
    """
    intervals = intervals or {}
    jobs: list[JobSpec] = []
    for config in django_apps.get_app_configs():
        periodic_jobs = getattr(config, "periodic_jobs", None)
        if periodic_jobs is not None:
            jobs.extend(periodic_jobs())
    return [replace(job, interval=intervals.get(job.name, job.interval)) for job in jobs]


# --- The runner -----------------------------------------------------------------------------------
class JobRunner:
    """Runs due jobs until told to stop; one instance per `run_jobs` process."""

    def __init__(
        self,
        jobs: Sequence[JobSpec],
        *,
        state_getter: Callable[[], RuntimeState],
        owner: str | None = None,
        clock: Callable[[], datetime] = timezone.now,
        stop: threading.Event | None = None,
    ) -> None:
        self.jobs = list(jobs)
        self.state_getter = state_getter
        self.owner = owner or runner_id()
        self.clock = clock
        self.stop = stop or threading.Event()

    def run_job(self, job: JobSpec) -> JobOutcome | None:
        """Run one job if it is due and free; None if it was not ours to run."""
        close_old_connections()
        started = self.clock()
        try:
            if not job_acquire(name=job.name, owner=self.owner, now=started, lease=job.lease):
                return None
        except DatabaseError as exc:
            logger.warning("job %s: cannot take its lock: %s", job.name, exc)
            return None
        last_beat = [started]

        def heartbeat() -> None:
            now = self.clock()
            if now - last_beat[0] >= job.lease / 3:
                job_heartbeat(name=job.name, owner=self.owner, now=now, lease=job.lease)
                last_beat[0] = now

        ctx = JobContext(
            state=self.state_getter(),
            now=started,
            should_stop=self.stop.is_set,
            heartbeat=heartbeat,
        )
        # Named and annotated: mypy cannot type a starred tuple written inside `except`.
        expected: tuple[type[Exception], ...] = (Fail2banError, DatabaseError, *job.expected_errors)
        try:
            message = job.run(ctx)
            ok = True
        except expected as exc:
            ok, message = False, f"{type(exc).__name__}: {exc}"
            logger.warning("job %s failed: %s", job.name, message)
        except Exception as exc:  # a job's bug must not end the runner
            ok, message = False, f"internal error: {type(exc).__name__}: {exc}"
            logger.exception("job %s crashed", job.name)
        finished = self.clock()
        next_run = started + job.interval if ok else started + min(job.interval, RETRY_AFTER)
        try:
            close_old_connections()
            job_release(
                name=job.name,
                owner=self.owner,
                now=finished,
                ok=ok,
                message=message,
                next_run_at=max(next_run, finished) if ok else next_run,
            )
        except DatabaseError as exc:
            logger.error("job %s: cannot record its outcome: %s", job.name, exc)
        return JobOutcome(job.name, ok, message)

    def run_due(self) -> list[JobOutcome]:
        """One pass: run every job that is due and not held by another runner."""
        outcomes = []
        for job in self.jobs:
            if self.stop.is_set():
                break
            outcome = self.run_job(job)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def seconds_to_next(self, *, longest: float = 15.0) -> float:
        """How long to sleep before the next pass (between 1 s and ``longest``)."""
        try:
            close_old_connections()
            due = (
                ScheduledJob.objects.filter(name__in=[j.name for j in self.jobs])
                .exclude(next_run_at__isnull=True)
                .order_by("next_run_at")
                .values_list("next_run_at", flat=True)
            )
            soonest = due.first()
            known = due.count()
        except DatabaseError:
            return longest
        if soonest is None or known < len(self.jobs):
            return 1.0
        wait = (soonest - self.clock()).total_seconds()
        return min(max(wait, 1.0), longest)

    def run_forever(
        self,
        *,
        on_outcome: Callable[[JobOutcome], None] | None = None,
        on_pass: Callable[[int], None] | None = None,
        longest: float = 15.0,
    ) -> None:
        """Run passes until ``stop`` is set (SIGTERM); a job in progress finishes its batch."""
        while not self.stop.is_set():
            outcomes = self.run_due()
            for outcome in outcomes:
                if on_outcome is not None:
                    on_outcome(outcome)
            if on_pass is not None:
                on_pass(len(outcomes))
            self.stop.wait(self.seconds_to_next(longest=longest))
        close_old_connections()
