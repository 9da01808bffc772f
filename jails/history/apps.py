from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:  # jails.jobs imports models: not importable while the registry loads
    from jails.jobs import JobSpec


class HistoryConfig(AppConfig):
    name = "jails.history"
    label = "history"
    verbose_name = _("Ban history")
    default_auto_field = "django.db.models.BigAutoField"

    def periodic_jobs(self) -> list[JobSpec]:
        """The archive's jobs for the core runner (jails.jobs.default_jobs collects them)."""
        # Imported here, not at module level: models cannot be imported before the registry
        # is ready, and apps.py is imported while it is being populated.
        from jails.history.services.jobs import history_jobs

        return history_jobs()
