"""`manage.py jails ...`: everything an operator scripts, on the same services as the web.

Exit codes: 0 ok, 1 failed (fail2ban refused or is down, invalid or held-back addresses),
2 usage (bad arguments, unknown --as user). Addresses come from the arguments, or from
stdin (one per line) when none are given or the only one is ``-``. ``--json`` prints
machine-readable output. Changes are audited as ``--as USER`` (a user with the operate
permission) or, by default, as the system actor "system".

Hosts (jails.hosts): without a host option a subcommand acts on the local host, exactly as
before the fleet. ``--host NAME`` (repeatable) picks hosts, ``--all-hosts`` takes every
enabled one. Reads ask the hosts in parallel, each within JAILADMIN_HOST_DEADLINE; so do
`ban` and `unban` (that deadline per batch of addresses: a host that misses it is reported
as not answering — the change may still have happened there); the other changes run host
by host. A host that fails prints an error line, the others print their results,
and the exit status is 1. With a host option ``--json`` prints a list, one record per host;
without one, the record it always printed. Every record carries ``"host"``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext, gettext_noop, ngettext, pgettext

from jails.apps import runtime_state
from jails.fail2ban import Fail2banError, Fail2banUnreachable, InvalidArgument, ProtocolError
from jails.hosts.services import fleet
from jails.hosts.services.fleet import HostOutcome, HostScope
from jails.management.base import RuntimeCommand, command_actor, command_hosts
from jails.roles import PERM_OPERATE, PERM_VIEW
from jails.services import bans as ban_service
from jails.services import control as control_service
from jails.services import jails as jail_service
from jails.services.audit import Actor
from jails.services.bans import LINE_STATUS_LABELS, ActionReport, ChangeRun, LineStatus
from jails.services.control import describe_error
from jails.services.operations import AuditDraft, audited
from jails.state import RuntimeState

EXIT_FAILED = 1
EXIT_USAGE = 2
MUTATING = {"ban", "unban", "ignore", "set", "idle", "stop", "start", "reload"}
# Changes never give up on a host half-way (the printed result must be what happened), so
# they run one host per fleet_map call, on this thread, and wait for it: each request has
# the link's own timeout, so a dead host fails within that. The deadline passed says so
# explicitly, should fleet_map ever cut a single host off too.
WRITE_DEADLINE = 24 * 3600.0


@dataclass
class HostResult:
    """One host's part of a subcommand, printed by the main thread in the order asked."""

    data: dict[str, Any]  # the JSON record
    lines: list[str] = field(default_factory=list)  # text for stdout
    errors: list[str] = field(default_factory=list)  # text for stderr
    ok: bool = True
    error: str = ""  # why the host's part failed, when it did
    held: int = 0  # addresses held back until --yes
    # The host did not answer (down, hung, garbage), as opposed to answering with a refusal:
    # recorded on its row (unreachable since...), like the pages do.
    unreachable: bool = False

    @classmethod
    def failure(
        cls, error: str, *, timed_out: bool = False, unreachable: bool = False
    ) -> HostResult:
        data: dict[str, Any] = {"ok": False, "error": error}
        if timed_out:
            data["timed_out"] = True
        return cls(data=data, ok=False, error=error, unreachable=unreachable)

    @classmethod
    def done(cls, line: str, **data: Any) -> HostResult:
        """A part that succeeded in one step: its record (`ok` and `data`) and its one line."""
        return cls(data={"ok": True, **data}, lines=[line])


class Command(RuntimeCommand):
    help = gettext_noop(
        "Operate fail2ban jails: status, show, ban, unban, ignore, set, idle, stop, start, "
        "reload, where; on the local host, on --host NAME (repeatable) or on --all-hosts. "
        "Exit codes: 0 ok, 1 failed, 2 usage."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        # A CommandParser like the subparsers it is a parent of (argparse's typing wants the
        # same class); a parent only lends its arguments, so its class changes nothing else.
        common = CommandParser(add_help=False)
        common.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help=gettext("JSON output.")
        )
        common.add_argument(
            "--as",
            dest="as_user",
            metavar="USER",
            default=argparse.SUPPRESS,
            help=gettext("Audit the change as this user (needs the operate permission)."),
        )
        common.add_argument(
            "--host",
            dest="hosts",
            action="append",
            metavar="NAME",
            default=argparse.SUPPRESS,
            help=gettext("Act on this host (repeatable; default: the local host)."),
        )
        common.add_argument(
            "--all-hosts",
            action="store_true",
            default=argparse.SUPPRESS,
            help=gettext("Act on every enabled host."),
        )
        parser.add_argument("--json", action="store_true", help=gettext("JSON output."))
        parser.add_argument(
            "--as", dest="as_user", metavar="USER", help=gettext("Act as this user.")
        )
        parser.add_argument(
            "--host",
            dest="hosts",
            action="append",
            metavar="NAME",
            help=gettext("Act on this host."),
        )
        parser.add_argument("--all-hosts", action="store_true", help=gettext("Act on every host."))
        sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)

        p = sub.add_parser(
            "status", parents=[common], help=gettext("Every jail, or one jail's counters.")
        )
        p.add_argument("jail", nargs="?")

        p = sub.add_parser(
            "show", parents=[common], help=gettext("A jail's settings and current bans.")
        )
        p.add_argument("jail")

        p = sub.add_parser(
            "ban", parents=[common], help=gettext("Ban addresses/networks in a jail.")
        )
        p.add_argument("jail")
        p.add_argument(
            "ips", nargs="*", metavar="IP", help=gettext("Addresses; none or '-': stdin.")
        )
        p.add_argument(
            "--yes",
            action="store_true",
            help=(
                gettext(
                    "Also ban what is otherwise held back: your own (SSH) address, addresses on "
                    "the jail's ignore list, private and other special-use ranges, wide networks."
                )
            ),
        )
        p.add_argument("--batch-size", type=int, default=ban_service.BATCH_SIZE)

        p = sub.add_parser("unban", parents=[common], help=gettext("Unban addresses (or --all)."))
        p.add_argument(
            "ips", nargs="*", metavar="IP", help=gettext("Addresses; none or '-': stdin.")
        )
        p.add_argument("--jail", help=gettext("Only this jail (default: every jail)."))
        p.add_argument(
            "--all",
            dest="unban_all",
            action="store_true",
            help=gettext("Every address (of --jail)."),
        )

        p = sub.add_parser("ignore", parents=[common], help=gettext("Edit a jail's ignore list."))
        p.add_argument("op", choices=["add", "remove"])
        p.add_argument("jail")
        p.add_argument(
            "ips", nargs="*", metavar="IP", help=gettext("Addresses; none or '-': stdin.")
        )

        p = sub.add_parser(
            "set", parents=[common], help=gettext("Set bantime, findtime or maxretry.")
        )
        p.add_argument("jail")
        p.add_argument("key", choices=list(control_service.TUNE_KEYS))
        p.add_argument("value", help=gettext("Duration (600, 10m, 1h, 1d, 1w, -1) or a count."))

        p = sub.add_parser("idle", parents=[common], help=gettext("Pause or resume a jail."))
        p.add_argument("jail")
        p.add_argument("state", choices=["on", "off"])

        p = sub.add_parser(
            "stop", parents=[common], help=gettext("Stop a jail (gone until a reload).")
        )
        p.add_argument("jail")

        p = sub.add_parser(
            "start", parents=[common], help=gettext("Start a jail (reloads if stopped).")
        )
        p.add_argument("jail")

        p = sub.add_parser(
            "reload", parents=[common], help=gettext("Reload one jail or the server.")
        )
        p.add_argument("jail", nargs="?")

        p = sub.add_parser(
            "where", parents=[common], help=gettext("Which jails ban an address now.")
        )
        p.add_argument("ip")

    # Entry point -----------------------------------------------------------------------------
    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = bool(options.get("json"))
        self.stdin: TextIO = options.get("stdin") or sys.stdin
        subcommand = options["subcommand"]
        mutating = subcommand in MUTATING
        permission = PERM_OPERATE if mutating else PERM_VIEW
        as_user = options.get("as_user")
        # Reads audit nothing, but `--as` still limits them to the user's hosts.
        actor = command_actor(as_user, permission=permission) if mutating or as_user else None
        names: list[str] = list(options.get("hosts") or [])
        fleet_wide = bool(names) or bool(options.get("all_hosts"))
        if names and options.get("all_hosts"):
            raise CommandError(
                gettext("give --host or --all-hosts, not both"), returncode=EXIT_USAGE
            )
        self._prepare(subcommand, options)  # usage errors and stdin, before any host is asked
        state = runtime_state()
        scopes = self._scopes(
            state, names=names, every=fleet_wide and not names, as_user=as_user, perm=permission
        )
        run = self._on_host(getattr(self, f"cmd_{subcommand}"), actor, options)
        outcomes: list[HostOutcome[HostResult]]
        if fleet_wide and _in_parallel(subcommand, options):
            outcomes = self._change_in_parallel(state, scopes, subcommand, actor, options)
        elif mutating:
            # Host by host, in the order asked: a change is never abandoned (WRITE_DEADLINE),
            # and the audit rows are written on this thread, one host after the other.
            outcomes = [
                fleet.fleet_map([one], run, deadline=WRITE_DEADLINE, record=False)[0]
                for one in scopes
            ]
        else:
            outcomes = fleet.fleet_map(
                scopes, run, deadline=state.settings.host_deadline, record=False
            )
        results = [(outcome.name, _result(outcome)) for outcome in outcomes]
        # A service that reports a lost connection inside its result (a ban's report) still
        # leaves its host unreachable on the row.
        fleet.reachability_record(
            replace(outcome, error=result.error or str(result.data.get("error") or "unreachable"))
            if result.unreachable and outcome.ok
            else outcome
            for outcome, (_, result) in zip(outcomes, results, strict=True)
        )
        if fleet_wide:
            self._print_hosts(results)
        else:
            self._print_single(*results[0])

    def _change_in_parallel(
        self,
        state: RuntimeState,
        scopes: list[HostScope],
        subcommand: str,
        actor: Actor | None,
        options: dict[str, Any],
    ) -> list[HostOutcome[HostResult]]:
        """ban / unban on every host at once, each within the per-host deadline (one per
        batch of addresses): a dead host holds up no other. The audit records are written
        on this thread (fleet_change); a host that does not answer in time is reported as
        such — the change may still have happened there — never as done or failed."""
        assert actor is not None
        lines: list[str] = options["lines"]
        batch_size: int = options["batch_size"] if subcommand == "ban" else ban_service.BATCH_SIZE
        batches = max(1, -(-len(lines) // max(batch_size, 1)))
        deadline = state.settings.host_deadline * batches
        # English on purpose: this text is the audit record's error too (finish below) and
        # the JSON record's.
        unknown = f"no answer within {deadline:g} s — the {subcommand} may still have happened"
        jail: str | None = options.get("jail")
        extra: dict[str, Any] = {}
        if subcommand == "ban":
            action, extra["confirmed"] = "ban", options["yes"]

            def work(scoped: RuntimeState) -> ChangeRun:
                return ban_service.ban_run(
                    scoped,
                    jail=options["jail"],
                    lines=lines,
                    actor=actor,
                    confirmed=options["yes"],
                    batch_size=batch_size,
                )
        else:
            action = ban_service.unban_audit_action(jail)

            def work(scoped: RuntimeState) -> ChangeRun:
                return ban_service.unban_run(scoped, jail=jail, lines=lines)

        def failed(outcome: HostOutcome[ChangeRun]) -> str:
            if outcome.skipped:
                return f"not sent: {outcome.error}"
            return unknown if outcome.timed_out else outcome.error

        def audit(item: HostScope) -> AbstractContextManager[AuditDraft]:
            return audited(actor=actor, action=action, jail=jail or "", host=item.name)

        def finish(draft: AuditDraft, outcome: HostOutcome[ChangeRun]) -> None:
            missed = outcome.timed_out and not outcome.skipped
            error = failed(outcome)
            ban_service.change_audit_close(
                draft, outcome.value, error=error, unknown=missed, **extra
            )

        changes = fleet.fleet_change(
            scopes,
            work,
            deadline=deadline,
            audit=audit,
            finish=finish,
            failure_of=ChangeRun.failure,
            record=False,
        )
        outcomes: list[HostOutcome[HostResult]] = []
        for change in changes:
            if change.value is not None:
                result = self._report(change.value.report)
                if subcommand == "ban" and change.value.report.needs_confirmation:
                    result.held = len(change.value.report.needs_confirmation)
                outcomes.append(HostOutcome(change.host, result, seconds=change.seconds))
            else:
                failure = HostOutcome[HostResult](
                    change.host,
                    error=failed(change),
                    timed_out=change.timed_out,
                    seconds=change.seconds,
                    skipped=change.skipped,
                )
                outcomes.append(failure)
        return outcomes

    def _scopes(
        self,
        state: RuntimeState,
        *,
        names: list[str],
        every: bool,
        as_user: str | None,
        perm: str,
    ) -> list[HostScope]:
        """The hosts to act on, scoped; `--as USER` limits them to the user's hosts."""
        allowed = command_hosts(as_user, permission=perm)
        if not names and not every:
            # The site's own fail2ban, as before the fleet (even if its row is disabled).
            local = fleet.local_host()
            if allowed is None or local.name in allowed:
                return [fleet.scope(state, local)]
            names = [local.name]
        refused = [name for name in names if allowed is not None and name not in allowed]
        if refused:
            raise CommandError(
                gettext("--as: %(user)s may not act on host %(host)s")
                % {"user": as_user, "host": refused[0]},
                returncode=EXIT_USAGE,
            )
        try:
            scopes = fleet.scopes_list(state, names=names or None, allowed=allowed)
        except fleet.HostUnknown as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from None
        if not scopes:
            raise CommandError(gettext("no enabled host to act on"), returncode=EXIT_USAGE)
        return scopes

    def _on_host(
        self,
        method: Callable[[RuntimeState, Actor | None, dict[str, Any]], HostResult],
        actor: Actor | None,
        options: dict[str, Any],
    ) -> Callable[[RuntimeState], HostResult]:
        def run(state: RuntimeState) -> HostResult:
            try:
                return method(state, actor, options)
            except Fail2banError as exc:
                return HostResult.failure(describe_error(exc), unreachable=_unreachable(exc))

        return run

    def _prepare(self, subcommand: str, options: dict[str, Any]) -> None:
        """Check the arguments and read stdin once, for every host alike."""
        if subcommand == "ban":
            if options["batch_size"] < 1:
                raise CommandError(
                    gettext("--batch-size must be at least 1"), returncode=EXIT_USAGE
                )
            options["lines"] = self._addresses(options["ips"])
        elif subcommand == "unban":
            if options["unban_all"]:
                if options["ips"]:
                    raise CommandError(gettext("--all takes no addresses"), returncode=EXIT_USAGE)
            else:
                options["lines"] = self._addresses(options["ips"])
        elif subcommand == "ignore":
            options["lines"] = _non_blank(self._addresses(options["ips"]))
            if not options["lines"]:
                raise CommandError(gettext("no addresses given"), returncode=EXIT_USAGE)

    def _addresses(self, values: list[str]) -> list[str]:
        if values and values != ["-"]:
            return values
        isatty = getattr(self.stdin, "isatty", None)
        if isatty is not None and isatty():
            raise CommandError(
                gettext("give addresses as arguments or on stdin (one per line)"),
                returncode=EXIT_USAGE,
            )
        return self.stdin.read().splitlines()

    # Output ------------------------------------------------------------------------------------
    def _json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False))

    def _line(self, text: str = "") -> None:
        self.stdout.write(text)

    def _print_single(self, host: str, result: HostResult) -> None:
        """The local host alone: the output (and exit status) the command always had."""
        if self.as_json:
            self._json({**result.data, "host": host})
        else:
            for line in result.lines:
                self._line(line)
        for line in result.errors:
            self.stderr.write(line)
        if result.held:
            # Exit 1 like any partial failure, but say what to do rather than "did not succeed".
            raise CommandError(_held_back(result.held), returncode=EXIT_FAILED)
        if not result.ok:
            raise CommandError(
                result.error or gettext("the action did not fully succeed"),
                returncode=EXIT_FAILED,
            )

    def _print_hosts(self, results: list[tuple[str, HostResult]]) -> None:
        """Every host's result in the order asked; exit 1 if any host failed."""
        if self.as_json:
            self._json([{"host": host, **result.data} for host, result in results])
        for host, result in results:
            if not self.as_json and (result.lines or result.ok):
                self._line(f"== {host} ==")
                for line in result.lines:
                    self._line(line)
            for line in result.errors:
                self.stderr.write(f"{host}: {line}")
            if result.error:
                self.stderr.write(
                    gettext("%(host)s: error: %(error)s") % {"host": host, "error": result.error}
                )
        failed = [host for host, result in results if not result.ok]
        held = sum(result.held for _, result in results)
        problems = []
        if failed:
            problems.append(
                ngettext(
                    "failed on %(failed)d of %(total)d host: %(names)s",
                    "failed on %(failed)d of %(total)d hosts: %(names)s",
                    len(results),
                )
                % {"failed": len(failed), "total": len(results), "names": ", ".join(failed)}
            )
        if held:
            problems.append(_held_back(held))
        if problems:
            raise CommandError("; ".join(problems), returncode=EXIT_FAILED)

    def _report(self, report: ActionReport) -> HostResult:
        result = HostResult(data=report.as_dict())
        counts = ", ".join(_status_count(status, n) for status, n in report.counts.items())
        result.lines.append(_report_headline(report, counts or gettext("nothing to do")))
        if report.sent:
            result.lines.append(
                ngettext(
                    "sent %(sent)d in %(batches)d batch; fail2ban changed %(changed)d",
                    "sent %(sent)d in %(batches)d batches; fail2ban changed %(changed)d",
                    report.batches,
                )
                % {"sent": report.sent, "batches": report.batches, "changed": report.changed}
            )
        for line in report.lines:
            if line.status in (LineStatus.INVALID, LineStatus.SKIPPED):
                # The reason is the ban service's own text (also in the audit record).
                values = {
                    "number": line.number,
                    "text": line.text,
                    "status": str(LINE_STATUS_LABELS[line.status]),
                    "reason": line.reason,
                }
                if line.reason:
                    text = gettext("line %(number)d: %(text)r %(status)s (%(reason)s)") % values
                else:
                    text = gettext("line %(number)d: %(text)r %(status)s") % values
                result.lines.append(f"  {text}")
        if report.needs_confirmation:
            held = len(report.needs_confirmation)
            result.lines.append(
                ngettext(
                    "%(count)d held back: run again with --yes to ban it",
                    "%(count)d held back: run again with --yes to ban them",
                    held,
                )
                % {"count": held}
            )
        if report.error:
            result.errors.append(gettext("error: %(error)s") % {"error": report.error})
        clean = not any(
            line.status in (LineStatus.INVALID, LineStatus.SKIPPED)
            and not line.reason.startswith("duplicate")
            for line in report.lines
        )
        result.ok = report.ok and not report.error and clean
        result.unreachable = _unreachable(report.failure)
        return result

    # Read-only ---------------------------------------------------------------------------------
    def cmd_status(
        self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]
    ) -> HostResult:
        overview = jail_service.overview_get(state)
        jails = overview.jails
        if options.get("jail"):
            jail_service.jail_require(state, name=options["jail"])
            jails = tuple(j for j in jails if j.name == options["jail"])
        host = state.snapshot.host
        rows = [
            {
                "jail": j.name,
                "currently_failed": j.currently_failed,
                "total_failed": j.total_failed,
                "currently_banned": j.currently_banned,
                "total_banned": j.total_banned,
                "idle": j.idle,
                "host": host,
            }
            for j in jails
        ]
        result = HostResult(data={"version": overview.version, "jails": rows})
        result.lines.append(
            ngettext(
                "fail2ban %(version)s: %(count)d jail",
                "fail2ban %(version)s: %(count)d jails",
                len(overview.jails),
            )
            % {"version": overview.version, "count": len(overview.jails)}
        )
        # Translators: the column headings of `manage.py jails status` (currently failed, total
        # failed, currently banned, total banned); short, in capitals where the script has them.
        jail, failed = pgettext("column", "JAIL"), pgettext("column", "FAILED")
        banned, total = pgettext("column", "BANNED"), pgettext("column", "TOTAL")
        result.lines.append(f"{jail:<24} {failed:>8} {total:>8} {banned:>8} {total:>8}")
        for r in rows:
            result.lines.append(
                f"{r['jail']:<24} {r['currently_failed']:>8} {r['total_failed']:>8} "
                f"{r['currently_banned']:>8} {r['total_banned']:>8}"
            )
        return result

    def cmd_show(
        self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]
    ) -> HostResult:
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
        result = HostResult(data=data)
        # The keys are fail2ban's option names and the JSON's keys: not translated.
        for key in ("jail", "bantime", "findtime", "maxretry", "currently_failed"):
            result.lines.append(f"{key:<17} {data[key]}")
        result.lines.append(f"{'ignoreip':<17} {' '.join(data['ignoreip']) or '-'}")
        result.lines.append(f"{'currently_banned':<17} {data['currently_banned']}")
        for ban in data["bans"]:
            values = {
                "address": f"{ban['ip']:<40}",  # padded: the dates line up
                "since": ban["banned_at"],
                "until": ban["ends_at"] or gettext("never"),
            }
            # Translators: one ban per line in a terminal; keep the two spaces before "until":
            # they separate the columns.
            line = gettext("%(address)s %(since)s  until %(until)s") % values
            result.lines.append("  " + line)
        return result

    def cmd_where(
        self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]
    ) -> HostResult:
        report = ban_service.ip_where(state, address=options["ip"])
        result = HostResult(data=report.as_dict())
        if not report.bans:
            result.lines.append(
                gettext("%(address)s: not banned in any jail") % {"address": report.address}
            )
        for ban in report.bans:
            never = gettext("never")
            values = {
                "address": report.address,
                "jail": ban.jail,
                "entry": ban.entry,
                "since": ban.banned_at.isoformat() if ban.banned_at else "?",
                "until": never
                if ban.permanent
                else (ban.ends_at.isoformat() if ban.ends_at else "?"),
            }
            if ban.exact:
                text = gettext("%(address)s: banned in %(jail)s since %(since)s until %(until)s")
            else:
                text = gettext(
                    "%(address)s: banned in %(jail)s (via %(entry)s) since %(since)s "
                    "until %(until)s"
                )
            result.lines.append(text % values)
        for item in report.ignored_by:
            result.lines.append(
                gettext("%(address)s: on the ignore list of %(jail)s (%(entry)s)")
                % {"address": report.address, "jail": item.jail, "entry": item.entry}
            )
        return result

    # Changes -----------------------------------------------------------------------------------
    def cmd_ban(
        self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]
    ) -> HostResult:
        assert actor is not None
        report = ban_service.ips_ban(
            state,
            jail=options["jail"],
            lines=options["lines"],
            actor=actor,
            confirmed=options["yes"],
            batch_size=options["batch_size"],
        )
        result = self._report(report)
        if report.needs_confirmation and not report.error:
            result.held = len(report.needs_confirmation)
        return result

    def cmd_unban(
        self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]
    ) -> HostResult:
        assert actor is not None
        jail = options.get("jail")
        if options["unban_all"]:
            if jail:
                count = ban_service.jail_unban_all(state, jail=jail, actor=actor)
            else:
                count = ban_service.everything_unban(state, actor=actor)
            if jail:
                # Translators: count is the number of addresses unbanned ("unbanned 3 in
                # sshd"); English reads the same for one and many.
                line = ngettext(
                    "unbanned %(count)d in %(jail)s", "unbanned %(count)d in %(jail)s", count
                ) % {"count": count, "jail": jail}
            else:
                # Translators: count is the number of addresses unbanned.
                line = ngettext(
                    "unbanned %(count)d in every jail", "unbanned %(count)d in every jail", count
                ) % {"count": count}
            return HostResult.done(line, jail=jail, unbanned=count)
        report = ban_service.ips_unban(state, jail=jail, lines=options["lines"], actor=actor)
        return self._report(report)

    def cmd_ignore(
        self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]
    ) -> HostResult:
        assert actor is not None
        jail, add = options["jail"], options["op"] == "add"
        results = []
        for value in options["lines"]:
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
        result = HostResult(
            data={"ok": ok, "jail": jail, "results": results, "ignoreip": listed}, ok=ok
        )
        for item in results:
            if item["ok"]:
                result.lines.append(
                    gettext("%(op)s %(address)s: ok")
                    % {"op": options["op"], "address": item["address"]}
                )
            else:
                result.errors.append(f"{options['op']} {item['address']}: {item['error']}")
        result.lines.append(
            gettext("ignore list of %(jail)s: %(entries)s")
            % {"jail": jail, "entries": " ".join(listed) or gettext("(empty)")}
        )
        result.lines.append(_runtime_note())
        return result

    def cmd_set(
        self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]
    ) -> HostResult:
        assert actor is not None
        changes = control_service.jail_tune(
            state, jail=options["jail"], actor=actor, **{options["key"]: options["value"]}
        )
        result = HostResult(
            data={
                "ok": True,
                "jail": options["jail"],
                "changes": {c.key: {"old": c.old, "new": c.new} for c in changes},
            }
        )
        if changes:
            for c in changes:
                result.lines.append(f"{options['jail']}: {c.key} {c.old} -> {c.new}")
            result.lines.append(_runtime_note())
        else:
            result.lines.append(
                gettext("%(jail)s: %(key)s unchanged")
                % {"jail": options["jail"], "key": options["key"]}
            )
        return result

    def cmd_idle(
        self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]
    ) -> HostResult:
        assert actor is not None
        idle = options["state"] == "on"
        control_service.jail_idle_set(state, jail=options["jail"], idle=idle, actor=actor)
        # Not translated: it echoes the command (`idle JAIL on|off`), fail2ban's own words.
        return HostResult.done(
            f"{options['jail']}: idle {options['state']}", jail=options["jail"], idle=idle
        )

    def cmd_stop(
        self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]
    ) -> HostResult:
        assert actor is not None
        control_service.jail_stop(state, jail=options["jail"], actor=actor)
        line = gettext("%(jail)s: stopped (gone until the next reload or start)") % {
            "jail": options["jail"]
        }
        return HostResult.done(line, jail=options["jail"], stopped=True)

    def cmd_start(
        self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]
    ) -> HostResult:
        assert actor is not None
        started = control_service.jail_start(state, jail=options["jail"], actor=actor)
        if started.via_reload:
            line = gettext("%(jail)s: started (by reloading the configuration)")
        else:
            line = gettext("%(jail)s: started")
        return HostResult.done(
            line % {"jail": started.jail}, jail=started.jail, via_reload=started.via_reload
        )

    def cmd_reload(
        self, state: RuntimeState, actor: Actor | None, options: dict[str, Any]
    ) -> HostResult:
        assert actor is not None
        reloaded = control_service.server_reload(state, jail=options.get("jail"), actor=actor)
        if reloaded.jail:
            line = gettext("reloaded %(jail)s") % {"jail": reloaded.jail}
        else:
            line = gettext("reloaded fail2ban")
        return HostResult.done(line, jail=reloaded.jail, output=reloaded.output)


def _result(outcome: HostOutcome[HostResult]) -> HostResult:
    if outcome.ok and outcome.value is not None:
        return outcome.value
    return HostResult.failure(outcome.error, timed_out=outcome.timed_out, unreachable=True)


def _in_parallel(subcommand: str, options: dict[str, Any]) -> bool:
    """A change that runs on every host at once (the others go host by host)."""
    return subcommand == "ban" or (subcommand == "unban" and not options["unban_all"])


def _unreachable(exc: Exception | None) -> bool:
    """A failure to reach the host, not a refusal by a host that answered."""
    return isinstance(exc, Fail2banUnreachable | ProtocolError)


def _held_back(count: int) -> str:
    return ngettext(
        "%(count)d address held back (reasons above): run again with --yes to ban them too",
        "%(count)d addresses held back (reasons above): run again with --yes to ban them too",
        count,
    ) % {"count": count}


def _runtime_note() -> str:
    return gettext(
        "note: a runtime change; fail2ban forgets it on reload unless it is in the configuration"
    )


def _report_headline(report: ActionReport, counts: str) -> str:
    """`ban in sshd: 2 banned, 1 invalid`: a whole sentence for each action and scope."""
    values = {"jail": report.jail, "counts": counts}
    if report.action == "ban":
        if report.jail:
            return gettext("ban in %(jail)s: %(counts)s") % values
        return gettext("ban in every jail: %(counts)s") % values
    if report.jail:
        return gettext("unban in %(jail)s: %(counts)s") % values
    return gettext("unban in every jail: %(counts)s") % values


def _status_count(status: str, count: int) -> str:
    """`2 banned`: a count and its status, with the plural forms a translation needs."""
    values = {"count": count}
    if status == LineStatus.BANNED:
        # Translators: this and the next five count input lines (addresses) by outcome; English
        # reads the same for one and many, your language may not.
        return ngettext("%(count)d banned", "%(count)d banned", count) % values
    if status == LineStatus.ALREADY_BANNED:
        return ngettext("%(count)d already banned", "%(count)d already banned", count) % values
    if status == LineStatus.UNBANNED:
        return ngettext("%(count)d unbanned", "%(count)d unbanned", count) % values
    if status == LineStatus.NOT_BANNED:
        return ngettext("%(count)d not banned", "%(count)d not banned", count) % values
    if status == LineStatus.INVALID:
        return ngettext("%(count)d invalid", "%(count)d invalid", count) % values
    if status == LineStatus.SKIPPED:
        return ngettext("%(count)d skipped", "%(count)d skipped", count) % values
    return f"{count} {status}"


def _non_blank(values: Iterable[str]) -> list[str]:
    return [v for v in values if v.strip() and not v.lstrip().startswith(("#", ";"))]
