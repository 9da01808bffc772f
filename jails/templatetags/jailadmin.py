"""Template filters for durations, ban times and counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils.translation import pgettext

from jails.formatting import duration
from jails.numbers import Count

register = template.Library()


def _permanent() -> str:
    return pgettext("ban duration", "permanent")


@register.filter("count")
def count_filter(value: Any) -> Count | Any:
    """A count grouped the page's way (``10,000``, ``10.000``); anything else as it is.

    Never in attributes, form values or URLs (jails/numbers.py says why).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    return Count(value)


@register.filter("duration")
def duration_text(seconds: Any) -> str:
    """jails.formatting.duration (forms use it too) for reading, "permanent" translated.

    The units stay fail2ban's own notation (10m, 1d 1h): the tune form shows and accepts
    durations in exactly that notation, so the page reads the way the form is filled in.
    """
    try:
        permanent = int(seconds) < 0
    except (TypeError, ValueError):
        permanent = False
    return _permanent() if permanent else duration(seconds)


@register.filter
def time_left(entry: Any, now: datetime) -> str:
    """Time left of a BanEntry at `now`."""
    left = entry.seconds_left(now)
    return _permanent() if left is None else duration(left)


@register.filter
def column(rows: Any, index: int) -> list[Any]:
    """Item `index` of every row: the host names of (host, url) pairs, to join into one sentence."""
    return [row[index] for row in rows]


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
