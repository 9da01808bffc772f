"""`manage.py demo_fail2ban start|stop|status|attack`: the private demo fail2ban server."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext, gettext_noop, ngettext

from jails.demo import attack, demo_directory, demo_server
from jails.management.base import TranslatedCommand


class Command(TranslatedCommand):
    help = gettext_noop(
        "Start, stop or feed the private demo fail2ban server (no root, no firewall)."
    )
    # The demo is what makes the socket check pass; don't warn about the socket here.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["start", "stop", "status", "attack", "env"])
        parser.add_argument(
            "--dir",
            type=Path,
            default=None,
            help=gettext("Directory of the demo server (default var/demo)."),
        )
        parser.add_argument(
            "--interval", type=float, default=1.5, help=gettext("Seconds between attack bursts.")
        )
        parser.add_argument(
            "--seed", type=int, default=None, help=gettext("Random seed of the attacker.")
        )
        parser.add_argument(
            "--bursts",
            type=int,
            default=None,
            help=gettext("Stop the attacker after this many bursts (default: until Ctrl-C)."),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        directory = options["dir"] or demo_directory(Path(settings.VAR_DIR))
        server = demo_server(directory, tz=settings.JAILADMIN_FAIL2BAN_TIME_ZONE)
        action = options["action"]
        if action == "env":
            # For `eval` in scripts: point jailadmin at the demo server.
            assert server.install is not None
            self.stdout.write(f"export JAILADMIN_FAIL2BAN_SOCKET={server.socket_path}")
            self.stdout.write(f"export JAILADMIN_FAIL2BAN_CONFIG_DIR={server.conf_dir}")
            self.stdout.write(f"export JAILADMIN_FAIL2BAN_CLIENT={server.install.client}")
        elif action == "start":
            if server.is_running():
                self.stdout.write(
                    gettext("demo fail2ban already running at %(socket)s")
                    % {"socket": server.socket_path}
                )
                return
            try:
                server.start()
            except (RuntimeError, FileNotFoundError) as exc:
                raise CommandError(str(exc)) from exc
            jails = ", ".join(j.name for j in server.jails)
            self.stdout.write(
                self.style.SUCCESS(gettext("demo fail2ban started: %(jails)s") % {"jails": jails})
            )
            self.stdout.write(gettext("socket: %(socket)s") % {"socket": server.socket_path})
            self.stdout.write(gettext("point jailadmin at it: eval $(manage.py demo_fail2ban env)"))
        elif action == "stop":
            if not server.is_running():
                self.stdout.write(gettext("demo fail2ban is not running"))
                return
            server.stop()
            self.stdout.write(self.style.SUCCESS(gettext("demo fail2ban stopped")))
        elif action == "status":
            running = server.is_running()
            line = gettext("running: %(socket)s") if running else gettext("stopped: %(socket)s")
            self.stdout.write(line % {"socket": server.socket_path})
            if not running:
                raise CommandError(gettext("demo fail2ban is not running"))
        else:
            if not server.is_running():
                raise CommandError(
                    gettext("start the demo server first: manage.py demo_fail2ban start")
                )
            stopping: list[bool] = []

            def request_stop(signum: int, frame: object) -> None:
                stopping.append(True)

            # Put the caller's handlers back afterwards (call_command from tests, scripts).
            previous = {
                signum: signal.signal(signum, request_stop)
                for signum in (signal.SIGTERM, signal.SIGINT)
            }
            self.stdout.write(
                gettext(
                    "attacking the demo jails (fail2ban's sample log lines) every %(seconds)s s"
                )
                % {"seconds": options["interval"]}
            )
            try:
                bursts = attack(
                    server,
                    interval=options["interval"],
                    should_stop=lambda: bool(stopping),
                    seed=options["seed"],
                    bursts=options["bursts"],
                )
            except (RuntimeError, FileNotFoundError) as exc:
                raise CommandError(str(exc)) from exc
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
            self.stdout.write(
                ngettext(
                    "attacker stopped after %(count)d burst",
                    "attacker stopped after %(count)d bursts",
                    bursts,
                )
                % {"count": bursts}
            )
