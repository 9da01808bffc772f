"""The job runner behind `manage.py run_jobs`: periodic jobs, never inside a web worker.

Each job has a row in ScheduledJob that is both its schedule and its lock: a runner takes
a job with one conditional UPDATE (due, and not leased by anyone else), so two runners
started by mistake never run the same job at the same time, and a due job runs once. The
lock is a lease: a runner that dies leaves a lock that expires, and a long job renews its
lease as it makes progress (``JobContext.heartbeat``).

Later features add their jobs in ``default_jobs``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, close_old_connections
from django.db.models import F, Q
from django.utils import timezone

from jails.fail2ban import Fail2banError
from jails.models import AuditEntry, ScheduledJob, SiteSettings
from jails.services import history as history_service
from jails.services.audit import Actor
from jails.state import RuntimeState

logger = logging.getLogger(__name__)

SYNC_JOB = "history-sync"
PURGE_JOB = "history-purge"
DEFAULT_RETENTION_DAYS = 365
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


@dataclass(frozen=True)
class JobOutcome:
    name: str
    ok: bool
    message: str


def runner_id() -> str:
    """A name for this runner process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
    }
    if next_run_at is not None:
        changes["next_run_at"] = next_run_at
    return ScheduledJob.objects.filter(name=name, locked_by=owner).update(**changes) == 1


# --- The jobs -------------------------------------------------------------------------------------
def retention_days_get(state: RuntimeState) -> int:
    """The archive's retention: the saved runtime setting, else the state's seed (365 days)."""
    days = SiteSettings.objects.values_list("history_retention_days", flat=True).first()
    if days:
        return int(days)
    # Before the first-run setup saved settings: the JAILADMIN_HISTORY_RETENTION_DAYS seed.
    return int(state.settings.history_retention_days or DEFAULT_RETENTION_DAYS)


def history_sync_job(ctx: JobContext) -> str:
    return history_service.history_sync(
        ctx.state, should_stop=ctx.should_stop, progress=ctx.heartbeat
    ).message


def history_purge_job(ctx: JobContext) -> str:
    return history_service.history_purge(
        retention_days=retention_days_get(ctx.state),
        now=ctx.now,
        actor=Actor.system("job runner", source=AuditEntry.Source.JOB),
        should_stop=ctx.should_stop,
        progress=ctx.heartbeat,
    ).message


def default_jobs(
    *,
    sync_interval: timedelta = timedelta(minutes=1),
    purge_interval: timedelta = timedelta(days=1),
) -> list[JobSpec]:
    """Every periodic job of the site."""
    return [
        JobSpec(SYNC_JOB, sync_interval, history_sync_job),
        JobSpec(PURGE_JOB, purge_interval, history_purge_job, lease=timedelta(minutes=30)),
    ]


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
        try:
            message = job.run(ctx)
            ok = True
        except (Fail2banError, history_service.HistoryError, DatabaseError) as exc:
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
