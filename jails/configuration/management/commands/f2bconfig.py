"""`manage.py f2bconfig show|edit|test|history|diff|restore`: the configuration editor from
a shell, through the same services (and the same safe path) as the pages. Someone who can
run manage.py administers the site, so every change here is an administrator's; each is
audited as the command's user. `--host NAME` works on that host of the fleet (default: the
local host), through the same scoped state as its /hosts/NAME/config/ pages."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from dataclasses import asdict
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext, gettext_noop, pgettext

from jails.apps import runtime_state
from jails.configuration.models import ConfigVersion
from jails.configuration.selectors import versions as version_selectors
from jails.configuration.services import files as file_service
from jails.configuration.services.files import ApplyOutcome, FileChange
from jails.fail2ban import Fail2banError
from jails.hosts.models import LOCAL_HOST
from jails.hosts.services import fleet
from jails.management.base import RuntimeCommand
from jails.models import AuditEntry
from jails.services.audit import Actor

MAX_INPUT = 256 * 1024 + 1


class Command(RuntimeCommand):
    help = gettext_noop(
        "Show, test, edit, and version fail2ban's configuration (the /config/ pages' services)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json", action="store_true", help=gettext("Print the result as JSON.")
        )
        parser.add_argument(
            "--host",
            default=LOCAL_HOST,
            # argparse fills in %(default)s.
            help=gettext("The host of the fleet (default: %(default)s)."),
        )
        sub = parser.add_subparsers(dest="action", required=True)
        show = sub.add_parser(
            "show", help=gettext("Every jail, or one jail's settings with their origin.")
        )
        show.add_argument("jail", nargs="?")
        edit = sub.add_parser(
            "edit", help=gettext("Replace a .local file (from --from FILE or stdin).")
        )
        edit.add_argument("path")
        edit.add_argument(
            "--from", dest="source", help=gettext("Read the new content from this file.")
        )
        edit.add_argument("--reason", default="", help=gettext("Why (kept with the version)."))
        edit.add_argument(
            "--expect", help=gettext("The SHA-256 the file must still have (default: as read now).")
        )
        test = sub.add_parser("test", help=gettext("Test the configuration, or a candidate file."))
        test.add_argument("path", nargs="?")
        test.add_argument("--from", dest="source")
        history = sub.add_parser("history", help=gettext("The versions kept of one file."))
        history.add_argument("path")
        diff = sub.add_parser("diff", help=gettext("A diff between two versions (ids)."))
        diff.add_argument("a", type=int)
        diff.add_argument("b", type=int)
        restore = sub.add_parser(
            "restore", help=gettext("Put a version back through the safe path.")
        )
        restore.add_argument("version", type=int)
        for subparser in (show, edit, test, history, diff, restore):
            # `f2bconfig show --json` as well as `f2bconfig --json show` (and --host).
            subparser.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
            subparser.add_argument("--host", default=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = options["json"]
        try:
            host = fleet.local_host() if options["host"] == LOCAL_HOST else None
            host = host or fleet.host_get(options["host"])
        except fleet.HostUnknown as exc:
            raise CommandError(str(exc)) from None
        self.host = host.name
        state = fleet.host_state(runtime_state(), host)
        actor = Actor(name=getpass.getuser(), source=AuditEntry.Source.COMMAND)
        try:
            handler = getattr(self, f"do_{options['action']}")
            handler(state, actor, options)
        except Fail2banError as exc:
            raise CommandError(str(exc)) from None

    # --- output ---------------------------------------------------------------------------
    def emit(self, data: Any, text: str) -> None:
        if not self.as_json:
            self.stdout.write(text)
            return
        # A list (history) stays a list: each version names its host itself.
        if isinstance(data, dict):
            data = {"host": self.host, **data}
        self.stdout.write(json.dumps(data, indent=2, default=str))

    def outcome(self, outcome: ApplyOutcome) -> None:
        data = asdict(outcome)
        text = outcome.summary + (
            f"\n{outcome.output}" if outcome.output and not outcome.ok else ""
        )
        self.emit(data, text)
        if not outcome.ok:
            raise CommandError(outcome.summary, returncode=2 if outcome.stage == "conflict" else 1)

    def content(self, options: dict[str, Any]) -> str:
        source = options.get("source")
        if source:
            with open(source, "rb") as handle:
                data = handle.read(MAX_INPUT)
        else:
            data = sys.stdin.buffer.read(MAX_INPUT)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError(gettext("the new content is not UTF-8")) from None

    # --- actions --------------------------------------------------------------------------
    def do_show(self, state: Any, actor: Actor, options: dict[str, Any]) -> None:
        config = file_service.config_get(state)
        if options.get("jail"):
            jail = config.jail(options["jail"])
            if jail is None:
                raise CommandError(
                    gettext("no jail %(jail)s in the configuration") % {"jail": options["jail"]}
                )
            enabled = gettext("enabled") if jail.enabled else gettext("disabled")
            lines = [f"[{jail.name}] {enabled}"]
            for setting in jail.settings:
                where = (
                    f"{setting.origin.file}:{setting.origin.line or '?'} [{setting.origin.section}]"
                    if setting.origin
                    else gettext("built-in")
                )
                value = setting.value.replace("\n", "\n    ")
                lines.append(f"{setting.name} = {value}    # {where}")
            # The errors are the configuration reader's (fail2ban's words): as they are.
            lines += [gettext("error: %(error)s") % {"error": e} for e in jail.errors]
            self.emit(asdict(jail), "\n".join(lines))
            return
        # fail2ban's option names stay as they are; the on/off column and the marker are ours.
        on, off = pgettext("jail enabled", "on"), pgettext("jail enabled", "off")
        errors = " " + gettext("ERRORS")
        rows = [
            f"{on if j.enabled else off:<3} {j.name:<28} filter={j.value('filter')} "
            f"maxretry={j.value('maxretry')} findtime={j.value('findtime')} "
            f"bantime={j.value('bantime')}" + (errors if j.errors else "")
            for j in config.jails
        ]
        self.emit(
            {
                "fail2ban_version": config.fail2ban_version,
                "read_order": list(config.read_order),
                "jails": [asdict(j) for j in config.jails],
            },
            "\n".join(rows),
        )

    def do_edit(self, state: Any, actor: Actor, options: dict[str, Any]) -> None:
        content = self.content(options)
        current = file_service.config_file_get(state, path=options["path"])
        expected = options.get("expect") or current.sha256
        outcome = file_service.config_files_save(
            state,
            changes=[FileChange(current.path, content, expected)],
            actor=actor,
            reason=options.get("reason") or "f2bconfig edit",
            administrator=True,
        )
        self.outcome(outcome)

    def do_test(self, state: Any, actor: Actor, options: dict[str, Any]) -> None:
        changes = []
        if options.get("path"):
            current = file_service.config_file_get(state, path=options["path"])
            changes.append(FileChange(current.path, self.content(options), current.sha256))
        outcome = file_service.config_test(state, changes=changes)
        if outcome.ok:
            self.emit(asdict(outcome), gettext("OK: fail2ban accepts the configuration."))
            return
        self.outcome(outcome)

    def do_history(self, state: Any, actor: Actor, options: dict[str, Any]) -> None:
        file_service.config_file_get(state, path=options["path"])  # records an outside change
        versions = version_selectors.versions_for(host=self.host, path=options["path"])
        data = [_version(v) for v in versions]
        text = "\n".join(
            f"#{v.pk} {v.created_at:%Y-%m-%d %H:%M:%S} {v.source:<7} {v.sha256[:12]} "
            f"{v.actor or '-'} {v.reason}"
            for v in versions
        )
        self.emit(data, text or gettext("no versions"))

    def do_diff(self, state: Any, actor: Actor, options: dict[str, Any]) -> None:
        pair = version_selectors.version_pair(host=self.host, a=options["a"], b=options["b"])
        if pair is None:
            raise CommandError(
                gettext("no such versions of one file on %(host)s") % {"host": self.host}
            )
        old, new = pair
        diff = file_service.file_diff(
            old.content, new.content, old.path, old_label=f"#{old.pk}", new_label=f"#{new.pk}"
        )
        self.emit({"path": old.path, "a": old.pk, "b": new.pk, "diff": diff}, diff)

    def do_restore(self, state: Any, actor: Actor, options: dict[str, Any]) -> None:
        outcome = file_service.version_restore(
            state, version_id=options["version"], actor=actor, administrator=True
        )
        self.outcome(outcome)


def _version(version: ConfigVersion) -> dict[str, Any]:
    return {
        "id": version.pk,
        "host": version.host,
        "path": version.path,
        "created_at": version.created_at.isoformat(),
        "source": version.source,
        "sha256": version.sha256,
        "exists": version.exists,
        "actor": version.actor,
        "reason": version.reason,
    }
