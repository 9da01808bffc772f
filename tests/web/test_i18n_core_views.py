"""The core views' messages, confirmations and form labels follow the request's language,
while the audit record of the same request stays English (issue 16).

A small German catalogue, compiled with msgfmt into a directory of its own (LOCALE_PATHS
points only there), holds real German for the strings looked at; the same process then
answers a German and an English request one after the other, which text translated once at
import time could not.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from jails.models import AuditEntry
from jails.runtime import runtime_apply
from tests.conftest import point_state_at
from tests.support.catalogues import catalogue_install
from tests.support.site_helpers import site_settings_create

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}
GERMAN = {"Accept-Language": "de"}
ENGLISH = {"Accept-Language": "en"}

GERMAN_PO = r"""
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

msgid "Ban %(address)s in %(jail)s?"
msgstr "%(address)s in %(jail)s sperren?"

msgid "this is the address you are connected from"
msgstr "das ist die Adresse, von der aus Sie verbunden sind"

msgid "Ban anyway"
msgstr "Trotzdem sperren"

msgid "“%(text)s” is not an IP address or network."
msgstr "„%(text)s“ ist weder eine IP-Adresse noch ein Netz."

msgid "%(count)d invalid entry ignored."
msgid_plural "%(count)d invalid entries ignored."
msgstr[0] "%(count)d ungültiger Eintrag ignoriert."
msgstr[1] "%(count)d ungültige Einträge ignoriert."

msgid "Unbanned %(count)d address from %(jail)s."
msgid_plural "Unbanned %(count)d addresses from %(jail)s."
msgstr[0] "%(count)d Adresse aus %(jail)s entsperrt."
msgstr[1] "%(count)d Adressen aus %(jail)s entsperrt."

msgid "Added %(address)s to the ignore list of %(jail)s."
msgstr "%(address)s zur Ignorierliste von %(jail)s hinzugefügt."

msgid ""
"This is a runtime change: fail2ban forgets it on the next reload or restart unless it is "
"also made in the configuration."
msgstr ""
"Das ist eine Laufzeitänderung: fail2ban vergisst sie beim nächsten Neuladen oder Neustart, "
"wenn sie nicht auch in der Konfiguration gemacht wird."

msgid "Addresses"
msgstr "Adressen"

msgid "fail2ban unreachable"
msgstr "fail2ban nicht erreichbar"

msgctxt "session storage"
msgid "database"
msgstr "Datenbank"

msgid "table %(table)s"
msgstr "Tabelle %(table)s"
"""


@pytest.fixture
def german(tmp_path: Path, settings) -> None:
    """A compiled German catalogue, the only one in LOCALE_PATHS for this test."""
    catalogue_install(settings, tmp_path, language="de", po_text=GERMAN_PO)


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


def test_ban_confirmation_title_reason_and_button_follow_the_language(
    german, runtime, f2b, logged_in_client: Client
):
    url = reverse("jails:jail-ban", args=["sshd"])
    # The test client connects from 127.0.0.1: its own address is held back.
    body = logged_in_client.post(url, {"ip": "127.0.0.1"}, headers={**HX, **GERMAN})
    page = body.content.decode()
    assert "127.0.0.1 in sshd sperren?" in page
    assert "das ist die Adresse, von der aus Sie verbunden sind" in page
    assert "Trotzdem sperren" in page
    english = logged_in_client.post(url, {"ip": "127.0.0.1"}, headers={**HX, **ENGLISH})
    page = english.content.decode()
    assert "Ban 127.0.0.1 in sshd?" in page and "Trotzdem" not in page
    assert "this is the address you are connected from" in page
    assert banned(f2b, "sshd") == set()


def test_invalid_entry_is_one_german_sentence(german, runtime, f2b, logged_in_client: Client):
    url = reverse("jails:jail-ban", args=["sshd"])
    response = logged_in_client.post(url, {"ip": "localhost"}, headers={**HX, **GERMAN})
    assert "„localhost“ ist weder eine IP-Adresse noch ein Netz." in response.content.decode()


def test_unban_message_is_german_with_its_plural_while_the_audit_stays_english(
    german, runtime, f2b, logged_in_client: Client
):
    f2b.client().send("set", "sshd", "banip", "203.0.113.31", "203.0.113.32")
    url = reverse("jails:jail-unban", args=["sshd"])
    response = logged_in_client.post(
        url, {"selected": ["203.0.113.31", "203.0.113.32"]}, headers=GERMAN, follow=True
    )
    assert "2 Adressen aus sshd entsperrt." in response.content.decode()
    assert banned(f2b, "sshd") == set()

    # Only an invalid line: German's singular on the page, English in the audit record.
    response = logged_in_client.post(url, {"selected": ["localhost"]}, headers=GERMAN, follow=True)
    assert "1 ungültiger Eintrag ignoriert." in response.content.decode()
    record = AuditEntry.objects.filter(action="unban").order_by("-id").first()
    assert record is not None and record.ok is False
    assert record.error == "'localhost': not an IP address or network"


def test_lazy_runtime_change_note_is_translated_per_request(
    german, runtime, f2b, logged_in_client: Client
):
    url = reverse("jails:jail-ignore", args=["sshd"])
    german_page = logged_in_client.post(
        url, {"op": "add", "ip": "203.0.113.9"}, headers={**HX, **GERMAN}
    ).content.decode()
    assert "203.0.113.9 zur Ignorierliste von sshd hinzugefügt. Das ist eine Laufzeitänderung" in (
        german_page
    )
    english_page = logged_in_client.post(
        url, {"op": "remove", "ip": "203.0.113.9"}, headers={**HX, **ENGLISH}
    ).content.decode()
    assert "Removed 203.0.113.9 from the ignore list of sshd. This is a runtime change" in (
        english_page
    )
    assert "Laufzeit" not in english_page


def test_form_labels_are_translated_when_the_page_renders(
    german, runtime, f2b, logged_in_client: Client
):
    url = reverse("jails:jail-bulk-ban", args=["sshd"])
    german_page = logged_in_client.get(url, headers=GERMAN).content.decode()
    assert ">Adressen</label>" in german_page
    english_page = logged_in_client.get(url, headers=ENGLISH).content.decode()
    assert ">Addresses</label>" in english_page


def test_settings_page_names_the_session_storage_in_the_language(
    german, runtime, f2b, administrator_client: Client
):
    runtime_apply(runtime, site_settings_create(str(f2b.socket_path), display_time_zone="UTC"))
    url = reverse("jails:settings")
    german_page = administrator_client.get(url, headers=GERMAN).content.decode()
    assert "Datenbank — Tabelle jailadmin_session_cache" in german_page
    english_page = administrator_client.get(url, headers=ENGLISH).content.decode()
    assert "database — table jailadmin_session_cache" in english_page


def test_status_bar_names_the_problem_in_the_language_and_healthz_stays_english(
    german, logged_in_client: Client, client: Client
):
    point_state_at("/tmp/jailadmin-no-such.sock")
    bar = logged_in_client.get(reverse("jails:status-bar"), headers=GERMAN).content.decode()
    assert "fail2ban nicht erreichbar" in bar
    # /healthz is read by load balancers and monitoring: the same English in any language.
    health = client.get(reverse("jails:healthz"), headers=GERMAN)
    assert health.status_code == 503
    assert health.content.decode() == "unavailable: fail2ban unreachable\n"
