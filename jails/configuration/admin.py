"""The configuration's versions in the admin: read-only (they are history; a restore goes
through the safe path on the /config/history/ page, never an edit in place)."""

from __future__ import annotations

from django.contrib import admin

from jails.admin_readonly import HostRowsAdmin
from jails.configuration.models import ConfigVersion


@admin.register(ConfigVersion)
class ConfigVersionAdmin(HostRowsAdmin):
    list_display = ("created_at", "host", "path", "source", "actor", "reason", "sha256")
    list_filter = ("host", "source")
    search_fields = ("=path", "actor")
    ordering = ("-created_at", "-id")
