from __future__ import annotations

from django.apps import AppConfig


class HostsConfig(AppConfig):
    """The fleet: the fail2ban hosts this site manages (the local one and others over SSH)."""

    name = "jails.hosts"
    label = "hosts"
    verbose_name = "Hosts"
    default_auto_field = "django.db.models.BigAutoField"
