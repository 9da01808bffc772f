"""Template filters for durations and ban times."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template

from jails.formatting import duration

register = template.Library()

# The function lives in jails.formatting (forms use it too); here it is only registered.
register.filter("duration", duration)


@register.filter
def time_left(entry: Any, now: datetime) -> str:
    """Time left of a BanEntry at `now`."""
    left = entry.seconds_left(now)
    return "permanent" if left is None else duration(left)
