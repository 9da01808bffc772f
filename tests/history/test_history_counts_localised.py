"""The dashboard's figures, tables and charts group counts the page language's way."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create
from jails.history.services import sync as history
from jails.models import SiteSettings

pytestmark = pytest.mark.django_db
NOW = int(datetime.now(UTC).timestamp())
BANS = 1200


@pytest.fixture
def archive(runtime, tmp_path):
    SiteSettings.objects.update_or_create(singleton=1, defaults={"setup_complete": True})
    path = tmp_path / "f2b.sqlite3"
    fail2ban_db_create(path)
    network = ipaddress.ip_network("198.18.0.0/20")
    hosts = zip(range(BANS), network.hosts(), strict=False)
    fail2ban_db_add(path, [Fail2banBan("sshd", str(ip), NOW - 60 - i) for i, ip in hosts])
    history.history_sync(runtime, dbfile=str(path))
    return path


def test_dashboard_groups_counts(archive, logged_in_client: Client) -> None:
    url = f"{reverse('jails:dashboard')}?window=24h"
    english = logged_in_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    german = logged_in_client.get(url, HTTP_ACCEPT_LANGUAGE="de").content.decode()
    # Headline figures, the "by jail" table under its chart, the chart's own value label.
    assert '<span class="figure">1,200</span>' in english
    assert '<span class="figure">1.200</span>' in german
    assert '<td class="num">1,200</td>' in english and '<td class="num">1.200</td>' in german
    assert ">1,200</text>" in english and ">1.200</text>" in german
    history_page = reverse("jails:history")
    english = logged_in_client.get(history_page, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "<strong>1,200</strong> bans" in english
