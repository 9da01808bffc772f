"""Tests for jails.history.charts: SVG bar charts, horizontal bar charts and the world ban map."""

import xml.etree.ElementTree as ET

import pytest

from jails.history import charts
from jails.history.charts import (
    bar_chart_svg,
    hbar_chart_svg,
    load_world_map,
    nice_ticks,
    shade_bounds,
    shade_class,
    world_map_svg,
)

NS = "{http://www.w3.org/2000/svg}"
EVIL = '<script>alert("x")</script>'


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def by_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{NS}{tag}") if cls in e.get("class", "").split()]


def title_of(element: ET.Element) -> str:
    return element.find(f"{NS}title").text


def linked(root: ET.Element) -> list[ET.Element]:
    """The click targets (bars, countries) in drawing order."""
    return [e for e in root.iter(f"{NS}g") if e.get("data-href") is not None]


def assert_responsive_and_accessible(root: ET.Element) -> None:
    assert root.get("role") == "img"
    assert root.get("aria-label")
    assert list(root.iter(f"{NS}a")) == []  # an image holds no links (axe: nested-interactive)
    assert len(root.get("viewBox").split()) == 4
    assert root.get("width") is None
    assert root.get("height") is None


def assert_no_inline_styling(svg: str) -> None:
    assert "style=" not in svg
    assert " fill=" not in svg
    assert "<script" not in svg


@pytest.fixture(scope="module")
def world():
    return load_world_map()


HOURS = [(f"{h:02d}:00", v) for h, v in enumerate([0, 3, 1, 12, 40, 7])]


def test_bar_chart_draws_one_bar_per_point():
    root = parse(bar_chart_svg(HOURS, title="Bans per hour"))
    assert len(by_class(root, "rect", "bar")) == len(HOURS)


def test_bar_chart_bars_have_tooltips_with_units():
    root = parse(bar_chart_svg(HOURS, title="Bans per hour"))
    titles = [title_of(r) for r in by_class(root, "rect", "bar")]
    assert titles == [
        "00:00: 0 bans",
        "01:00: 3 bans",
        "02:00: 1 ban",
        "03:00: 12 bans",
        "04:00: 40 bans",
        "05:00: 7 bans",
    ]


def test_bar_chart_heights_are_proportional_to_values():
    root = parse(bar_chart_svg(HOURS, title="Bans per hour"))
    heights = [float(r.get("height")) for r in by_class(root, "rect", "bar")]
    assert heights[0] == 0
    assert max(heights) == heights[4]
    assert heights[3] == pytest.approx(heights[4] * 12 / 40, abs=0.1)


def test_bar_chart_has_gridlines_up_to_a_round_maximum():
    root = parse(bar_chart_svg(HOURS, title="Bans per hour"))
    ticks = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "tick"]
    assert ticks[:5] == ["0", "10", "20", "30", "40"]
    assert len(by_class(root, "line", "grid")) == 5
    assert len(by_class(root, "line", "baseline")) == 1


def test_bar_chart_is_responsive_and_accessible():
    svg = bar_chart_svg(HOURS, title="Bans per hour")
    root = parse(svg)
    assert_responsive_and_accessible(root)
    assert root.get("aria-label").startswith("Bans per hour: 63 bans over 6 intervals")
    assert_no_inline_styling(svg)


def test_bar_chart_shows_the_title():
    root = parse(bar_chart_svg(HOURS, title="Bans per hour"))
    assert [t.text for t in by_class(root, "text", "chart-title")] == ["Bans per hour"]


def test_bar_chart_escapes_labels_and_title():
    svg = bar_chart_svg([(EVIL, 5)], title=EVIL)
    assert_no_inline_styling(svg)
    assert "&lt;script&gt;" in svg
    root = parse(svg)
    assert title_of(by_class(root, "rect", "bar")[0]) == f"{EVIL}: 5 bans"
    assert root.get("aria-label").startswith(EVIL)


def test_bar_chart_thins_out_axis_labels():
    points = [(f"t{i}", i) for i in range(100)]
    root = parse(bar_chart_svg(points, title="Many", max_labels=10))
    assert len(by_class(root, "rect", "bar")) == 100
    labels = [t.text for t in root.iter(f"{NS}text") if t.get("class") == "tick"]
    assert [x for x in labels if x.startswith("t")] == [f"t{i}" for i in range(0, 100, 10)]


def test_bar_chart_all_zero_still_draws_bars():
    root = parse(bar_chart_svg([("a", 0), ("b", 0)], title="Quiet"))
    assert len(by_class(root, "rect", "bar")) == 2


def test_bar_chart_empty_renders_no_data():
    root = parse(bar_chart_svg([], title="Bans per hour"))
    assert_responsive_and_accessible(root)
    assert root.get("aria-label") == "Bans per hour: no data"
    assert "chart-empty" in root.get("class")
    assert [t.text for t in by_class(root, "text", "no-data")] == ["No data"]
    assert by_class(root, "rect", "bar") == []


def test_bar_chart_removes_characters_xml_forbids():
    root = parse(bar_chart_svg([("a\x00b\x1b[31m", 1)], title="t"))
    assert title_of(by_class(root, "rect", "bar")[0]) == "a\ufffdb\ufffd[31m: 1 ban"


@pytest.mark.parametrize(
    ("maximum", "expected"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (7, [0, 2, 4, 6, 8]),
        (40, [0, 10, 20, 30, 40]),
        (41, [0, 20, 40, 60]),
        (999, [0, 500, 1000]),
    ],
)
def test_nice_ticks_round_steps(maximum, expected):
    assert nice_ticks(maximum) == expected


JAILS = [("sshd", 120, "/jails/sshd/"), ("nginx-http-auth", 40, None), ("recidive", 3, "?j=r")]


def test_hbar_chart_draws_one_bar_per_item():
    root = parse(hbar_chart_svg(JAILS, title="Bans by jail"))
    bars = by_class(root, "rect", "bar")
    assert len(bars) == 3
    widths = [float(b.get("width")) for b in bars]
    assert widths[0] > widths[1] > widths[2] > 0
    assert [t.text for t in by_class(root, "text", "label")] == [j[0] for j in JAILS]
    assert [t.text for t in by_class(root, "text", "value")] == ["120", "40", "3"]


def test_hbar_chart_links_only_rows_with_href():
    root = parse(hbar_chart_svg(JAILS, title="Bans by jail"))
    # Click targets (data-href, app.js), not <a>: an image holds no links (tests/a11y).
    assert list(root.iter(f"{NS}a")) == []
    links = linked(root)
    assert [g.get("data-href") for g in links] == ["/jails/sshd/", "?j=r"]
    assert [title_of(g) for g in links] == ["sshd: 120 bans", "recidive: 3 bans"]
    unlinked = [g for g in by_class(root, "g", "row") if g.get("data-href") is None]
    assert [title_of(g) for g in unlinked] == ["nginx-http-auth: 40 bans"]


def test_hbar_chart_refuses_script_urls():
    items = [("a", 1, "javascript:alert(1)"), ("b", 2, " data:text/html,x"), ("c", 3, "\njs")]
    root = parse(hbar_chart_svg(items, title="t"))
    assert linked(root) == []
    assert len(by_class(root, "rect", "bar")) == 3


def test_hbar_chart_escapes_label_and_href():
    href = '/ip/?q="><script>alert(1)</script>&x=1'
    svg = hbar_chart_svg([(EVIL, 9, href)], title="Top AS")
    assert_no_inline_styling(svg)
    root = parse(svg)
    (link,) = linked(root)
    assert link.get("data-href") == href
    assert title_of(link) == f"{EVIL}: 9 bans"


def test_hbar_chart_truncates_long_labels_but_not_tooltips():
    name = "A" * 60
    root = parse(hbar_chart_svg([(name, 1, None)], title="t", max_label_chars=20))
    assert by_class(root, "text", "label")[0].text == "A" * 19 + "\u2026"
    assert title_of(by_class(root, "g", "row")[0]) == f"{name}: 1 ban"


def test_hbar_chart_height_grows_with_rows():
    one = parse(hbar_chart_svg(JAILS[:1], title="t")).get("viewBox").split()
    three = parse(hbar_chart_svg(JAILS, title="t")).get("viewBox").split()
    assert float(three[3]) - float(one[3]) == 2 * 22


def test_hbar_chart_empty_renders_no_data():
    root = parse(hbar_chart_svg([], title="Bans by jail"))
    assert_responsive_and_accessible(root)
    assert root.get("aria-label") == "Bans by jail: no data"
    assert [t.text for t in by_class(root, "text", "no-data")] == ["No data"]


def test_world_map_data_is_compact_and_complete(world):
    assert charts.DEFAULT_WORLD_MAP.stat().st_size < 300_000
    assert len(world.countries) > 150
    assert world.view_box[:3] == (0.0, 0.0, 1000.0)
    for code in ("DE", "US", "CN", "RU", "BR", "SG", "HK", "NL", "XK", "LS"):
        assert code in world.countries
    assert world.countries["DE"].name == "Germany"
    assert world.countries["US"].name == "United States"
    assert "world-atlas" in world.source


def test_world_map_paths_stay_inside_the_view_box(world):
    # Relative path data cannot be range-checked without parsing, so check absolute moves:
    # each ring starts with "M x y".
    _, _, width, height = world.view_box
    for country in world.countries.values():
        for move in country.d.split("M")[1:]:
            x, y = move.split("l")[0].replace("-", " -").split()
            assert 0 <= float(x) <= width
            assert 0 <= float(y) <= height


def test_world_map_draws_every_country_as_a_linked_path(world):
    svg = world_map_svg({"DE": 5}, world=world)
    root = parse(svg)
    assert_responsive_and_accessible(root)
    assert_no_inline_styling(svg)
    paths = by_class(root, "use", "country")
    assert len(paths) == len(world.countries) > 150
    links = linked(root)
    assert len(links) == len(paths)
    assert {g.get("data-href") for g in links} == {f"?country={c}" for c in world.countries}


def test_world_map_titles_name_the_country_and_count(world):
    root = parse(world_map_svg({"DE": 123, "us": 1}, world=world))
    titles = {p.get("data-cc"): title_of(p) for p in by_class(root, "use", "country")}
    assert titles["DE"] == "Germany: 123 bans"
    assert titles["US"] == "United States: 1 ban"
    assert titles["FR"] == "France: 0 bans"


def test_world_map_counts_map_to_log_scale_classes(world):
    counts = {"US": 10000, "CN": 2000, "RU": 200, "DE": 30, "FR": 3, "BR": 1}
    root = parse(world_map_svg(counts, world=world))
    classes = {
        p.get("data-cc"): [c for c in p.get("class").split() if c[0] == "c" and c[1:].isdigit()]
        for p in by_class(root, "use", "country")
    }
    assert classes["US"] == ["c5"]
    assert classes["CN"] == ["c5"]
    assert classes["RU"] == ["c3"]
    assert classes["DE"] == ["c2"]
    assert classes["FR"] == ["c1"]
    assert classes["BR"] == ["c1"]
    assert classes["GB"] == ["c0"]


def test_world_map_custom_href_template_and_no_links(world):
    root = parse(world_map_svg({"DE": 1}, world=world, href_template="/history/?cc={code}&w=7d"))
    assert "/history/?cc=DE&w=7d" in {g.get("data-href") for g in linked(root)}
    root = parse(world_map_svg({"DE": 1}, world=world, href_template=None))
    assert linked(root) == []
    assert len(by_class(root, "use", "country")) == len(world.countries)


def test_world_map_refuses_script_href_template(world):
    root = parse(world_map_svg({"DE": 1}, world=world, href_template="javascript:go('{code}')"))
    assert linked(root) == []


def test_world_map_marks_the_selected_country(world):
    root = parse(world_map_svg({"DE": 1}, world=world, selected="de"))
    selected = by_class(root, "use", "selected")
    assert [p.get("data-cc") for p in selected] == ["DE"]
    # drawn last, so its outline is on top
    assert by_class(root, "use", "country")[-1].get("data-cc") == "DE"
    assert linked(root)[-1].get("data-href") == "?country=DE"


def test_world_map_ignores_bad_codes_and_values(world):
    counts = {EVIL: 5, "XX": 7, "DE": -3, "FR": 0, None: 2, "GB": "12", "nl ": 4}
    svg = world_map_svg(counts, world=world, selected=EVIL)
    assert "<script" not in svg
    root = parse(svg)
    shaded = {
        p.get("data-cc") for p in by_class(root, "use", "country") if "c0" not in p.get("class")
    }
    assert shaded == {"NL"}
    assert by_class(root, "use", "selected") == []


def test_world_map_legend_lists_the_ranges(world):
    root = parse(world_map_svg({"US": 5000, "DE": 1}, world=world))
    labels = [t.text for t in by_class(root, "text", "legend-label")]
    assert labels == [
        "none",
        "1\u20134",
        "5\u201329",
        "30\u2013164",
        "165\u2013909",
        "910\u20135,000",
    ]
    assert [s.get("class") for s in by_class(root, "rect", "swatch")] == [
        f"swatch c{k}" for k in range(6)
    ]


def test_world_map_empty_counts_says_no_data(world):
    root = parse(world_map_svg({}, world=world))
    assert_responsive_and_accessible(root)
    assert root.get("aria-label") == "Bans by country: no data"
    assert [t.text for t in by_class(root, "text", "no-data")] == ["No data"]
    assert {p.get("class") for p in by_class(root, "use", "country")} == {"country c0"}
    assert by_class(root, "g", "legend") == []


def test_world_map_loads_the_default_data_without_a_world(world):
    assert world_map_svg({"DE": 2}) == world_map_svg({"DE": 2}, world=world)


def test_load_world_map_returns_a_fresh_object_each_call():
    # No module-level cache: the per-process state is what keeps one.
    assert load_world_map() is not load_world_map()


@pytest.mark.parametrize(
    ("value", "maximum", "expected"),
    [(0, 100, 0), (-1, 100, 0), (5, 0, 0), (1, 1, 5), (100, 100, 5), (500, 100, 5), (1, 100, 1)],
)
def test_shade_class_edges(value, maximum, expected):
    assert shade_class(value, maximum) == expected


@pytest.mark.parametrize("maximum", [1, 2, 3, 7, 10, 99, 1000, 5000, 123456])
def test_shade_bounds_agree_with_shade_class(maximum):
    bounds = shade_bounds(maximum)
    assert bounds[0][1] == 1
    assert bounds[-1] == (5, bounds[-1][1], maximum)
    for (_, _, hi), (_, lo, _) in zip(bounds, bounds[1:], strict=False):
        assert lo == hi + 1
    samples = set(range(1, min(maximum, 300) + 1)) | {maximum, maximum // 2, maximum // 7}
    for v in sorted(samples - {0}):
        (cls,) = [k for k, lo, hi in bounds if lo <= v <= hi]
        assert shade_class(v, maximum) == cls


def test_world_map_outlines_come_from_the_static_asset_not_the_page(world):
    from django.templatetags.static import static

    svg = world_map_svg({"DE": 5}, world=world)
    asset = static(charts.WORLD_OUTLINES_ASSET)
    # A hashed name (ManifestStaticFilesStorage): cached for ever, changed when it changes.
    assert asset != f"/static/{charts.WORLD_OUTLINES_ASSET}" and asset.endswith(".svg")
    uses = by_class(parse(svg), "use", "country")
    assert {u.get("href") for u in uses} == {f"{asset}#{code}" for code in world.countries}
    assert ' d="' not in svg  # no outline data in the page
    assert len(svg) < 60_000  # it was 171 KB with the outlines inlined


def test_world_map_static_asset_matches_the_map_data(world):
    from pathlib import Path

    committed = Path(charts.__file__).resolve().parents[2] / "static" / charts.WORLD_OUTLINES_ASSET
    assert committed.read_text(encoding="utf-8") == charts.world_outlines_svg(world)
    root = parse(committed.read_text(encoding="utf-8"))
    paths = list(root.iter(f"{NS}path"))
    assert {p.get("id") for p in paths} == set(world.countries)
    # Bare shapes: fill and stroke come from the <use> on the page (charts.css).
    assert not [p for p in paths if p.get("fill") or p.get("style") or p.get("class")]
