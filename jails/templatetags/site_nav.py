"""The main navigation of every full page (templates/base.html), built in Python.

Every page pays for it, /jails/ (the hot page, issue 15) included: as template code it was
eleven `{% url %}` tags and some twenty `{% if %}`s with permission and path lookups. Here
it is one function: each link's permission is asked once, each URL reversed with the
request's own script prefix (JAILADMIN_URL_PREFIX or SCRIPT_NAME: nothing is cached across
requests, so a prefix can never leak from one request to another).
"""

from __future__ import annotations

from html import escape
from typing import Any

from django import template
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, gettext_noop

register = template.Library()

# (URL name, label, permission or "" for every user, how the link knows it is current):
# a path_info prefix ("/jails/"), an exact path_info ("=/audit/") or a URL namespace ("ns:").
# The labels are msgids: gettext_noop only marks them, site_nav translates them per request.
_LINKS = (
    ("jails:dashboard", gettext_noop("Dashboard"), "", "=/"),
    ("jails:jail-list", gettext_noop("Jails"), "", "/jails/"),
    ("jails:history", gettext_noop("History"), "", "/history/"),
    (
        "jails:configuration:index",
        gettext_noop("Configuration"),
        "jails.view_fail2ban",
        "ns:jails:configuration",
    ),
    (
        "jails:blocklists:list",
        gettext_noop("Blocklists"),
        "jails.view_fail2ban",
        "ns:jails:blocklists",
    ),
    ("jails:audit", gettext_noop("Audit log"), "jails.view_fail2ban", "=/audit/"),
    ("jails:settings", gettext_noop("Settings"), "jails.administer_site", "=/settings/"),
    (
        "jails:notifications:index",
        gettext_noop("Notifications"),
        "jails.administer_site",
        "ns:jails:notifications",
    ),
    ("jails:hosts:list", gettext_noop("Hosts"), "jails.administer_site", "ns:jails:hosts"),
)


def _current(request: Any, rule: str) -> bool:
    # path_info: the path below JAILADMIN_URL_PREFIX; the links carry the prefix.
    if rule.startswith("ns:"):
        match = getattr(request, "resolver_match", None)
        return match is not None and match.namespace == rule[3:]
    if rule.startswith("="):
        return bool(request.path_info == rule[1:])
    return bool(request.path_info.startswith(rule))


@register.simple_tag(takes_context=True)
def site_nav(context: template.Context) -> SafeString:
    """The <a> links of the main navigation the user may follow, the current one marked."""
    request = context["request"]
    user = context["user"]
    allowed: dict[str, bool] = {}
    out = []
    for name, label, perm, rule in _LINKS:
        if perm:
            if perm not in allowed:
                allowed[perm] = user.has_perm(perm)
            if not allowed[perm]:
                continue
        current = ' aria-current="page"' if _current(request, rule) else ""
        out.append(f'<a href="{escape(reverse(name))}"{current}>{escape(gettext(label))}</a>')
    if user.is_staff:
        admin = escape(gettext("Admin"))
        out.append(f'<a href="{escape(reverse("admin:index"))}">{admin}</a>')
    return mark_safe("\n      ".join(out))  # noqa: S308 -- URLs and labels are escaped
