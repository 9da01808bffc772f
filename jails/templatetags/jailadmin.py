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


@register.filter
def audit_value(value: Any) -> str:
    """An audit record's parameter for display, in the same order on every database engine.

    PostgreSQL's jsonb keeps an object's keys ordered by length, not as written (SQLite keeps
    them as written), so a change {"from": 1, "to": 2} would read "to" first there: "from"
    and "to" come first, in that order, then the other keys sorted.
    """
    return str(_ordered(value))


def _ordered(value: Any) -> Any:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: ({"from": 0, "to": 1}.get(k, 2), str(k)))
        return {key: _ordered(value[key]) for key in keys}
    if isinstance(value, list):
        return [_ordered(item) for item in value]
    return value
