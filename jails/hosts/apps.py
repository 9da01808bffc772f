from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HostsConfig(AppConfig):
    """The fleet: the fail2ban hosts this site manages (the local one and others over SSH)."""

    name = "jails.hosts"
    label = "hosts"
    verbose_name = _("Hosts")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Pages keep the host rows per process under a stamp that every write must move.
        from jails.hosts.services.rows import signals_connect

        signals_connect()
