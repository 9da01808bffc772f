"""The site at https://127.0.0.1:PORT/fail2ban/ behind a real nginx, as the README deploys it.

nginx runs the shipped deploy/nginx/jailadmin.conf (tests/support/nginx.py: a private process
with a self-signed certificate) — and Caddy the shipped deploy/caddy/Caddyfile
(tests/support/caddy.py), for the requests without a browser — in front of gunicorn started
with the shipped configuration
(`gunicorn -c python:jailadmin.gunicorn_conf`) and JAILADMIN_URL_PREFIX=/fail2ban,
JAILADMIN_TRUSTED_PROXIES=127.0.0.1, JAILADMIN_SECURE=true. A browser walks the whole life of
a site through it; plain HTTPS requests from other loopback addresses check what the site
believes about the client, its cookies and HSTS.
"""

from __future__ import annotations

import http.client
import os
import re
import sqlite3
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.support.caddy import caddy_serving
from tests.support.live_site import free_port, served
from tests.support.nginx import certificate_make, nginx_serving

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/fail2ban"
USERNAME = "proxy-admin"
PASSWORD = "a-long-proxy-test-password-4"
# Loopback addresses the test's own clients connect from (Linux answers on all of 127/8), so
# the proxy (127.0.0.1) and the client differ.
CLIENT = "127.0.0.5"
STRANGER = "127.0.0.6"
# Generous for a loaded one-core box: a command imports Django and migrates a database.
COMMAND_TIMEOUT = 300

pytestmark = [pytest.mark.slow, pytest.mark.no_site_database]
needs_nginx = pytest.mark.skipif(
    not Path("/usr/sbin/nginx").exists(), reason="needs Debian's nginx"
)
needs_caddy = pytest.mark.skipif(not Path("/usr/bin/caddy").exists(), reason="needs Debian's caddy")
PROXIES = [
    pytest.param("nginx", marks=needs_nginx),
    pytest.param("caddy", marks=needs_caddy),
]


@dataclass(frozen=True)
class ProxiedSite:
    origin: str  # https://127.0.0.1:PORT
    port: int
    env: dict[str, str]
    database: Path
    ca_file: Path  # what the proxy's certificate is checked against
    gunicorn_port: int
    gunicorn_log: Path

    @property
    def base(self) -> str:
        return f"{self.origin}{PREFIX}"


def site_environment(f2b, tmp_path: Path, *, gunicorn_port: int) -> dict[str, str]:
    """The production settings of the README's proxy recipe, for this test's site."""
    from django.conf import settings

    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("JAILADMIN_")},
        "DJANGO_SETTINGS_MODULE": "jailadmin.settings",
        "JAILADMIN_SECRET_KEY": "proxy-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "JAILADMIN_DEBUG": "false",
        "JAILADMIN_VAR_DIR": str(tmp_path / "var"),
        "JAILADMIN_DATABASE_URL": f"sqlite:///{tmp_path / 'site.sqlite3'}",
        "JAILADMIN_FAIL2BAN_SOCKET": str(f2b.socket_path),
        "JAILADMIN_FAIL2BAN_TIMEOUT": "10",
        "JAILADMIN_FAIL2BAN_TIME_ZONE": f2b.tz or "UTC",
        "JAILADMIN_SESSION_CACHE": "database",
        "JAILADMIN_ALLOWED_HOSTS": "127.0.0.1",
        "JAILADMIN_URL_PREFIX": PREFIX,
        "JAILADMIN_TRUSTED_PROXIES": "127.0.0.1",
        "JAILADMIN_SECURE": "true",
        "JAILADMIN_WORKERS": "2",
        "JAILADMIN_BIND": f"127.0.0.1:{gunicorn_port}",
        # The test session has collected the static files already (tests/conftest.py).
        "JAILADMIN_STATIC_ROOT": str(settings.STATIC_ROOT),
    }


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextmanager
def proxied_site(
    f2b, tmp_path: Path, *, set_up: bool, proxy: str = "nginx"
) -> Iterator[ProxiedSite]:
    """gunicorn and `proxy` (nginx or caddy) as deployed; `set_up`: the first-run setup
    already done, with an administrator (otherwise the site starts at its setup wizard)."""
    (tmp_path / "var").mkdir()
    gunicorn_port, port = free_port(), free_port()
    env = site_environment(f2b, tmp_path, gunicorn_port=gunicorn_port)
    manage(env, "migrate", "--noinput", "-v0")
    if set_up:
        manage(
            env,
            "shell",
            "-c",
            f"""
from django.contrib.auth.models import Group, User
from jails.models import SiteSettings
user = User.objects.create_user({USERNAME!r}, password={PASSWORD!r}, is_staff=True)
user.groups.add(Group.objects.get(name="administrator"))
SiteSettings.objects.update_or_create(
    singleton=1, defaults={{"fail2ban_socket": {str(f2b.socket_path)!r}, "setup_complete": True}}
)
""",
        )
    gunicorn = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-c",
        "python:jailadmin.gunicorn_conf",
    ]
    log = tmp_path / "gunicorn.log"
    upstream = f"127.0.0.1:{gunicorn_port}"
    with served(gunicorn, env=env, log_path=log, port=gunicorn_port), ExitStack() as stack:
        if proxy == "nginx":
            certificate = certificate_make(tmp_path / "tls")
            stack.enter_context(
                nginx_serving(
                    tmp_path / "nginx", port=port, upstream=upstream, certificate=certificate
                )
            )
            ca_file = certificate.cert
        else:
            ca_file = stack.enter_context(
                caddy_serving(tmp_path / "caddy", port=port, upstream=upstream)
            )
        yield ProxiedSite(
            origin=f"https://127.0.0.1:{port}",
            port=port,
            env=env,
            database=tmp_path / "site.sqlite3",
            ca_file=ca_file,
            gunicorn_port=gunicorn_port,
            gunicorn_log=log,
        )


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def cookies(self) -> dict[str, dict[str, str | bool]]:
        """Set-Cookie by name: its attributes, lower-case (`secure`/`httponly`: True)."""
        out: dict[str, dict[str, str | bool]] = {}
        for header in self.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                out[name] = {"value": morsel.value, **{k: v for k, v in morsel.items() if v}}
        return out


def https(
    site: ProxiedSite,
    path: str,
    *,
    method: str = "GET",
    source: str = CLIENT,
    headers: dict[str, str] | None = None,
    body: str | None = None,
) -> Reply:
    """One request through nginx from `source`, the certificate checked against its own CA."""
    context = ssl.create_default_context(cafile=str(site.ca_file))
    connection = http.client.HTTPSConnection(
        "127.0.0.1", site.port, context=context, timeout=60, source_address=(source, 0)
    )
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read().decode())
    finally:
        connection.close()


def audit_addresses(site: ProxiedSite, action: str) -> list[str]:
    with sqlite3.connect(f"file:{site.database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT address FROM jails_auditentry WHERE action = ?", (action,))
        return [row[0] for row in rows]


@pytest.mark.parametrize("proxy", PROXIES)
def test_proxy_subpath_client_address_cookies_and_hsts(f2b, tmp_path, proxy: str):
    with proxied_site(f2b, tmp_path, set_up=True, proxy=proxy) as site:
        # Outside the prefix nothing of the site answers (nginx: 404; Caddy: an empty 200);
        # the bare prefix gets its slash.
        bare = https(site, PREFIX)
        assert bare.status == 301
        assert bare.headers["Location"].endswith(f"{PREFIX}/")
        outside = https(site, "/jails/")
        assert outside.status == 404 or outside.body == ""
        assert "jailadmin" not in outside.body

        login = https(site, f"{PREFIX}/login/")
        assert login.status == 200
        hsts = login.headers["Strict-Transport-Security"]
        assert hsts == "max-age=31536000; includeSubDomains; preload"
        csrf = login.cookies()["csrftoken"]
        assert csrf["path"] == f"{PREFIX}/"
        assert csrf["secure"] is True and csrf["httponly"] is True
        assert f'action="{PREFIX}/login/"' in login.body
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.body).group(1)

        # The client claims to be someone else: nginx replaces the header, the site believes
        # nginx (a trusted proxy) and records the address nginx saw.
        posted = https(
            site,
            f"{PREFIX}/login/",
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={csrf['value']}",
                "Origin": site.origin,
                "X-Forwarded-For": "198.51.100.77",
            },
            body=urlencode(
                {"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token}
            ),
        )
        assert posted.status == 302, posted.body[:2000]
        assert posted.headers["Location"] == f"{PREFIX}/"
        session = posted.cookies()["sessionid"]
        assert session["path"] == f"{PREFIX}/"
        assert session["secure"] is True and session["httponly"] is True
        assert audit_addresses(site, "login") == [CLIENT]

        # Logged in, through the proxy: a page with prefixed links, static files below it.
        cookie = f"csrftoken={csrf['value']}; sessionid={session['value']}"
        jails = https(site, f"{PREFIX}/jails/", headers={"Cookie": cookie})
        assert jails.status == 200
        assert f'href="{PREFIX}/jails/sshd/"' in jails.body
        script = re.search(r'<script src="([^"]+)"', jails.body).group(1)
        assert script.startswith(f"{PREFIX}/static/jails/")
        static = https(site, script)
        assert static.status == 200
        assert "max-age=315360000" in static.headers["Cache-Control"]  # hashed: cached for ever
        admin = https(site, f"{PREFIX}/admin/")
        assert admin.status == 302
        assert admin.headers["Location"] == f"{PREFIX}/admin/login/?next={PREFIX}/admin/"

        # Straight to gunicorn from an address that is not a trusted proxy: the forged
        # header is ignored; /healthz answers over plain HTTP (no HTTPS redirect for it).
        direct = http.client.HTTPConnection(
            "127.0.0.1", site.gunicorn_port, timeout=60, source_address=(STRANGER, 0)
        )
        direct.request("GET", "/healthz", headers={"X-Forwarded-For": "198.51.100.88"})
        assert direct.getresponse().status == 200
        direct.close()

    # gunicorn's access log names the client the site believed (the environ it logs from is
    # the one TrustedProxyMiddleware rewrote), never a forged address.
    log = site.gunicorn_log.read_text()
    assert re.search(rf'^{re.escape(CLIENT)} "POST {PREFIX}/login/ HTTP/1.[01]" 302 ', log, re.M)
    assert re.search(rf'^{re.escape(STRANGER)} "GET /healthz HTTP/1.[01]" 200 ', log, re.M)
    assert "198.51.100." not in log


def test_proxy_subpath_check_deploy_is_clean(f2b, tmp_path):
    """`manage.py check --deploy` in exactly this configuration reports nothing."""
    (tmp_path / "var").mkdir()
    env = site_environment(f2b, tmp_path, gunicorn_port=free_port())
    out = manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert "no issues" in out


@needs_nginx
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")
def test_proxy_subpath_browser_walks_setup_to_logout(f2b, tmp_path):
    """setup → login → jails → ban → unban → dashboard → logout in Chromium through nginx:
    no console error, no failed response, and no request leaves https://…/fail2ban/."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with proxied_site(f2b, tmp_path, set_up=False) as site:
        token = manage(site.env, "jailadmin_setup", "--print-token").strip()
        requested: list[str] = []
        problems: list[str] = []
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path="/usr/bin/chromium",
                args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
                # The test's own self-signed certificate.
                ignore_https_errors=True,
            )
            try:
                page = browser.new_page()
                page.on("request", lambda r: requested.append(r.url))
                page.on(
                    "console",
                    lambda m: problems.append(m.text) if m.type == "error" else None,
                )
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.on(
                    "response",
                    lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
                )

                # Before the setup every page leads to the wizard, below the prefix.
                page.goto(f"{site.base}/jails/")
                assert page.url == f"{site.base}/setup/"
                page.goto(f"{site.base}/setup/?token={token}")
                page.fill("#id_username", USERNAME)
                page.fill("#id_password1", PASSWORD)
                page.fill("#id_password2", PASSWORD)
                page.click("#setup-form button.primary")
                page.wait_for_url(f"{site.base}/login/")

                page.fill("input[name=username]", USERNAME)
                page.fill("input[name=password]", PASSWORD)
                page.click("main form button[type=submit], main form input[type=submit]")
                page.wait_for_url(f"{site.base}/")

                page.get_by_role("navigation", name="Main").get_by_role(
                    "link", name="Jails"
                ).click()
                page.wait_for_url(f"{site.base}/jails/")
                page.get_by_role("link", name="sshd", exact=True).first.click()
                page.wait_for_url(f"{site.base}/jails/sshd/")

                page.fill("#ban-ip", "203.0.113.200")
                page.click("#ban-form button[type=submit]")
                page.locator("#action-message", has_text="Banned 203.0.113.200 in sshd.").wait_for()
                assert f2b.client().send("get", "sshd", "banip") == ["203.0.113.200"]
                page.click('#jail-bans button[name=ip][value="203.0.113.200"]')
                page.locator("#action-message", has_text="Unbanned 203.0.113.200").wait_for()
                assert f2b.client().send("get", "sshd", "banip") == []

                page.get_by_role("navigation", name="Main").get_by_role(
                    "link", name="Dashboard"
                ).click()
                page.wait_for_url(f"{site.base}/")
                page.locator("#dashboard").wait_for()

                page.get_by_role("button", name="Log out").click()
                page.wait_for_url(f"{site.base}/login/")
            finally:
                browser.close()
        assert problems == []
        escaped = [url for url in requested if not url.startswith(f"{site.base}/")]
        assert escaped == []
        assert len(requested) > 10, requested  # the walk really went through the site
        # Both operations went through the proxy and were audited with the browser's address.
        assert audit_addresses(site, "ban") == ["127.0.0.1"]
