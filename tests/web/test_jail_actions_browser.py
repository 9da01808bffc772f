"""The jail page's HTMX actions in a real browser (Chromium), on real gunicorn and fail2ban.

The other page tests check the HTML the server sends; this one checks that htmx does the
rest: the clicked row button's value is posted, the out-of-band fragments replace the ban
table, the counters and the message in place, and the Content Security Policy lets it all
run (no inline scripts).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.live_site import PASSWORD, USERNAME, site  # noqa: F401

pytestmark = [
    pytest.mark.no_site_database,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium"),
]


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


def test_ban_unban_confirm_and_tune_in_the_browser(f2b, site, tmp_path):  # noqa: F811
    sync_api = pytest.importorskip("playwright.sync_api")
    base, _ = site
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            page = browser.new_page()
            # Errors and CSP violations show up on the console; failed loads as responses
            # (the site has no favicon: that 404 is expected).
            page.on(
                "console",
                lambda m: (
                    problems.append(m.text)
                    if m.type == "error" and "Failed to load resource" not in m.text
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on(
                "response",
                lambda r: (
                    problems.append(f"{r.status} {r.url}")
                    if r.status >= 400 and not r.url.endswith("/favicon.ico")
                    else None
                ),
            )
            page.goto(f"{base}/login/")
            page.fill("input[name=username]", USERNAME)
            page.fill("input[name=password]", PASSWORD)
            page.click("main form button[type=submit], main form input[type=submit]")
            page.goto(f"{base}/jails/sshd/")
            counters = page.locator("#jail-counters")

            # Ban one address: message, new row and counter, without a page load.
            page.evaluate("window.stayed = true")
            page.fill("#ban-ip", "203.0.113.200")
            page.click("#ban-form button[type=submit]")
            page.locator("#action-message", has_text="Banned 203.0.113.200 in sshd.").wait_for()
            assert page.evaluate("window.stayed") is True  # swapped in place, not reloaded
            assert page.locator('#jail-bans input[value="203.0.113.200"]').count() == 1
            assert "1 currently banned" in " ".join(counters.inner_text().split())
            assert banned(f2b, "sshd") == {"203.0.113.200"}
            assert page.input_value("#ban-ip") == ""

            # Unban it with the row's button: the row disappears, the counter drops.
            page.click('#jail-bans button[name=ip][value="203.0.113.200"]')
            page.locator("#action-message", has_text="Unbanned 203.0.113.200").wait_for()
            assert page.locator('#jail-bans input[value="203.0.113.200"]').count() == 0
            assert "0 currently banned" in " ".join(counters.inner_text().split())
            assert banned(f2b, "sshd") == set()

            # Own address (the browser connects from 127.0.0.1): confirm first.
            page.fill("#ban-ip", "127.0.0.1")
            page.click("#ban-form button[type=submit]")
            confirm = page.locator("#action-confirm")
            confirm.get_by_text("this is the address you are connected from").wait_for()
            assert banned(f2b, "sshd") == set()
            confirm.get_by_role("button", name="Ban anyway").click()
            page.locator("#action-message", has_text="Banned 127.0.0.1 in sshd.").wait_for()
            assert banned(f2b, "sshd") == {"127.0.0.1"}
            assert confirm.inner_text().strip() == ""

            # Tune: review the change, apply it; the settings show the new value.
            page.fill("#tune-bantime", "2h")
            page.click("form.tune button[type=submit]")
            confirm.get_by_text("bantime: 10m → 2h").wait_for()
            confirm.get_by_role("button", name="Apply").click()
            page.locator("#action-message", has_text="Changed bantime 10m → 2h").wait_for()
            assert f2b.client().send("get", "sshd", "bantime") == 7200
            assert page.input_value("#tune-bantime") == "2h"
            assert page.evaluate("window.stayed") is True
        finally:
            browser.close()
    assert problems == []
