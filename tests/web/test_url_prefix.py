"""The site under a sub-path (JAILADMIN_URL_PREFIX=/fail2ban), in this process.

Every URL a page hands the browser — links, form actions, HTMX requests, static files, the
admin's — is found by crawling the site as an administrator, so a hard-coded path in a page
added later fails here without a list to update. Redirects, cookies and the first-run
redirect carry the prefix too. The same site behind a real nginx and gunicorn, in a browser:
tests/deploy/test_proxy_subpath.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import deque
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test.utils import override_script_prefix
from django.urls import reverse

from jailadmin.env import env_url_prefix
from jails.apps import runtime_state
from tests.support.site_helpers import site_settings_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/fail2ban"
# Every attribute through which a page makes the browser ask for a URL.
URL_ATTRIBUTES = re.compile(
    r"""\b(href|src|action|formaction|hx-get|hx-post|hx-put|hx-patch|hx-delete)=["']([^"']*)["']"""
)
# A crawl of the whole site: every page, partial and admin page an administrator can reach.
MAX_PAGES = 400


@pytest.fixture
def prefixed(settings):
    """The settings jailadmin/settings.py derives from JAILADMIN_URL_PREFIX=/fail2ban (the
    derivation itself: test_url_prefix_settings_from_the_environment), and the script prefix
    Django's WSGI handler sets per request (the test client does not)."""
    settings.JAILADMIN_URL_PREFIX = PREFIX
    settings.FORCE_SCRIPT_NAME = PREFIX
    settings.SESSION_COOKIE_PATH = settings.CSRF_COOKIE_PATH = f"{PREFIX}/"
    settings.STATIC_URL = f"{PREFIX}/static/"
    with override_script_prefix(f"{PREFIX}/"):
        yield


def escaping(html: str) -> list[str]:
    """The URLs in `html` that leave the prefix: absolute paths outside it, or other hosts'
    scheme-relative URLs. Relative ones (`?page=2`, `export.csv`, `#main`) stay below it."""
    out = []
    for _, raw in URL_ATTRIBUTES.findall(html):
        url = unescape(raw).strip()
        if url.startswith("//") or (url.startswith("/") and not url.startswith(f"{PREFIX}/")):
            out.append(url)
    return out


def crawl(client, start: list[str]) -> dict[str, list[str]]:
    """GET every page reachable from `start` through links and hx-get; page -> escaping URLs."""
    seen: set[str] = set()
    queue = deque(start)
    found: dict[str, list[str]] = {}
    while queue and len(seen) < MAX_PAGES:
        url = queue.popleft()
        path = urlsplit(url)
        key = path.path + (f"?{path.query}" if path.query else "")
        if key in seen or not path.path.startswith(f"{PREFIX}/"):
            continue
        seen.add(key)
        # The test client takes the path below the prefix, as jailadmin.wsgi hands it to Django.
        response = client.get(path.path[len(PREFIX) :], query_params=_query(path.query))
        if response.status_code in (301, 302):
            queue.append(response["Location"])
            continue
        content_type = response.get("Content-Type", "")
        if not content_type.startswith("text/html"):
            continue
        html = response.content.decode()
        bad = escaping(html)
        if bad:
            found[key] = bad
        for attribute, raw in URL_ATTRIBUTES.findall(html):
            link = unescape(raw)
            if attribute in ("href", "hx-get") and link.startswith(f"{PREFIX}/"):
                # The admin's logout and delete links are POST forms or confirmations: a GET
                # is harmless; only the site's own logout is POST-only (a GET is a 405).
                queue.append(link)
    assert len(seen) > 10, seen  # the crawl really walked the site
    return found


def pages_without_parameters() -> list[str]:
    """Every named page of the site (not the admin's) whose URL takes no parameter, reversed:
    the crawl starts from all of them, so a page no menu links to yet is covered too."""
    from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver

    names: list[str] = []

    def walk(patterns: list, namespace: str | None) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin":
                    continue
                inner = pattern.namespace or None
                joined = ":".join(n for n in (namespace, inner) if n) or None
                walk(pattern.url_patterns, joined)
            elif isinstance(pattern, URLPattern) and pattern.name:
                names.append(f"{namespace}:{pattern.name}" if namespace else pattern.name)

    walk(get_resolver().url_patterns, None)
    urls = []
    for name in names:
        try:
            urls.append(reverse(name))
        except NoReverseMatch:  # takes a parameter: reached through the links instead
            continue
    return urls


def _query(query: str) -> dict[str, list[str]]:
    from urllib.parse import parse_qs

    return parse_qs(query, keep_blank_values=True)


def test_url_prefix_every_link_of_every_page_stays_below_it(
    prefixed, administrator_client, runtime, f2b
):
    site_settings_create(str(f2b.socket_path))
    f2b.client().send("set", "sshd", "banip", "203.0.113.9")
    start = pages_without_parameters()
    assert reverse("jails:jail-list") in start
    found = crawl(
        administrator_client,
        [*start, reverse("jails:ip-detail", args=["203.0.113.9"]), reverse("admin:index")],
    )
    assert found == {}


def test_url_prefix_pages_link_and_load_static_files_under_it(
    prefixed, administrator_client, runtime, f2b
):
    site_settings_create(str(f2b.socket_path))
    page = administrator_client.get("/jails/").content.decode()
    assert f'href="{PREFIX}/jails/"' in page  # the nav, reversed
    assert f'action="{PREFIX}/logout/"' in page
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts and all(s.startswith(f"{PREFIX}/static/jails/") for s in scripts), scripts
    # WhiteNoise answers below the prefix, at the path Django resolves (without it).
    from django.test import Client

    for script in scripts:
        static = Client().get(script[len(PREFIX) :])
        assert static.status_code == 200, script
        assert "javascript" in static["Content-Type"]


def test_url_prefix_login_redirects_and_cookies(prefixed, client, operator_user, runtime, f2b):
    from tests.support.site_helpers import STRONG_PASSWORD

    site_settings_create(str(f2b.socket_path))
    anonymous = client.get("/jails/")
    assert anonymous.status_code == 302
    assert anonymous["Location"] == f"{PREFIX}/login/?next={PREFIX}/jails/"

    operator_user.set_password(STRONG_PASSWORD)
    operator_user.save()
    assert f'action="{PREFIX}/login/"' in client.get("/login/").content.decode()
    done = client.post("/login/", {"username": operator_user.username, "password": STRONG_PASSWORD})
    assert done.status_code == 302
    assert done["Location"] == f"{PREFIX}/"
    assert done.cookies["sessionid"]["path"] == f"{PREFIX}/"
    assert client.cookies["csrftoken"]["path"] == f"{PREFIX}/"

    out = client.post("/logout/")
    assert out.status_code == 302
    assert out["Location"] == f"{PREFIX}/login/"


def test_url_prefix_htmx_request_after_logout_reloads_the_login_page(prefixed, client, runtime):
    response = client.get(
        "/status-bar/",
        headers={"HX-Request": "true", "HX-Current-URL": f"https://f2b.example.org{PREFIX}/jails/"},
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == f"{PREFIX}/login/?next=%2Ffail2ban%2Fjails%2F"


def test_url_prefix_first_run_redirects_to_the_wizard_below_it(prefixed, client):
    runtime_state().setup_pending = True
    response = client.get("/jails/")
    assert response.status_code == 302
    assert response["Location"] == f"{PREFIX}/setup/"
    # What stays open before the setup, matched on the prefixed path.
    assert client.get("/setup/").status_code == 200
    assert client.get("/healthz").status_code in (200, 503)
    assert client.get("/static/jails/app.js").status_code == 200


def test_url_prefix_admin_is_below_it(prefixed, administrator_client, runtime, f2b):
    site_settings_create(str(f2b.socket_path))
    page = administrator_client.get("/admin/").content.decode()
    assert escaping(page) == []
    assert f'href="{PREFIX}/admin/jails/' in page or f'href="{PREFIX}/admin/auth/' in page


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ""),
        ("/", ""),
        ("/fail2ban", "/fail2ban"),
        ("/fail2ban/", "/fail2ban"),
        ("/a/b-c", "/a/b-c"),
    ],
)
def test_url_prefix_values(raw: str, expected: str):
    assert env_url_prefix("P", {"P": raw}) == expected


@pytest.mark.parametrize(
    "raw", ["fail2ban", "/fail 2ban", "/a//b", "/../x", "/a/./b", "/f2b?x=1", "/f2b#x", "//evil"]
)
def test_url_prefix_refuses_what_is_not_a_plain_path(raw: str):
    with pytest.raises(ImproperlyConfigured, match="P must be a path"):
        env_url_prefix("P", {"P": raw})


def test_url_prefix_settings_from_the_environment(tmp_path):
    """What settings.py makes of JAILADMIN_URL_PREFIX, in a process of its own."""
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "from django.urls import reverse; "
        "print(s.FORCE_SCRIPT_NAME, s.SESSION_COOKIE_PATH, s.CSRF_COOKIE_PATH, s.STATIC_URL, "
        "reverse('jails:jail-list'))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "jailadmin.settings",
        "JAILADMIN_SECRET_KEY": "url-prefix-test-secret-key-0123456789-abcdefghijklmnopq",
        "JAILADMIN_VAR_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "JAILADMIN_URL_PREFIX": "/fail2ban/"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == [
        "/fail2ban",
        "/fail2ban/",
        "/fail2ban/",
        "/fail2ban/static/",
        "/fail2ban/jails/",
    ]
    unset = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert unset.stdout.split() == ["None", "/", "/", "/static/", "/jails/"]
