"""Counts people read are grouped the page language's way (issue 16): 1,200 in English,
1.200 in German; plural forms still follow the number; machine-read places keep digits."""

from __future__ import annotations

import ipaddress
import re

import pytest
from django.template import engines
from django.test import Client
from django.urls import reverse
from django.utils import translation

from jails.numbers import Count, count_text

pytestmark = pytest.mark.django_db
BANS = 1200  # one `set J banip` call with all of them (fail2ban takes several per call)


def test_count_text_groups_the_language_way() -> None:
    cases = {"en": "12,345", "de": "12.345", "fr": "12\u202f345", "ja": "12,345"}
    for language, expected in cases.items():
        with translation.override(language):
            # French: Django's own locale says which space; compare with it, not a literal.
            if language == "fr":
                from django.utils.formats import get_format

                expected = f"12{get_format('THOUSAND_SEPARATOR')}345"
            assert count_text(12345) == expected
            assert count_text(999) == "999"


def test_count_text_is_number_format_in_every_language() -> None:
    """The shortcut for small counts (no number_format call) prints what Django would."""
    from django.conf import settings
    from django.utils.formats import number_format

    values = [0, 1, 7, 42, 999, -999, 1000, -1000, 1001, 9999, 10000, 123456, 12345678]
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            for value in values:
                assert count_text(value) == number_format(value, force_grouping=True), (
                    language,
                    value,
                )


def test_count_filter_keeps_the_plural_by_the_number() -> None:
    template = engines["django"].from_string(
        "{% load i18n jailadmin %}{{ n|count }}|"
        "{% blocktranslate count counter=n|count %}{{ counter }} ban{% plural %}"
        "{{ counter }} bans{% endblocktranslate %}|{{ text|count }}"
    )
    with translation.override("en"):
        assert template.render({"n": 10000, "text": "sshd"}) == "10,000|10,000 bans|sshd"
        assert template.render({"n": 1, "text": 5}) == "1|1 ban|5"
    with translation.override("de"):
        assert template.render({"n": 10000, "text": True}).startswith("10.000|")
    assert Count(10000) + 1 == 10001 and isinstance(Count(3), int)


@pytest.fixture
def many_bans(runtime, f2b) -> list[str]:
    network = ipaddress.ip_network("198.18.0.0/20")  # benchmarking range (RFC 2544)
    ips = [str(ip) for _, ip in zip(range(BANS), network.hosts(), strict=False)]
    f2b.client().send("set", "sshd", "banip", *ips)
    return ips


def _page(client: Client, url: str, language: str) -> str:
    response = client.get(url, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return response.content.decode()


def test_jail_pages_show_grouped_counts(many_bans, logged_in_client: Client) -> None:
    jail_list = reverse("jails:jail-list")
    jail = reverse("jails:jail-detail", args=["sshd"])
    english = _page(logged_in_client, jail_list, "en")
    german = _page(logged_in_client, jail_list, "de")
    # The jail table's counters (jails/templatetags/jail_table.py) and the status bar.
    assert '<td class="num">1,200</td>' in english
    assert '<td class="num">1.200</td>' in german
    assert "<strong>1,200</strong>" in english and "<strong>1.200</strong>" in german
    english = _page(logged_in_client, jail, "en")
    german = _page(logged_in_client, jail, "de")
    assert '<span class="figure">1,200</span> currently banned' in english
    assert '<span class="figure">1.200</span>' in german
    assert "Unban all 1,200 in sshd" in english
    # Never in what a browser or HTMX parses back.
    for page in (english, german):
        machine = re.findall(r'\s(?:value|href|hx-[a-z]+|data-[a-z-]+)="[^"]*\d[,.]\d{3}\b', page)
        assert not machine, machine[:5]
