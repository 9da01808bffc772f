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
from typing import Any

from django.core.management.base import CommandError, CommandParser

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
    help = (
        "Manage the fail2ban hosts: list, add, remove, check, confirm-key, install-agent. "
        "Exit codes: 0 ok, 1 failed, 2 usage."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)

        def with_as(p: CommandParser) -> None:
            p.add_argument(
                "--as", dest="as_user", metavar="USER", help="Act as this administrator."
            )

        p = sub.add_parser("list", help="Every host and its reachability as last seen.")
        p.add_argument("--json", action="store_true", help="JSON output.")

        p = sub.add_parser("add", help="Add a host (SSH: its key pair is made and printed).")
        p.add_argument("name")
        p.add_argument("destination", nargs="?", help="SSH: user@host or user@host:port.")
        where = p.add_mutually_exclusive_group()
        where.add_argument("--socket", metavar="PATH", help="A fail2ban socket on this machine.")
        where.add_argument("--agent", metavar="unix:PATH", help="An agent socket on this machine.")
        p.add_argument("--time-zone", default="", metavar="TZ", help="The host's fail2ban zone.")
        p.add_argument("--note", default="")
        p.add_argument("--json", action="store_true", help="JSON output.")
        with_as(p)

        p = sub.add_parser("remove", help="Remove a host (not the local one: disable it).")
        p.add_argument("name")
        p.add_argument("--yes", action="store_true", help="Really remove it.")
        with_as(p)

        p = sub.add_parser("check", help="Connect and report versions and jails, or the error.")
        p.add_argument("name", nargs="?")
        p.add_argument("--all", dest="check_all", action="store_true", help="Every host.")
        p.add_argument("--json", action="store_true", help="JSON output.")

        p = sub.add_parser("confirm-key", help="Fetch the host's SSH key; confirm it.")
        p.add_argument("name")
        which = p.add_mutually_exclusive_group()
        which.add_argument(
            "--fingerprint", metavar="SHA256:…", help="Confirm only the key with this fingerprint."
        )
        which.add_argument("--yes", action="store_true", help="Confirm the key it presents.")
        p.add_argument("--json", action="store_true", help="JSON output.")
        with_as(p)

        p = sub.add_parser(
            "install-agent", help="Print the steps that install the agent, or --perform them."
        )
        p.add_argument("name")
        p.add_argument("--json", action="store_true", help="JSON output.")
        p.add_argument(
            "--perform",
            action="store_true",
            help="Do the steps over a one-time administrator login (--login-key), then check.",
        )
        p.add_argument(
            "--login",
            metavar="USER@HOST:PORT",
            help="The administrator login (default: the host's destination). Not stored.",
        )
        p.add_argument(
            "--login-key", type=Path, metavar="PATH", help="Its private key file. Not stored."
        )
        p.add_argument("--agent-path", default=ssh.AGENT_PATH, help="Where the agent goes.")
        p.add_argument("--python", default=ssh.AGENT_PYTHON, help="The host's python3.")
        p.add_argument(
            "--authorized-keys",
            default="",
            metavar="PATH",
            help="The authorized_keys file (default: the host user's ~/.ssh/authorized_keys).",
        )
        p.add_argument(
            "--agent-option",
            action="append",
            default=[],
            metavar="ARG",
            help="An argument for the agent's forced command (repeat: --agent-option=--socket"
            " --agent-option=/run/fail2ban/fail2ban.sock).",
        )
        with_as(p)

    # Entry point -----------------------------------------------------------------------------
    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = bool(options.get("json"))
        subcommand = str(options["subcommand"]).replace("-", "_")
        try:
            getattr(self, f"cmd_{subcommand}")(options)
        except (HostRefused, InvalidArgument) as exc:
            self._fail(str(exc), EXIT_FAILED)

    def _fail(self, message: str, code: int) -> None:
        if self.as_json:
            self.stdout.write(_dumps({"ok": False, "error": message}))
        raise CommandError(message, returncode=code)

    def _host(self, name: str) -> Host:
        host = Host.objects.filter(name=name).first()
        if host is None:
            self._fail(f"no host named {name!r} (manage.py hosts list)", EXIT_USAGE)
        assert host is not None
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
                seen = f"unreachable since {row['unreachable_since']:%Y-%m-%d %H:%M:%S}"
            elif row["last_seen"]:
                seen = f"seen {row['last_seen']:%Y-%m-%d %H:%M:%S}"
            else:
                seen = "not asked yet"
            key = f"  host key {row['host_key']}" if row["host_key"] else ""
            if row["kind"] == Host.Kind.SSH and not row["host_key"]:
                key = "  host key not confirmed"
            self.stdout.write(
                f"{row['host']:<20} {row['kind']:<7} {row['address'] or '-':<40} "
                f"{'enabled' if row['enabled'] else 'disabled'}  {seen}{key}"
            )

    def cmd_add(self, options: dict[str, Any]) -> None:
        actor = command_actor(options.get("as_user"), permission=PERM_ADMINISTER)
        if options["socket"] or options["agent"]:
            if options["destination"]:
                raise CommandError(
                    "give a DESTINATION or --socket/--agent, not both", returncode=EXIT_USAGE
                )
            kind = Host.Kind.SOCKET if options["socket"] else Host.Kind.AGENT
            address = str(options["socket"] or options["agent"])
        elif options["destination"]:
            kind, address = Host.Kind.SSH, str(options["destination"])
        else:
            raise CommandError(
                "give the SSH DESTINATION (root@host:22), --socket PATH or --agent unix:PATH",
                returncode=EXIT_USAGE,
            )
        if Host.objects.filter(name=options["name"]).exists():
            self._fail(f"there is already a host called {options['name']}", EXIT_USAGE)
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
        self.stdout.write(f"added {host.name} ({host.get_kind_display()}, {host.address})")
        if steps is None:
            self.stdout.write(f"next: manage.py hosts check {host.name}")
            return
        self._steps(host, steps)

    def _steps(self, host: Host, steps: InstallSteps) -> None:
        write = self.stdout.write
        write(f"\n1. Put this line in {steps.authorized_keys_file} on the host:\n")
        write(steps.authorized_keys_line)
        write("\n2. On this machine, in the site's directory:\n")
        for line in steps.on_site:
            write(f"   {line}")
        write("\n3. On the host, as root:\n")
        for line in steps.on_host:
            write(f"   {line}")
        write("\n4. Then, here: compare the fingerprint with the host's")
        write("   (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), confirm it, check:\n")
        write(f"   manage.py hosts confirm-key {host.name}")
        write(f"   manage.py hosts confirm-key {host.name} --fingerprint SHA256:…")
        write(f"   manage.py hosts check {host.name}")

    def cmd_remove(self, options: dict[str, Any]) -> None:
        host = self._host(options["name"])
        if host.is_local:
            self._fail("the local host cannot be removed; disable it instead", EXIT_FAILED)
        if not options["yes"]:
            self._removal_lines(host_service.host_removal(host), done=False)
            self._fail(
                f"would remove {host.name} ({host.address}); run again with --yes to remove it",
                EXIT_FAILED,
            )
        actor = command_actor(options.get("as_user"), permission=PERM_ADMINISTER)
        removal = host_service.host_remove(runtime_state(), host=host, actor=actor)
        self.stdout.write(f"removed {host.name}")
        self._removal_lines(removal, done=True)
        if host.kind == Host.Kind.SSH:
            self.stdout.write(
                "remove its key's line from the host's authorized_keys too "
                f"(the key ends with jailadmin-{host.name})"
            )

    def _removal_lines(self, removal: Removal, *, done: bool) -> None:
        def listed(items: tuple[tuple[str, int], ...]) -> str:
            return ", ".join(f"{count} {label}" for label, count in items)

        self.stdout.write(f"{'kept' if done else 'keeps'} (history): {listed(removal.kept)}")
        self.stdout.write(f"{'removed' if done else 'removes'}: {listed(removal.removed)}")
        if removal.disabled_sources:
            self.stdout.write(
                f"{'disabled' if done else 'disables'} the blocklists that imported into "
                f"{removal.host} alone: {', '.join(removal.disabled_sources)}"
            )

    def cmd_check(self, options: dict[str, Any]) -> None:
        if options["check_all"] == bool(options["name"]):
            raise CommandError("give a host NAME or --all", returncode=EXIT_USAGE)
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
                "not answering: " + ", ".join(failed + unchecked), returncode=EXIT_FAILED
            )

    @staticmethod
    def _check_line(check: HostCheck) -> str:
        name = f"{check.host.name:<20}"
        if check.ok:
            agent = f"agent {check.agent_version}, " if check.agent_version else ""
            jails = ", ".join(check.jails) or "none"
            return (
                f"{name} ok  {agent}fail2ban {check.fail2ban_version or '?'}, "
                f"{len(check.jails)} jails: {jails}"
            )
        if not check.checked:
            return f"{name} not checked: {check.error}"
        since = check.host.unreachable_since
        when = f" since {since:%Y-%m-%d %H:%M:%S}" if since else ""
        return f"{name} UNREACHABLE{when}: {check.error}"

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
                self.stdout.write("the host presents the key already confirmed: nothing to do")
                return
            self.stdout.write(
                "compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host, then:"
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
        self.stdout.write(f"confirmed {host.name}'s key {key.fingerprint}")

    def _scan_lines(self, host: Host, scan: host_service.KeyScan) -> None:
        for key in scan.keys:
            self.stdout.write(f"{host.name} presents {key.key_type} {key.fingerprint}")
        if scan.changed:
            self.stderr.write(
                f"WARNING: the key confirmed before ({scan.confirmed_fingerprint}) is not among "
                "them. If nobody reinstalled the host or replaced its keys, someone else may "
                "be answering in its place: find out why before you confirm."
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
                "--perform needs --login-key PATH (an administrator's key for the host)",
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
                mark = "ok    " if step.ok else "FAILED"
                self.stdout.write(f"{mark} {step.name}: {step.detail}")

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
                f"install-agent stopped at {failed.name!r}: {failed.detail}",
                returncode=EXIT_FAILED,
            )
        if not self.as_json:
            self.stdout.write(f"{host.name}: the agent is installed and answers the site")
