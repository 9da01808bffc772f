"""`manage.py jails ...`: everything an operator scripts, on the same services as the web.

Exit codes: 0 ok, 1 failed (fail2ban refused or is down, invalid or held-back addresses),
2 usage (bad arguments, unknown --as user). Addresses come from the arguments, or from
stdin (one per line) when none are given or the only one is ``-``. ``--json`` prints
machine-readable output. Changes are audited as ``--as USER`` (a user with the operate
permission) or, by default, as the system actor "system".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from django.core.management.base import CommandError, CommandParser

from jails.apps import runtime_state
from jails.fail2ban import Fail2banError, InvalidArgument
from jails.management.base import RuntimeCommand, command_actor
from jails.services import bans as ban_service
from jails.services import control as control_service
from jails.services import jails as jail_service
from jails.services.audit import Actor
from jails.services.bans import ActionReport, LineStatus
from jails.services.control import describe_error
from jails.state import RuntimeState

EXIT_FAILED = 1
EXIT_USAGE = 2
RUNTIME_NOTE = (
    "note: a runtime change; fail2ban forgets it on reload unless it is in the configuration"
)
MUTATING = {"ban", "unban", "ignore", "set", "idle", "stop", "start", "reload"}


class Command(RuntimeCommand):
    help = (
        "Operate fail2ban jails: status, show, ban, unban, ignore, set, idle, stop, start, "
        "reload, where. Exit codes: 0 ok, 1 failed, 2 usage."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        # A CommandParser like the subparsers it is a parent of (argparse's typing wants the
        # same class); a parent only lends its arguments, so its class changes nothing else.
        common = CommandParser(add_help=False)
        common.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output."
        )
        common.add_argument(
            "--as",
            dest="as_user",
            metavar="USER",
            default=argparse.SUPPRESS,
            help="Audit the change as this user (needs the operate permission).",
        )
        parser.add_argument("--json", action="store_true", help="JSON output.")
        parser.add_argument("--as", dest="as_user", metavar="USER", help="Act as this user.")
        sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)

        p = sub.add_parser("status", parents=[common], help="Every jail, or one jail's counters.")
        p.add_argument("jail", nargs="?")

        p = sub.add_parser("show", parents=[common], help="A jail's settings and current bans.")
        p.add_argument("jail")

        p = sub.add_parser("ban", parents=[common], help="Ban addresses/networks in a jail.")
        p.add_argument("jail")
        p.add_argument("ips", nargs="*", metavar="IP", help="Addresses; none or '-': stdin.")
        p.add_argument(
            "--yes",
            action="store_true",
            help=(
                "Also ban what is otherwise held back: your own (SSH) address, addresses on the "
                "jail's ignore list, private and other special-use ranges, wide networks."
            ),
        )
        p.add_argument("--batch-size", type=int, default=ban_service.BATCH_SIZE)

        p = sub.add_parser("unban", parents=[common], help="Unban addresses (or --all).")
        p.add_argument("ips", nargs="*", metavar="IP", help="Addresses; none or '-': stdin.")
        p.add_argument("--jail", help="Only this jail (default: every jail).")
        p.add_argument(
            "--all", dest="unban_all", action="store_true", help="Every address (of --jail)."
        )

        p = sub.add_parser("ignore", parents=[common], help="Edit a jail's ignore list.")
        p.add_argument("op", choices=["add", "remove"])
        p.add_argument("jail")
        p.add_argument("ips", nargs="*", metavar="IP", help="Addresses; none or '-': stdin.")

        p = sub.add_parser("set", parents=[common], help="Set bantime, findtime or maxretry.")
        p.add_argument("jail")
        p.add_argument("key", choices=list(control_service.TUNE_KEYS))
        p.add_argument("value", help="Duration (600, 10m, 1h, 1d, 1w, -1) or a count.")

        p = sub.add_parser("idle", parents=[common], help="Pause or resume a jail.")
        p.add_argument("jail")
        p.add_argument("state", choices=["on", "off"])

        p = sub.add_parser("stop", parents=[common], help="Stop a jail (gone until a reload).")
        p.add_argument("jail")

        p = sub.add_parser("start", parents=[common], help="Start a jail (reloads if stopped).")
        p.add_argument("jail")

        p = sub.add_parser("reload", parents=[common], help="Reload one jail or the server.")
        p.add_argument("jail", nargs="?")

        p = sub.add_parser("where", parents=[common], help="Which jails ban an address now.")
        p.add_argument("ip")

    # Entry point -----------------------------------------------------------------------------
    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = bool(options.get("json"))
        self.stdin: TextIO = options.get("stdin") or sys.stdin
        subcommand = options["subcommand"]
        actor = command_actor(options.get("as_user")) if subcommand in MUTATING else None
        state = runtime_state()
        try:
            ok = getattr(self, f"cmd_{subcommand}")(state, actor, options)
        except InvalidArgument as exc:
            self._fail(str(exc), EXIT_FAILED)
        except Fail2banError as exc:
            self._fail(describe_error(exc), EXIT_FAILED)
        if not ok:
            raise CommandError("the action did not fully succeed", returncode=EXIT_FAILED)

    def _fail(self, message: str, code: int) -> None:
        if self.as_json:
            self._json({"ok": False, "error": message})
        raise CommandError(message, returncode=code)

    def _addresses(self, values: list[str]) -> list[str]:
        if values and values != ["-"]:
            return values
        isatty = getattr(self.stdin, "isatty", None)
        if isatty is not None and isatty():
            raise CommandError(
                "give addresses as arguments or on stdin (one per line)", returncode=EXIT_USAGE
            )
        return self.stdin.read().splitlines()

    # Output ------------------------------------------------------------------------------------
    def _json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False))

    def _line(self, text: str = "") -> None:
        self.stdout.write(text)

    def _report(self, report: ActionReport) -> bool:
        if self.as_json:
            self._json(report.as_dict())
        else:
            where = report.jail or "every jail"
            counts = ", ".join(f"{n} {status}" for status, n in report.counts.items())
            self._line(f"{report.action} in {where}: {counts or 'nothing to do'}")
            if report.sent:
                self._line(
                    f"sent {report.sent} in {report.batches} batch(es); "
                    f"fail2ban changed {report.changed}"
                )
            for line in report.lines:
                if line.status in (LineStatus.INVALID, LineStatus.SKIPPED):
                    detail = f" ({line.reason})" if line.reason else ""
                    self._line(f"  line {line.number}: {line.text!r} {line.status}{detail}")
            if report.needs_confirmation:
                self._line(
                    f"{len(report.needs_confirmation)} held back: run again with --yes to ban them"
                )
            if report.error:
                self.stderr.write(f"error: {report.error}")
        clean = not any(
            line.status in (LineStatus.INVALID, LineStatus.SKIPPED)
            and not line.reason.startswith("duplicate")
            for line in report.lines
        )
        return report.ok and not report.error and clean

    # Read-only ---------------------------------------------------------------------------------
    def cmd_status(self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]) -> bool:
        overview = jail_service.overview_get(state)
        jails = overview.jails
        if options.get("jail"):
            jail_service.jail_require(state, name=options["jail"])
            jails = tuple(j for j in jails if j.name == options["jail"])
        rows = [
            {
                "jail": j.name,
                "currently_failed": j.currently_failed,
                "total_failed": j.total_failed,
                "currently_banned": j.currently_banned,
                "total_banned": j.total_banned,
                "idle": j.idle,
            }
            for j in jails
        ]
        if self.as_json:
            self._json({"version": overview.version, "jails": rows})
            return True
        self._line(f"fail2ban {overview.version}: {len(overview.jails)} jails")
        self._line(f"{'JAIL':<24} {'FAILED':>8} {'TOTAL':>8} {'BANNED':>8} {'TOTAL':>8}")
        for r in rows:
            self._line(
                f"{r['jail']:<24} {r['currently_failed']:>8} {r['total_failed']:>8} "
                f"{r['currently_banned']:>8} {r['total_banned']:>8}"
            )
        return True

    def cmd_show(self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]) -> bool:
        name = options["jail"]
        jail_service.jail_require(state, name=name)
        detail = jail_service.jail_detail_get(state, name=name)
        bans = jail_service.jail_bans_list(state, name=name)
        data = {
            "jail": name,
            "bantime": detail.bantime,
            "findtime": detail.findtime,
            "maxretry": detail.maxretry,
            "ignoreip": list(detail.ignore_list),
            "currently_failed": detail.summary.currently_failed,
            "currently_banned": detail.summary.currently_banned,
            "total_banned": detail.summary.total_banned,
            "log_sources": list(detail.summary.log_sources),
            "actions": list(detail.actions),
            "bans": [
                {
                    "ip": b.ip,
                    "banned_at": b.banned_at.isoformat(),
                    "ends_at": b.ends_at.isoformat() if b.ends_at else None,
                    "bantime": b.bantime,
                }
                for b in bans
            ],
        }
        if self.as_json:
            self._json(data)
            return True
        for key in ("jail", "bantime", "findtime", "maxretry", "currently_failed"):
            self._line(f"{key:<17} {data[key]}")
        self._line(f"{'ignoreip':<17} {' '.join(data['ignoreip']) or '-'}")
        self._line(f"{'currently_banned':<17} {data['currently_banned']}")
        for ban in data["bans"]:
            self._line(f"  {ban['ip']:<40} {ban['banned_at']}  until {ban['ends_at'] or 'never'}")
        return True

    def cmd_where(self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]) -> bool:
        report = ban_service.ip_where(state, address=options["ip"])
        if self.as_json:
            self._json(report.as_dict())
            return True
        if not report.bans:
            self._line(f"{report.address}: not banned in any jail")
        for ban in report.bans:
            via = "" if ban.exact else f" (via {ban.entry})"
            until = "never" if ban.permanent else (ban.ends_at.isoformat() if ban.ends_at else "?")
            since = ban.banned_at.isoformat() if ban.banned_at else "?"
            self._line(f"{report.address}: banned in {ban.jail}{via} since {since} until {until}")
        for item in report.ignored_by:
            self._line(f"{report.address}: on the ignore list of {item.jail} ({item.entry})")
        return True

    # Changes -----------------------------------------------------------------------------------
    def cmd_ban(self, state: RuntimeState, actor: Actor, options: dict[str, Any]) -> bool:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1", returncode=EXIT_USAGE)
        report = ban_service.ips_ban(
            state,
            jail=options["jail"],
            lines=self._addresses(options["ips"]),
            actor=actor,
            confirmed=options["yes"],
            batch_size=options["batch_size"],
        )
        ok = self._report(report)
        held = len(report.needs_confirmation)
        if held and not report.error:
            # Exit 1 like any partial failure, but say what to do rather than "did not succeed".
            raise CommandError(
                f"{held} address{'es' if held != 1 else ''} held back (reasons above): "
                "run again with --yes to ban them too",
                returncode=EXIT_FAILED,
            )
        return ok

    def cmd_unban(self, state: RuntimeState, actor: Actor, options: dict[str, Any]) -> bool:
        jail = options.get("jail")
        if options["unban_all"]:
            if options["ips"]:
                raise CommandError("--all takes no addresses", returncode=EXIT_USAGE)
            if jail:
                count = ban_service.jail_unban_all(state, jail=jail, actor=actor)
            else:
                count = ban_service.everything_unban(state, actor=actor)
            if self.as_json:
                self._json({"ok": True, "jail": jail, "unbanned": count})
            else:
                self._line(f"unbanned {count} in {jail or 'every jail'}")
            return True
        report = ban_service.ips_unban(
            state, jail=jail, lines=self._addresses(options["ips"]), actor=actor
        )
        return self._report(report)

    def cmd_ignore(self, state: RuntimeState, actor: Actor, options: dict[str, Any]) -> bool:
        jail, add = options["jail"], options["op"] == "add"
        values = _non_blank(self._addresses(options["ips"]))
        if not values:
            raise CommandError("no addresses given", returncode=EXIT_USAGE)
        results = []
        for value in values:
            try:
                if add:
                    control_service.ignore_add(state, jail=jail, address=value, actor=actor)
                else:
                    control_service.ignore_remove(state, jail=jail, address=value, actor=actor)
                results.append({"address": value, "ok": True})
            except InvalidArgument as exc:
                results.append({"address": value, "ok": False, "error": str(exc)})
        listed = control_service.ignore_list_get(state, jail=jail)
        ok = all(item["ok"] for item in results)
        if self.as_json:
            self._json({"ok": ok, "jail": jail, "results": results, "ignoreip": listed})
            return ok
        for item in results:
            if item["ok"]:
                self._line(f"{options['op']} {item['address']}: ok")
            else:
                self.stderr.write(f"{options['op']} {item['address']}: {item['error']}")
        self._line(f"ignore list of {jail}: {' '.join(listed) or '(empty)'}")
        self._line(RUNTIME_NOTE)
        return ok

    def cmd_set(self, state: RuntimeState, actor: Actor, options: dict[str, Any]) -> bool:
        changes = control_service.jail_tune(
            state, jail=options["jail"], actor=actor, **{options["key"]: options["value"]}
        )
        data = {
            "ok": True,
            "jail": options["jail"],
            "changes": {c.key: {"old": c.old, "new": c.new} for c in changes},
        }
        if self.as_json:
            self._json(data)
        elif changes:
            for c in changes:
                self._line(f"{options['jail']}: {c.key} {c.old} -> {c.new}")
            self._line(RUNTIME_NOTE)
        else:
            self._line(f"{options['jail']}: {options['key']} unchanged")
        return True

    def cmd_idle(self, state: RuntimeState, actor: Actor, options: dict[str, Any]) -> bool:
        idle = options["state"] == "on"
        control_service.jail_idle_set(state, jail=options["jail"], idle=idle, actor=actor)
        self._done(
            {"ok": True, "jail": options["jail"], "idle": idle},
            f"{options['jail']}: idle {options['state']}",
        )
        return True

    def cmd_stop(self, state: RuntimeState, actor: Actor, options: dict[str, Any]) -> bool:
        control_service.jail_stop(state, jail=options["jail"], actor=actor)
        self._done(
            {"ok": True, "jail": options["jail"], "stopped": True},
            f"{options['jail']}: stopped (gone until the next reload or start)",
        )
        return True

    def cmd_start(self, state: RuntimeState, actor: Actor, options: dict[str, Any]) -> bool:
        result = control_service.jail_start(state, jail=options["jail"], actor=actor)
        how = " (by reloading the configuration)" if result.via_reload else ""
        self._done(
            {"ok": True, "jail": result.jail, "via_reload": result.via_reload},
            f"{result.jail}: started{how}",
        )
        return True

    def cmd_reload(self, state: RuntimeState, actor: Actor, options: dict[str, Any]) -> bool:
        result = control_service.server_reload(state, jail=options.get("jail"), actor=actor)
        self._done(
            {"ok": True, "jail": result.jail, "output": result.output},
            f"reloaded {result.jail or 'fail2ban'}",
        )
        return True

    def _done(self, data: dict[str, Any], text: str) -> None:
        if self.as_json:
            self._json(data)
        else:
            self._line(text)


def _non_blank(values: Iterable[str]) -> list[str]:
    return [v for v in values if v.strip() and not v.lstrip().startswith(("#", ";"))]
    return None
