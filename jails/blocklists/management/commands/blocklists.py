"""`manage.py blocklists list [--json]`: every source, its target hosts, state and last runs.
`manage.py blocklists create-jail [--jail NAME] [--as USER] [--json]`: the dedicated jail,
through the configuration editor's safe path (as the button on /blocklists/ does).
Exit codes: 0 ok, 1 not created (refused, `-t` failed, rolled back), 2 usage.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext, gettext_noop

from jails.apps import runtime_state
from jails.blocklists.management.common import EXIT_FAILED, command_actor, dumps
from jails.blocklists.models import DEFAULT_JAIL
from jails.blocklists.selectors.sources import sources_list
from jails.blocklists.services.jail import blocklist_jail_create
from jails.fail2ban import Fail2banError, InvalidArgument
from jails.management.base import RuntimeCommand
from jails.roles import PERM_ADMINISTER
from jails.services.control import describe_error


class Command(RuntimeCommand):
    help = gettext_noop("Blocklist sources: `list`, `create-jail` (with --json for machines).")

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        p = sub.add_parser("list", help=gettext("Every source with its last run."))
        p.add_argument("--json", action="store_true", default=False, help=gettext("JSON output."))
        c = sub.add_parser(
            "create-jail",
            help=gettext("Create the blocklist jail through the configuration editor."),
        )
        c.add_argument(
            "--jail",
            default=DEFAULT_JAIL,
            metavar="NAME",
            help=gettext("Default: %(jail)s.") % {"jail": DEFAULT_JAIL},
        )
        c.add_argument(
            "--as", dest="as_user", metavar="USER", help=gettext("Act as this administrator.")
        )
        c.add_argument("--json", action="store_true", default=False, help=gettext("JSON output."))

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] == "create-jail":
            self._create_jail(options)
            return
        rows = sources_list()
        if options.get("json"):
            self.stdout.write(dumps({"sources": [row.as_dict() for row in rows]}))
            return
        if not rows:
            self.stdout.write(gettext("no blocklist sources"))
        for row in rows:
            s, run = row.source, row.last_run
            # The words are translated; the key=value names, the schedule and the runs'
            # statuses are the JSON's values, language-free.
            if row.failing:
                state = gettext("FAILING")
            else:
                state = gettext("not confirmed") if not s.confirmed else gettext("ok")
            last = f"{run.started_at:%Y-%m-%d %H:%M} {run.status}" if run else gettext("never run")
            if len(row.host_runs) > 1:
                last += " (" + ", ".join(f"{r.host} {r.status}" for r in row.host_runs) + ")"
            if s.all_hosts:
                hosts = gettext("every enabled host")
            else:
                hosts = ",".join(row.hosts) or gettext("none enabled")
            schedule = (
                s.schedule
                if s.enabled
                else gettext("%(schedule)s (disabled)") % {"schedule": s.schedule}
            )
            url = s.url or gettext("(uploaded file)")
            self.stdout.write(
                f"{s.name}  {url}  jail={s.jail}  hosts={hosts}  "
                f"{schedule}  entries={row.entries}  last={last}  {state}"
            )

    def _create_jail(self, options: dict[str, Any]) -> None:
        jail = str(options["jail"])
        actor = command_actor(options["as_user"], permission=PERM_ADMINISTER)
        result: dict[str, Any] = {"jail": jail}
        try:
            outcome = blocklist_jail_create(runtime_state(), jail=jail, actor=actor)
        except InvalidArgument as exc:
            result.update(ok=False, stage="refused", message=str(exc))
        except Fail2banError as exc:
            result.update(ok=False, stage="fail2ban", message=describe_error(exc))
        else:
            result.update(
                ok=outcome.ok,
                stage=outcome.stage,
                message=outcome.summary,
                output=outcome.output,
                rolled_back=outcome.rolled_back,
                written=list(outcome.written),
                reloaded=list(outcome.reloaded),
            )
        if options["json"]:
            self.stdout.write(dumps(result))
        elif result["ok"]:
            self.stdout.write(result["message"])
        if not result["ok"]:
            text = result["message"]
            if result.get("output"):
                text += "\n" + str(result["output"])
            raise CommandError(text, returncode=EXIT_FAILED)
