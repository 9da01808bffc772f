"""What a scrape reads from the site's own database: small tables only.

The archive's counts come from the all-time BanRollup rows the history sync keeps in step
with the archive (one row per jail and origin), never from counting BanEvent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max

from jails.history.models import ROLLUP_ALL, BanRollup, HistorySource
from jails.models import ScheduledJob


@dataclass(frozen=True)
class ArchivedBans:
    jail: str
    origin: str
    bans: int


@dataclass(frozen=True)
class JobSample:
    name: str
    runs: int
    failures: int
    last_ok: bool | None  # None: never finished
    last_finished_at: datetime | None


@dataclass(frozen=True)
class SiteSample:
    archived: tuple[ArchivedBans, ...]
    last_sync_at: datetime | None  # the latest successful history sync of any source
    jobs: tuple[JobSample, ...]


def site_sample_get() -> SiteSample:
    """The archive's totals, the history sync's last success and every job's record."""
    archived = tuple(
        ArchivedBans(jail=jail, origin=origin, bans=bans)
        for jail, origin, bans in BanRollup.objects.filter(
            grain=BanRollup.Grain.TOTAL, country_code=ROLLUP_ALL, host=ROLLUP_ALL
        )
        .exclude(jail=ROLLUP_ALL)
        .order_by("jail", "origin")
        .values_list("jail", "origin", "bans")
    )
    # synced_at is written only when a sync has read fail2ban's database to its end.
    last_sync_at = HistorySource.objects.aggregate(latest=Max("synced_at"))["latest"]
    jobs = tuple(
        JobSample(
            name=name, runs=runs, failures=failures, last_ok=last_ok, last_finished_at=finished
        )
        for name, runs, failures, last_ok, finished in ScheduledJob.objects.order_by(
            "name"
        ).values_list("name", "run_count", "failure_count", "last_ok", "last_finished_at")
    )
    return SiteSample(archived=archived, last_sync_at=last_sync_at, jobs=jobs)
