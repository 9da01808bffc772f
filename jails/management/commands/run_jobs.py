"""`manage.py run_jobs`: the long-running job runner (history sync every minute, purge daily)."""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext, gettext_noop

from jails.apps import runtime_state
from jails.jobs import JobOutcome, JobRunner, default_jobs, priority_lower
from jails.management.base import RuntimeCommand
from jails.runtime import runtime_start


class Command(RuntimeCommand):
    help = gettext_noop(
        "Run the periodic jobs (ban history sync, retention purge) until SIGTERM or Ctrl-C. "
        "Several runners may run at once: a lock in the database lets one run each job."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help=gettext("Run the jobs that are due once, then exit."),
        )
        parser.add_argument(
            "--only",
            action="append",
            default=[],
            metavar="JOB",
            help=gettext("Run only this job."),
        )
        parser.add_argument(
            "--sync-interval",
            type=int,
            default=60,
            help=gettext("Seconds between history syncs (60)."),
        )
        parser.add_argument(
            "--purge-interval",
            type=int,
            default=86400,
            help=gettext("Seconds between retention purges (86400)."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["sync_interval"] < 5 or options["purge_interval"] < 60:
            raise CommandError(gettext("intervals must be at least 5 s (sync) and 60 s (purge)"))
        # The jobs come from the apps (jails.history lists these two); the options keep
        # their names from when the runner knew only the history's jobs.
        jobs = default_jobs(
            intervals={
                "history-sync": timedelta(seconds=options["sync_interval"]),
                "history-purge": timedelta(seconds=options["purge_interval"]),
            }
        )
        if options["only"]:
            unknown = set(options["only"]) - {job.name for job in jobs}
            if unknown:
                known = ", ".join(job.name for job in jobs)
                raise CommandError(
                    gettext("unknown job %(job)r (jobs: %(known)s)")
                    % {"job": sorted(unknown)[0], "known": known}
                )
            jobs = [job for job in jobs if job.name in options["only"]]
        # Before any thread starts (the settings watcher below): they inherit it.
        niceness = priority_lower(settings.JAILADMIN_JOBS_NICE)
        # RuntimeCommand loaded the stored settings before handle(). A long-running process
        # also follows later changes saved on /settings/ (fail2ban socket, geo database...)
        # the same way web workers do, instead of keeping the startup values.
        runtime_start(runtime_state(), watch=True)
        stop = threading.Event()
        runner = JobRunner(jobs, state_getter=runtime_state, stop=stop)

        def request_stop(signum: int, frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        names = ", ".join(job.name for job in jobs)
        # The runner's lines below are its log (journald, tests read them): English, like logs.
        self.stdout.write(f"job runner {runner.owner} started (nice {niceness}): {names}")
        self.stdout.flush()

        def report(outcome: JobOutcome) -> None:
            status = "ok" if outcome.ok else "FAILED"
            self.stdout.write(f"{outcome.name} {status}: {outcome.message}")
            self.stdout.flush()

        def passed(ran: int) -> None:
            if options["verbosity"] >= 2:
                self.stdout.write(f"pass complete: {ran} jobs run")
                self.stdout.flush()

        if options["once"]:
            for outcome in runner.run_due():
                report(outcome)
        else:
            runner.run_forever(on_outcome=report, on_pass=passed)
        self.stdout.write(f"job runner {runner.owner} stopped")
