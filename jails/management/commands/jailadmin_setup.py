"""`manage.py jailadmin_setup`: the first-run setup without a browser (same checks as /setup/)."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jails.apps import runtime_state
from jails.forms import SettingsContext, SetupForm
from jails.models import AuditEntry
from jails.services import settings as settings_service
from jails.services.settings import SetupAlreadyComplete, SetupFailed
from jails.sessions import KINDS
from jails.views.setup import setup_initial

DEFAULT_PASSWORD_ENV = "JAILADMIN_ADMIN_PASSWORD"


class Command(BaseCommand):
    help = (
        "Complete the first-run setup non-interactively: create the first administrator and "
        "save the runtime settings, with the same live checks as /setup/. Defaults come from "
        "the JAILADMIN_* environment. The password is read from an environment variable "
        f"(--password-env, default {DEFAULT_PASSWORD_ENV}) or from standard input "
        "(--password-stdin); never from the command line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True, help="The first administrator.")
        source = parser.add_mutually_exclusive_group()
        source.add_argument(
            "--password-env",
            default=DEFAULT_PASSWORD_ENV,
            metavar="VARIABLE",
            help=f"Environment variable holding the password (default {DEFAULT_PASSWORD_ENV}).",
        )
        source.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the password from the first line of standard input.",
        )
        parser.add_argument("--socket", help="fail2ban socket path (checked live).")
        parser.add_argument("--time-zone", help="Display time zone, e.g. Europe/Berlin.")
        parser.add_argument("--session-lifetime", help="Session lifetime, e.g. 8h or 30m.")
        parser.add_argument("--session-storage", choices=KINDS, help="Where sessions live.")
        parser.add_argument("--redis-url", help="Redis URL for redis session storage.")
        parser.add_argument(
            "--history-retention-days", type=int, help="Days of ban history to keep."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        state = runtime_state()
        if settings_service.setup_is_complete():
            raise CommandError(
                "The first-run setup is already complete; change settings on /settings/ "
                "or in the admin."
            )
        password = self._password(options)
        data: dict[str, Any] = dict(setup_initial(state.settings))
        overrides = {
            "fail2ban_socket": options["socket"],
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
            problems = [
                f"{'setup' if field == '__all__' else field}: {message}"
                for field, messages in form.errors.items()
                for message in messages
            ]
            raise CommandError("Nothing was saved:\n  " + "\n  ".join(problems))
        try:
            result = settings_service.site_setup(
                state,
                values=form.site_values(),
                username=form.cleaned_data["username"],
                password=password,
                source=AuditEntry.Source.COMMAND,
            )
        except SetupAlreadyComplete:
            raise CommandError("The first-run setup is already complete.") from None
        except SetupFailed as exc:
            raise CommandError(f"Nothing was saved: {exc}.") from None
        values = form.site_values()
        self.stdout.write(
            self.style.SUCCESS(
                f"Setup complete: administrator {result.username}, fail2ban "
                f"{form.fail2ban_version} at {values.fail2ban_socket}, sessions in "
                f"{values.session_cache}."
            )
        )

    def _password(self, options: dict[str, Any]) -> str:
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("No password on standard input.")
            return password
        variable = options["password_env"]
        password = os.environ.get(variable, "")
        if not password:
            raise CommandError(
                f"Set the password in the environment variable {variable} or use --password-stdin."
            )
        return password
