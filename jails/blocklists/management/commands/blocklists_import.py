"""`manage.py blocklists_import [--source NAME] [--host H]... [--json]` and `--file PATH --jail J`.

Without --source: every enabled, confirmed source (as the scheduler would, but now).
--file imports a list once into a jail (no source: nothing is unbanned later).
A source imports on its target hosts (one run each, "host" in the JSON); --host (repeatable)
imports on those hosts instead; --file imports on the local host unless --host is given.
With --as USER, the user needs the operate role on each host (a group may be limited to some).
Exit codes: 0 ok or unchanged, 1 a run failed (or a source is not confirmed or busy),
2 usage. Bans are audited as "blocklist:<source>" on behalf of --as USER or "system".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext, gettext_noop

from jails.apps import runtime_state
from jails.blocklists.management.common import EXIT_FAILED, EXIT_USAGE, command_actor, dumps
from jails.blocklists.models import BlocklistSource, ImportRun
from jails.blocklists.selectors.sources import run_as_dict
from jails.blocklists.services.imports import (
    ImportRefused,
    file_import,
    source_import,
    source_targets,
)
from jails.blocklists.services.sources import MAX_UPLOAD_BYTES
from jails.hosts.models import Host
from jails.hosts.services import fleet
from jails.jobs import runner_id
from jails.management.base import RuntimeCommand, command_hosts


class Command(RuntimeCommand):
    help = gettext_noop(
        "Import blocklists now: every source, one (--source), or a file (--file --jail)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", metavar="NAME", help=gettext("Only this source."))
        parser.add_argument(
            "--file", metavar="PATH", help=gettext("Import this file once (with --jail).")
        )
        parser.add_argument("--jail", metavar="JAIL", help=gettext("The jail for --file."))
        parser.add_argument(
            "--confirm",
            action="store_true",
            help=gettext("Allow a source's first import (look at its preview on the page first)."),
        )
        parser.add_argument(
            "--host",
            dest="hosts",
            action="append",
            metavar="HOST",
            help=gettext("Import on this host only, whatever the source's targets (repeatable)."),
        )
        parser.add_argument(
            "--as", dest="as_user", metavar="USER", help=gettext("Act as this user.")
        )
        parser.add_argument(
            "--json", action="store_true", default=False, help=gettext("JSON output.")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = bool(options["json"])
        self.fleet = fleet.is_fleet()
        if options["file"] and options["source"]:
            raise CommandError(
                gettext("--file and --source exclude each other"), returncode=EXIT_USAGE
            )
        if bool(options["file"]) != bool(options["jail"]):
            raise CommandError(
                gettext("--file needs --jail (and --jail needs --file)"), returncode=EXIT_USAGE
            )
        actor = command_actor(options["as_user"])
        allowed = command_hosts(options["as_user"])
        hosts = self._hosts(options["hosts"])
        state = runtime_state()
        results: list[dict[str, Any]] = []
        ok = True
        if options["file"]:
            path = Path(options["file"])
            try:
                if path.stat().st_size > MAX_UPLOAD_BYTES:
                    raise CommandError(
                        gettext("%(path)s: over the 50 MB cap") % {"path": path},
                        returncode=EXIT_FAILED,
                    )
                text = path.read_bytes().decode("utf-8", errors="replace")
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror}", returncode=EXIT_USAGE) from None
            refused = self._refused_hosts(allowed, hosts or [fleet.local_host()])
            if refused:
                raise CommandError(
                    gettext("--as: %(user)s may not operate on %(hosts)s")
                    % {"user": options["as_user"], "hosts": ", ".join(refused)},
                    returncode=EXIT_FAILED,
                )
            runs = file_import(
                state, text=text, jail=options["jail"], label=path.name, actor=actor, hosts=hosts
            )
            results.extend(run_as_dict(run) for run in runs)
            ok = all(run.status != ImportRun.Status.FAILED for run in runs)
        else:
            sources = BlocklistSource.objects.filter(enabled=True)
            if options["source"]:
                sources = BlocklistSource.objects.filter(name=options["source"])
                if not sources.exists():
                    raise CommandError(
                        gettext("no source named %(source)r") % {"source": options["source"]},
                        returncode=EXIT_USAGE,
                    )
            for source in sources.order_by("name"):
                targets = hosts if hosts is not None else source_targets(source)
                refused = self._refused_hosts(allowed, targets)
                if refused:
                    results.append(
                        {
                            "source": source.name,
                            "status": "refused",
                            # English: the JSON record's (printed below as it is).
                            "errors": f"{options['as_user']} may not operate on "
                            + ", ".join(refused),
                        }
                    )
                    ok = False
                    continue
                try:
                    runs = source_import(
                        state,
                        source=source,
                        actor=actor,
                        trigger="command",
                        owner=runner_id(),
                        confirm=options["confirm"],
                        hosts=hosts,
                    )
                except ImportRefused as exc:
                    results.append({"source": source.name, "status": "refused", "errors": str(exc)})
                    ok = False
                    continue
                results.extend(run_as_dict(run) for run in runs)
                ok = ok and all(run.status != ImportRun.Status.FAILED for run in runs)
        self._print(results)
        if not ok:
            raise CommandError(gettext("an import did not succeed"), returncode=EXIT_FAILED)

    def _hosts(self, names: list[str] | None) -> list[Host] | None:
        """The --host hosts (None: not given); an unknown or disabled one is a usage error."""
        if not names:
            return None
        try:
            return [fleet.host_get(name) for name in dict.fromkeys(names)]
        except fleet.HostUnknown as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from None

    def _refused_hosts(self, allowed: set[str] | None, hosts: list[Host]) -> list[str]:
        """The hosts on which --as USER may not operate (`allowed` None: every host)."""
        if allowed is None:
            return []
        return [host.name for host in hosts if host.name not in allowed]

    def _print(self, results: list[dict[str, Any]]) -> None:
        if self.as_json:
            self.stdout.write(dumps({"runs": results}))
            return
        if not results:
            self.stdout.write(gettext("no sources to import"))
        for r in results:
            # The status is the JSON's value (ok, unchanged, failed, refused): as it is.
            if r.get("host") and self.fleet:
                line = gettext("%(source)s on %(host)s: %(status)s") % r
            else:
                line = gettext("%(source)s: %(status)s") % r
            if "banned" in r:
                line += " — " + (
                    gettext(
                        "%(lines)d lines, %(entries)d entries: %(banned)d banned, "
                        "%(already_banned)d already banned, %(unbanned)d unbanned, "
                        "%(invalid)d invalid, %(skipped)d skipped"
                    )
                    % r
                )
            self.stdout.write(line)
            if r.get("errors"):
                # The run's errors are stored text (English), shown as they are.
                self.stderr.write("  " + gettext("error: %(error)s") % {"error": r["errors"]})
