"""The layout of every full page (templates/base.html): navigation, URLs, static files and
the language choices, built in Python and kept per process.

Every page pays for the layout, /jails/ (the hot page, issue 15) included. As template code
the navigation was eleven `{% url %}` tags and some twenty `{% if %}`s; the header, the
language selector and the status bar added about ten more reversals, five static file
lookups and a loop over the nine languages. None of that depends on the data: a reversed
URL depends on the URLconf, the request's script prefix (JAILADMIN_URL_PREFIX or
SCRIPT_NAME) and the active language; a static URL on STATIC_URL (which carries the
prefix); a label on the language. So each is built once per process and per such key
(RuntimeState.pages, jails.page_cache) — the prefix is part of every key, so a URL made
for one prefix is never served under another. What the user may see (the permission of
each link) and which link is current are decided per request.
"""

from __future__ import annotations

from html import escape
from typing import Any

from django import template
from django.conf import settings
from django.templatetags.static import static
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, gettext, gettext_noop, ngettext

from jails.apps import runtime_state
from jails.numbers import count_text

register = template.Library()

# (URL name, label, permission or "" for every user, how the link knows it is current):
# a path_info prefix ("/jails/"), an exact path_info ("=/audit/") or a URL namespace ("ns:").
# The labels are msgids: gettext_noop only marks them, site_nav translates them per language.
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


_URL_KEY = "jailadmin_url_key"


def _url_key(context: template.Context | None = None) -> tuple[str, str, str]:
    """What a reversed URL depends on besides its name: URLconf, script prefix, language.

    Asked once per template render (each of the three is a context-local lookup, and a
    page has a dozen layout URLs); a render never changes them half-way.
    """
    render = context.render_context if context is not None else None
    key: tuple[str, str, str] | None = render.get(_URL_KEY) if render is not None else None
    if key is None:
        key = (str(get_urlconf() or settings.ROOT_URLCONF), get_script_prefix(), get_language())
        if render is not None:
            render[_URL_KEY] = key
    return key


def url_cached(
    name: str, context: template.Context | None = None, *, args: tuple[str, ...] = ()
) -> str:
    """reverse(name, args=args), reversed once per process and key (constant args only:
    a page fills placeholders in, as jails/templatetags/jail_table.py does)."""
    key = ("url", *_url_key(context), name, args)
    return runtime_state().pages.text(key, lambda: reverse(name, args=args))


def _current(request: Any, rule: str) -> bool:
    # path_info: the path below JAILADMIN_URL_PREFIX; the links carry the prefix.
    if rule.startswith("ns:"):
        match = getattr(request, "resolver_match", None)
        return match is not None and match.namespace == rule[3:]
    if rule.startswith("="):
        return bool(request.path_info == rule[1:])
    return bool(request.path_info.startswith(rule))


def _nav_links() -> tuple[tuple[str, str, str, str], ...]:
    """(permission, current rule, escaped URL, escaped label) of every link, admin last."""
    links = [
        (perm, rule, escape(reverse(name)), escape(gettext(label)))
        for name, label, perm, rule in _LINKS
    ]
    links.append(("is_staff", "", escape(reverse("admin:index")), escape(gettext("Admin"))))
    return tuple(links)


@register.simple_tag(takes_context=True)
def site_nav(context: template.Context) -> SafeString:
    """The <a> links of the main navigation the user may follow, the current one marked."""
    request = context["request"]
    user = context["user"]
    links = runtime_state().pages.text(("nav", *_url_key(context)), _nav_links)
    allowed: dict[str, bool] = {"": True, "is_staff": bool(user.is_staff)}
    out = []
    for perm, rule, href, label in links:
        if perm not in allowed:
            allowed[perm] = user.has_perm(perm)
        if not allowed[perm]:
            continue
        current = ' aria-current="page"' if rule and _current(request, rule) else ""
        out.append(f'<a href="{href}"{current}>{label}</a>')
    return mark_safe("\n      ".join(out))  # noqa: S308 -- URLs and labels are escaped


@register.simple_tag(takes_context=True)
def layout_url(context: template.Context, name: str) -> str:
    """`{% url name %}` for the layout's argument-free URLs, reversed once per process."""
    return url_cached(name, context)


@register.simple_tag
def layout_static(path: str) -> str:
    """`{% static path %}`, looked up once per process and STATIC_URL (which has the prefix)."""
    return runtime_state().pages.text(("static", settings.STATIC_URL, path), lambda: static(path))


def _language_options(current: str) -> SafeString:
    # Each language named in itself (settings.LANGUAGES), so someone who cannot read the
    # page finds theirs; `lang` lets a screen reader say the name in that language.
    options = []
    for code, name in settings.LANGUAGES:
        selected = " selected" if code == current else ""
        code_text = escape(str(code))
        options.append(
            f'<option value="{code_text}" lang="{code_text}"{selected}>{escape(str(name))}</option>'
        )
    return mark_safe("".join(options))  # noqa: S308 -- codes and names are escaped


@register.simple_tag(takes_context=True)
def language_options(context: template.Context) -> SafeString:
    """The language selector's <option>s, the active language selected; once per language."""
    current = str(context.get("LANGUAGE_CODE", ""))
    key = ("language-options", current, tuple(settings.LANGUAGES))
    return runtime_state().pages.text(key, lambda: _language_options(current))


def _status_bar_counts(version: str, jails: int, banned: int, failed: int, bans: int) -> str:
    # The msgids of the {% blocktranslate %}s these replaced (translators already have them);
    # the translated sentences carry their own <strong>, the values are escaped.
    def counted(text: str, **values: int) -> str:
        return text % {name: escape(count_text(value)) for name, value in values.items()}

    sentences = (
        counted(
            ngettext(
                "<strong>%(counter)s</strong> jail", "<strong>%(counter)s</strong> jails", jails
            ),
            counter=jails,
        ),
        counted(gettext("<strong>%(banned)s</strong> banned now"), banned=banned),
        counted(
            ngettext(
                "<strong>%(counter)s</strong> failure",
                "<strong>%(counter)s</strong> failures",
                failed,
            ),
            counter=failed,
        ),
        counted(
            ngettext(
                "<strong>%(counter)s</strong> ban since start",
                "<strong>%(counter)s</strong> bans since start",
                bans,
            ),
            counter=bans,
        ),
    )
    spans = [f'<span class="pill ok">fail2ban {escape(version)}</span>']
    spans.extend(f"<span>{sentence}</span>" for sentence in sentences)
    return "\n      ".join(spans)


@register.simple_tag
def status_bar_counts(overview: Any) -> SafeString:
    """The status bar's version and counters (one host), kept per language.

    Every page with the overview and every poll of the bar rendered five translated,
    pluralised sentences; the text is a function of the language and five values only
    (fresh from fail2ban on every request). The values are the entry's stamp, not part of
    its key: a busy host's counters change all the time, and one text entry per value
    would fill the layout's cache and empty it, navigation and all, every few thousand.
    """
    values = (
        str(overview.version),
        int(overview.jail_count),
        int(overview.currently_banned),
        int(overview.total_failed),
        int(overview.total_banned),
    )
    key = ("status-bar-counts", get_language())
    return mark_safe(  # noqa: S308 -- translated text around escaped values
        runtime_state().pages.stamped(key, values, lambda: _status_bar_counts(*values))
    )
