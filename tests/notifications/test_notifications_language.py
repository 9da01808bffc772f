"""Notifications speak the site's language (JAILADMIN_LANGUAGE), not the language of whoever
clicked "send a test", and a webhook's JSON keys stay English whatever the language (issue 16).

The pseudo-locale of tests/i18n (every translation is its English text inside ⟦…⟧) stands in
for German, so these tests do not depend on the translators' words.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from jails.models import SiteSettings
from jails.notifications.models import Channel, Notification
from jails.notifications.services.delivery import outbox_deliver

# The session's pseudo-locale fixtures (they run `make messages` over a copy of the sources).
from tests.i18n.conftest import (  # noqa: F401
    PSEUDO_CLOSE,
    PSEUDO_LANGUAGE,
    PSEUDO_OPEN,
    fresh_locale_dir,
    pseudo_locale,
    pseudo_locale_dir,
)

pytestmark = pytest.mark.django_db
INDEX = "jails:notifications:index"


@pytest.fixture(autouse=True)
def _set_up(db):
    SiteSettings.objects.update_or_create(
        singleton=1, defaults={"setup_complete": True, "fail2ban_socket": "/tmp/none.sock"}
    )


def _stored(row: Notification) -> str:
    return f"{row.subject}\n{row.body_text}\n{row.body_html}\n{row.payload}"


@pytest.mark.usefixtures("pseudo_locale")
def test_a_test_message_is_in_the_sites_language_not_the_clickers(role_client):
    admin = role_client("administrator")
    channel = Channel.objects.create(name="ops", kind="email", target="ops@x.test")
    page = admin.get(reverse(INDEX), HTTP_ACCEPT_LANGUAGE=PSEUDO_LANGUAGE)
    # The page is in the pseudo-locale, else this test could notice nothing.
    assert PSEUDO_OPEN in page.content.decode()
    admin.post(
        reverse("jails:notifications:channel-test", args=[channel.pk]),
        HTTP_ACCEPT_LANGUAGE=PSEUDO_LANGUAGE,
    )
    row = Notification.objects.get()
    assert row.subject == "[jailadmin] Test message for channel ops"
    assert "Channel: ops" in row.body_text and '<html lang="en">' in row.body_html
    assert PSEUDO_OPEN not in _stored(row)


@pytest.mark.usefixtures("pseudo_locale")
def test_the_sites_language_words_the_message_but_not_the_webhook_keys(
    settings, role_client, http_receiver, config
):
    settings.LANGUAGE_CODE = PSEUDO_LANGUAGE
    admin = role_client("administrator")
    channel = Channel.objects.create(
        name="hook", kind="webhook", target=http_receiver.url, secret="k"
    )
    # Whoever clicks reads English; the message is worded in the site's language.
    admin.post(
        reverse("jails:notifications:channel-test", args=[channel.pk]), HTTP_ACCEPT_LANGUAGE="en"
    )
    row = Notification.objects.get()
    assert row.subject == f"[jailadmin] {PSEUDO_OPEN}Test message for channel hook{PSEUDO_CLOSE}"
    assert f"{PSEUDO_OPEN}Channel{PSEUDO_CLOSE}: hook" in row.body_text
    # The JSON a receiver parses: its keys are the English labels, only the words translate.
    assert set(row.payload["facts"]) == {"Channel", "Kind"}
    assert row.payload["facts"]["Channel"] == "hook"
    assert row.payload["title"] == f"{PSEUDO_OPEN}Test message for channel hook{PSEUDO_CLOSE}"
    outbox_deliver(now=datetime.now(UTC), owner="runner", config=config)
    [request] = http_receiver.requests
    sent = request.json()
    assert set(sent["facts"]) == {"Channel", "Kind"} and sent["facts"]["Channel"] == "hook"
