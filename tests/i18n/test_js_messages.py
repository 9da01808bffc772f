"""static/jails/app.js writes no English of its own: its error messages come from <body>'s
data-error-* attributes, which base.html renders translated (issue 16)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from tests.i18n.conftest import ROOT
from tests.support.catalogues import catalogue_install

pytestmark = pytest.mark.django_db

UNREACHABLE = "fail2ban or the session storage is not reachable right now (%(status)s)."
FAILED = "The request failed (%(status)s)."
APP_JS = ROOT / "static" / "jails" / "app.js"


def _body_messages(page: str) -> dict[str, str]:
    body = re.search(r"<body\b[^>]*>", page)
    assert body is not None
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'\s(data-error-[a-z]+)="([^"]*)"', body.group(0))
    }


def test_body_carries_the_error_messages_in_english(client: Client) -> None:
    response = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en")
    assert _body_messages(response.content.decode()) == {
        "data-error-unreachable": UNREACHABLE,
        "data-error-failed": FAILED,
    }


# German written here for the test: the site's catalogue gets its translations from the
# translators, and a catalogue made fresh by makemessages may hold a new msgid as "fuzzy".
GERMAN = {
    UNREACHABLE: "fail2ban oder der Sitzungsspeicher ist gerade nicht erreichbar (%(status)s).",
    FAILED: "Die Anfrage ist fehlgeschlagen (%(status)s).",
}


@pytest.fixture
def german_catalogue(settings, tmp_path: Path) -> str:
    """LOCALE_PATHS holding only GERMAN (templates look percent signs up doubled)."""
    entries = "".join(
        f'#, python-format\nmsgid "{english.replace("%", "%%")}"\n'
        f'msgstr "{german.replace("%", "%%")}"\n\n'
        for english, german in GERMAN.items()
    )
    header = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
    catalogue_install(settings, tmp_path, language="de", po_text=header + entries)
    return "de"


def test_body_carries_the_error_messages_translated(client: Client, german_catalogue: str) -> None:
    response = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE=german_catalogue)
    assert _body_messages(response.content.decode()) == {
        "data-error-unreachable": GERMAN[UNREACHABLE],
        "data-error-failed": GERMAN[FAILED],
    }


def test_makemessages_finds_the_error_messages(fresh_locale_dir: Path) -> None:
    po = (fresh_locale_dir / "de" / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8")
    # makemessages doubles a template string's percent signs (Django looks them up so).
    for english in (UNREACHABLE, FAILED):
        assert english.replace("%", "%%") in po.replace('"\n"', "")


def test_app_js_shows_the_server_sentences() -> None:
    js = APP_JS.read_text()
    # It reads both attributes and fills in the status...
    assert 'getAttribute(unreachable ? "data-error-unreachable" : "data-error-failed")' in js
    assert 'text.replace("%(status)s", status)' in js
    # ...and the only English sentences left in it are the fallbacks, the same as the
    # server's English (a page without the attributes still says something sensible).
    sentences = re.findall(r'"([A-Za-z][^"]*\.)"', js)
    assert sorted(sentences) == sorted([UNREACHABLE, FAILED])
