"""The core pages' text built in Python is translated per request, not at import time (issue 16).

The navigation (jails/templatetags/site_nav.py), the jail table (jail_table.py), the ban rows
(ban_table.py) and the duration filters keep their English labels as msgids and translate
them while a page renders. A small German catalogue, compiled with msgfmt into a directory
of its own (LOCALE_PATHS points only there), shows it: the same process serves German and
English pages one after the other, which a label translated once at import could not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.template import Context, Template
from django.test import Client
from django.utils import translation

from tests.support.catalogues import catalogue_install

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.61"

# Real German for the strings these tests look at, in the catalogue's own format.
GERMAN_PO = r"""
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

msgid "Dashboard"
msgstr "Übersicht"

msgid "Currently banned"
msgstr "Derzeit gesperrt"

msgid "<strong>%(counter)s</strong> jail"
msgid_plural "<strong>%(counter)s</strong> jails"
msgstr[0] "<strong>%(counter)s</strong> Jail"
msgstr[1] "<strong>%(counter)s</strong> Jails"

msgctxt "verb: button"
msgid "Unban"
msgstr "Entsperren"

msgid "Select %(ip)s"
msgstr "%(ip)s auswählen"

msgctxt "ban duration"
msgid "permanent"
msgstr "dauerhaft"

msgid "No jail matches “%(query)s”."
msgstr "Kein Jail passt zu „%(query)s“."
"""


@pytest.fixture
def german(tmp_path: Path, settings) -> None:
    """A compiled German catalogue, the only one in LOCALE_PATHS for this test."""
    catalogue_install(settings, tmp_path, language="de", po_text=GERMAN_PO)


def _page(client: Client, path: str, language: str) -> str:
    response = client.get(path, headers={"Accept-Language": language})
    assert response.status_code == 200
    return response.content.decode()


def test_jail_list_nav_headers_and_status_bar_follow_each_request(
    german, runtime, f2b, logged_in_client: Client
):
    german_page = _page(logged_in_client, "/jails/", "de")
    assert ">Übersicht</a>" in german_page  # site_nav
    assert ">Derzeit gesperrt</a></th>" in german_page  # jail_sort_headers
    assert "<strong>3</strong> Jails" in german_page  # the status bar's plural

    english_page = _page(logged_in_client, "/jails/", "en")
    assert ">Dashboard</a>" in english_page and "Übersicht" not in english_page
    assert ">Currently banned</a></th>" in english_page
    assert "<strong>3</strong> jails" in english_page

    # German again: nothing of the English request stuck to the labels.
    assert ">Übersicht</a>" in _page(logged_in_client, "/jails/", "de")


def test_jail_table_empty_row_is_translated_with_the_query_escaped(
    german, runtime, f2b, logged_in_client: Client
):
    page = _page(logged_in_client, "/jails/?q=%3Cb%3E", "de")
    assert "Kein Jail passt zu „&lt;b&gt;“." in page


def test_ban_rows_button_and_checkbox_label_are_translated(
    german, runtime, f2b, logged_in_client: Client
):
    f2b.client().send("set", "sshd", "banip", ADDRESS)
    page = _page(logged_in_client, "/jails/sshd/", "de")
    assert f'<button type="submit" name="ip" value="{ADDRESS}">Entsperren</button>' in page
    assert f'aria-label="{ADDRESS} auswählen"' in page
    english = _page(logged_in_client, "/jails/sshd/", "en")
    assert f'<button type="submit" name="ip" value="{ADDRESS}">Unban</button>' in english


def test_duration_filter_translates_permanent_and_keeps_fail2ban_notation(german):
    template = Template(
        "{% load jailadmin %}{{ -1|duration }}|{{ 90061|duration }}|{{ 'x'|duration }}"
    )
    with translation.override("de"):
        assert template.render(Context()) == "dauerhaft|1d 1h 1m 1s|—"
    with translation.override("en"):
        assert template.render(Context()) == "permanent|1d 1h 1m 1s|—"
