"""`manage.py jailadmin_setup`: the first-run setup without a browser (same checks as /setup/)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext, gettext_noop, ngettext, pgettext

from jails.apps import runtime_state
from jails.forms import SettingsContext, SetupForm
from jails.management.base import RuntimeCommand
from jails.models import AuditEntry
from jails.services import settings as settings_service
from jails.services import setup as setup_service
from jails.services.settings import SetupAlreadyComplete, SetupFailed
from jails.sessions import KINDS

DEFAULT_PASSWORD_ENV = "JAILADMIN_ADMIN_PASSWORD"


class Command(RuntimeCommand):
    # The variable's name is spelled out: gettext_noop takes a literal (DEFAULT_PASSWORD_ENV).
    help = gettext_noop(
        "Complete the first-run setup non-interactively: create the first administrator and "
        "save the runtime settings, with the same live checks as /setup/. Defaults come from "
        "the JAILADMIN_* environment. The password is read from an environment variable "
        "(--password-env, default JAILADMIN_ADMIN_PASSWORD) or from standard input "
        "(--password-stdin); never from the command line. No setup token is needed here "
        "(whoever runs manage.py is trusted already); --print-token prints the token /setup/ "
        "asks for instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--username", help=gettext("The first administrator (required to set up).")
        )
        parser.add_argument(
            "--print-token",
            action="store_true",
            help=gettext(
                "Print the one-time token /setup/ asks for (created if there is none yet), "
                "or say that the setup is complete; sets nothing up."
            ),
        )
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--password-env",
            default=DEFAULT_PASSWORD_ENV,
            metavar="VARIABLE",
            help=gettext("Environment variable holding the password (default %(variable)s).")
            % {"variable": DEFAULT_PASSWORD_ENV},
        )
        source.add_argument(
            "--password-stdin",
            action="store_true",
            help=gettext("Read the password from the first line of standard input."),
        )
        parser.add_argument("--socket", help=gettext("fail2ban socket path (checked live)."))
        parser.add_argument(
            "--agent",
            help=gettext(
                'The host agent, e.g. unix:/run/jailadmin/agent.sock (checked live); "" for '
                "none: the site then talks to the socket itself."
            ),
        )
        parser.add_argument("--time-zone", help=gettext("Display time zone, e.g. Europe/Berlin."))
        parser.add_argument("--session-lifetime", help=gettext("Session lifetime, e.g. 8h or 30m."))
        parser.add_argument(
            "--session-storage", choices=KINDS, help=gettext("Where sessions live.")
        )
        parser.add_argument("--redis-url", help=gettext("Redis URL for redis session storage."))
        parser.add_argument(
            "--history-retention-days", type=int, help=gettext("Days of ban history to keep.")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        state = runtime_state()
        token_path = Path(settings.JAILADMIN_SETUP_TOKEN_FILE)
        if options["print_token"]:
            self._print_token(token_path)
            return
        if not options["username"]:
            raise CommandError(
                gettext("Give the first administrator with --username (or --print-token).")
            )
        if settings_service.setup_is_complete():
            setup_service.setup_token_delete(path=token_path)
            raise CommandError(
                gettext(
                    "The first-run setup is already complete; change settings on /settings/ "
                    "or in the admin."
                )
            )
        password = self._password(options)
        data: dict[str, Any] = dict(setup_service.setup_initial(state.settings))
        overrides = {
            "fail2ban_socket": options["socket"],
            "fail2ban_agent": options["agent"],
            "display_time_zone": options["time_zone"],
            "session_lifetime_seconds": options["session_lifetime"],
            "session_cache": options["session_storage"],
            "redis_url": options["redis_url"],
            "history_retention_days": options["history_retention_days"],
        }
        data.update({name: value for name, value in overrides.items() if value is not None})
        data.update(username=options["username"], password1=password, password2=password)
        form = SetupForm(data=data, context=SettingsContext.from_settings(state.settings))
        if not form.is_valid():
            # A field's name as the option's (the form's own messages are translated there);
            # the errors of the whole form under the word "setup".
            whole = pgettext("form errors", "setup")
            problems = [
                f"{whole if field == '__all__' else field}: {message}"
                for field, messages in form.errors.items()
                for message in messages
            ]
            raise CommandError(gettext("Nothing was saved:") + "\n  " + "\n  ".join(problems))
        try:
            result = settings_service.site_setup(
                state,
                values=form.site_values(),
                username=form.cleaned_data["username"],
                password=password,
                source=AuditEntry.Source.COMMAND,
            )
        except SetupAlreadyComplete:
            raise CommandError(gettext("The first-run setup is already complete.")) from None
        except SetupFailed as exc:
            raise CommandError(gettext("Nothing was saved: %(error)s.") % {"error": exc}) from None
        values = form.site_values()
        setup_service.setup_token_delete(path=token_path)
        self.stdout.write(
            self.style.SUCCESS(
                gettext(
                    "Setup complete: administrator %(user)s, fail2ban %(version)s at %(where)s, "
                    "sessions in %(storage)s."
                )
                % {
                    "user": result.username,
                    "version": form.fail2ban_version,
                    "where": values.fail2ban_agent or values.fail2ban_socket,
                    "storage": values.session_cache,
                }
            )
        )
        # So the dashboard shows the bans fail2ban holds now, not "No bans archived yet".
        sync = setup_service.setup_history_sync(
            state, fail2ban_socket=values.fail2ban_socket, fail2ban_agent=values.fail2ban_agent
        )
        if sync.ok:
            self.stdout.write(
                ngettext(
                    "Ban history: %(count)d ban archived from fail2ban.",
                    "Ban history: %(count)d bans archived from fail2ban.",
                    sync.archived,
                )
                % {"count": sync.archived}
            )
        else:
            self.stdout.write(
                gettext("Ban history not synced yet (%(reason)s); the job runner will sync it.")
                % {"reason": sync.reason}
            )

    def _print_token(self, token_path: Path) -> None:
        if settings_service.setup_is_complete():
            setup_service.setup_token_delete(path=token_path)
            self.stdout.write(
                gettext("The first-run setup is already complete: no setup token is needed.")
            )
            return
        try:
            token = setup_service.setup_token_ensure(path=token_path)
        except setup_service.SetupTokenError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(token)

    def _password(self, options: dict[str, Any]) -> str:
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError(gettext("No password on standard input."))
            return password
        variable = options["password_env"]
        password = os.environ.get(variable, "")
        if not password:
            raise CommandError(
                gettext(
                    "Set the password in the environment variable %(variable)s or use "
                    "--password-stdin."
                )
                % {"variable": variable}
            )
        return password
