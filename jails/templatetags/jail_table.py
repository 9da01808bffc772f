"""The jail list's table (/jails/), built in Python: one host or several, one code path.

/jails/ is the hot page (issue 15) and most of its time was template rendering: nine
`{% include %}`s of a sort header, a `{% url %}` and a dozen variable lookups per row. Here
each URL is reversed once per page with placeholders and filled in per row, and every value
from fail2ban (a jail name, a log path, a backend) or from the request (the filter) is
escaped with the standard library's `html.escape`.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from django import template
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, gettext, gettext_noop, pgettext

from jails.apps import runtime_state
from jails.numbers import count_text
from jails.templatetags.site_nav import url_cached

register = template.Library()

# Host and jail names match strict patterns ([a-z0-9.-] and JAIL_NAME_RE): neither can
# contain these, and quote() leaves such names as they are, so substituting them reproduces
# what `{% url %}` would build.
_HOST = "HOST-PLACEHOLDER"
_JAIL = "JAIL-PLACEHOLDER"

# (sort key, label, numeric) in column order; the host column only on a fleet. The labels
# are msgids, translated when a page is rendered (gettext_noop only marks them).
_HOST_COLUMN = ("host", gettext_noop("Host"), False)
_COLUMNS = (
    ("name", gettext_noop("Jail"), False),
    ("filter", gettext_noop("Filter (log source)"), False),
    ("backend", gettext_noop("Backend"), False),
    ("failed", gettext_noop("Currently failed"), True),
    ("total_failed", gettext_noop("Total failed"), True),
    ("banned", gettext_noop("Currently banned"), True),
    ("total_banned", gettext_noop("Total banned"), True),
    ("idle", gettext_noop("Idle"), False),
)


def _query_string(query: str, sort: str, host_filter: str) -> str:
    """`?q=…&sort=…[&host=…]`, HTML-escaped, as the old `{% include %}` built it."""
    # quote(safe="/") is what Django's |urlencode filter does.
    out = f"?q={quote(query, safe='/')}&sort={quote(sort, safe='/')}"
    if host_filter:
        out += f"&host={quote(host_filter, safe='/')}"
    return escape(out)


def _texts() -> dict[str, str]:
    """The table's fixed texts in the active language, escaped (kept per process and
    language: a page used to translate them all again)."""

    def build() -> dict[str, str]:
        texts = {key: escape(gettext(label)) for key, label, _ in (_HOST_COLUMN, *_COLUMNS)}
        why = escape(gettext("not reported by this fail2ban version"))
        # Translators: short for "not reported", in a narrow table cell.
        short = escape(gettext("n/r"))
        texts["not-reported"] = f'<span class="muted" title="{why}">{short}</span>'
        texts["state-idle"] = escape(pgettext("jail state", "idle"))
        texts["state-active"] = escape(pgettext("jail state", "active"))
        return texts

    return runtime_state().pages.text(("jail-table-texts", get_language()), build)


@register.simple_tag
def jail_sort_headers(*, sort: str, query: str, host_filter: str, fleet: bool) -> SafeString:
    """The <th> cells: each a link that sorts by its column (again: the other way round)."""
    texts = _texts()
    cells = []
    for key, _label, numeric in (_HOST_COLUMN, *_COLUMNS) if fleet else _COLUMNS:
        css = ' class="num"' if numeric else ""
        if sort == key:
            aria, target, arrow = ' aria-sort="ascending"', f"-{key}", " ▲"
        elif sort == f"-{key}":
            aria, target, arrow = ' aria-sort="descending"', key, " ▼"
        else:
            aria, target, arrow = "", key, ""
        href = _query_string(query, target, host_filter)
        cells.append(
            f'<th scope="col"{css}{aria}><a href="{href}" hx-get="{href}"'
            ' hx-target="#jail-table" hx-swap="outerHTML" hx-push-url="true">'
            f"{texts[key]}{arrow}</a></th>"
        )
    return mark_safe("\n".join(cells))  # noqa: S308 -- every value above is escaped


@register.simple_tag
def jail_rows(rows: Iterable[Any], *, fleet: bool, query: str) -> SafeString:
    """The <tr> rows: a JailSummary each on one host, a FleetRow (host, jail) each on a fleet.

    With no row, the one "nothing here" row, saying whether the filter or the server is why.
    """
    if fleet:
        detail = url_cached("jails:host-jail-detail", args=(_HOST, _JAIL))
        listing = url_cached("jails:jail-list")
    else:
        detail = url_cached("jails:jail-detail", args=(_JAIL,))
        listing = ""
    # Translated once per language, not per row: /jails/ lists thousands of jails.
    texts = _texts()
    not_reported = texts["not-reported"]
    idle_text, active_text = texts["state-idle"], texts["state-active"]
    out = []
    for row in rows:
        jail = row.jail if fleet else row
        href = detail.replace(_JAIL, quote(jail.name))
        host_cell = ""
        if fleet:
            href = href.replace(_HOST, quote(row.host))
            host_href = escape(f"{listing}?{urlencode({'host': row.host})}")
            host_cell = f'<td><a href="{host_href}">{escape(row.host)}</a></td>'
        sources = "<br>".join(f"<code>{escape(s)}</code>" for s in jail.log_sources) or "—"
        backend = not_reported if jail.backend is None else escape(jail.backend)
        idle = not_reported if jail.idle is None else (idle_text if jail.idle else active_text)
        out.append(
            f"<tr>{host_cell}"
            f'<td><a href="{escape(href)}">{escape(jail.name)}</a></td>'
            f'<td class="paths">{sources}</td><td>{backend}</td>'
            f'<td class="num">{count_text(jail.currently_failed)}</td>'
            f'<td class="num">{count_text(jail.total_failed)}</td>'
            f'<td class="num">{count_text(jail.currently_banned)}</td>'
            f'<td class="num">{count_text(jail.total_banned)}</td><td>{idle}</td></tr>'
        )
    if not out:
        if query:
            empty = escape(gettext("No jail matches “%(query)s”.")) % {"query": escape(query)}
        elif fleet:
            empty = escape(gettext("No jails on these hosts."))
        else:
            empty = escape(gettext("fail2ban has no jails."))
        columns = len(_COLUMNS) + (1 if fleet else 0)
        out.append(f'<tr><td colspan="{columns}" class="empty">{empty}</td></tr>')
    return mark_safe("\n".join(out))  # noqa: S308 -- every value above is escaped
