"""X-Forwarded-For is believed only from JAILADMIN_TRUSTED_PROXIES."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from jails.middleware import TrustedProxyMiddleware
from jails.models import AuditEntry


def seen_address(settings, *, proxies, remote, forwarded=None) -> str:
    settings.JAILADMIN_TRUSTED_PROXIES = proxies
    seen = {}

    def view(request):
        seen["addr"] = request.META["REMOTE_ADDR"]
        return HttpResponse()

    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    request = RequestFactory().get("/", REMOTE_ADDR=remote, **headers)
    TrustedProxyMiddleware(view)(request)
    return seen["addr"]


def test_trusted_proxy_uses_the_client_from_x_forwarded_for(settings):
    assert (
        seen_address(settings, proxies=["127.0.0.1"], remote="127.0.0.1", forwarded="203.0.113.9")
        == "203.0.113.9"
    )


def test_trusted_proxy_takes_the_rightmost_untrusted_hop(settings):
    # The client can put anything at the left; only what our proxies appended counts.
    assert (
        seen_address(
            settings,
            proxies=["127.0.0.1", "10.0.0.0/8"],
            remote="127.0.0.1",
            forwarded="198.51.100.66, 203.0.113.9, 10.1.2.3",
        )
        == "203.0.113.9"
    )


def test_trusted_proxy_ignores_forwarded_header_from_anyone_else(settings):
    assert (
        seen_address(settings, proxies=["127.0.0.1"], remote="192.0.2.50", forwarded="203.0.113.9")
        == "192.0.2.50"
    )


def test_trusted_proxy_off_by_default(settings):
    assert seen_address(settings, proxies=[], remote="127.0.0.1", forwarded="203.0.113.9") == (
        "127.0.0.1"
    )


@pytest.mark.parametrize("garbage", ["not-an-ip", "", "1.2.3.4<script>", "999.1.1.1"])
def test_trusted_proxy_keeps_proxy_address_for_garbage(settings, garbage):
    assert (
        seen_address(settings, proxies=["127.0.0.1"], remote="127.0.0.1", forwarded=garbage)
        == "127.0.0.1"
    )


def test_bad_trusted_proxies_value_fails_loudly():
    from django.core.exceptions import ImproperlyConfigured

    from jailadmin.env import env_networks

    with pytest.raises(ImproperlyConfigured, match="JAILADMIN_TRUSTED_PROXIES"):
        env_networks("JAILADMIN_TRUSTED_PROXIES", [], {"JAILADMIN_TRUSTED_PROXIES": "proxy"})
    assert env_networks("X", [], {"X": "127.0.0.1, 10.0.0.0/8"}) == ["127.0.0.1", "10.0.0.0/8"]


@pytest.mark.django_db
def test_login_audit_records_the_forwarded_client(settings, client, django_user_model):
    django_user_model.objects.create_user(username="alice", password="a-long-test-password-1")
    settings.JAILADMIN_TRUSTED_PROXIES = ["127.0.0.1"]
    response = client.post(
        "/login/",
        {"username": "alice", "password": "a-long-test-password-1"},
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR="203.0.113.9",
    )
    assert response.status_code == 302
    assert AuditEntry.objects.get(action="login").address == "203.0.113.9"
