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


# X-Forwarded-Proto: believed from the trusted proxies only, like X-Forwarded-For ----------------
def seen_scheme(settings, *, proxies, remote, proto=None) -> tuple[str, bool]:
    settings.JAILADMIN_TRUSTED_PROXIES = proxies
    seen = {}

    def view(request):
        seen["scheme"] = (request.scheme, request.is_secure())
        return HttpResponse()

    headers = {"HTTP_X_FORWARDED_PROTO": proto} if proto is not None else {}
    request = RequestFactory().get("/", REMOTE_ADDR=remote, **headers)
    TrustedProxyMiddleware(view)(request)
    return seen["scheme"]


def test_trusted_proxy_says_the_client_used_https(settings):
    assert seen_scheme(settings, proxies=["127.0.0.1"], remote="127.0.0.1", proto="https") == (
        "https",
        True,
    )
    # Several values: the left-most, as Django reads SECURE_PROXY_SSL_HEADER.
    assert seen_scheme(
        settings, proxies=["10.0.0.0/8"], remote="10.1.2.3", proto="HTTPS, http"
    ) == ("https", True)


@pytest.mark.parametrize(
    ("proxies", "remote", "proto"),
    [
        (["127.0.0.1"], "192.0.2.50", "https"),  # not from our proxy: forged
        ([], "127.0.0.1", "https"),  # no proxy configured
        (["127.0.0.1"], "127.0.0.1", "gopher"),  # garbage keeps the connection's scheme
    ],
)
def test_forwarded_proto_is_ignored_unless_from_a_trusted_proxy(settings, proxies, remote, proto):
    assert seen_scheme(settings, proxies=proxies, remote=remote, proto=proto) == ("http", False)


def test_secure_deployment_believes_forwarded_proto_only_from_trusted_proxies(tmp_path):
    """The production settings (JAILADMIN_SECURE=true) in a process of their own: a forged
    X-Forwarded-Proto from any client must not skip the HTTPS redirect."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = """
import django
django.setup()
from django.conf import settings
from django.test import Client
assert settings.SECURE_SSL_REDIRECT
client = Client()
for remote in ("192.0.2.50", "127.0.0.1"):
    # A path open before the setup (no database here); /healthz is exempt from the redirect.
    response = client.get(
        "/static/jails/app.js", REMOTE_ADDR=remote, HTTP_X_FORWARDED_PROTO="https"
    )
    print(remote, response.status_code, response.get("Location", ""))
response = client.get("/healthz", REMOTE_ADDR="192.0.2.50")
print("healthz", response.status_code, response.get("Location", ""))
"""
    root = Path(__file__).resolve().parents[2]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "jailadmin.settings",
        "JAILADMIN_SECRET_KEY": "test-only-secret-key-for-the-secure-settings-0123456789",
        "JAILADMIN_SECURE": "true",
        "JAILADMIN_TRUSTED_PROXIES": "127.0.0.1",
        "JAILADMIN_ALLOWED_HOSTS": "testserver",
        "JAILADMIN_VAR_DIR": str(tmp_path),
        "JAILADMIN_FAIL2BAN_SOCKET": str(tmp_path / "no-such.sock"),
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    # The forged header is ignored: redirected to HTTPS. The proxy's header is believed:
    # no redirect (nothing collected here, so a 404).
    assert lines["192.0.2.50"] == "301 https://testserver/static/jails/app.js"
    assert lines["127.0.0.1"].split(" ")[0] == "404"
    # The health check answers over plain HTTP for monitors on the loopback (503: no
    # fail2ban here), the one path SECURE_REDIRECT_EXEMPT leaves out.
    assert lines["healthz"].split(" ")[0] == "503"
