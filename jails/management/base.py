"""The base classes of the management commands: the site's language, the runtime state."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import translation
from django.utils.translation import gettext, pgettext

from jails.fail2ban import InvalidArgument
from jails.fail2ban.validation import parse_ip
from jails.hosts.permissions import hosts_permitted
from jails.roles import PERM_ADMINISTER, PERM_OPERATE, PERM_VIEW
from jails.runtime import runtime_load
from jails.services.audit import Actor
from jails.state import runtime_state

EXIT_USAGE = 2  # a bad command line, like argparse's own


class TranslatedCommand(BaseCommand):
    """A command that speaks the site's default language (settings.LANGUAGE_CODE, from
    JAILADMIN_LANGUAGE), whatever language the calling thread has active.

    `manage.py` activates none; call_command() from a thread that served a request in another
    language (a test, a view) would otherwise answer in that one. Scripts read `--json`,
    which is never translated.

    `help` is marked with gettext_noop and translated when the parser is built: the class
    attribute is read at import, before any language is active, and argparse's formatter needs
    a plain str for the description (a lazy string breaks its regex). The arguments' help
    texts are translated with gettext in add_arguments(), which runs inside create_parser().
    """

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        with translation.override(settings.LANGUAGE_CODE):
            parser = super().create_parser(prog_name, subcommand, **kwargs)
            parser.description = gettext(self.help) if self.help else None
        return parser

    def execute(self, *args: Any, **options: Any) -> str | None:
        with translation.override(settings.LANGUAGE_CODE):
            return super().execute(*args, **options)


class RuntimeCommand(TranslatedCommand):
    """A command whose handle() uses the runtime state: the stored settings are loaded first.

    The accessor never reads the database (jails.state.runtime_state), so a command that
    talks to fail2ban or the sessions would otherwise run on the JAILADMIN_* seeds. Loading
    in execute() covers `manage.py` and call_command() alike, and comes before the system
    checks, which then see what handle() will use.
    """

    def execute(self, *args: Any, **options: Any) -> str | None:
        runtime_load(runtime_state())
        return super().execute(*args, **options)


def ssh_client_address() -> str | None:
    """The address an SSH session comes from: recorded in the audit, and never banned by it
    (that would lock the operator out)."""
    for name in ("SSH_CONNECTION", "SSH_CLIENT"):
        words = os.environ.get(name, "").split()
        if words:
            try:
                return str(parse_ip(words[0]))
            except (InvalidArgument, ipaddress.AddressValueError):
                return None
    return None


def command_actor(username: str | None, *, permission: str = PERM_OPERATE) -> Actor:
    """`--as USER` (who must have `permission`, operate by default), else the system actor."""
    address = ssh_client_address()
    if not username:
        return Actor(name="system", source="command", address=address)
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(
            gettext("--as: no active user named %(user)r") % {"user": username},
            returncode=EXIT_USAGE,
        )
    if not user.has_perm(permission):
        raise CommandError(
            gettext("--as: %(user)s does not have the %(permission)s permission")
            % {"user": username, "permission": _permission_name(permission)},
            returncode=EXIT_USAGE,
        )
    return Actor(name=user.get_username(), source="command", user_id=user.pk, address=address)


def command_hosts(username: str | None, *, permission: str = PERM_OPERATE) -> set[str] | None:
    """The hosts `--as USER` holds `permission` on (jails.hosts.permissions); None: every host
    (no --as: the shell's operator is the machine's administrator). Call command_actor first:
    it refuses an unknown user or one without the permission anywhere."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(
            gettext("--as: no active user named %(user)r") % {"user": username},
            returncode=EXIT_USAGE,
        )
    return hosts_permitted(user, permission)


def _permission_name(permission: str) -> str:
    """The role's permission as the operator reads it (view, operate, administer)."""
    names = {
        PERM_VIEW: pgettext("permission", "view"),
        PERM_OPERATE: pgettext("permission", "operate"),
        PERM_ADMINISTER: pgettext("permission", "administer"),
    }
    return names.get(permission, permission)
