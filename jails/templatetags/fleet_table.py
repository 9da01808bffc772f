"""The rows of the jail list across hosts, built in Python.

/jails/ is the hot page and most of its time is template rendering (issue 15): with ten
hosts of a few dozen jails each, a `{% url %}` and a dozen variable lookups per row would
dominate it. Each URL is reversed once with placeholders and filled per row instead, and
every value is escaped with the standard library's `html.escape`.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from django import template
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# Host and jail names match strict patterns ([a-z0-9.-] and JAIL_NAME_RE): neither can
# contain these, so substituting them reproduces what `{% url %}` would build.
_HOST = "HOST-PLACEHOLDER"
_JAIL = "JAIL-PLACEHOLDER"
_NOT_REPORTED = '<span class="muted" title="not reported by this fail2ban version">n/r</span>'


@register.simple_tag
def fleet_jail_rows(rows: Iterable[Any]) -> SafeString:
    """The <tr> rows of the jail list across hosts (host, jail and its counters)."""
    detail = reverse("jails:host-jail-detail", args=[_HOST, _JAIL])
    listing = reverse("jails:jail-list")
    out = []
    for row in rows:
        jail = row.jail
        host = escape(row.host)
        href = escape(detail.replace(_HOST, quote(row.host)).replace(_JAIL, quote(jail.name)))
        host_href = escape(f"{listing}?{urlencode({'host': row.host})}")
        sources = "<br>".join(f"<code>{escape(s)}</code>" for s in jail.log_sources) or "—"
        backend = _NOT_REPORTED if jail.backend is None else escape(jail.backend)
        idle = _NOT_REPORTED if jail.idle is None else ("idle" if jail.idle else "active")
        out.append(
            f'<tr><td><a href="{host_href}">{host}</a></td>'
            f'<td><a href="{href}">{escape(jail.name)}</a></td>'
            f'<td class="paths">{sources}</td><td>{backend}</td>'
            f'<td class="num">{jail.currently_failed}</td>'
            f'<td class="num">{jail.total_failed}</td>'
            f'<td class="num">{jail.currently_banned}</td>'
            f'<td class="num">{jail.total_banned}</td><td>{idle}</td></tr>'
        )
    return mark_safe("\n".join(out))  # noqa: S308 -- every value above is escaped
