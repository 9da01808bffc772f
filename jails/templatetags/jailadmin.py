"""Template filters for durations and ban times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template

register = template.Library()

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


@register.filter
def duration(seconds: Any) -> str:
    """600 → '10m', 90061 → '1d 1h 1m 1s', -1 → 'permanent'."""
    try:
        value = int(seconds)
    except (TypeError, ValueError):
        return "—"
    if value < 0:
        return "permanent"
    if value == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        count, value = divmod(value, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts)


@register.filter
def time_left(entry: Any, now: datetime) -> str:
    """Time left of a BanEntry at `now`."""
    left = entry.seconds_left(now)
    return "permanent" if left is None else duration(left)
