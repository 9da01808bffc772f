"""The ban history's periodic jobs (run by jails.jobs' runner: `manage.py run_jobs`)."""

from __future__ import annotations

from datetime import timedelta

from jails.history.services.sync import (
    HistoryError,
    fleet_history_sync,
    history_purge,
    history_sync,
)
from jails.hosts.services import fleet
from jails.jobs import JobContext, JobSpec
from jails.models import AuditEntry, SiteSettings
from jails.services.audit import Actor
from jails.state import RuntimeState

SYNC_JOB = "history-sync"
PURGE_JOB = "history-purge"
DEFAULT_RETENTION_DAYS = 365


def retention_days_get(state: RuntimeState) -> int:
    """The archive's retention: the saved runtime setting, else the state's seed (365 days)."""
    days = SiteSettings.objects.values_list("history_retention_days", flat=True).first()
    if days:
        return int(days)
    # Before the first-run setup saved settings: the JAILADMIN_HISTORY_RETENTION_DAYS seed.
    return int(state.settings.history_retention_days or DEFAULT_RETENTION_DAYS)


def history_sync_job(ctx: JobContext) -> str:
    """Archive every enabled host's bans (a single-host site: the local host, as ever).

    One failing host among others is named in the job's result, the others archived; the
    job fails (and is retried) only when no host could be read.
    """
    if not fleet.is_fleet():
        return history_sync(ctx.state, should_stop=ctx.should_stop, progress=ctx.heartbeat).message
    result = fleet_history_sync(ctx.state, should_stop=ctx.should_stop, progress=ctx.heartbeat)
    if result.all_failed:
        raise HistoryError(result.message)
    return result.message


def history_purge_job(ctx: JobContext) -> str:
    return history_purge(
        retention_days=retention_days_get(ctx.state),
        now=ctx.now,
        actor=Actor.system("job runner", source=AuditEntry.Source.JOB),
        should_stop=ctx.should_stop,
        progress=ctx.heartbeat,
    ).message


def history_jobs(
    *,
    sync_interval: timedelta = timedelta(minutes=1),
    purge_interval: timedelta = timedelta(days=1),
) -> list[JobSpec]:
    """The sync (every minute) and the retention purge (daily)."""
    # An unreadable fail2ban database is an expected failure: retried, not a crash.
    expected = (HistoryError,)
    return [
        JobSpec(SYNC_JOB, sync_interval, history_sync_job, expected_errors=expected),
        JobSpec(
            PURGE_JOB,
            purge_interval,
            history_purge_job,
            lease=timedelta(minutes=30),
            expected_errors=expected,
        ),
    ]
