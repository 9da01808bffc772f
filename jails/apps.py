from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from jails.state import RuntimeSettings, RuntimeState, build_runtime_state, runtime_state

# runtime_state lives in jails.state (the bottom of the import graph, so that sessions and
# checks can use it without importing this module); views and commands import it from here.
__all__ = ["JailsConfig", "runtime_state"]


class JailsConfig(AppConfig):
    name = "jails"
    verbose_name = _("Jails")
    default_auto_field = "django.db.models.BigAutoField"
    state: RuntimeState

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        # Registers the system checks, the audit hooks for logins (signals) and the copy of
        # the user's language into the session at login (language).
        from jails import checks, language, signals  # noqa: F401

        post_migrate.connect(_roles_after_migrate, sender=self)

        # No I/O here: the capability probe and every fail2ban call happen on first use.
        self.state = build_runtime_state(RuntimeSettings.from_django_settings(settings))
        # The JAILADMIN_* values are only seeds: the stored runtime settings are read by an
        # explicit jails.runtime.runtime_load() where a process starts (jailadmin/wsgi.py,
        # RuntimeCommand, run_jobs); the accessor never reads them.
        self.state.load_pending = True
        self.state.setup_pending = True


def _roles_after_migrate(sender: AppConfig, using: str = "default", **kwargs: object) -> None:
    # Permissions are created by post_migrate too (auth's handler runs first), so the
    # groups are (re)built here rather than in a data migration.
    from django.contrib.auth.models import Group, Permission

    from jails.roles import roles_ensure

    roles_ensure(Group, Permission)
