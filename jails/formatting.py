"""Durations as text: plain functions that forms, views and template filters all use.

They live here, not in the template tags, so a form or a view can format a duration
without importing the template layer (jails.templatetags registers these as filters).
"""

from __future__ import annotations

from typing import Any

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_INPUT_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60))


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


def duration_input(seconds: Any) -> str:
    """A duration as text the tune form accepts back: 600 → '10m', 90 → '90', -1 → '-1'."""
    try:
        value = int(seconds)
    except (TypeError, ValueError):
        return ""
    if value <= 0:
        return str(value)
    for unit, size in _INPUT_UNITS:
        if value % size == 0:
            return f"{value // size}{unit}"
    return str(value)
