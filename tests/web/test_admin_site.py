"""The admin says jailadmin, and its pages link the site's icon (no /favicon.ico 404)."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db

ADMIN_PAGES = [
    "/admin/",
    "/admin/jails/auditentry/",
    "/admin/auth/user/",
    "/admin/auth/user/add/",
    "/admin/password_change/",
]
ICON = re.compile(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)">')


def test_admin_is_branded_jailadmin(administrator_client):
    body = administrator_client.get("/admin/").content.decode()
    assert "<title>jailadmin administration | jailadmin</title>" in body
    assert '<div id="site-name"><a href="/admin/">jailadmin</a></div>' in body
    assert "Django administration" not in body
    assert "Django site admin" not in body


def test_admin_login_page_is_branded_jailadmin(client):
    body = client.get("/admin/login/").content.decode()
    assert "jailadmin" in body
    assert "Django administration" not in body


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_admin_pages_link_the_icon_that_exists(administrator_client, url):
    response = administrator_client.get(url)
    assert response.status_code == 200
    [href] = ICON.findall(response.content.decode())
    icon = administrator_client.get(href)
    assert icon.status_code == 200
    assert b"<svg" in b"".join(icon.streaming_content if icon.streaming else [icon.content])


def test_admin_login_links_the_icon(client):
    assert ICON.search(client.get("/admin/login/").content.decode())


def test_favicon_ico_redirects_to_the_icon_for_anybody(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    icon = client.get(response["Location"])
    assert icon.status_code == 200
