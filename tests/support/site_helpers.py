"""Helpers for the setup, settings, session and access tests (issue #3)."""

from __future__ import annotations

from typing import Any

from jails.models import SiteSettings

STRONG_PASSWORD = "correct-horse-battery-staple-42"


def site_settings_create(socket_path: str, **values: Any) -> SiteSettings:
    """A completed setup's settings row (as the wizard would have saved it)."""
    fields = {
        "fail2ban_socket": socket_path,
        "display_time_zone": "UTC",
        "session_lifetime_seconds": 8 * 3600,
        "session_cache": "database",
        "redis_url": "",
        "history_retention_days": 365,
        "setup_complete": True,
        "version": 1,
    }
    fields.update(values)
    return SiteSettings.objects.create(singleton=1, **fields)


def setup_post_data(socket_path: str, **overrides: Any) -> dict[str, Any]:
    """A complete, valid wizard submission."""
    data = {
        "username": "admin",
        "password1": STRONG_PASSWORD,
        "password2": STRONG_PASSWORD,
        "fail2ban_socket": socket_path,
        "display_time_zone": "Europe/Berlin",
        "session_lifetime_seconds": "8h",
        "session_cache": "database",
        "redis_url": "",
        "history_retention_days": "365",
    }
    data.update(overrides)
    return data
