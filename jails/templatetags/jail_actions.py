"""Template helpers for the operating forms (durations as editable text, report lines)."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()

_INPUT_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60))


@register.filter
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


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    """mapping[key] or '' (for dicts keyed by status names)."""
    try:
        return mapping[key]
    except (KeyError, IndexError, TypeError):
        return ""


@register.filter
def removable_ignore(entry: Any) -> bool:
    """Whether an ignore-list entry can be removed here: only addresses and networks in
    canonical form pass the allow-list (host names from the configuration do not)."""
    from jails.services.operations import entry_parse

    parsed = entry_parse(str(entry))
    return parsed.valid and parsed.address == str(entry)
