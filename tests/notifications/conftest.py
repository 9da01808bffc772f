"""Fixtures of the notification tests: real receivers, delivery settings pointed at them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from jails.notifications.services.delivery import DeliveryConfig
from tests.notifications.receivers import HttpReceiver, SmtpReceiver


@pytest.fixture
def smtp_receiver(settings) -> Iterator[SmtpReceiver]:
    """aiosmtpd on a free port; Django's email settings point at it for this test."""
    receiver = SmtpReceiver()
    receiver.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", receiver.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def config() -> DeliveryConfig:
    """Delivery settings for tests: email on, a short timeout, two tries a second apart."""
    return DeliveryConfig(
        email_from="jailadmin@example.test",
        email_configured=True,
        timeout=1.0,
        max_attempts=3,
        backoff=timedelta(seconds=10),
        site_url="https://jailadmin.example.test",
    )
