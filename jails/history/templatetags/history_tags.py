"""Template filters for the ban history: Unix times and country labels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import template
from django.utils.translation import gettext

from jails.history.countries import country_name

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
    """'China (CN)' in the page's language ('Unknown' for no code); `names` are English."""
    if not code:
        return gettext("Unknown")
    name = country_name(code, (names or {}).get(code, "")) if names is not None else ""
    return f"{name} ({code})" if name and name != code else code


@register.filter(name="country_name")
def country_name_filter(code: str, english: str = "") -> str:
    """The country's name in the page's language, else the stored English name, else the code."""
    return country_name(code, english or "")
