"""The main pages rendered in a pseudo-locale show no English outside ⟦…⟧.

The pseudo-locale (tests/i18n/conftest.py) is built from what `make messages` finds in
today's code, so anything marked anywhere (templates, views, jail_table.py's labels, form
errors, messages) comes out wrapped; what is left is English nobody marked, or data.
Data is recognised by form (addresses, numbers, dates, durations, file names) and by the
fixtures' own values (jail names, usernames, the server's time zone)."""

from __future__ import annotations

import re
import zoneinfo

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from jails.models import AuditEntry
from jails.runtime import runtime_apply
from tests.conftest import FAIL2BAN_VERSION, SERVER_TZ, TEST_JAILS
from tests.i18n.conftest import PSEUDO_CLOSE, PSEUDO_OPEN
from tests.i18n.template_text import unmarked_words, visible_text
from tests.support.site_helpers import site_settings_create

pytestmark = [pytest.mark.django_db]

BANNED = "203.0.113.7"
# Values that are data on these pages, the same in every language.
DATA_WORDS = {
    *(jail.name for jail in TEST_JAILS),
    "administrator",
    "oper",
    "local",
    SERVER_TZ,
    FAIL2BAN_VERSION,
}


def data_phrases(language: str) -> set[str]:
    """Whole texts that are data: the selector's language names (each in itself), month and
    day names (Django's own catalogue translates them: they are localised, not English),
    time zone names, and the world map's country names (CLDR's in the page's language, else
    English from its data file: README, "Languages")."""
    from django.utils import dates, translation

    from jails.history.charts import load_world_map
    from jails.history.countries import country_name

    with translation.override(language):
        calendar = {
            str(name)
            for table in (dates.MONTHS, dates.MONTHS_3, dates.MONTHS_AP, dates.WEEKDAYS)
            for name in table.values()
        }
        calendar |= {name.title() for name in calendar}
        # In the page's language from CLDR (jails/history/countries.py): data, not text.
        countries = {
            country_name(code, country.name) for code, country in load_world_map().countries.items()
        }
    countries |= {country.name for country in load_world_map().countries.values()}
    zones = zoneinfo.available_timezones()  # the settings page's time zone list
    return {name for _code, name in settings.LANGUAGES} | calendar | countries | zones


# Time zone names (Europe/Berlin, America/Argentina/Buenos_Aires): taken out before the
# country names, which some of them contain.
_ZONE = re.compile(r"(?<![\w/])(?:[A-Z][A-Za-z]*)(?:/[A-Za-z0-9_+-]+)+")
_DATA = re.compile(
    r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?"  # ISO dates and times
    r"|[\w.-]+@[\w.-]+"  # e-mail addresses
)


def _outside_wrapping(text: str, depth: int) -> tuple[str, int]:
    """The characters of `text` outside ⟦…⟧ (nested ones too: a translation may hold another
    in a placeholder), starting `depth` deep; and the depth at its end."""
    kept = []
    for char in text:
        if char == PSEUDO_OPEN:
            depth += 1
        elif char == PSEUDO_CLOSE:
            depth = max(depth - 1, 0)
        else:
            kept.append(char if depth == 0 else " ")
    return "".join(kept), depth


def english_left(html: str, phrases: frozenset[str] = frozenset()) -> list[str]:
    """Each visible text that still has words once wrapped text and data are taken out.

    A translated sentence may contain markup (`⟦See <a>the log</a>.⟧`), so the wrapping is
    followed from one text node to the next; attribute values stand alone."""
    left = []
    depth = 0
    data = sorted(phrases, key=len, reverse=True)
    for line, text, is_attribute in visible_text(html):
        if is_attribute:
            rest, _depth = _outside_wrapping(text, 0)
        else:
            rest, depth = _outside_wrapping(text, depth)
        rest = _ZONE.sub(" ", rest)
        for phrase in data:
            if phrase in rest:
                rest = re.sub(rf"(?<!\w){re.escape(phrase)}(?!\w)", " ", rest)
        words = [
            word
            for word in unmarked_words(rest).split()
            if word not in DATA_WORDS and not _DATA.fullmatch(word)
        ]
        if words:
            left.append(f"line {line}: {' '.join(words)!r} in {text!r}")
    return left


def test_english_left_finds_unwrapped_words() -> None:
    html = (
        f"<p>{PSEUDO_OPEN}Banned {PSEUDO_OPEN}sshd{PSEUDO_CLOSE} now{PSEUDO_CLOSE}</p>"
        f"<p>sshd 203.0.113.7 2026-12-02 10:00 {SERVER_TZ} Português (Brasil)</p>"
        f'<p title="{PSEUDO_OPEN}x{PSEUDO_CLOSE}">Unmarked words</p>'
        f"<p>{PSEUDO_OPEN}See <a>the <code>log</code></a> here{PSEUDO_CLOSE} but not this</p>"
        '<input type="submit" value="Save">'
    )
    assert english_left(html, frozenset({"Português (Brasil)"})) == [
        "line 1: 'Unmarked words' in 'Unmarked words'",
        "line 1: 'but not this' in 'here⟧ but not this'",
        "line 1: 'Save' in 'Save'",
    ]


PAGES = {
    "login": lambda: reverse("login"),
    "dashboard": lambda: reverse("jails:dashboard"),
    "jails": lambda: reverse("jails:jail-list"),
    "jail": lambda: reverse("jails:jail-detail", args=["sshd"]),
    "ip": lambda: reverse("jails:ip-detail", args=[BANNED]),
    "history": lambda: reverse("jails:history"),
    "audit": lambda: reverse("jails:audit"),
    "settings": lambda: reverse("jails:settings"),
    "hosts": lambda: reverse("jails:hosts:list"),
    "blocklists": lambda: reverse("jails:blocklists:list"),
    "configuration": lambda: reverse("jails:configuration:index"),
    "notifications": lambda: reverse("jails:notifications:index"),
}


@pytest.mark.parametrize("page", PAGES)
def test_page_has_no_unmarked_english(
    page: str, runtime, f2b, administrator_client: Client, client: Client, pseudo_locale: str
) -> None:
    f2b.client().send("set", "sshd", "banip", BANNED)
    if page == "settings":  # only a completed setup has a settings page
        runtime_apply(runtime, site_settings_create(str(f2b.socket_path), display_time_zone="UTC"))
    browser = administrator_client
    if page == "login":
        browser = Client()
    response = browser.post(
        reverse("jails:language"), {"language": pseudo_locale, "next": PAGES[page]()}
    )
    response = browser.get(response["Location"])
    assert response.status_code == 200
    html = response.content.decode()
    assert f'<html lang="{pseudo_locale}"' in html
    assert PSEUDO_OPEN in html, "the pseudo-locale is not in use"
    # German writes 1.5 as "1,5": never inside what a browser, HTMX or a form parses back.
    parsed = re.findall(
        r'\s((?:value|href|hx-[a-z]+|data-[a-z-]+|style|min|max|step)="[^"]*\d,\d[^"]*")', html
    )
    assert not parsed, f"{page}: localised numbers in machine-read attributes: {parsed[:5]}"
    phrases = data_phrases(pseudo_locale)
    # The audit log's action names are its language-free data (README, "Languages"), like jail
    # names: the filter offers them as they are stored.
    phrases |= set(AuditEntry.objects.values_list("action", flat=True))
    left = english_left(html, frozenset(phrases))
    assert not left, f"{page}: unmarked English on the page:\n" + "\n".join(left)
