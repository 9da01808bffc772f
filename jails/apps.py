from __future__ import annotations

from django.apps import AppConfig, apps
from django.conf import settings

from jails.state import RuntimeSettings, RuntimeState, build_runtime_state


class JailsConfig(AppConfig):
    name = "jails"
    verbose_name = "Jails"
    default_auto_field = "django.db.models.BigAutoField"
    state: RuntimeState

    def ready(self) -> None:
        from jails import checks  # noqa: F401  (registers the system checks)

        # No I/O here: the capability probe and every fail2ban call happen on first use.
        self.state = build_runtime_state(RuntimeSettings.from_django_settings(settings))


def runtime_state() -> RuntimeState:
    """The one accessor views, commands and admin actions use to get the state."""
    config = apps.get_app_config("jails")
    assert isinstance(config, JailsConfig)
    return config.state
