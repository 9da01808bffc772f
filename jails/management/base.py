"""The base class of the management commands that use the runtime state."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from jails.runtime import runtime_load
from jails.state import runtime_state


class RuntimeCommand(BaseCommand):
    """A command whose handle() uses the runtime state: the stored settings are loaded first.

    The accessor never reads the database (jails.state.runtime_state), so a command that
    talks to fail2ban or the sessions would otherwise run on the JAILADMIN_* seeds. Loading
    in execute() covers `manage.py` and call_command() alike, and comes before the system
    checks, which then see what handle() will use.
    """

    def execute(self, *args: Any, **options: Any) -> str | None:
        runtime_load(runtime_state())
        return super().execute(*args, **options)
