"""Every main page on a 390 px wide phone (issue 16, small screens), in English, German, Japanese.

Real gunicorn, a real fail2ban with bans, a seeded ban archive (so the dashboard has its charts
and offender tables), Debian's Chromium through Playwright. On each page: the page itself never
scrolls sideways (wide tables and charts scroll inside their own box), every visible button,
navigation link, pager link, form control and summary is at least 44 px tall (and wide, for
one-character icon buttons), and the header's menu button opens and closes the menu. Without
JavaScript the header is not collapsed at all; on a desktop it is not collapsed either.
German and Japanese are asked for with the language cookie and Accept-Language: which strings
their catalogues translate does not matter here, only that nothing overflows.
Screenshots of the dashboard and a jail page at 390 px in German are kept in
artifacts/small-screens/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.live_site import ROOT, free_port, gunicorn_arguments, served, site_environment

pytestmark = [
    pytest.mark.no_site_database,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium"),
]

USERNAME = "small-screen-admin"
PASSWORD = "a-long-small-screen-test-password-3"
PHONE = {"width": 390, "height": 844}
# A long address: IPv6 in full is the widest thing a table cell has to hold.
LONG_IP = "2001:db8:ffff:ffff:ffff:ffff:ffff:1234"
BANNED = ("203.0.113.7", "198.51.100.23", LONG_IP)
# Subpixel layout: a 44 px box can measure 43.99.
MIN_TARGET = 43.5
ARTIFACTS = ROOT / "artifacts" / "small-screens"

# What sticks out of the viewport when the page scrolls sideways, outside any box that
# scrolls (or clips) on its own: the elements to fix, named for the failure message.
OVERFLOW_JS = """() => {
  const root = document.scrollingElement, limit = window.innerWidth;
  const found = [];
  if (root.scrollWidth > limit) {
    for (const el of document.body.querySelectorAll("*")) {
      const box = el.getBoundingClientRect();
      if (!box.width || box.right <= limit + 0.5) continue;
      let up = el.parentElement, contained = false;
      while (up && up !== document.body) {
        if (getComputedStyle(up).overflowX !== "visible") { contained = true; break; }
        up = up.parentElement;
      }
      if (contained) continue;
      const classes = typeof el.className === "string" ? el.className.trim() : "";
      const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
        (classes ? "." + classes.replace(/\\s+/g, ".") : "");
      found.push(name + " right=" + Math.round(box.right) + " " +
        JSON.stringify((el.textContent || "").trim().slice(0, 40)));
      if (found.length >= 6) break;
    }
  }
  return {scrollWidth: root.scrollWidth, innerWidth: limit, culprits: found};
}"""

# Every visible tap target that is too small. Inline links inside running text are exempt
# (WCAG 2.5.8), so links count only where they act as controls: navigation, pagers, tabs,
# the header, link-buttons. A checkbox or radio counts with the label that wraps it.
TARGETS_JS = """() => {
  const selector = "button, input:not([type=hidden]), select, textarea, summary, nav a, " +
    ".pager a, a.button, .site-header a:not(.skip-link)";
  const small = [];
  for (const el of document.querySelectorAll(selector)) {
    if (!el.checkVisibility({visibilityProperty: true}) || el.closest(".visually-hidden")) continue;
    let box = el.getBoundingClientRect();
    if (!box.width || !box.height) continue;
    const label = el.closest("label");
    const tick = el.type === "checkbox" || el.type === "radio";
    if (label && tick) box = label.getBoundingClientRect();
    const text = (el.textContent || el.value || "").trim();
    const icon = el.tagName === "BUTTON" && text.length <= 2;
    if (box.height < %(min)s || (icon && box.width < %(min)s)) {
      small.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
        (el.name ? "[name=" + el.name + "]" : "") + " " + JSON.stringify(text.slice(0, 30)) +
        " " + Math.round(box.width) + "x" + Math.round(box.height));
    }
  }
  return small;
}""" % {"min": MIN_TARGET}  # noqa: UP031 -- JS braces make str.format and f-strings unreadable

# The smallest rendered label of each chart: the charts must stay readable on a phone.
CHART_TEXT_JS = """() => Array.from(document.querySelectorAll(".chart-card svg")).map(svg => {
  const heights = Array.from(svg.querySelectorAll("text"))
    .map(t => t.getBoundingClientRect().height).filter(h => h > 0);
  return [svg.getAttribute("class"), Math.round(svg.getBoundingClientRect().width),
          heights.length ? Math.min(...heights) : null];
})"""


# Addresses and names linked from a table cell, split over two lines: unreadable, so they
# stay whole and the table scrolls in its box instead.
BROKEN_KEYS_JS = """() => Array.from(document.querySelectorAll("table.data td a code"))
  .filter(code => code.checkVisibility() && code.getClientRects().length > 1)
  .map(code => code.textContent.trim()).slice(0, 5)"""


@pytest.fixture
def small_site(f2b, tmp_path):
    """gunicorn on a migrated database with an administrator (staff: the Admin link too), a
    seeded ban archive, and fail2ban holding a few bans."""

    assert f2b.install is not None
    f2b.client().send("set", "sshd", "banip", *BANNED)
    port = free_port()
    env = site_environment(
        f2b,
        tmp_path,
        secret_key="small-screen-test-secret-key-0123456789-abcdefghijklmnop",
        JAILADMIN_FAIL2BAN_CONFIG_DIR=str(f2b.conf_dir),
        JAILADMIN_FAIL2BAN_CLIENT=f2b.install.client,
        JAILADMIN_FAIL2BAN_TIMEOUT="30",
    )
    prepare = f"""
import time
from bench.seed_history import seed
from django.contrib.auth.models import Group, User
from jails.models import SiteSettings
user = User.objects.create_user({USERNAME!r}, password={PASSWORD!r}, is_staff=True)
user.groups.add(Group.objects.get(name="administrator"))
SiteSettings.objects.update_or_create(
    singleton=1, defaults={{"fail2ban_socket": {str(f2b.socket_path)!r}, "setup_complete": True}}
)
seed(events=1500, addresses=400, days=60, now=int(time.time()))
"""
    for args in (["migrate", "--noinput", "-v0"], ["shell", "-c", prepare]):
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
        )
    command = [str(Path(sys.executable).parent / "gunicorn"), *gunicorn_arguments(port, workers=2)]
    with served(command, env=env, log_path=tmp_path / "gunicorn.log", port=port) as (base, _):
        yield base


def main_pages() -> list[tuple[str, str]]:
    from django.urls import reverse

    return [
        ("dashboard", reverse("jails:dashboard") + "?window=30d"),
        ("jails", reverse("jails:jail-list")),
        ("jail", reverse("jails:jail-detail", args=["sshd"])),
        ("ip", reverse("jails:ip-detail", args=[LONG_IP])),
        ("history", reverse("jails:history")),
        ("audit", reverse("jails:audit")),
        ("settings", reverse("jails:settings")),
        ("hosts", reverse("jails:hosts:list")),
        ("blocklists", reverse("jails:blocklists:list")),
        ("configuration", reverse("jails:configuration:index")),
        ("notifications", reverse("jails:notifications:index")),
    ]


def check_page(page, where: str, problems: list[str]) -> None:
    """No sideways page scroll, no small tap target, readable charts: append what is wrong."""
    overflow = page.evaluate(OVERFLOW_JS)
    if overflow["scrollWidth"] > overflow["innerWidth"]:
        problems.append(f"{where}: page scrolls sideways {overflow}")
    small = page.evaluate(TARGETS_JS)
    if small:
        problems.append(f"{where}: tap targets under 44 px: {small[:8]}")
    broken = page.evaluate(BROKEN_KEYS_JS)
    if broken:
        problems.append(f"{where}: addresses or names broken over lines: {broken}")
    for kind, width, height in page.evaluate(CHART_TEXT_JS):
        # 12 px chart text drawn in a 720-unit viewBox squeezed to 340 px is under 6 px.
        if height is not None and height < 9:
            problems.append(f"{where}: {kind} {width} px wide, labels {height:.1f} px tall")


def check_menu(page, where: str, problems: list[str]) -> None:
    """The header's menu button opens and closes the menu, which holds every header form."""
    toggle = page.locator(".site-header .menu-toggle")
    if not toggle.is_visible():
        problems.append(f"{where}: no visible menu button at 390 px")
        return
    menu = page.locator("#" + toggle.get_attribute("aria-controls"))
    nav_link = menu.locator("nav a").first
    if toggle.get_attribute("aria-expanded") != "false" or nav_link.is_visible():
        problems.append(f"{where}: the menu starts open")
    header_forms = page.locator(".site-header form").count()
    if menu.locator("form").count() != header_forms:
        problems.append(f"{where}: a header form is outside the menu")
    toggle.click()
    if toggle.get_attribute("aria-expanded") != "true" or not nav_link.is_visible():
        problems.append(f"{where}: the menu button did not open the menu")
    # Open, the menu's own links and controls are tap targets too, and it must fit.
    check_page(page, f"{where} (menu open)", problems)
    page.keyboard.press("Escape")
    if toggle.get_attribute("aria-expanded") != "false" or nav_link.is_visible():
        problems.append(f"{where}: Escape did not close the menu")
    if not page.evaluate("document.activeElement.classList.contains('menu-toggle')"):
        problems.append(f"{where}: Escape did not return the focus to the menu button")
    toggle.click()
    toggle.click()
    if toggle.get_attribute("aria-expanded") != "false" or nav_link.is_visible():
        problems.append(f"{where}: the menu button did not close the menu")


def log_in(page, base: str) -> None:
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation():
        page.click("main form button[type=submit], main form input[type=submit]")
    assert "/login/" not in page.url, page.locator("main").inner_text()[:500]


def test_small_screens_every_main_page_fits_in_three_languages(small_site, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from django.conf import settings
    from django.urls import reverse

    base = small_site
    pages = main_pages()
    problems: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            for lang in ("en", "de", "ja"):
                context = browser.new_context(
                    viewport=PHONE,
                    locale={"en": "en-US", "de": "de-DE", "ja": "ja-JP"}[lang],
                    extra_http_headers={"Accept-Language": lang},
                    has_touch=True,
                )
                context.add_cookies(
                    [{"name": settings.LANGUAGE_COOKIE_NAME, "value": lang, "url": base}]
                )
                # Sized for a loaded one-core box: the dashboard aggregates the archive.
                context.set_default_timeout(60_000)
                page = context.new_page()
                page.goto(base + reverse("login"), wait_until="networkidle")
                check_page(page, f"{lang} login", problems)
                log_in(page, base)
                for name, path in pages:
                    response = page.goto(base + path, wait_until="networkidle")
                    assert response is not None and response.status == 200, (lang, name, response)
                    check_page(page, f"{lang} {name}", problems)
                    if name in ("dashboard", "jail"):
                        check_menu(page, f"{lang} {name}", problems)
                    if lang == "de" and name in ("dashboard", "jail"):
                        shot = ARTIFACTS / f"{name}-de-390.png"
                        page.screenshot(path=str(shot), full_page=True)
                        print(f"screenshot: {shot}")
                if lang == "en":
                    # A desktop keeps today's header: no menu button, the links in view.
                    page.set_viewport_size({"width": 1280, "height": 900})
                    page.goto(base + pages[0][1], wait_until="networkidle")
                    if page.locator(".site-header .menu-toggle").is_visible():
                        problems.append("desktop: the menu button shows")
                    if not page.locator(".site-header nav a").first.is_visible():
                        problems.append("desktop: the navigation is hidden")
                context.close()

            # Without JavaScript nothing collapses: the navigation and forms stay in view.
            context = browser.new_context(viewport=PHONE, java_script_enabled=False)
            context.set_default_timeout(60_000)
            page = context.new_page()
            page.goto(base + reverse("login"))
            log_in(page, base)
            page.goto(base + reverse("jails:jail-detail", args=["sshd"]))
            if page.locator(".site-header .menu-toggle").is_visible():
                problems.append("no JavaScript: a menu button that cannot work shows")
            if not page.locator(".site-header nav a").first.is_visible():
                problems.append("no JavaScript: the navigation is hidden")
            if not page.locator("#header-ip-search").is_visible():
                problems.append("no JavaScript: the address search is hidden")
            check_page(page, "no JavaScript jail", problems)
            context.close()
        finally:
            browser.close()
    print(
        f"small screens: {len(pages) + 1} pages x 3 languages in {time.monotonic() - started:.0f} s"
    )
    print(f"screenshots in {ARTIFACTS}")
    assert not problems, "\n".join(problems)
