"""What the blocklist commands share: the acting user, like `manage.py jails --as`."""

from __future__ import annotations

import json
import os
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from jails.fail2ban import InvalidArgument
from jails.fail2ban.validation import parse_ip
from jails.roles import PERM_OPERATE
from jails.services.audit import Actor

EXIT_FAILED = 1
EXIT_USAGE = 2


def _ssh_client_address() -> str | None:
    """The address an SSH session comes from (recorded in the audit, as `manage.py jails` does)."""
    for name in ("SSH_CONNECTION", "SSH_CLIENT"):
        words = os.environ.get(name, "").split()
        if words:
            try:
                return str(parse_ip(words[0]))
            except InvalidArgument:
                return None
    return None


def command_actor(username: str | None) -> Actor:
    """`--as USER` (who must have the operate permission), else the system actor."""
    address = _ssh_client_address()
    if not username:
        return Actor(name="system", source="command", address=address)
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"--as: no active user named {username!r}", returncode=EXIT_USAGE)
    if not user.has_perm(PERM_OPERATE):
        raise CommandError(
            f"--as: {username} does not have the operate permission", returncode=EXIT_USAGE
        )
    return Actor(name=user.get_username(), source="command", user_id=user.pk, address=address)


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, ensure_ascii=False)
