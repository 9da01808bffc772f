from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:  # jails.jobs imports models: not importable while the registry loads
    from jails.jobs import JobSpec


class BlocklistsConfig(AppConfig):
    name = "jails.blocklists"
    label = "blocklists"
    verbose_name = _("Blocklists")
    default_auto_field = "django.db.models.BigAutoField"

    def periodic_jobs(self) -> list[JobSpec]:
        """The scheduled imports, one job for every source (jails.jobs.default_jobs collects it)."""
        # Imported here: models cannot be imported while the app registry is being populated.
        from jails.blocklists.services.jobs import blocklist_jobs

        return blocklist_jobs()

    def status_bar_alerts(self) -> list[tuple[str, str]]:
        """Sources that failed several imports in a row, for the status bar (one small query)."""
        from django.urls import reverse

        from jails.blocklists.selectors.sources import failing_sources

        failing = failing_sources()
        if not failing:
            return []
        return [(f"blocklist failing: {', '.join(failing)}", reverse("jails:blocklists:list"))]
