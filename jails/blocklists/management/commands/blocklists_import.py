"""`manage.py blocklists_import [--source NAME] [--json]` and `--file PATH --jail J`.

Without --source: every enabled, confirmed source (as the scheduler would, but now).
--file imports a list once into a jail (no source: nothing is unbanned later).
Exit codes: 0 ok or unchanged, 1 a run failed (or a source is not confirmed or busy),
2 usage. Bans are audited as "blocklist:<source>" on behalf of --as USER or "system".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from jails.apps import runtime_state
from jails.blocklists.management.common import EXIT_FAILED, EXIT_USAGE, command_actor, dumps
from jails.blocklists.models import BlocklistSource, ImportRun
from jails.blocklists.selectors.sources import run_as_dict
from jails.blocklists.services.imports import ImportRefused, file_import, source_import
from jails.blocklists.services.sources import MAX_UPLOAD_BYTES
from jails.jobs import runner_id
from jails.management.base import RuntimeCommand


class Command(RuntimeCommand):
    help = "Import blocklists now: every source, one (--source), or a file (--file --jail)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", metavar="NAME", help="Only this source.")
        parser.add_argument("--file", metavar="PATH", help="Import this file once (with --jail).")
        parser.add_argument("--jail", metavar="JAIL", help="The jail for --file.")
        parser.add_argument(
            "--confirm",
            action="store_true",
            help="Allow a source's first import (look at its preview on the page first).",
        )
        parser.add_argument("--as", dest="as_user", metavar="USER", help="Act as this user.")
        parser.add_argument("--json", action="store_true", default=False, help="JSON output.")

    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = bool(options["json"])
        if options["file"] and options["source"]:
            raise CommandError("--file and --source exclude each other", returncode=EXIT_USAGE)
        if bool(options["file"]) != bool(options["jail"]):
            raise CommandError(
                "--file needs --jail (and --jail needs --file)", returncode=EXIT_USAGE
            )
        actor = command_actor(options["as_user"])
        state = runtime_state()
        results: list[dict[str, Any]] = []
        ok = True
        if options["file"]:
            path = Path(options["file"])
            try:
                if path.stat().st_size > MAX_UPLOAD_BYTES:
                    raise CommandError(f"{path}: over the 50 MB cap", returncode=EXIT_FAILED)
                text = path.read_bytes().decode("utf-8", errors="replace")
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror}", returncode=EXIT_USAGE) from None
            run = file_import(state, text=text, jail=options["jail"], label=path.name, actor=actor)
            results.append(run_as_dict(run))
            ok = run.status != ImportRun.Status.FAILED
        else:
            sources = BlocklistSource.objects.filter(enabled=True)
            if options["source"]:
                sources = BlocklistSource.objects.filter(name=options["source"])
                if not sources.exists():
                    raise CommandError(
                        f"no source named {options['source']!r}", returncode=EXIT_USAGE
                    )
            for source in sources.order_by("name"):
                try:
                    run = source_import(
                        state,
                        source=source,
                        actor=actor,
                        trigger="command",
                        owner=runner_id(),
                        confirm=options["confirm"],
                    )
                except ImportRefused as exc:
                    results.append({"source": source.name, "status": "refused", "errors": str(exc)})
                    ok = False
                    continue
                results.append(run_as_dict(run))
                ok = ok and run.status != ImportRun.Status.FAILED
        self._print(results)
        if not ok:
            raise CommandError("an import did not succeed", returncode=EXIT_FAILED)

    def _print(self, results: list[dict[str, Any]]) -> None:
        if self.as_json:
            self.stdout.write(dumps({"runs": results}))
            return
        if not results:
            self.stdout.write("no sources to import")
        for r in results:
            line = f"{r['source']}: {r['status']}"
            if "banned" in r:
                line += (
                    f" — {r['lines']} lines, {r['entries']} entries: {r['banned']} banned, "
                    f"{r['already_banned']} already banned, {r['unbanned']} unbanned, "
                    f"{r['invalid']} invalid, {r['skipped']} skipped"
                )
            self.stdout.write(line)
            if r.get("errors"):
                self.stderr.write(f"  error: {r['errors']}")
