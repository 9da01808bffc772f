"""`manage.py blocklists list [--json]`: every source, its state and its last run."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from jails.blocklists.management.common import dumps
from jails.blocklists.selectors.sources import sources_list
from jails.management.base import RuntimeCommand


class Command(RuntimeCommand):
    help = "Blocklist sources: `list` (with --json for machines)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        p = sub.add_parser("list", help="Every source with its last run.")
        p.add_argument("--json", action="store_true", default=False, help="JSON output.")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = sources_list()
        if options.get("json"):
            self.stdout.write(dumps({"sources": [row.as_dict() for row in rows]}))
            return
        if not rows:
            self.stdout.write("no blocklist sources")
        for row in rows:
            s, run = row.source, row.last_run
            state = "FAILING" if row.failing else ("not confirmed" if not s.confirmed else "ok")
            last = f"{run.started_at:%Y-%m-%d %H:%M} {run.status}" if run else "never run"
            self.stdout.write(
                f"{s.name}  {s.url or '(uploaded file)'}  jail={s.jail}  {s.schedule}"
                f"{'' if s.enabled else ' (disabled)'}  entries={row.entries}  last={last}  {state}"
            )
