"""A live site for the accessibility tests: gunicorn on a free port, an administrator, some
bans in the session's private fail2ban, a small seeded ban archive (charts and the map have
data), and the setup still pending until `a11y_site.complete_setup()` (the wizard is a page
too). Chromium is Debian's, driven by Playwright; axe-core is the pinned copy that
`make test-install` fetched (tests/support/axe.py).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.axe import AXE_SCRIPT
from tests.support.live_site import ROOT, free_port, gunicorn_arguments, served, site_environment

CHROMIUM = Path("/usr/bin/chromium")
USERNAME = "a11y-admin"
PASSWORD = "a-long-accessibility-test-password-3"
BANNED = ("203.0.113.7", "198.51.100.20")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class A11ySite:
    base: str
    env: dict[str, str]

    def manage_shell(self, code: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def complete_setup(self) -> None:
        """What the wizard's last step stores: from the next request on, every page works."""
        self.manage_shell(
            "from jails.models import SiteSettings\n"
            "SiteSettings.objects.filter(singleton=1).update(setup_complete=True)\n"
        )


@pytest.fixture
def axe_source() -> str:
    if not AXE_SCRIPT.exists():
        pytest.fail(f"{AXE_SCRIPT} is missing: `make test-install` fetches it")
    return AXE_SCRIPT.read_text()


@pytest.fixture
def a11y_site(f2b, tmp_path) -> Iterator[A11ySite]:

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium")
    pytest.importorskip("playwright.sync_api")
    port = free_port()
    env = site_environment(
        f2b,
        tmp_path,
        secret_key="accessibility-test-secret-key-0123456789-abcdefghijklmn",
        JAILADMIN_FAIL2BAN_CONFIG_DIR=str(f2b.conf_dir),
        JAILADMIN_FAIL2BAN_CLIENT=str(f2b.install.client),
        JAILADMIN_FAIL2BAN_TIMEOUT="30",
        JAILADMIN_WORKERS="2",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    site = A11ySite(base=f"http://127.0.0.1:{port}", env=env)
    # Setup stays pending (the wizard is checked first); a small archive over 60 days gives
    # the dashboard's charts and map real figures.
    site.manage_shell(
        f"""
import time
from django.contrib.auth.models import User
from jails.models import SiteSettings
from bench.seed_history import seed
User.objects.create_superuser({USERNAME!r}, "a11y@example.com", {PASSWORD!r})
SiteSettings.objects.update_or_create(
    singleton=1, defaults={{"fail2ban_socket": {str(f2b.socket_path)!r}, "setup_complete": False}}
)
seed(events=400, addresses=120, days=60, now=int(time.time()))
"""
    )
    f2b.client().send("set", "sshd", "banip", *BANNED)
    command = [str(Path(sys.executable).parent / "gunicorn"), *gunicorn_arguments(port, workers=2)]
    with served(command, env=env, log_path=tmp_path / "gunicorn.log", port=port):
        yield site


@pytest.fixture
def chromium() -> Iterator[object]:
    """One headless Chromium for the whole test; each test opens its own contexts."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            yield browser
        finally:
            browser.close()


def log_in(page, base: str) -> None:  # noqa: ANN001
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("form:has(input[name=password]) [type=submit]")
    assert "/login/" not in page.url, page.url
