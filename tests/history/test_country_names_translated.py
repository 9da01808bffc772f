"""Country names in the page's language (issue 16): CLDR's names by ISO code on the
dashboard, the history list, the country filter and an address's page, while the archive
keeps the codes and English names the geo data gave."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create
from jails.history.countries import country_name, territory_name
from jails.history.models import BanEvent, IPSummary
from jails.history.services import sync as history
from jails.models import SiteSettings

pytestmark = pytest.mark.django_db
NOW = int(datetime.now(UTC).timestamp())
GERMAN_IP = "194.25.2.129"  # Deutsche Telekom (geoip2fast's bundled data: DE)
AMERICAN_IP = "8.8.8.8"  # Google (US)


@pytest.fixture
def archive(runtime, tmp_path):
    SiteSettings.objects.update_or_create(singleton=1, defaults={"setup_complete": True})
    path = tmp_path / "f2b.sqlite3"
    fail2ban_db_create(path)
    fail2ban_db_add(
        path,
        [
            Fail2banBan("sshd", GERMAN_IP, NOW - 60, matches=["x"]),
            Fail2banBan("sshd", AMERICAN_IP, NOW - 50, matches=["x"]),
        ],
    )
    history.history_sync(runtime, dbfile=str(path))
    return path


def _stored() -> set[tuple[str, str, str]]:
    return {
        *BanEvent.objects.values_list("ip", "country_code", "country_name"),
        *IPSummary.objects.values_list("ip", "country_code", "country_name"),
    }


STORED = {
    (GERMAN_IP, "DE", "Germany"),
    (AMERICAN_IP, "US", "United States"),
}


def _get(client: Client, url: str, language: str) -> str:
    response = client.get(url, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return response.content.decode()


def test_country_names_follow_the_page_language(archive, logged_in_client: Client) -> None:
    assert _stored() == STORED
    dashboard = reverse("jails:dashboard")
    german = _get(logged_in_client, f"{dashboard}?window=all", "de")
    # The top countries table and chart, the offenders table, the map's shapes.
    assert "Deutschland (DE)" in german
    assert "Vereinigte Staaten (US)" in german
    assert "<title>Deutschland: " in german
    assert "Germany" not in german and "United States" not in german
    # The country filter's options, named in German.
    assert '<option value="DE"' in german
    history_page = _get(logged_in_client, reverse("jails:history"), "de")
    assert "Vereinigte Staaten" in history_page and "United States" not in history_page
    ip_page = _get(logged_in_client, reverse("jails:ip-detail", args=[GERMAN_IP]), "de")
    assert "Deutschland (DE)" in ip_page and "Germany" not in ip_page
    ip_page = _get(logged_in_client, reverse("jails:ip-detail", args=[AMERICAN_IP]), "de")
    assert "Vereinigte Staaten (US)" in ip_page
    # English pages keep the stored names; the stored rows never change.
    english = _get(logged_in_client, f"{dashboard}?window=all", "en")
    assert "Germany (DE)" in english and "Deutschland" not in english
    ip_page = _get(logged_in_client, reverse("jails:ip-detail", args=[GERMAN_IP]), "en")
    assert "Germany (DE)" in ip_page
    assert _stored() == STORED


def test_country_name_falls_back_to_the_stored_english_name() -> None:
    with translation.override("ja"):
        assert country_name("DE", "Germany") == "ドイツ"
        # A code CLDR does not know (geoip2fast's pseudo-countries, a future code).
        assert country_name("XQ", "Somewhere") == "Somewhere"
        assert country_name("XQ") == "XQ"
        assert country_name("ZZ") == "ZZ"  # CLDR's "Unknown Region" is no country
    with translation.override("en"):
        assert country_name("CZ", "Czech Republic") == "Czech Republic"
    # A language Babel has no data for.
    assert territory_name("x-pseudo", "DE") is None
    assert territory_name("zh-hans", "US") == "美国"
    assert territory_name("pt-br", "DE") == "Alemanha"
