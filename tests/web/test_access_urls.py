"""Every URL of the site, found by walking the URL configuration (new pages are covered
without touching this file): anonymous users are refused, every POST needs a CSRF token,
viewers can change nothing and see no action controls, each role gets what it may."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.resolvers import RegexPattern, RoutePattern

from tests.support.site_helpers import site_settings_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

# Values for URL parameters, by name: real jails and addresses, so that a view that forgot
# its permission check would really act (and the fail2ban assertions below would see it).
SAMPLES = {
    "name": "sshd",
    "jail": "sshd",
    "address": "203.0.113.7",
    "ip": "203.0.113.7",
    "app_label": "jails",
    "object_id": "1",
    "content_type_id": "1",
    "id": "1",
    "pk": "1",
    "url": "no-such-page/",
    # Host-scoped pages (/hosts/<host>/…, issue 12) are checked on the local host, which
    # exists on every site: the same permission checks as their /jails/ and /config/ twins.
    "host": "local",
}
# What an action form would send; a view that acts without checking permissions bans this.
ACTION_DATA = {
    "ip": "203.0.113.7",
    "ips": "203.0.113.7",
    "address": "203.0.113.7",
    "jail": "sshd",
    "action": "stop",
    "confirm": "yes",
    "value": "3",
    "maxretry": "3",
    "bantime": "10m",
    "findtime": "10m",
}
# Pages anybody may use: logging in and out, the health check, the (closed) setup wizard,
# the icon, the language selector (the login page and the wizard have it too; it changes only
# the chooser's own language: tests/i18n/test_language_choice.py).
PUBLIC = {
    "jails:language",
    "login",
    "logout",
    "admin:login",
    "admin:logout",
    "jails:healthz",
    "jails:setup",
    "favicon",  # a redirect to the static icon
}
# No login, an authorisation of their own: Prometheus' scrape (a bearer token or allowed
# addresses, 404 while neither is configured; tests/metrics/test_metrics_endpoint.py).
OWN_AUTHORISATION = {"jails:metrics:scrape"}
# Administrator-only pages outside the admin (operators get 403 there). A new page only
# administrators may use must be named here.
ADMINISTRATOR_ONLY = {
    "jails:settings",
    # The configuration editor: raw files, new jails and filters, restoring a version.
    "jails:configuration:file",
    "jails:configuration:jail-new",
    "jails:configuration:filter-new",
    "jails:configuration:restore",
    "jails:host-configuration:file",
    "jails:host-configuration:jail-new",
    "jails:host-configuration:filter-new",
    "jails:host-configuration:restore",
    # Notification channels and rules (reading them and subscribing: any operator).
    "jails:notifications:channel-create",
    "jails:notifications:channel-delete",
    "jails:notifications:channel-test",
    "jails:notifications:rule-create",
    "jails:notifications:rule-change",
    # Blocklist sources: adding and removing one (previewing and importing: any operator).
    "jails:blocklists:add",
    "jails:blocklists:delete",
    # Creating the blocklist jail writes fail2ban's configuration, like jail-new.
    "jails:blocklists:jail-create",
    # Managing the hosts (issue 12): adding, changing, checking, confirming keys, removing.
    "jails:hosts:add",
    "jails:hosts:edit",
    "jails:hosts:check",
    "jails:hosts:confirm-key",
    "jails:hosts:remove",
}


@dataclass(frozen=True)
class SiteURL:
    name: str  # "namespace:name", or the route for an unnamed pattern
    path: str

    @property
    def is_admin(self) -> bool:
        return self.path.startswith("/admin/")


def _fill_route(route: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: SAMPLES.get(m.group(1), "1"), route)


def site_urls() -> list[SiteURL]:
    """One concrete URL per pattern of the whole URL configuration."""
    found: list[SiteURL] = []

    def walk(patterns: list, prefix: str, namespace: str | None) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(filter(None, [namespace, pattern.namespace])) or None
                walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
                continue
            assert isinstance(pattern, URLPattern)
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            if isinstance(pattern.pattern, RoutePattern):
                path = "/" + _fill_route(prefix + str(pattern.pattern))
            elif isinstance(pattern.pattern, RegexPattern) and name:
                groups = re.compile(str(pattern.pattern)).groupindex
                path = reverse(name, kwargs={g: SAMPLES.get(g, "1") for g in groups})
            elif prefix.startswith("admin/"):  # the admin's unnamed catch-all
                path = "/admin/" + SAMPLES["url"]
            else:
                raise AssertionError(f"name the regex URL pattern {pattern.pattern!r}")
            found.append(SiteURL(name or path, path))

    walk(get_resolver().url_patterns, "", None)
    return found


SITE_URLS = site_urls()
NON_PUBLIC = [u for u in SITE_URLS if u.name not in PUBLIC | OWN_AUTHORISATION]
SITE_PAGES = [u for u in NON_PUBLIC if not u.is_admin]


@pytest.fixture
def site(runtime, f2b):
    return site_settings_create(str(f2b.socket_path))


def refused_anonymous(response) -> bool:
    if response.status_code in (403, 405):
        return True
    location = response.get("Location", "")
    return response.status_code == 302 and location.startswith(("/login/", "/admin/login/"))


def test_url_walk_finds_the_pages_of_the_site():
    names = {u.name for u in SITE_URLS}
    assert {"jails:jail-list", "jails:settings", "jails:audit", "jails:setup", "login"} <= names
    assert any(u.is_admin for u in SITE_URLS)


@pytest.mark.parametrize("url", NON_PUBLIC, ids=lambda u: u.path)
def test_every_url_refuses_an_anonymous_user(site, url: SiteURL):
    client = Client()
    for method in (client.get, client.post):
        response = method(url.path)
        assert refused_anonymous(response), (method.__name__, url, response.status_code)


def test_public_urls_are_only_the_expected_ones(site):
    anonymous = Client()
    assert anonymous.get("/login/").status_code == 200
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/setup/")["Location"] == "/login/"  # closed once complete
    assert anonymous.get("/admin/login/").status_code == 200


@pytest.mark.parametrize("url", SITE_URLS, ids=lambda u: u.path)
def test_every_post_needs_a_csrf_token(site, django_user_model, url: SiteURL):
    user = django_user_model.objects.create_superuser(username="root", password="pw-long-enough-1")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(url.path, ACTION_DATA)
    assert response.status_code == 403, (url, response.status_code)
    assert b"CSRF" in response.content


@pytest.mark.parametrize("url", SITE_PAGES, ids=lambda u: u.path)
def test_viewer_gets_403_on_every_change(site, f2b, role_client, url: SiteURL):
    viewer = role_client("viewer")
    response = viewer.post(url.path, ACTION_DATA)
    if url.name == "jails:setup":
        assert response["Location"] == "/login/"
    else:
        assert response.status_code in (403, 405), (url, response.status_code)
    # ... and fail2ban really is untouched.
    assert all(not ips for entry in f2b.client().send("banned") for ips in entry.values())
    status = dict(f2b.client().send("status"))
    assert set(status["Jail list"].replace(" ", "").split(",")) == {
        "sshd",
        "nginx-http-auth",
        "postfix",
    }
    assert f2b.client().send("get", "sshd", "ignoreip") == []


def test_viewer_is_refused_the_admin(site, role_client):
    viewer = role_client("viewer", staff=False)
    assert viewer.get("/admin/")["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", SITE_PAGES, ids=lambda u: u.path)
def test_viewer_sees_no_action_controls(site, role_client, url: SiteURL):
    response = role_client("viewer").get(url.path)
    assert response.status_code != 500
    if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
        return
    body = response.content.decode()
    forms = re.findall(r"<form\b[^>]*>", body, flags=re.IGNORECASE)
    posting = [f for f in forms if re.search(r'method="?post', f, re.IGNORECASE)]
    # Logging out and the language selector (a personal choice, every role's) are allowed.
    personal = ('class="logout"', f'action="{reverse("jails:language")}"')
    assert all(any(mark in f for mark in personal) for f in posting), (url, posting)
    assert not re.search(r"\bhx-(post|put|patch|delete)=", body), url


def mutating_pages(role_client) -> list[SiteURL]:
    """The pages whose POST a viewer is refused (403): the site's changes."""
    viewer = role_client("viewer", username="probe-viewer")
    return [u for u in SITE_PAGES if viewer.post(u.path).status_code == 403]


def test_each_role_against_every_mutating_url(site, role_client):
    pages = mutating_pages(role_client)
    assert {u.name for u in pages} >= ADMINISTRATOR_ONLY
    operator = role_client("operator")
    administrator = role_client("administrator")
    for url in pages:
        # An empty POST: a view that lets the role through answers with its form's errors,
        # a redirect or a 4xx other than 403 — and changes nothing.
        operator_status = operator.post(url.path).status_code
        administrator_status = administrator.post(url.path).status_code
        assert administrator_status != 403, url
        assert administrator_status != 500, url
        if url.name in ADMINISTRATOR_ONLY:
            assert operator_status == 403, url
        else:
            assert operator_status != 403, url
            assert operator_status != 500, url
