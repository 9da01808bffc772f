"""The dashboard's charts and map have a text alternative: a table of the same figures, in a
<details> the browser opens without JavaScript; the SVGs are images with a name and no links
inside (a click on a bar or a country follows its data-href; the tables carry the links)."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from jails.models import SiteSettings

pytestmark = pytest.mark.django_db
NS = "{http://www.w3.org/2000/svg}"
COUNT = re.compile(r": ([\d,]+) bans?$")


class ChartTables(HTMLParser):
    """Each <details class="chart-table">'s summary and body rows: (label, bans, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.cell: list[str] | None = None
        self.row: list[str] = []
        self.href: str | None = None
        self.in_summary = False

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        attrs = dict(attrs)
        if tag == "details" and "chart-table" in (attrs.get("class") or ""):
            self.tables.append({"summary": "", "rows": [], "open": "open" in attrs})
        elif not self.tables:
            return
        elif tag == "summary":
            self.in_summary = True
        elif tag == "tr":
            self.row, self.href = [], None
        elif tag in ("th", "td"):
            self.cell = []
        elif tag == "a" and self.cell is not None:
            self.href = attrs.get("href")

    def handle_endtag(self, tag):  # noqa: ANN001
        if not self.tables:
            return
        if tag == "summary":
            self.in_summary = False
        elif tag in ("th", "td") and self.cell is not None:
            self.row.append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tr" and len(self.row) == 2 and self.row[1].replace(",", "").isdigit():
            self.tables[-1]["rows"].append(
                (self.row[0], int(self.row[1].replace(",", "")), self.href)
            )

    def handle_data(self, data):  # noqa: ANN001
        if self.in_summary:
            self.tables[-1]["summary"] += data
        elif self.cell is not None:
            self.cell.append(data)


def svg_figures(svg: str, element: str) -> list[tuple[str, int]]:
    """(title text before the count, count) of each <element>'s <title>, in drawing order."""
    root = ET.fromstring(svg)
    assert root.get("role") == "img" and root.get("aria-label")
    out = []
    for node in root.iter(f"{NS}{element}"):
        title = node.find(f"{NS}title")
        if title is None:
            continue
        match = COUNT.search(title.text)
        out.append((title.text[: match.start()], int(match.group(1).replace(",", ""))))
    return out


@pytest.fixture
def seeded(runtime):
    from bench.seed_history import seed

    SiteSettings.objects.update_or_create(
        singleton=1, defaults={"setup_complete": True, "fail2ban_socket": "/tmp/none.sock"}
    )
    seed(events=300, addresses=90, days=20, now=int(time.time()))


def test_dashboard_tables_hold_the_charts_figures(seeded, logged_in_client):
    response = logged_in_client.get("/?window=30d")
    assert response.status_code == 200
    context = response.context
    parser = ChartTables()
    parser.feed(response.content.decode())
    trend, jails, top_countries, countries = parser.tables
    assert all(t["summary"].strip() == "Show as table" and not t["open"] for t in parser.tables)

    # The trend: one row per bar, same label and count, same order.
    bars = svg_figures(str(context["trend_svg"]), "rect")
    assert [(label, n) for label, n, _ in trend["rows"]] == bars
    assert sum(n for _, n in bars) == 300

    # Bans by jail and top countries: the bars' labels and counts, with the bars' links.
    for table, key in ((jails, "by_jail_svg"), (top_countries, "by_country_svg")):
        root = ET.fromstring(str(context[key]))
        assert list(root.iter(f"{NS}a")) == []  # an image holds no links
        links = [g.get("data-href") for g in root.iter(f"{NS}g") if g.get("data-href")]
        drawn = svg_figures(str(context[key]), "g")
        assert drawn == [(label, n) for label, n, _ in table["rows"]]
        assert [href for _, _, href in table["rows"] if href] == links
    assert len(jails["rows"]) > 1 and len(top_countries["rows"]) == 10

    # The map: every shaded country's count is the table's figure for that country code.
    root = ET.fromstring(str(context["world_svg"]))
    assert root.get("role") == "img" and root.get("aria-label").startswith("Bans by country")
    assert list(root.iter(f"{NS}a")) == []
    shaded = {}
    for use in root.iter(f"{NS}use"):
        n = int(COUNT.search(use.find(f"{NS}title").text).group(1).replace(",", ""))
        if n:
            shaded[use.get("data-cc")] = n
    by_code = {
        m.group(1): n
        for label, n, _ in countries["rows"]
        if (m := re.search(r"\((\w\w)\)$", label))
    }
    assert shaded and shaded == {code: n for code, n in by_code.items() if code in shaded}
    assert sum(n for _, n, _ in countries["rows"]) == 300
    assert countries["rows"][:10] == top_countries["rows"]
