"""Every template's visible text is marked for translation (issue 16).

A static check, no rendering: tests/i18n/template_text.py says exactly what counts as
visible. A finding names the file, the line and the text; either mark it (the conventions in
README.md, "Languages") or, for a name that is the same in every language, add it to
ALLOWED_TOKENS there with the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from tests.i18n.template_text import find_unmarked, unmarked_words

# No test database here (README, "Tests": the PostgreSQL pass leaves these out).
pytestmark = pytest.mark.no_site_database

TEMPLATE_DIRS = [Path(d) for d in settings.TEMPLATES[0]["DIRS"]]


def _name(template: Path) -> str:
    root = next(d for d in TEMPLATE_DIRS if template.is_relative_to(d))
    return f"templates/{template.relative_to(root)}"


def _templates() -> list[Path]:
    found = [
        path
        for directory in TEMPLATE_DIRS
        for path in sorted(directory.rglob("*"))
        if path.suffix in (".html", ".txt") and path.is_file()
    ]
    assert len(found) > 40, f"templates not found under {TEMPLATE_DIRS}"
    return found


@pytest.mark.parametrize("template", _templates(), ids=_name)
def test_template_text_is_marked(template: Path) -> None:
    findings = find_unmarked(
        template.read_text(), path=_name(template), html=template.suffix == ".html"
    )
    assert not findings, "unmarked text:\n" + "\n".join(str(f) for f in findings)


# The checker itself: each case would pass unnoticed if the checker missed it.


def _found(source: str) -> list[str]:
    return [f.text for f in find_unmarked(source, path="t.html")]


def test_checker_finds_plain_text_and_reports_its_line() -> None:
    findings = find_unmarked("{% load i18n %}\n<p>\n  Ban this address\n</p>", path="t.html")
    assert [(f.line, f.text) for f in findings] == [(3, "Ban this address")]


def test_checker_finds_visible_attributes_and_button_values() -> None:
    source = (
        '<input placeholder="Find an address" class="wide-box">'
        '<img alt="Ban trend" src="x.svg"><a title="Open it" href="/x">{{ x }}</a>'
        '<input type="submit" value="Save"><input type="hidden" name="a" value="keep-this">'
        "{% block bodyclass %}x{% endblock %}{% block content %}Shown text{% endblock %}"
        '<button hx-confirm="Really?" aria-label="Close">×</button>'
    )
    assert sorted(_found(source)) == sorted(
        [
            "Find an address",
            "Ban trend",
            "Open it",
            "Save",
            "Really?",
            "Close",
            "Shown text",
        ]
    )


def test_checker_accepts_marked_text() -> None:
    source = (
        "{% load i18n %}<p>{% translate 'Ban' %}</p>"
        "<input placeholder=\"{% translate 'Find an address…' %}\">"
        "{% blocktranslate trimmed count counter=n %}{{ counter }} ban{% plural %}"
        "{{ counter }} bans{% endblocktranslate %}"
        "{# a comment #}{% comment %}Some words{% endcomment %}<!-- html words -->"
        "<script>var words = 1;</script><style>p { color: red }</style>"
        "<p><code>fail2ban-client status sshd</code> 10m · {{ jail.name }} &nbsp;&times;</p>"
        '<p class="pill bad" id="status-bar" hx-get="/jails/">jailadmin IPv6 203.0.113.0/24</p>'
        '<button type="submit" name="op" value="idle-on">{% translate "Idle on" %}</button>'
        "{% block bodyclass %}{{ block.super }} app-jails change-list{% endblock %}"
    )
    assert _found(source) == []


def test_checker_finds_literals_shown_through_filters_and_english_plurals() -> None:
    source = (
        '<p>{{ problem|default:"fail2ban unreachable" }}</p>'
        '<p>{{ on|yesno:"yes,no" }}</p><p dir="{{ bidi|yesno:\'rtl,ltr\' }}">{{ x }}</p>'
        '<p>{{ problem|default:_("translated") }}</p><p>{{ n }} ban{{ n|pluralize }}</p>'
    )
    assert sorted(_found(source)) == sorted(
        [
            "fail2ban unreachable",
            "yes,no",
            "{{ n|pluralize }}: English plural; use {% blocktranslate count %}",
            "ban",
        ]
    )


def test_checker_word_rules() -> None:
    assert unmarked_words("sshd: 3 → 5") == "sshd"
    assert unmarked_words("— · 12 % 10m 2001:db8::/64 /etc/fail2ban/jail.local") == ""
    assert unmarked_words("Deutsch 日本語") == "Deutsch 日本語"
