"""`manage.py hosts …`: the hosts this site manages, on the same services as /hosts/.

    hosts list [--json]
    hosts add NAME DESTINATION [--time-zone TZ] [--note TEXT]   (SSH: user@host:port)
    hosts add NAME --socket /path/fail2ban.sock | --agent unix:/path/agent.sock
    hosts remove NAME [--yes]
    hosts check NAME | --all [--json]
    hosts confirm-key NAME [--fingerprint SHA256:… | --yes] [--json]
    hosts install-agent NAME [--json]
    hosts install-agent NAME --perform --login-key PATH [--login root@host:22]
                        [--agent-path P] [--python P] [--authorized-keys P] [--agent-option A]…

Exit codes: 0 ok, 1 failed (unreachable, refused, not confirmed), 2 usage (unknown host, bad
arguments, unknown --as user). Changes are audited as `--as USER` (an administrator) or the
system actor. A private key is never printed: only the public half, as the authorized_keys line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext, gettext_noop, ngettext, pgettext

from jails.agent import ssh
from jails.apps import runtime_state
from jails.fail2ban import InvalidArgument
from jails.hosts.models import Host
from jails.hosts.services import hosts as host_service
from jails.hosts.services.hosts import HostCheck, HostRefused, InstallSteps, Removal
from jails.hosts.services.install import InstallPlan, Step, agent_install
from jails.management.base import EXIT_USAGE, RuntimeCommand, command_actor
from jails.management.commands.agent_bundle import JAILS_DIR, bundle_bytes
from jails.roles import PERM_ADMINISTER

EXIT_FAILED = 1
INSTALL_CHECK_DEADLINE = 30.0


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, ensure_ascii=False)


class Command(RuntimeCommand):
    help = gettext_noop(
        "Manage the fail2ban hosts: list, add, remove, check, confirm-key, install-agent. "
        "Exit codes: 0 ok, 1 failed, 2 usage."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)

        def with_as(p: CommandParser) -> None:
            p.add_argument(
                "--as", dest="as_user", metavar="USER", help=gettext("Act as this administrator.")
            )

        p = sub.add_parser("list", help=gettext("Every host and its reachability as last seen."))
        p.add_argument("--json", action="store_true", help="JSON output.")

        p = sub.add_parser(
            "add", help=gettext("Add a host (SSH: its key pair is made and printed).")
        )
        p.add_argument("name")
        p.add_argument("destination", nargs="?", help=gettext("SSH: user@host or user@host:port."))
        where = p.add_mutually_exclusive_group()
        where.add_argument(
            "--socket", metavar="PATH", help=gettext("A fail2ban socket on this machine.")
        )
        where.add_argument(
            "--agent", metavar="unix:PATH", help=gettext("An agent socket on this machine.")
        )
        p.add_argument(
            "--time-zone", default="", metavar="TZ", help=gettext("The host's fail2ban zone.")
        )
        p.add_argument("--note", default="")
        p.add_argument("--json", action="store_true", help="JSON output.")
        with_as(p)

        p = sub.add_parser("remove", help=gettext("Remove a host (not the local one: disable it)."))
        p.add_argument("name")
        p.add_argument("--yes", action="store_true", help=gettext("Really remove it."))
        with_as(p)

        p = sub.add_parser(
            "check", help=gettext("Connect and report versions and jails, or the error.")
        )
        p.add_argument("name", nargs="?")
        p.add_argument("--all", dest="check_all", action="store_true", help=gettext("Every host."))
        p.add_argument("--json", action="store_true", help="JSON output.")

        p = sub.add_parser("confirm-key", help=gettext("Fetch the host's SSH key; confirm it."))
        p.add_argument("name")
        which = p.add_mutually_exclusive_group()
        which.add_argument(
            "--fingerprint",
            metavar="SHA256:…",
            help=gettext("Confirm only the key with this fingerprint."),
        )
        which.add_argument(
            "--yes", action="store_true", help=gettext("Confirm the key it presents.")
        )
        p.add_argument("--json", action="store_true", help="JSON output.")
        with_as(p)

        p = sub.add_parser(
            "install-agent",
            help=gettext("Print the steps that install the agent, or --perform them."),
        )
        p.add_argument("name")
        p.add_argument("--json", action="store_true", help="JSON output.")
        p.add_argument(
            "--perform",
            action="store_true",
            help=gettext(
                "Do the steps over a one-time administrator login (--login-key), then check."
            ),
        )
        p.add_argument(
            "--login",
            metavar="USER@HOST:PORT",
            help=gettext("The administrator login (default: the host's destination). Not stored."),
        )
        p.add_argument(
            "--login-key",
            type=Path,
            metavar="PATH",
            help=gettext("Its private key file. Not stored."),
        )
        p.add_argument(
            "--agent-path", default=ssh.AGENT_PATH, help=gettext("Where the agent goes.")
        )
        p.add_argument("--python", default=ssh.AGENT_PYTHON, help=gettext("The host's python3."))
        p.add_argument(
            "--authorized-keys",
            default="",
            metavar="PATH",
            help=gettext(
                "The authorized_keys file (default: the host user's ~/.ssh/authorized_keys)."
            ),
        )
        p.add_argument(
            "--agent-option",
            action="append",
            default=[],
            metavar="ARG",
            help=gettext(
                "An argument for the agent's forced command (repeat: --agent-option=--socket"
                " --agent-option=/run/fail2ban/fail2ban.sock)."
            ),
        )
        with_as(p)

    # Entry point -----------------------------------------------------------------------------
    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = bool(options.get("json"))
        subcommand = str(options["subcommand"]).replace("-", "_")
        try:
            getattr(self, f"cmd_{subcommand}")(options)
        except (HostRefused, InvalidArgument) as exc:
            # The services' texts stay English (they are in the audit record too).
            self._fail(str(exc), EXIT_FAILED)

    def _fail(self, message: str, code: int, **values: Any) -> NoReturn:
        """`message`: English (marked with gettext_noop when it is ours), `%(name)s` filled from
        `values`. The JSON record keeps it English (scripts read it); the error is translated."""
        if self.as_json:
            self.stdout.write(
                _dumps({"ok": False, "error": message % values if values else message})
            )
        shown = gettext(message)
        raise CommandError(shown % values if values else shown, returncode=code)

    def _host(self, name: str) -> Host:
        host = Host.objects.filter(name=name).first()
        if host is None:
            self._fail(
                gettext_noop("no host named %(name)r (manage.py hosts list)"), EXIT_USAGE, name=name
            )
        return host

    # Subcommands -------------------------------------------------------------------------------
    def cmd_list(self, options: dict[str, Any]) -> None:
        hosts = host_service.hosts_ordered()
        rows = [
            {
                "host": host.name,
                "kind": host.kind,
                "address": host.address,
                "enabled": host.enabled,
                "time_zone": host.time_zone,
                "host_key": host_service.host_key_fingerprint(host) or None,
                "unreachable_since": host.unreachable_since,
                "last_error": host.last_error or None,
                "last_seen": host.last_seen,
                "note": host.note,
            }
            for host in hosts
        ]
        if self.as_json:
            self.stdout.write(_dumps({"hosts": rows}))
            return
        for row in rows:
            if row["unreachable_since"]:
                seen = gettext("unreachable since %(when)s") % {
                    "when": f"{row['unreachable_since']:%Y-%m-%d %H:%M:%S}"
                }
            elif row["last_seen"]:
                seen = gettext("seen %(when)s") % {"when": f"{row['last_seen']:%Y-%m-%d %H:%M:%S}"}
            else:
                seen = gettext("not asked yet")
            key = ""
            if row["host_key"]:
                key = "  " + gettext("host key %(fingerprint)s") % {"fingerprint": row["host_key"]}
            elif row["kind"] == Host.Kind.SSH:
                key = "  " + gettext("host key not confirmed")
            enabled = gettext("enabled") if row["enabled"] else gettext("disabled")
            # The kind is the JSON's value (local, socket, agent, ssh): as it is.
            self.stdout.write(
                f"{row['host']:<20} {row['kind']:<7} {row['address'] or '-':<40} "
                f"{enabled}  {seen}{key}"
            )

    def cmd_add(self, options: dict[str, Any]) -> None:
        actor = command_actor(options.get("as_user"), permission=PERM_ADMINISTER)
        if options["socket"] or options["agent"]:
            if options["destination"]:
                raise CommandError(
                    gettext("give a DESTINATION or --socket/--agent, not both"),
                    returncode=EXIT_USAGE,
                )
            kind = Host.Kind.SOCKET if options["socket"] else Host.Kind.AGENT
            address = str(options["socket"] or options["agent"])
        elif options["destination"]:
            kind, address = Host.Kind.SSH, str(options["destination"])
        else:
            raise CommandError(
                gettext(
                    "give the SSH DESTINATION (root@host:22), --socket PATH or --agent unix:PATH"
                ),
                returncode=EXIT_USAGE,
            )
        if Host.objects.filter(name=options["name"]).exists():
            self._fail(
                gettext_noop("there is already a host called %(name)s"),
                EXIT_USAGE,
                name=options["name"],
            )
        host = host_service.host_create(
            name=options["name"],
            kind=kind,
            address=address,
            time_zone=options["time_zone"],
            note=options["note"],
            actor=actor,
        )
        steps = host_service.install_steps(host) if host.kind == Host.Kind.SSH else None
        if self.as_json:
            data: dict[str, Any] = {"ok": True, "host": host.name, "kind": host.kind}
            data["address"] = host.address
            if steps is not None:
                data["install"] = steps.as_dict()
            self.stdout.write(_dumps(data))
            return
        self.stdout.write(
            gettext("added %(host)s (%(kind)s, %(address)s)")
            % {"host": host.name, "kind": host.get_kind_display(), "address": host.address}
        )
        if steps is None:
            self.stdout.write(gettext("next: manage.py hosts check %(host)s") % {"host": host.name})
            return
        self._steps(host, steps)

    def _steps(self, host: Host, steps: InstallSteps) -> None:
        write = self.stdout.write
        # The commands are the steps themselves (shell): only the sentences are translated.
        write(
            "\n"
            + gettext("1. Put this line in %(file)s on the host:")
            % {"file": steps.authorized_keys_file}
            + "\n"
        )
        write(steps.authorized_keys_line)
        write("\n" + gettext("2. On this machine, in the site's directory:") + "\n")
        for line in steps.on_site:
            write(f"   {line}")
        write("\n" + gettext("3. On the host, as root:") + "\n")
        for line in steps.on_host:
            write(f"   {line}")
        write(
            "\n"
            + gettext(
                "4. Then, here: compare the fingerprint with the host's\n"
                "   (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), confirm it, check:"
            )
            + "\n"
        )
        write(f"   manage.py hosts confirm-key {host.name}")
        write(f"   manage.py hosts confirm-key {host.name} --fingerprint SHA256:…")
        write(f"   manage.py hosts check {host.name}")

    def cmd_remove(self, options: dict[str, Any]) -> None:
        host = self._host(options["name"])
        if host.is_local:
            self._fail(
                gettext_noop("the local host cannot be removed; disable it instead"), EXIT_FAILED
            )
        if not options["yes"]:
            self._removal_lines(host_service.host_removal(host), done=False)
            self._fail(
                gettext_noop(
                    "would remove %(host)s (%(address)s); run again with --yes to remove it"
                ),
                EXIT_FAILED,
                host=host.name,
                address=host.address,
            )
        actor = command_actor(options.get("as_user"), permission=PERM_ADMINISTER)
        removal = host_service.host_remove(runtime_state(), host=host, actor=actor)
        self.stdout.write(gettext("removed %(host)s") % {"host": host.name})
        self._removal_lines(removal, done=True)
        if host.kind == Host.Kind.SSH:
            self.stdout.write(
                gettext(
                    "remove its key's line from the host's authorized_keys too "
                    "(the key ends with %(comment)s)"
                )
                % {"comment": f"jailadmin-{host.name}"}
            )

    def _removal_lines(self, removal: Removal, *, done: bool) -> None:
        # The counts as the host's remove page shows them ("1 archived ban"), translated; the
        # audit record keeps the service's English labels.
        kept, removed = ", ".join(removal.kept_lines), ", ".join(removal.removed_lines)
        if done:
            self.stdout.write(gettext("kept (history): %(items)s") % {"items": kept})
            self.stdout.write(gettext("removed: %(items)s") % {"items": removed})
        else:
            self.stdout.write(gettext("keeps (history): %(items)s") % {"items": kept})
            self.stdout.write(gettext("removes: %(items)s") % {"items": removed})
        if removal.disabled_sources:
            values = {"host": removal.host, "sources": ", ".join(removal.disabled_sources)}
            if done:
                text = gettext(
                    "disabled the blocklists that imported into %(host)s alone: %(sources)s"
                )
            else:
                text = gettext(
                    "disables the blocklists that imported into %(host)s alone: %(sources)s"
                )
            self.stdout.write(text % values)

    def cmd_check(self, options: dict[str, Any]) -> None:
        if options["check_all"] == bool(options["name"]):
            raise CommandError(gettext("give a host NAME or --all"), returncode=EXIT_USAGE)
        hosts = (
            host_service.hosts_ordered() if options["check_all"] else [self._host(options["name"])]
        )
        state = runtime_state()
        checks = host_service.hosts_check(state, hosts=hosts, deadline=state.settings.host_deadline)
        if self.as_json:
            self.stdout.write(_dumps({"hosts": [check.as_dict() for check in checks]}))
        else:
            for check in checks:
                self.stdout.write(self._check_line(check))
        failed = [check.host.name for check in checks if check.checked and not check.ok]
        unchecked = [
            check.host.name for check in checks if not check.checked and check.host.enabled
        ]
        if failed or (unchecked and not options["check_all"]):
            raise CommandError(
                gettext("not answering: %(hosts)s") % {"hosts": ", ".join(failed + unchecked)},
                returncode=EXIT_FAILED,
            )

    @staticmethod
    def _check_line(check: HostCheck) -> str:
        # The errors are the connection's and fail2ban's own texts: as they are.
        values: dict[str, Any] = {
            "name": f"{check.host.name:<20}",  # padded: the columns line up
            "agent": check.agent_version,
            "version": check.fail2ban_version or "?",
            "count": len(check.jails),
            "jails": ", ".join(check.jails) or pgettext("no jails", "none"),
            "error": check.error,
        }
        if check.ok and check.agent_version:
            return (
                # Translators: one host per line in a terminal; keep the two spaces after "ok":
                # they separate the status column from the details.
                ngettext(
                    "%(name)s ok  agent %(agent)s, fail2ban %(version)s, %(count)d jail: %(jails)s",
                    "%(name)s ok  agent %(agent)s, fail2ban %(version)s, "
                    "%(count)d jails: %(jails)s",
                    len(check.jails),
                )
                % values
            )
        if check.ok:
            return (
                # Translators: as above, keep the two spaces after "ok".
                ngettext(
                    "%(name)s ok  fail2ban %(version)s, %(count)d jail: %(jails)s",
                    "%(name)s ok  fail2ban %(version)s, %(count)d jails: %(jails)s",
                    len(check.jails),
                )
                % values
            )
        if not check.checked:
            return gettext("%(name)s not checked: %(error)s") % values
        since = check.host.unreachable_since
        if since:
            values["since"] = f"{since:%Y-%m-%d %H:%M:%S}"
            return gettext("%(name)s UNREACHABLE since %(since)s: %(error)s") % values
        return gettext("%(name)s UNREACHABLE: %(error)s") % values

    def cmd_confirm_key(self, options: dict[str, Any]) -> None:
        host = self._host(options["name"])
        scan = host_service.host_keys_fetch(host=host)
        data: dict[str, Any] = {
            "host": host.name,
            "address": host.address,
            "presented": [{"type": k.key_type, "fingerprint": k.fingerprint} for k in scan.keys],
            "confirmed_before": scan.confirmed_fingerprint or None,
            "changed": scan.changed,
        }
        if not options["yes"] and not options["fingerprint"]:
            preferred = scan.preferred()
            data.update(ok=True, confirmed=None, would_confirm=preferred and preferred.fingerprint)
            if self.as_json:
                self.stdout.write(_dumps(data))
                return
            self._scan_lines(host, scan)
            if scan.unchanged:
                self.stdout.write(
                    gettext("the host presents the key already confirmed: nothing to do")
                )
                return
            self.stdout.write(
                gettext(
                    "compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host, "
                    "then:"
                )
            )
            if preferred is not None:
                command = f"manage.py hosts confirm-key {host.name}"
                self.stdout.write(f"  {command} --fingerprint {preferred.fingerprint}")
            return
        actor = command_actor(options.get("as_user"), permission=PERM_ADMINISTER)
        key = host_service.host_key_confirm(
            runtime_state(), host=host, actor=actor, fingerprint=options["fingerprint"]
        )
        data.update(ok=True, confirmed=key.fingerprint)
        if self.as_json:
            self.stdout.write(_dumps(data))
            return
        self._scan_lines(host, scan)
        self.stdout.write(
            gettext("confirmed %(host)s's key %(fingerprint)s")
            % {"host": host.name, "fingerprint": key.fingerprint}
        )

    def _scan_lines(self, host: Host, scan: host_service.KeyScan) -> None:
        for key in scan.keys:
            self.stdout.write(
                gettext("%(host)s presents %(type)s %(fingerprint)s")
                % {"host": host.name, "type": key.key_type, "fingerprint": key.fingerprint}
            )
        if scan.changed:
            self.stderr.write(
                gettext(
                    "WARNING: the key confirmed before (%(fingerprint)s) is not among them. If "
                    "nobody reinstalled the host or replaced its keys, someone else may be "
                    "answering in its place: find out why before you confirm."
                )
                % {"fingerprint": scan.confirmed_fingerprint}
            )

    def cmd_install_agent(self, options: dict[str, Any]) -> None:
        host = self._host(options["name"])
        if options["perform"]:
            self._perform(host, options)
            return
        steps = host_service.install_steps(host)
        if self.as_json:
            self.stdout.write(_dumps({"host": host.name, **steps.as_dict()}))
            return
        self._steps(host, steps)

    def _perform(self, host: Host, options: dict[str, Any]) -> None:
        if options["login_key"] is None:
            raise CommandError(
                gettext("--perform needs --login-key PATH (an administrator's key for the host)"),
                returncode=EXIT_USAGE,
            )
        actor = command_actor(options.get("as_user"), permission=PERM_ADMINISTER)
        plan = InstallPlan(
            agent_path=options["agent_path"],
            python=options["python"],
            authorized_keys=options["authorized_keys"],
            agent_options=tuple(options["agent_option"]),
        )
        state = runtime_state()

        def progress(step: Step) -> None:
            if not self.as_json:
                # The step's name and detail are the install service's (in its report too).
                mark = (
                    pgettext("install step", "ok")
                    if step.ok
                    else pgettext("install step", "FAILED")
                )
                self.stdout.write(f"{mark:<6} {step.name}: {step.detail}")

        report = agent_install(
            state,
            host=host,
            login=options["login"] or host.address,
            login_key=options["login_key"],
            # The bundle `manage.py agent_bundle` builds, from this checkout's agent.
            bundle=bundle_bytes(JAILS_DIR),
            plan=plan,
            actor=actor,
            # A one-off check right after the install: the agent's first (cold) start may
            # take longer than a page's per-host deadline.
            deadline=max(state.settings.host_deadline, INSTALL_CHECK_DEADLINE),
            progress=progress,
        )
        if self.as_json:
            self.stdout.write(_dumps(report.as_dict()))
        failed = next((step for step in report.steps if not step.ok), None)
        if failed is not None:
            raise CommandError(
                gettext("install-agent stopped at %(step)r: %(detail)s")
                % {"step": failed.name, "detail": failed.detail},
                returncode=EXIT_FAILED,
            )
        if not self.as_json:
            self.stdout.write(
                gettext("%(host)s: the agent is installed and answers the site")
                % {"host": host.name}
            )
