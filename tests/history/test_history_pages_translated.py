"""The dashboard, the history list and an address's history in a pseudo-locale (issue 16):
every text the site writes comes out wrapped in ⟦…⟧, so what is left unwrapped is English
nobody marked, or data.

tests/i18n's pseudo-locale check renders these pages with an empty archive; here they hold
bans (charts, rankings, repeat offenders, matched lines, origins, a manual ban's user, an
AS), in every window the trend is drawn for (hours, days, months, a custom range), and with
a filter error. What stays English by design is data: jail names, addresses, log lines,
AS names, country names (see README, "Languages")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create
from jails.history.models import BanEvent
from jails.history.services import sync as history
from jails.models import SiteSettings
from tests.i18n.conftest import (  # noqa: F401 (fixtures, used by name)
    PSEUDO_OPEN,
    fresh_locale_dir,
    pseudo_locale,
    pseudo_locale_dir,
)
from tests.i18n.test_pseudo_locale import data_phrases, english_left

pytestmark = pytest.mark.django_db
NOW = datetime.now(UTC)
EPOCH = int(NOW.timestamp())
LOG_LINES = {"sshd: fail from 203.0.113.7", "older", "a month ago", "refused connect"}
AS_NAME = "EXAMPLE-NET"


@pytest.fixture
def archive(runtime, tmp_path):
    SiteSettings.objects.update_or_create(singleton=1, defaults={"setup_complete": True})
    path = tmp_path / "f2b.sqlite3"
    fail2ban_db_create(path)
    fail2ban_db_add(
        path,
        [
            Fail2banBan("sshd", "203.0.113.7", EPOCH - 3600, matches=[*sorted(LOG_LINES)[:2]]),
            Fail2banBan("sshd", "203.0.113.7", EPOCH - 3 * 86400, matches=["older"]),
            Fail2banBan("postfix", "198.51.100.9", EPOCH - 600),
            Fail2banBan("postfix", "198.51.100.10", EPOCH - 40 * 86400, matches=["a month ago"]),
        ],
    )
    history.history_sync(runtime, dbfile=str(path))
    # A manual ban by a user, from a known autonomous system: the columns that show them.
    BanEvent.objects.filter(ip="198.51.100.9").update(
        origin=BanEvent.Origin.MANUAL, banned_by="administrator", asn=64500, as_name=AS_NAME
    )
    return path


def test_history_pages_have_no_unmarked_english(
    archive,
    logged_in_client: Client,
    pseudo_locale: str,  # noqa: F811
) -> None:
    response = logged_in_client.post(
        reverse("jails:language"), {"language": pseudo_locale, "next": "/"}
    )
    assert response.status_code == 302
    week_ago = (NOW - timedelta(days=7)).date().isoformat()
    dashboard, history_list = reverse("jails:dashboard"), reverse("jails:history")
    pages = [
        f"{dashboard}?window=24h",  # the trend per hour
        f"{dashboard}?window=7d",  # per day
        f"{dashboard}?window=all",  # per month, no window in the chart's title
        f"{dashboard}?start={week_ago}&end={NOW.date().isoformat()}",  # a custom window
        f"{dashboard}?window=7d&country=ZZ",  # a country with no ban: every chart empty
        # Filter errors (not a length: Django's own catalogue says those, in German here).
        f"{dashboard}?country=X1&jail=no%20such&q=10.0.0.0/8",
        history_list,
        f"{history_list}?q=203.0.113.0/24&sort=ip",
        f"{history_list}?start={NOW.date().isoformat()}&end={week_ago}",  # end before start
        reverse("jails:ip-detail", args=["203.0.113.7"]),
        reverse("jails:ip-detail", args=["192.0.2.1"]),  # never banned
    ]
    data = frozenset(data_phrases(pseudo_locale) | LOG_LINES | {AS_NAME, "ZZ", "X1"})
    left = {}
    for url in pages:
        response = logged_in_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert f'<html lang="{pseudo_locale}"' in html and PSEUDO_OPEN in html
        if found := english_left(html, data):
            left[url] = found
    assert not left, "unmarked English:\n" + "\n".join(
        f"{url}: {line}" for url, lines in left.items() for line in lines
    )
