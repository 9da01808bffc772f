"""Delivery against real receivers: SMTP (aiosmtpd), a signed webhook, ntfy through Apprise;
and the faults: receiver down, slow, refusing (4xx) and failing (5xx)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jails.notifications.models import Channel, Notification
from jails.notifications.services.delivery import (
    backoff_delay,
    outbox_add,
    outbox_claim,
    outbox_deliver,
    webhook_signature,
)
from jails.notifications.services.messages import Message, Table
from tests.notifications.receivers import free_port

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
EVIL = "<script>alert(1)</script>\r\nBcc: victim@example.test"


def _message(**changes) -> Message:
    values = {
        "event": "burst",
        "title": "Ban burst in sshd",
        "summary": "12 bans in the last 10 minutes.",
        "facts": (("Jail", EVIL),),
        "tables": (
            Table.of("Top addresses", ("address", "bans"), [(EVIL, 3), ("203.0.113.7", 2)]),
        ),
        "link": "https://jailadmin.example.test/history/",
    }
    values.update(changes)
    return Message(**values)


def _queue(channel: Channel, *, key: str = "k", message: Message | None = None) -> Notification:
    outbox_add(rule=None, key=key, message=message or _message(), channels=[channel], now=T0)
    return Notification.objects.get(dedupe_key=f"test:{key}:c{channel.pk}")


def _webhook(url: str, secret: str = "s3cret-key") -> Channel:
    return Channel.objects.create(name="hook", kind=Channel.Kind.WEBHOOK, target=url, secret=secret)


def test_email_reaches_the_smtp_server_as_text_and_escaped_html(smtp_receiver, config):
    channel = Channel.objects.create(
        name="ops", kind=Channel.Kind.EMAIL, target="ops@example.test, oncall@example.test"
    )
    row = _queue(channel)
    result = outbox_deliver(now=T0, owner="t", config=config)
    assert (result.sent, result.failed) == (1, 0)
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, "")
    [mail] = smtp_receiver.messages
    assert smtp_receiver.handler.envelopes[0][1] == ["ops@example.test", "oncall@example.test"]
    assert mail["Subject"] == "[jailadmin] Ban burst in sshd"
    assert mail["Bcc"] is None  # the attacker's line break did not make a header
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "<script>alert(1)</script> Bcc: victim@example.test" in text  # one line
    assert "\r\nBcc" not in text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "https://jailadmin.example.test/history/" in text


def test_webhook_is_signed_and_the_receiver_verifies_the_hmac(http_receiver, config):
    http_receiver.behaviour.secret = "s3cret-key"
    channel = _webhook(http_receiver.url)
    _queue(channel)
    assert outbox_deliver(now=T0, owner="t", config=config).sent == 1
    [request] = http_receiver.requests
    assert http_receiver.behaviour.bad_signatures == 0
    payload = request.json()
    assert payload["event"] == "burst"
    assert payload["facts"]["Jail"] == "<script>alert(1)</script> Bcc: victim@example.test"
    assert payload["tables"][0]["rows"][1] == {"address": "203.0.113.7", "bans": "2"}
    # The signature covers the timestamp and the exact body.
    stamp = request.headers["X-Jailadmin-Timestamp"]
    assert request.headers["X-Jailadmin-Signature"] == webhook_signature(
        "s3cret-key", stamp, request.body
    )


def test_webhook_with_a_wrong_key_is_refused_by_the_receiver_and_not_retried(http_receiver, config):
    http_receiver.behaviour.secret = "the-receivers-key"
    row = _queue(_webhook(http_receiver.url, secret="another-key"))
    result = outbox_deliver(now=T0, owner="t", config=config)
    row.refresh_from_db()
    assert (result.failed, row.status, row.attempts, row.last_error) == (1, "failed", 1, "HTTP 401")
    assert http_receiver.behaviour.bad_signatures == 1


def test_apprise_delivers_to_an_ntfy_style_endpoint(http_receiver, config):
    channel = Channel.objects.create(
        name="chat",
        kind=Channel.Kind.APPRISE,
        secret=f"ntfy://127.0.0.1:{http_receiver.port}/jailadmin-alerts",
    )
    _queue(channel)
    assert outbox_deliver(now=T0, owner="t", config=config).sent == 1
    [request] = http_receiver.requests
    body = request.json()
    assert body["topic"] == "jailadmin-alerts"
    assert body["title"] == "[jailadmin] Ban burst in sshd"
    assert "12 bans in the last 10 minutes." in body["message"]
    assert "\r\nBcc" not in body["message"]


def test_apprise_4xx_is_not_retried(http_receiver, config):
    http_receiver.behaviour.status = 403
    channel = Channel.objects.create(
        name="chat", kind=Channel.Kind.APPRISE, secret=f"ntfy://127.0.0.1:{http_receiver.port}/t"
    )
    row = _queue(channel)
    outbox_deliver(now=T0, owner="t", config=config)
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error == "chat service refused (HTTP 403)"
    assert "127.0.0.1" not in row.last_error  # Apprise's log (the URL) is never stored


def test_receiver_down_is_retried_with_backoff_then_failed_and_logged(config):
    row = _queue(_webhook(f"http://127.0.0.1:{free_port()}/hook"))
    now = T0
    for attempt in range(1, config.max_attempts + 1):
        result = outbox_deliver(now=now, owner="t", config=config)
        row.refresh_from_db()
        assert row.attempts == attempt
        assert row.last_error == "webhook unreachable (ConnectionRefusedError)"
        if attempt < config.max_attempts:
            assert (row.status, result.retried) == ("pending", 1)
            assert row.next_attempt_at == now + backoff_delay(attempt, base=config.backoff)
            # Not due before its backoff: a pass in between sends nothing.
            assert (
                outbox_deliver(
                    now=row.next_attempt_at - timedelta(seconds=1), owner="t", config=config
                ).retried
                == 0
            )
            now = row.next_attempt_at
    assert (row.status, result.failed) == ("failed", 1)


def test_slow_receiver_times_out_and_is_retried(http_receiver, config):
    http_receiver.behaviour.delay = config.timeout * 3
    row = _queue(_webhook(http_receiver.url))
    result = outbox_deliver(now=T0, owner="t", config=config)
    row.refresh_from_db()
    assert (result.retried, row.status, row.last_error) == (1, "pending", "webhook timed out")


@pytest.mark.parametrize(("status", "final"), [(400, "failed"), (404, "failed"), (503, "pending")])
def test_4xx_fails_at_once_and_5xx_is_retried(http_receiver, config, status, final):
    http_receiver.behaviour.status = status
    row = _queue(_webhook(http_receiver.url))
    outbox_deliver(now=T0, owner="t", config=config)
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == (final, 1, f"HTTP {status}")


def test_email_without_a_configured_server_fails_without_retry(config):
    from dataclasses import replace

    channel = Channel.objects.create(name="ops", kind=Channel.Kind.EMAIL, target="a@example.test")
    row = _queue(channel)
    outbox_deliver(now=T0, owner="t", config=replace(config, email_configured=False))
    row.refresh_from_db()
    assert (row.status, row.last_error) == (
        "failed",
        "email is not configured (JAILADMIN_EMAIL_URL)",
    )


def test_smtp_server_down_is_retried(settings, config):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    row = _queue(Channel.objects.create(name="ops", kind=Channel.Kind.EMAIL, target="a@x.test"))
    outbox_deliver(now=T0, owner="t", config=config)
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("SMTP server unreachable")


def test_a_claimed_row_is_not_claimed_by_a_second_runner_until_its_claim_expires():
    channel = _webhook("http://127.0.0.1:9/hook")
    for key in "abc":
        _queue(channel, key=key)
    lease = timedelta(minutes=5)
    first = outbox_claim(now=T0, owner="one", lease=lease, limit=2)
    second = outbox_claim(now=T0, owner="two", lease=lease, limit=10)
    assert len(first) == 2 and len(second) == 1
    assert {r.pk for r in first}.isdisjoint({r.pk for r in second})
    assert outbox_claim(now=T0 + lease / 2, owner="three", lease=lease, limit=10) == []
    # A runner that died: its claims expire and the rows go out after all.
    assert len(outbox_claim(now=T0 + lease * 2, owner="three", lease=lease, limit=10)) == 3


def test_the_same_key_is_queued_once():
    channel = _webhook("http://127.0.0.1:9/hook")
    outbox_add(rule=None, key="same", message=_message(), channels=[channel], now=T0)
    outbox_add(rule=None, key="same", message=_message(), channels=[channel], now=T0)
    assert Notification.objects.count() == 1


def test_backoff_doubles_and_is_capped():
    base = timedelta(seconds=30)
    assert [backoff_delay(n, base=base).total_seconds() for n in (1, 2, 3)] == [30, 60, 120]
    assert backoff_delay(20, base=base) == timedelta(hours=1)
