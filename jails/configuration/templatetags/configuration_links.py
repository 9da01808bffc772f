"""`{% config_url 'file' %}`: a configuration page's URL on the host the current page is about."""

from __future__ import annotations

from typing import Any

from django import template

from jails.configuration.links import config_reverse

register = template.Library()


@register.simple_tag(takes_context=True)
def config_url(context: template.Context, name: str, *args: Any) -> str:
    """Like `{% url 'jails:configuration:<name>' args %}`, on the page's host (`config_host`
    in the context, set by every configuration view; None or absent: `/config/`)."""
    return config_reverse(name, context.get("config_host"), *args)
