"""Template filters for the ban history: Unix times and country labels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import template

register = template.Library()


@register.filter
def epoch(value: Any) -> datetime | None:
    """Unix seconds -> an aware datetime (templates show it in the current time zone)."""
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@register.filter
def country_label(code: str, names: dict[str, str] | None = None) -> str:
    """'China (CN)', or 'Unknown' for no code."""
    if not code:
        return "Unknown"
    name = (names or {}).get(code)
    return f"{name} ({code})" if name else code
