"""Template helpers for the operating forms (durations as editable text, report lines)."""

from __future__ import annotations

from typing import Any

from django import template

from jails.formatting import duration_input

register = template.Library()

register.filter("duration_input", duration_input)


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
