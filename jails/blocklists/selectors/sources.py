"""Reading sources and their runs for the pages, the admin, the status bar and the commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError
from django.db.models import Count

from jails.blocklists.models import BlocklistSource, ImportRun
from jails.blocklists.services.imports import FAILING_AFTER, source_targets


@dataclass(frozen=True)
class SourceRow:
    source: BlocklistSource
    last_run: ImportRun | None
    entries: int
    # The target hosts' names ("every enabled host": all of them); the latest run per host.
    hosts: list[str] = field(default_factory=list)
    host_runs: list[ImportRun] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        return source_failing(self.source)

    def as_dict(self) -> dict[str, Any]:
        s, run = self.source, self.last_run
        return {
            "name": s.name,
            "url": s.url or None,
            "uploaded": bool(s.content),
            "jail": s.jail,
            "schedule": s.schedule,
            "enabled": s.enabled,
            "allow_private": s.allow_private,
            "all_hosts": s.all_hosts,
            "hosts": self.hosts,
            "confirmed": s.confirmed,
            "entries": self.entries,
            "consecutive_failures": s.consecutive_failures,
            "failing": self.failing,
            "next_run_at": s.next_run_at.isoformat() if s.next_run_at else None,
            "last_run": run_as_dict(run) if run else None,
            "last_runs": [run_as_dict(host_run) for host_run in self.host_runs],
        }


def source_failing(source: BlocklistSource) -> bool:
    return source.consecutive_failures >= FAILING_AFTER


def sources_list() -> list[SourceRow]:
    """Every source with its latest run and how many entries it holds."""
    sources = list(BlocklistSource.objects.order_by("name"))
    rows = []
    for source in sources:
        last = source.runs.order_by("-started_at", "-id").first()
        hosts = [host.name for host in source_targets(source)]
        # The latest import's runs: one per host it went to (started together).
        host_runs = (
            list(source.runs.filter(started_at=last.started_at).order_by("host"))
            if last is not None
            else []
        )
        rows.append(SourceRow(source, last, source.entries.count(), hosts, host_runs))
    return rows


def sources_held(source: BlocklistSource) -> dict[str, int]:
    """How many entries the source holds on each host (host name -> count)."""
    counts = source.entries.values("host").annotate(count=Count("id")).order_by("host")
    return {str(row["host"]): int(row["count"]) for row in counts}


def failing_sources() -> list[str]:
    """Names of the sources that failed FAILING_AFTER times in a row (for the status bar)."""
    try:
        return list(
            BlocklistSource.objects.filter(
                enabled=True, consecutive_failures__gte=FAILING_AFTER
            ).values_list("name", flat=True)
        )
    except DatabaseError:  # the status bar reports fail2ban; a database problem shows elsewhere
        return []


def run_as_dict(run: ImportRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "source": run.label,
        "jail": run.jail,
        "host": run.host,
        "trigger": run.trigger,
        "actor": run.actor,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "http_status": run.http_status,
        "bytes": run.bytes,
        "lines": run.lines,
        "entries": run.entries,
        "banned": run.banned,
        "already_banned": run.already_banned,
        "unbanned": run.unbanned,
        "kept": run.kept,
        "invalid": run.invalid,
        "skipped": run.skipped,
        "duplicates": run.duplicates,
        "skipped_reasons": run.skipped_reasons,
        "first_invalid": run.first_invalid,
        "errors": run.errors or None,
    }
