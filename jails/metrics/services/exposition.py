"""The /metrics body: every worker's request metrics plus the gauges read at scrape time.

Metric names are an interface (deploy/grafana/jailadmin.json and operators' alerts use
them): add freely, rename never.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector

from jails.metrics.selectors.site import SiteSample, site_sample_get
from jails.metrics.services.fail2ban import Fail2banSample, fail2ban_samples_get
from jails.state import RuntimeState

# Every fail2ban metric names its host (jails.hosts): "local" is the fail2ban this site runs
# beside, every other enabled host adds its own series under the same names.
# A value file starts with its 8-byte header ("bytes used"); smaller, it is being created.
MIN_VALUE_FILE_BYTES = 8


@dataclass(frozen=True)
class ScrapeCollector:
    """A prometheus_client collector over what one scrape has read (no I/O in collect())."""

    fail2ban: tuple[Fail2banSample, ...]  # one per enabled host
    site: SiteSample
    now: float

    def collect(self) -> Iterator[Metric]:
        yield from _fail2ban_families(self.fail2ban, now=self.now)
        yield from _site_families(self.site, now=self.now)


@dataclass(frozen=True)
class ProcessFilesCollector:
    """Every worker's request metrics: MultiProcessCollector's merge over the value files.

    Not MultiProcessCollector itself: a worker creates its file empty and only then sizes
    it, so a scrape in another worker at that instant found a 0-byte file and failed
    (struct.error, seen with two gunicorn workers). A file that small holds no values yet.
    """

    directory: Path

    def collect(self) -> Iterable[Metric]:
        files = []
        for path in self.directory.glob("*.db"):
            try:
                if path.stat().st_size >= MIN_VALUE_FILE_BYTES:
                    files.append(str(path))
            except FileNotFoundError:  # a dead worker's live gauges, removed meanwhile
                continue
        # prometheus_client leaves merge() unannotated: it returns the merged Metric objects.
        merge: Callable[..., Iterable[Metric]] = MultiProcessCollector.merge
        return merge(files, accumulate=True)


def _fail2ban_families(samples: Sequence[Fail2banSample], *, now: float) -> Iterator[Metric]:
    up = GaugeMetricFamily(
        "jailadmin_fail2ban_up", "1 when fail2ban answered its status, else 0.", labels=["host"]
    )
    age = GaugeMetricFamily(
        "jailadmin_fail2ban_sample_age_seconds",
        "How old the fail2ban counters in this scrape are (they are shared for a few seconds).",
        labels=["host"],
    )
    for sample in samples:
        up.add_metric([sample.host], 1 if sample.up else 0)
        age.add_metric([sample.host], max(now - sample.fetched_at, 0.0))
    yield from (up, age)
    answered = [sample for sample in samples if sample.up]
    if not answered:
        return
    info = InfoMetricFamily("jailadmin_fail2ban", "The fail2ban server's version.", labels=["host"])
    jails = GaugeMetricFamily(
        "jailadmin_fail2ban_jails", "Jails fail2ban is running.", labels=["host"]
    )
    labels = ["host", "jail"]
    currently_banned = GaugeMetricFamily(
        "jailadmin_jail_currently_banned", "Addresses banned in the jail now.", labels=labels
    )
    banned = CounterMetricFamily(
        "jailadmin_jail_banned",
        "Bans by the jail since fail2ban (or the jail) started.",
        labels=labels,
    )
    currently_failed = GaugeMetricFamily(
        "jailadmin_jail_currently_failed",
        "Addresses with failures counted against them in the jail now.",
        labels=labels,
    )
    failed = CounterMetricFamily(
        "jailadmin_jail_failed",
        "Failures the jail's filter matched since fail2ban (or the jail) started.",
        labels=labels,
    )
    # A host that did not answer has only its up (0) and age: no stale or made-up counters.
    for sample in answered:
        info.add_metric([sample.host], {"version": sample.version})
        jails.add_metric([sample.host], len(sample.jails))
        for jail in sample.jails:
            key = [sample.host, jail.name]
            currently_banned.add_metric(key, jail.currently_banned)
            banned.add_metric(key, jail.total_banned)
            currently_failed.add_metric(key, jail.currently_failed)
            failed.add_metric(key, jail.total_failed)
    yield from (info, jails, currently_banned, banned, currently_failed, failed)


def _site_families(sample: SiteSample, *, now: float) -> Iterator[Metric]:
    archived = GaugeMetricFamily(
        "jailadmin_archived_bans",
        "Bans kept in jailadmin's history archive, by jail and origin (jail, manual, "
        "blocklist); the retention purge lowers it.",
        labels=["jail", "origin"],
    )
    for row in sample.archived:
        archived.add_metric([row.jail, row.origin], row.bans)
    yield archived
    if sample.last_sync_at is not None:
        last = sample.last_sync_at.timestamp()
        success = GaugeMetricFamily(
            "jailadmin_history_sync_last_success_timestamp_seconds",
            "When the history sync last read fail2ban's database to its end (Unix time).",
        )
        success.add_metric([], last)
        yield success
        lag = GaugeMetricFamily(
            "jailadmin_history_sync_lag_seconds",
            "Seconds since the history sync last succeeded: how far the archive may lag "
            "behind fail2ban (the sync runs every minute).",
        )
        lag.add_metric([], max(now - last, 0.0))
        yield lag
    runs = CounterMetricFamily(
        "jailadmin_job_runs", "Runs of each periodic job (run_jobs), failed or not.", labels=["job"]
    )
    failures = CounterMetricFamily(
        "jailadmin_job_failures", "Runs of each periodic job that failed.", labels=["job"]
    )
    last_ok = GaugeMetricFamily(
        "jailadmin_job_last_run_ok",
        "1 when the job's latest run succeeded, 0 when it failed (absent: never finished).",
        labels=["job"],
    )
    finished = GaugeMetricFamily(
        "jailadmin_job_last_finished_timestamp_seconds",
        "When the job's latest run finished (Unix time).",
        labels=["job"],
    )
    for job in sample.jobs:
        runs.add_metric([job.name], job.runs)
        failures.add_metric([job.name], job.failures)
        if job.last_ok is not None:
            last_ok.add_metric([job.name], 1 if job.last_ok else 0)
        if job.last_finished_at is not None:
            finished.add_metric([job.name], job.last_finished_at.timestamp())
    yield from (runs, failures, last_ok, finished)


def metrics_render(
    state: RuntimeState,
    *,
    directory: Path,
    max_age: int,
    clock: Callable[[], float] = time.time,
) -> bytes:
    """The exposition in Prometheus' text format: one fail2ban round at most (every host at
    once, shared by all workers for `max_age` seconds), a few small queries, every worker's
    request files."""
    fail2ban = fail2ban_samples_get(state, max_age=max_age, clock=clock)
    site = site_sample_get()
    # A registry per scrape: nothing outlives the request, no module-level registry.
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProcessFilesCollector(directory))
    registry.register(ScrapeCollector(fail2ban=fail2ban, site=site, now=clock()))
    return generate_latest(registry)
