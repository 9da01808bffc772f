"""Every cookie the site sets, by a real login and a real action (issue 17, section 2):
HttpOnly (the CSRF token reaches HTMX through `hx-headers`, never through a script reading
the cookie), SameSite=Lax, Path=/, and Secure with JAILADMIN_SECURE=true."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from http.cookies import Morsel
from pathlib import Path

import pytest
from django.test import Client

from tests.conftest import user_with_role

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a-long-test-password-1"  # user_with_role's
# What the site may set: Django's session and CSRF cookies, and the messages framework's
# cookie (a message after a redirect). A new cookie must be added here, deliberately.
KNOWN = {"sessionid", "csrftoken", "messages"}


def cookies_set(response) -> list[Morsel]:
    return list(response.cookies.values())


def assert_flags(morsel: Morsel, *, secure: bool) -> None:
    name = morsel.key
    assert name in KNOWN, name
    assert morsel["path"] == "/", name
    assert morsel["samesite"] == "Lax", name
    if morsel["max-age"] == 0 and not morsel.value:
        return  # a deletion: carries nothing to protect
    assert morsel["httponly"] is True, name
    assert bool(morsel["secure"]) is secure, name


def test_every_cookie_of_a_login_and_an_action_is_httponly_lax_with_root_path(
    runtime, f2b, django_user_model
):
    operator = user_with_role(django_user_model, "operator")
    client = Client(enforce_csrf_checks=True)
    seen: list[Morsel] = []

    login_page = client.get("/login/")
    seen += cookies_set(login_page)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.content.decode())
    assert token is not None
    response = client.post(
        "/login/",
        {"username": operator.username, "password": PASSWORD, "csrfmiddlewaretoken": token[1]},
    )
    assert response.status_code == 302
    seen += cookies_set(response)

    page = client.get("/jails/sshd/")
    seen += cookies_set(page)
    # HTMX gets the token from <body hx-headers>, not from the (HttpOnly) cookie: an HTMX POST
    # carrying only that header passes the CSRF check and bans for real.
    header = re.search(r"<body hx-headers='(\{[^']*\})'[ >]", page.content.decode())
    assert header is not None
    csrf = json.loads(header[1])["X-CSRFToken"]
    response = client.post(
        "/jails/sshd/ban/",
        {"ip": "203.0.113.61"},
        headers={"HX-Request": "true", "X-CSRFToken": csrf},
    )
    assert (
        response.status_code == 200 and "Banned 203.0.113.61 in sshd." in response.content.decode()
    )
    assert "203.0.113.61" in {str(ip) for ip in f2b.client().send("get", "sshd", "banip")}
    seen += cookies_set(response)
    # A full-page POST redirects with a message, which the messages framework keeps in a cookie.
    response = client.post("/jails/sshd/ban/", {"ip": "203.0.113.62", "csrfmiddlewaretoken": csrf})
    assert response.status_code == 302
    seen += cookies_set(response)
    seen += cookies_set(client.get(response["Location"]))  # shown: the cookie is deleted

    names = {morsel.key for morsel in seen}
    assert {"sessionid", "csrftoken", "messages"} <= names
    for morsel in seen:
        assert_flags(morsel, secure=False)


def test_without_the_token_an_htmx_post_is_refused(runtime, f2b, logged_in_client):
    """The counter-check: the HttpOnly cookie alone (what a script could not read anyway)
    does not get a POST through; the page's hx-headers token is what HTMX needs."""
    client = Client(enforce_csrf_checks=True)
    client.cookies = logged_in_client.cookies
    client.get("/jails/sshd/")
    response = client.post(
        "/jails/sshd/ban/", {"ip": "203.0.113.63"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 403
    assert f2b.client().send("get", "sshd", "banip") == []


SECURE_SCRIPT = """
import json, re
import django
django.setup()
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client
from jails.models import SiteSettings

call_command("migrate", verbosity=0)
user = User.objects.create_user("cookie-op", password="a-long-cookie-test-password-9")
user.groups.add(Group.objects.get(name="operator"))
SiteSettings.objects.update_or_create(singleton=1, defaults={"setup_complete": True})

# Through the trusted proxy (127.0.0.1), which says the client came over HTTPS.
client = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_PROTO="https")
seen = []
page = client.get("/login/")
seen += page.cookies.values()
token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
response = client.post(
    "/login/",
    {"username": "cookie-op", "password": "a-long-cookie-test-password-9",
     "csrfmiddlewaretoken": token},
    HTTP_REFERER="https://testserver/login/",
)
assert response.status_code == 302, (response.status_code, response.content[:500])
seen += response.cookies.values()
print(json.dumps([
    {"name": m.key, "value": m.value, "path": m["path"], "samesite": m["samesite"],
     "httponly": m["httponly"], "secure": m["secure"], "max-age": m["max-age"]}
    for m in seen
]))
"""


def test_with_jailadmin_secure_every_cookie_is_also_secure(tmp_path, settings):
    """The production settings in a process of their own (they are read at import)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "jailadmin.settings",
        "JAILADMIN_SECRET_KEY": "test-only-secret-key-for-the-secure-cookie-test-0123456789",
        "JAILADMIN_SECURE": "true",
        "JAILADMIN_TRUSTED_PROXIES": "127.0.0.1",
        "JAILADMIN_ALLOWED_HOSTS": "testserver",
        "JAILADMIN_VAR_DIR": str(tmp_path),
        "JAILADMIN_DATABASE_URL": f"sqlite:///{tmp_path / 'secure.sqlite3'}",
        "JAILADMIN_FAIL2BAN_SOCKET": str(tmp_path / "no-such.sock"),
        # The test session has collected the static files already (tests/conftest.py).
        "JAILADMIN_STATIC_ROOT": str(settings.STATIC_ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-c", SECURE_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # migrate on a slow, shared one-core box
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"sessionid", "csrftoken"} <= {cookie["name"] for cookie in seen}
    for cookie in seen:
        assert cookie["name"] in KNOWN, cookie
        assert (cookie["path"], cookie["samesite"]) == ("/", "Lax"), cookie
        assert cookie["httponly"] is True and cookie["secure"] is True, cookie
