"""`manage.py history_sync`: copy fail2ban's bans into the archive now (one sync)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from jails.apps import runtime_state
from jails.fail2ban import Fail2banError
from jails.history.services import summaries as history_summaries
from jails.history.services import sync as history_service
from jails.history.services.jobs import PURGE_JOB, SYNC_JOB, retention_days_get
from jails.jobs import job_acquire, job_lease_kept, runner_id
from jails.management.base import RuntimeCommand
from jails.models import AuditEntry
from jails.services.audit import Actor

LEASE = timedelta(minutes=30)


class Command(RuntimeCommand):
    help = (
        "Archive the bans in fail2ban's database now (what the job runner does every minute). "
        "Waits while the job runner is syncing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dbfile",
            default=None,
            help="Read this fail2ban database (e.g. a backup) instead of the one fail2ban uses.",
        )
        parser.add_argument(
            "--purge", action="store_true", help="Also delete bans older than the retention."
        )
        parser.add_argument(
            "--rebuild-summaries",
            action="store_true",
            help="Rebuild the dashboard's summary tables from the archive.",
        )
        parser.add_argument("--wait", type=float, default=60.0, help="Seconds to wait for a lock.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def _lock(self, name: str, owner: str, wait: float) -> None:
        deadline = time.monotonic() + wait
        while not job_acquire(
            name=name, owner=owner, now=timezone.now(), lease=LEASE, when_due=False
        ):
            if time.monotonic() > deadline:
                raise CommandError(f"{name} is running in a job runner; try again later")
            time.sleep(0.5)

    def handle(self, *args: Any, **options: Any) -> None:
        state = runtime_state()
        owner = "history_sync:" + runner_id()
        report: dict[str, Any] = {}
        self._lock(SYNC_JOB, owner, options["wait"])
        with job_lease_kept(name=SYNC_JOB, owner=owner) as outcome:
            try:
                result = history_service.history_sync(state, dbfile=options["dbfile"])
                outcome.succeeded(result.message)
                report["sync"] = {
                    "dbfile": result.dbfile,
                    "read": result.read,
                    "archived": result.archived,
                    "already_archived": result.already,
                    "unusable": result.skipped,
                    "full_reread": result.rescanned,
                    "geo_error": result.geo_error or None,
                }
                if options["rebuild_summaries"]:
                    history_summaries.summaries_rebuild()
                    report["summaries_rebuilt"] = True
            except (Fail2banError, history_service.HistoryError) as exc:
                outcome.message = str(exc)
                raise CommandError(f"history sync failed: {exc}") from exc
        if options["purge"]:
            self._lock(PURGE_JOB, owner, options["wait"])
            with job_lease_kept(name=PURGE_JOB, owner=owner) as outcome:
                days = retention_days_get(state)
                purge = history_service.history_purge(
                    retention_days=days,
                    now=timezone.now(),
                    actor=Actor.system("history_sync", source=AuditEntry.Source.COMMAND),
                )
                report["purge"] = {"retention_days": days, "deleted": purge.deleted}
                outcome.succeeded(purge.message)
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write(self.style.SUCCESS(result.message))
        if "purge" in report:
            self.stdout.write(purge.message)
