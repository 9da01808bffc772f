"""The scheduled imports, one job of jails.jobs' runner (`manage.py run_jobs`).

One job, "blocklists-import", runs every minute and imports the sources that are due. The
runner's lease makes that job run once across several runners; each source's own lock
(source_lock) keeps a scheduled import from overlapping one started on a page. A failing
source is recorded in its run and the job goes on with the next; the job stops taking new
sources after TIME_BUDGET, so a slow list leaves the rest due for the next pass rather
than holding up the history sync behind it (the runner runs its jobs one after another).
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from jails.blocklists.models import BlocklistSource
from jails.blocklists.services.fetch import FetchPolicy
from jails.blocklists.services.imports import (
    ImportBusy,
    ImportRefused,
    runs_summary,
    source_import,
)
from jails.jobs import JobContext, JobSpec, runner_id
from jails.models import AuditEntry
from jails.services.audit import Actor

IMPORT_JOB = "blocklists-import"
TIME_BUDGET = 120.0  # seconds of imports per pass (a source already started finishes)


def due_sources() -> list[BlocklistSource]:
    """Enabled, confirmed, scheduled URL sources whose next run is due, oldest first."""
    now = timezone.now()
    due = Q(next_run_at__isnull=True) | Q(next_run_at__lte=now)
    return list(
        BlocklistSource.objects.filter(due, enabled=True, confirmed=True)
        .exclude(schedule=BlocklistSource.Schedule.MANUAL)
        .exclude(url="")
        .order_by("next_run_at", "name")
    )


def blocklists_import_job(
    ctx: JobContext, *, policy: FetchPolicy | None = None, budget: float = TIME_BUDGET
) -> str:
    """Import every due source; a failure is one source's, never the job's."""
    actor = Actor.system("job runner", source=AuditEntry.Source.JOB)
    owner = runner_id()
    started = time.monotonic()
    done: list[str] = []
    for source in due_sources():
        if ctx.should_stop() or time.monotonic() - started > budget:
            break
        try:
            runs = source_import(
                ctx.state, source=source, actor=actor, trigger="job", owner=owner, policy=policy
            )
        except (ImportBusy, ImportRefused):
            continue  # imported by someone else right now; or no longer confirmed
        done.append(f"{source.name}: {runs_summary(runs)}")
        ctx.heartbeat()
    return "; ".join(done) or "no source due"


def blocklist_jobs(*, interval: timedelta = timedelta(minutes=1)) -> list[JobSpec]:
    return [JobSpec(IMPORT_JOB, interval, blocklists_import_job, lease=timedelta(minutes=30))]
