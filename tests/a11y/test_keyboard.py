"""Ban → unban → tune on a jail page with the keyboard alone, against real gunicorn and fail2ban.

Only Tab / Shift+Tab / Enter / Space and typing into the field the keyboard reached: no click,
no fill. Every element the walk focuses must show a focus indicator (an outline or a box
shadow, the outline at 3:1 against the page), and the HTMX answers must land in live regions
that stay in the page (the same node before and after, role=status / aria-live=polite), so a
screen reader hears them.
"""

from __future__ import annotations

import pytest

from tests.a11y.conftest import BANNED, DESKTOP, log_in

pytestmark = [pytest.mark.no_site_database, pytest.mark.slow]

MAX_TABS = 150
ADDRESS = "203.0.113.200"
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const cs = getComputedStyle(e);
  let bg = null;
  for (let n = e.parentElement; n; n = n.parentElement) {
    const c = getComputedStyle(n).backgroundColor;
    if (c && c !== "rgba(0, 0, 0, 0)" && c !== "transparent") { bg = c; break; }
  }
  return {
    html: e.outerHTML.slice(0, 120),
    outlineStyle: cs.outlineStyle, outlineWidth: parseFloat(cs.outlineWidth),
    outlineColor: cs.outlineColor, boxShadow: cs.boxShadow,
    background: bg || getComputedStyle(document.body).backgroundColor,
  };
}"""


def rgb(css: str) -> tuple[float, ...]:
    inner = css[css.index("(") + 1 : css.index(")")].replace("/", ",")
    return tuple(float(v) for v in inner.replace(",", " ").split()[:3])


def contrast(a: str, b: str) -> float:
    def lum(c: tuple[float, ...]) -> float:
        lin = [
            v / 255 / 12.92 if v / 255 <= 0.03928 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in c
        ]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((lum(rgb(a)), lum(rgb(b))), reverse=True)
    return (high + 0.05) / (low + 0.05)


class Walk:
    """Moves the focus with the keyboard only and checks each focused element's indicator."""

    def __init__(self, page) -> None:  # noqa: ANN001
        self.page = page
        self.seen = 0
        self.problems: list[str] = []

    def check_focus(self) -> None:
        info = self.page.evaluate(FOCUSED)
        if info is None:
            return
        self.seen += 1
        outlined = info["outlineStyle"] != "none" and info["outlineWidth"] >= 2
        shadowed = info["boxShadow"] != "none"
        if not (outlined or shadowed):
            self.problems.append(f"no focus indicator: {info['html']}")
        elif outlined and contrast(info["outlineColor"], info["background"]) < 3:
            self.problems.append(
                f"focus outline {info['outlineColor']} under 3:1 on {info['background']}: "
                f"{info['html']}"
            )

    def tab_to(self, selector: str, *, backwards: bool = False) -> None:
        """Tab (or Shift+Tab) until the element matching `selector` has the focus."""
        key = "Shift+Tab" if backwards else "Tab"
        for _ in range(MAX_TABS):
            if self.page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
                return
            self.page.keyboard.press(key)
            self.check_focus()
        raise AssertionError(f"{selector} not reached in {MAX_TABS} presses of {key}")


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


def wait_until_htmx_settled(page, selector: str) -> None:  # noqa: ANN001
    """Wait until htmx has processed what it swapped in at `selector`: it is visible (and
    Chromium may focus its autofocus button) before htmx's settle step hooks its forms up,
    and a key pressed in between submits the form without htmx, as a full page."""
    page.wait_for_function(
        """s => { const e = document.querySelector(s);
                  return e !== null && !e.closest(".htmx-added")
                         && e.querySelector(".htmx-added") === null; }""",
        arg=selector,
    )


def probe_live_regions(page) -> None:  # noqa: ANN001
    page.evaluate(
        """() => { for (const id of ["action-message", "jail-counters"])
                     document.getElementById(id).dataset.probe = "kept"; }"""
    )


def assert_live_regions_kept(page) -> None:  # noqa: ANN001
    regions = page.evaluate(
        """() => ["action-message", "jail-counters"].map(id => {
             const e = document.getElementById(id);
             const attr = name => e.getAttribute(name);
             return [id, e.dataset.probe || null, attr("role"), attr("aria-live")];
           })"""
    )
    assert regions == [
        ["action-message", "kept", "status", "polite"],
        ["jail-counters", "kept", None, "polite"],
    ]


def test_ban_unban_and_tune_with_the_keyboard_alone(a11y_site, chromium, f2b):
    base = a11y_site.base
    a11y_site.complete_setup()
    f2b.client().send("set", "sshd", "unbanip", *BANNED)
    context = chromium.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        log_in(page, base)  # the login itself is not the walk under test
        page.goto(f"{base}/jails/sshd/")
        walk = Walk(page)
        counters = page.locator("#jail-counters")

        # Ban: Tab to the address field, type, Tab to "Ban", Enter.
        walk.tab_to("#ban-ip")
        page.keyboard.type(ADDRESS)
        walk.tab_to("#ban-form button[type=submit]")
        probe_live_regions(page)
        page.keyboard.press("Enter")
        page.locator("#action-message", has_text=f"Banned {ADDRESS} in sshd.").wait_for()
        assert banned(f2b, "sshd") == {ADDRESS}
        assert "1 currently banned" in " ".join(counters.inner_text().split())
        assert_live_regions_kept(page)

        # Unban with the row's button, pressed with Space.
        walk.tab_to(f'#jail-bans button[name=ip][value="{ADDRESS}"]')
        probe_live_regions(page)
        page.keyboard.press("Space")
        page.locator("#action-message", has_text=f"Unbanned {ADDRESS}").wait_for()
        assert banned(f2b, "sshd") == set()
        assert "0 currently banned" in " ".join(counters.inner_text().split())
        assert_live_regions_kept(page)

        # Tune: back up to the ban time (Shift+Tab), replace its value, review, apply.
        walk.tab_to("#tune-bantime", backwards=True)
        page.keyboard.press("ControlOrMeta+A")
        page.keyboard.type("2h")
        walk.tab_to("form.tune button[type=submit]")
        page.keyboard.press("Enter")
        confirm = page.locator("#action-confirm [role=alertdialog]")
        confirm.get_by_text("bantime: 10m → 2h").wait_for()
        wait_until_htmx_settled(page, "#action-confirm")
        # The confirmation takes the focus (autofocus on its button), so Enter applies it.
        assert page.evaluate(
            "() => document.activeElement.matches('#action-confirm button[type=submit]')"
        )
        walk.check_focus()
        page.keyboard.press("Enter")
        page.locator("#action-message", has_text="Changed bantime 10m → 2h").wait_for()
        assert f2b.client().send("get", "sshd", "bantime") == 7200
        assert page.input_value("#tune-bantime") == "2h"
    finally:
        context.close()
    assert walk.seen > 10
    assert walk.problems == []
