"""axe-core over every main page, in light and dark mode, at desktop width and at 390 px.

One Chromium; one test and one context per (colour scheme, width), pages visited in a loop.
axe runs with its default rule set (WCAG 2.x A/AA and best practices); a `serious` or
`critical` violation on any page fails the test, and every one found is listed with its page,
rule and elements.
The script is evaluated through the DevTools protocol, which the site's Content Security
Policy does not govern: the site never links it.
"""

from __future__ import annotations

import re

import pytest

from tests.a11y.conftest import BANNED, DESKTOP, PHONE, log_in

pytestmark = [pytest.mark.no_site_database, pytest.mark.slow]

MODES = [
    (scheme, name, viewport)
    for scheme in ("light", "dark")
    for name, viewport in (("desktop", DESKTOP), ("390px", PHONE))
]
PAGES = (
    "/",
    "/?window=30d",
    "/history/?window=30d",
    "/jails/",
    "/jails/sshd/",
    f"/ip/{BANNED[0]}/",
    "/ip/",
    "/audit/",
    "/settings/",
    "/server/",
    "/hosts/",
    "/hosts/add/",
    "/blocklists/",
    "/config/",
    "/config/filters/",
    "/config/jails/sshd/",
    "/config/filter-test/",
    "/config/logs/",
    "/notifications/",
    "/notifications/log/",
)
SEVERE = {"serious", "critical"}


def axe_violations(page, axe_source: str) -> list[dict]:  # noqa: ANN001
    """axe's serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source)
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [v for v in result if v.get("impact") in SEVERE]


def readable(where: str, violations: list[dict]) -> list[str]:
    lines = []
    for v in violations:
        lines.append(f"{where}: [{v['impact']}] {v['id']}: {v['help']}")
        for node in v["nodes"][:6]:
            target = " ".join(str(t) for t in node["target"])
            summary = (node.get("failureSummary") or "").replace("\n", " ")
            lines.append(f"    {target}  {node['html'][:160]}  {summary[:300]}")
        if len(v["nodes"]) > 6:
            lines.append(f"    ... and {len(v['nodes']) - 6} more")
    return lines


def check_page(page, axe_source: str, url: str, where: str, found: list[str]) -> None:  # noqa: ANN001
    response = page.goto(url, wait_until="load")
    if response is None or response.status != 200:
        found.append(f"{where}: HTTP {response and response.status}")
        return
    found.extend(readable(where, axe_violations(page, axe_source)))
    # Colour is never the only signal: every coloured status pill or badge says it in words.
    wordless = page.evaluate(
        """() => [...document.querySelectorAll(".pill, .badge, .message")]
                   .filter(e => !e.textContent.trim() && !e.getAttribute("aria-label"))
                   .map(e => e.outerHTML.slice(0, 120))"""
    )
    found.extend(f"{where}: a status shown by colour alone: {html}" for html in wordless)


# One test per mode: each is a quarter of the work (about 45 s), so pytest-xdist's workers
# share them instead of one worker running three minutes of pages alone at the end.
@pytest.mark.parametrize(
    ("scheme", "name", "viewport"), MODES, ids=[f"{s}-{n}" for s, n, _ in MODES]
)
def test_every_main_page_has_no_serious_axe_violation(
    a11y_site, chromium, axe_source, scheme, name, viewport
):
    base = a11y_site.base
    found: list[str] = []
    context = chromium.new_context(viewport=viewport, color_scheme=scheme)
    try:
        page = context.new_page()
        # The wizard first, while setup is pending (then every URL redirects to it).
        check_page(page, axe_source, f"{base}/setup/", f"/setup/ {scheme} {name}", found)
        assert page.locator("form input[name=token]").count() == 1
        a11y_site.complete_setup()
        check_page(page, axe_source, f"{base}/login/", f"/login/ {scheme} {name}", found)
        log_in(page, base)
        for path in PAGES:
            check_page(page, axe_source, base + path, f"{path} {scheme} {name}", found)
        if (scheme, name) == ("light", "desktop"):
            charts_filter_on_click(page, base)
    finally:
        context.close()
    if found:
        pytest.fail("axe found serious or critical violations:\n" + "\n".join(found), pytrace=False)


def charts_filter_on_click(page, base: str) -> None:  # noqa: ANN001
    """The charts hold no links (an image holds no controls): a click on a bar or a country
    still filters the page, through its data-href (static/jails/app.js)."""
    page.goto(f"{base}/?window=30d")
    page.locator("svg.chart-hbar .row[data-href]").first.click()
    page.wait_for_url(re.compile(r"[?&]jail=[^&]+"))
    # Small countries hide under their neighbours' outlines: the event goes to a shaded
    # one directly (the bar above took a real pointer click).
    page.evaluate(
        """() => document.querySelector("svg.chart-map .country-link .country:not(.c0)")
                   .dispatchEvent(new MouseEvent("click", {bubbles: true}))"""
    )
    page.wait_for_url(re.compile(r"[?&]country=[A-Z]{2}"))
