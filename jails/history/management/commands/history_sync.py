"""`manage.py history_sync`: copy fail2ban's bans into the archive now (one sync).

Every enabled host by default (`--all-hosts`), or the hosts named with `--host`; each host's
result is reported, and one failing host does not stop the others.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop, ngettext

from jails.apps import runtime_state
from jails.fail2ban import Fail2banError
from jails.history.services import summaries as history_summaries
from jails.history.services import sync as history_service
from jails.history.services.jobs import PURGE_JOB, SYNC_JOB, retention_days_get
from jails.hosts.services import fleet
from jails.jobs import job_acquire, job_lease_kept, runner_id
from jails.management.base import RuntimeCommand
from jails.models import AuditEntry
from jails.services.audit import Actor

LEASE = timedelta(minutes=30)


class Command(RuntimeCommand):
    help = gettext_noop(
        "Archive the bans in fail2ban's database now (what the job runner does every minute). "
        "Waits while the job runner is syncing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dbfile",
            default=None,
            help=gettext(
                "Read this fail2ban database (e.g. a backup) instead of the one fail2ban uses."
            ),
        )
        hosts = parser.add_mutually_exclusive_group()
        hosts.add_argument(
            "--host",
            action="append",
            metavar="HOST",
            help=gettext("Sync this host only (repeat for several). Default: every enabled host."),
        )
        hosts.add_argument(
            "--all-hosts",
            action="store_true",
            help=gettext("Sync every enabled host (the default)."),
        )
        parser.add_argument(
            "--purge",
            action="store_true",
            help=gettext("Also delete bans older than the retention."),
        )
        parser.add_argument(
            "--rebuild-summaries",
            action="store_true",
            help=gettext("Rebuild the dashboard's summary tables from the archive."),
        )
        parser.add_argument(
            "--wait", type=float, default=60.0, help=gettext("Seconds to wait for a lock.")
        )
        parser.add_argument(
            "--json", action="store_true", help=gettext("Print the result as JSON.")
        )

    def _lock(self, name: str, owner: str, wait: float) -> None:
        deadline = time.monotonic() + wait
        while not job_acquire(
            name=name, owner=owner, now=timezone.now(), lease=LEASE, when_due=False
        ):
            if time.monotonic() > deadline:
                raise CommandError(
                    gettext("%(job)s is running in a job runner; try again later") % {"job": name}
                )
            time.sleep(0.5)

    def handle(self, *args: Any, **options: Any) -> None:
        state = runtime_state()
        try:
            scopes = fleet.scopes_list(state, names=options["host"])
        except fleet.HostUnknown as exc:
            raise CommandError(str(exc)) from exc
        if not scopes:
            raise CommandError(gettext("no enabled host to sync"))
        if options["dbfile"] and len(scopes) != 1:
            raise CommandError(gettext("--dbfile reads one host's database: name it with --host"))
        owner = "history_sync:" + runner_id()
        report: dict[str, Any] = {}
        lines: list[str] = []
        failed: list[str] = []
        self._lock(SYNC_JOB, owner, options["wait"])
        with job_lease_kept(name=SYNC_JOB, owner=owner) as outcome:
            try:
                if options["dbfile"] or len(scopes) == 1:
                    # One host: synced here, its errors are the command's.
                    only = scopes[0]
                    result = history_service.history_sync(only.state, dbfile=options["dbfile"])
                    results: dict[str, tuple[history_service.SyncResult | None, str]] = {
                        only.name: (result, "")
                    }
                    message = result.message
                else:
                    fleet_result = history_service.fleet_history_sync(
                        state, names=[item.name for item in scopes]
                    )
                    if fleet_result.all_failed:
                        raise history_service.HistoryError(fleet_result.message)
                    message = fleet_result.message
                    results = {h.host: (h.result, h.error) for h in fleet_result.hosts}
                outcome.succeeded(message)
                report["hosts"] = {}
                for name, (host_result, error) in results.items():
                    report["hosts"][name] = _result_report(host_result, error)
                    if host_result is not None:
                        prefix = f"{name}: " if len(results) > 1 else ""
                        lines.append(prefix + host_result.message)
                    if error:
                        failed.append(f"{name}: {error}")
                # The single-host shape stays for scripts that read it.
                if len(results) == 1:
                    report["sync"] = report["hosts"][scopes[0].name]
                if options["rebuild_summaries"]:
                    history_summaries.summaries_rebuild()
                    report["summaries_rebuilt"] = True
            except (Fail2banError, history_service.HistoryError) as exc:
                outcome.message = str(exc)  # the job's record: English
                raise CommandError(
                    gettext("history sync failed: %(error)s") % {"error": exc}
                ) from exc
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
        else:
            # The sync's and the purge's messages are also the job's stored record: English.
            for line in lines:
                self.stdout.write(self.style.SUCCESS(line))
            for line in failed:
                self.stderr.write(
                    self.style.ERROR(gettext("history sync failed on %(host)s") % {"host": line})
                )
            if "purge" in report:
                self.stdout.write(purge.message)
        if failed:
            raise CommandError(
                ngettext(
                    "%(failed)d of %(total)d host could not be synced",
                    "%(failed)d of %(total)d hosts could not be synced",
                    len(results),
                )
                % {"failed": len(failed), "total": len(results)}
            )


def _result_report(result: history_service.SyncResult | None, error: str) -> dict[str, Any]:
    if result is None:
        return {"error": error}
    return {
        "dbfile": result.dbfile,
        "read": result.read,
        "archived": result.archived,
        "already_archived": result.already,
        "unusable": result.skipped,
        "full_reread": result.rescanned,
        "geo_error": result.geo_error or None,
        "error": error or None,
    }
