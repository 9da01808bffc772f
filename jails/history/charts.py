"""Server-side SVG charts and the world ban map: no JavaScript, no CDN, no inline styles.

Every function returns a string of SVG markup in which all text and attribute values are
escaped (labels can be attacker-controlled: jail names, AS names, log text), so the caller may
mark it safe. Colours are not set here: shapes carry CSS classes (``bar``, ``grid``, ``c0`` to
``c5``, ``selected``...) styled by ``static/jails/charts.css``, which also handles dark mode.
The SVGs have a viewBox and no width or height, so they scale to their container.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from django.utils.formats import number_format
from django.utils.translation import gettext, ngettext

StrPath = str | os.PathLike[str]

DEFAULT_WORLD_MAP = Path(__file__).resolve().parent / "data" / "world_map.json"
# The outlines as a static SVG (one <path id="CC"> per country), built from the JSON by
# world_outlines_svg(). The map references it with <use href="…#CC">, so the 125 KB of
# path data is a hashed, cached static file instead of part of every dashboard response.
WORLD_OUTLINES_ASSET = "jails/world-map.svg"
MAP_CLASSES = 5  # shaded classes c1..c5; c0 means none
SVG_NS = "http://www.w3.org/2000/svg"

# Characters XML 1.0 forbids; a ban's log text may contain them and they would make the
# SVG ill-formed (and the whole page, if it is ever served as XHTML).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")
_URL_STRIP = "".join(map(chr, range(0x21)))


# --- helpers ---------------------------------------------------------------------------------


def esc(value: object) -> str:
    """Escape text for an SVG text node or a quoted attribute value."""
    return html.escape(_XML_INVALID.sub("\ufffd", str(value)), quote=True)


def _num(value: float) -> str:
    """A coordinate with at most one decimal and no trailing ``.0``."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def count_text(value: int) -> str:
    """``value`` grouped the request language's way (1,234 / 1.234): jails.numbers.count_text,
    spelled out here because this module imports nothing else of jails (pyproject's contract).
    """
    return number_format(int(value), force_grouping=True)


def _count_text(value: int) -> str:
    """A count of bans ("1 ban", "1,234 bans") in the request's language (charts are drawn
    per request)."""
    return ngettext("%(count)s ban", "%(count)s bans", value) % {"count": count_text(value)}


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(1, limit - 1)] + "\u2026"


def safe_href(href: str | None) -> str | None:
    """``href`` if it is a relative or http(s) URL; None for javascript:, data: and the like."""
    if not href or _XML_INVALID.search(href) or any(c in href for c in "\t\n\r"):
        return None
    # Browsers ignore leading and trailing spaces and controls, so " javascript:" still runs.
    href = href.strip(_URL_STRIP)
    try:
        scheme = urlsplit(href).scheme
    except ValueError:
        return None
    return href if href and scheme in ("", "http", "https") else None


def _svg_open(*, kind: str, width: float, height: float, label: str, extra_class: str = "") -> str:
    classes = f"chart chart-{kind}" + (f" {extra_class}" if extra_class else "")
    return (
        f'<svg xmlns="{SVG_NS}" class="{classes}" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'preserveAspectRatio="xMidYMid meet" role="img" aria-label="{esc(label)}">'
    )


def no_data_svg(*, title: str, kind: str = "empty", width: int = 720, height: int = 120) -> str:
    """A chart-sized SVG that says there is nothing to show."""
    no_data = esc(gettext("No data"))  # not inside the f-string: makemessages skips those
    return "".join(
        [
            _svg_open(
                kind=kind,
                width=width,
                height=height,
                label=gettext("%(title)s: no data") % {"title": title},
                extra_class="chart-empty",
            ),
            f'<text class="chart-title" x="8" y="18">{esc(title)}</text>',
            f'<text class="no-data" x="{_num(width / 2)}" y="{_num(height / 2 + 8)}" '
            f'text-anchor="middle">{no_data}</text>',
            "</svg>",
        ]
    )


def nice_ticks(maximum: int, *, target: int = 4) -> list[int]:
    """Round axis ticks from 0 to at least ``maximum``, about ``target`` steps apart."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / target
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(1, round(step))
    top = -(-maximum // step) * step
    return list(range(0, top + 1, step))


# --- bar chart (time series) -----------------------------------------------------------------


def bar_chart_svg(
    points: Sequence[tuple[str, int]],
    *,
    title: str,
    width: int = 720,
    height: int = 240,
    max_labels: int = 12,
) -> str:
    """Vertical bars for a series of (label, count), e.g. bans per hour, with a y grid."""
    if not points:
        return no_data_svg(title=title, kind="bar", width=width)
    left, right, top, bottom = 48.0, 8.0, 28.0, 26.0
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [max(0, int(v)) for _, v in points]
    ticks = nice_ticks(max(values))
    scale_top = ticks[-1]
    base_y = top + plot_h
    slot = plot_w / len(points)
    bar_w = max(slot * 0.8, 0.5) if slot > 2 else slot
    total = sum(values)

    out = [
        _svg_open(
            kind="bar",
            width=width,
            height=height,
            # Translators: the number of intervals picks the form; bans is "63 bans",
            # translated on its own with its own plural.
            label=ngettext(
                "%(title)s: %(bans)s over %(intervals)s interval, at most %(most)s",
                "%(title)s: %(bans)s over %(intervals)s intervals, at most %(most)s",
                len(points),
            )
            % {
                "title": title,
                "bans": _count_text(total),
                "intervals": len(points),
                "most": count_text(max(values)),
            },
        ),
        f'<text class="chart-title" x="{_num(left)}" y="18">{esc(title)}</text>',
        '<g class="axis y-axis">',
    ]
    for tick in ticks:
        y = base_y - tick / scale_top * plot_h
        out.append(
            f'<line class="grid{" baseline" if tick == 0 else ""}" x1="{_num(left)}" '
            f'y1="{_num(y)}" x2="{_num(width - right)}" y2="{_num(y)}"/>'
            f'<text class="tick" x="{_num(left - 6)}" y="{_num(y + 4)}" '
            f'text-anchor="end">{count_text(tick)}</text>'
        )
    out.append('</g><g class="bars">')
    for i, ((label, _), value) in enumerate(zip(points, values, strict=True)):
        h = value / scale_top * plot_h
        x = left + i * slot + (slot - bar_w) / 2
        out.append(
            f'<rect class="bar" x="{_num(x)}" y="{_num(base_y - h)}" width="{_num(bar_w)}" '
            f'height="{_num(h)}"><title>{esc(label)}: {_count_text(value)}</title></rect>'
        )
    out.append('</g><g class="axis x-axis">')
    every = max(1, math.ceil(len(points) / max(1, max_labels)))
    for i in range(0, len(points), every):
        x = left + (i + 0.5) * slot
        out.append(
            f'<text class="tick" x="{_num(x)}" y="{_num(base_y + 16)}" '
            f'text-anchor="middle">{esc(_truncate(str(points[i][0]), 16))}</text>'
        )
    out.append("</g></svg>")
    return "".join(out)


# --- horizontal bar chart (ranking) ----------------------------------------------------------


def hbar_chart_svg(
    items: Sequence[tuple[str, int, str | None]],
    *,
    title: str,
    width: int = 720,
    row_height: int = 22,
    label_width: int = 200,
    max_label_chars: int = 28,
) -> str:
    """Horizontal bars for (label, count, href or None), e.g. bans by jail or country."""
    if not items:
        return no_data_svg(title=title, kind="hbar", width=width)
    top, bottom, value_w = 28.0, 6.0, 64.0
    bar_x = float(label_width)
    bar_area = width - bar_x - value_w
    values = [max(0, int(v)) for _, v, _ in items]
    maximum = max(values) or 1
    height = top + len(items) * row_height + bottom
    out = [
        _svg_open(
            kind="hbar",
            width=width,
            height=height,
            # Translators: the number of rows picks the form; bans is "63 bans", translated
            # on its own with its own plural.
            label=ngettext(
                "%(title)s: %(rows)s row, %(bans)s",
                "%(title)s: %(rows)s rows, %(bans)s",
                len(items),
            )
            % {"title": title, "rows": len(items), "bans": _count_text(sum(values))},
        ),
        f'<text class="chart-title" x="8" y="18">{esc(title)}</text>',
    ]
    for i, ((label, _, href), value) in enumerate(zip(items, values, strict=True)):
        y = top + i * row_height
        mid = y + row_height / 2
        w = value / maximum * bar_area
        text = str(label)
        link = safe_href(href)
        inner = (
            f"<title>{esc(text)}: {_count_text(value)}</title>"
            f'<text class="label" x="{_num(bar_x - 8)}" y="{_num(mid + 4)}" '
            f'text-anchor="end">{esc(_truncate(text, max_label_chars))}</text>'
            f'<rect class="bar" x="{_num(bar_x)}" y="{_num(y + 3)}" width="{_num(w)}" '
            f'height="{_num(row_height - 6)}"/>'
            f'<text class="value" x="{_num(bar_x + w + 6)}" y="{_num(mid + 4)}">'
            f"{count_text(value)}</text>"
        )
        if link is None:
            out.append(f'<g class="row">{inner}</g>')
        else:
            # Not an <a>: the chart is one image (role="img"), and an image holds no controls
            # (axe: nested-interactive). A click follows data-href (static/jails/app.js); the
            # keyboard and screen readers have the same links in the table under the chart.
            out.append(f'<g class="row" data-href="{esc(link)}">{inner}</g>')
    out.append("</svg>")
    return "".join(out)


# --- world map -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Country:
    name: str
    d: str


@dataclass(frozen=True, slots=True)
class WorldMap:
    """Country outlines in a fixed viewBox, loaded from ``jails/history/data/world_map.json``."""

    view_box: tuple[float, float, float, float]
    countries: Mapping[str, Country]
    source: str = ""


def load_world_map(path: StrPath = DEFAULT_WORLD_MAP) -> WorldMap:
    """Read the committed map data; the caller (the per-process state) keeps the result."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    x, y, w, h = (float(v) for v in doc["viewBox"])
    countries = {
        code: Country(name=str(c["name"]), d=str(c["d"])) for code, c in doc["countries"].items()
    }
    return WorldMap(view_box=(x, y, w, h), countries=countries, source=str(doc.get("source", "")))


def world_outlines_svg(world: WorldMap) -> str:
    """The static outlines file: every country as a bare <path id="CC"> in the map's viewBox.

    The paths carry no fill or stroke: a <use> clone inherits them from its <use>, which
    carries the page's shade classes (static/jails/charts.css).
    """
    x0, y0, w, h = world.view_box
    out = [
        f'<svg xmlns="{SVG_NS}" viewBox="{_num(x0)} {_num(y0)} {_num(w)} {_num(h)}">',
        *(f'<path id="{esc(code)}" d="{esc(c.d)}"/>' for code, c in world.countries.items()),
        "</svg>\n",
    ]
    return "\n".join(out)


def _outlines_url() -> str:
    from django.templatetags.static import static

    return static(WORLD_OUTLINES_ASSET)


def shade_class(value: int, maximum: int) -> int:
    """0 for no value, else 1..MAP_CLASSES on a log scale relative to ``maximum``."""
    if value <= 0 or maximum <= 0:
        return 0
    ratio = math.log1p(min(value, maximum)) / math.log1p(maximum)
    # The epsilon keeps value == maximum from rounding up past the top class.
    return max(1, math.ceil(MAP_CLASSES * ratio - 1e-9))


def shade_bounds(maximum: int) -> list[tuple[int, int, int]]:
    """(class, lowest, highest) count for each class that some count falls into."""
    if maximum <= 0:
        return []
    lows: dict[int, int] = {}
    for k in range(1, MAP_CLASSES + 1):
        guess = max(1, math.floor(math.expm1((k - 1) * math.log1p(maximum) / MAP_CLASSES)))
        # The float guess may be one off either way; settle it with shade_class itself.
        for v in (guess - 1, guess, guess + 1, guess + 2):
            if 1 <= v <= maximum and shade_class(v, maximum) == k:
                lows[k] = v
                break
    bounds = []
    ks = sorted(lows)
    for i, k in enumerate(ks):
        high = lows[ks[i + 1]] - 1 if i + 1 < len(ks) else maximum
        bounds.append((k, lows[k], high))
    return bounds


def _normalise_counts(counts: Mapping[str, int]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for code, value in counts.items():
        if not isinstance(code, str):
            continue
        key = code.strip().upper()
        if _COUNTRY_CODE.match(key) and type(value) is int and value > 0:
            totals[key] = totals.get(key, 0) + value
    return totals


def world_map_svg(
    counts: Mapping[str, int],
    *,
    world: WorldMap | None = None,
    names: Mapping[str, str] | None = None,
    href_template: str | None = "?country={code}",
    selected: str | None = None,
    title: str = "Bans by country",
    legend: bool = True,
    outlines_url: str | None = None,
) -> str:
    """A choropleth of ``counts`` (ISO alpha-2 code -> count), one clickable shape per country.

    Pass ``world`` from the per-process state; without it the data file is read on each call.
    ``names`` (code -> name in the page's language) title the shapes; default: the map's own.
    ``href_template`` gets ``{code}`` replaced by the URL-quoted country code. Each shape is
    a ``<use>`` of the country's path in the static outlines file (``outlines_url``,
    default: its hashed static URL).
    """
    if world is None:
        world = load_world_map()
    outlines = esc(outlines_url if outlines_url is not None else _outlines_url())
    totals = _normalise_counts(counts)
    maximum = max(totals.values(), default=0)
    chosen = selected.strip().upper() if isinstance(selected, str) else None
    x0, y0, w, h = world.view_box
    shown = sum(1 for code in totals if code in world.countries)
    label = (
        # Translators: the number of countries picks the form; bans is "63 bans",
        # translated on its own with its own plural.
        ngettext(
            "%(title)s: %(bans)s from %(countries)s country",
            "%(title)s: %(bans)s from %(countries)s countries",
            len(totals),
        )
        % {"title": title, "bans": _count_text(sum(totals.values())), "countries": len(totals)}
        if totals
        else gettext("%(title)s: no data") % {"title": title}
    )
    out = [
        f'<svg xmlns="{SVG_NS}" class="chart chart-map{"" if totals else " chart-empty"}" '
        f'viewBox="{_num(x0)} {_num(y0)} {_num(w)} {_num(h)}" '
        f'preserveAspectRatio="xMidYMid meet" role="img" aria-label="{esc(label)}" '
        f'data-countries-shown="{shown}">',
        '<g class="countries">',
    ]
    # Data order is largest first, so enclaves and small states stay on top; the selected
    # country goes last so its outline is not hidden under its neighbours (a stable sort).
    order = sorted(world.countries, key=lambda c: c == chosen)
    for code in order:
        country = world.countries[code]
        value = totals.get(code, 0)
        classes = f"country c{shade_class(value, maximum)}" + (
            " selected" if code == chosen else ""
        )
        path = (
            f'<use class="{classes}" data-cc="{esc(code)}" href="{outlines}#{esc(code)}">'
            f"<title>{esc((names or {}).get(code, country.name))}: {_count_text(value)}</title>"
            "</use>"
        )
        href = safe_href(href_template.replace("{code}", quote(code))) if href_template else None
        if href is None:
            out.append(path)
        else:
            # A click target like the bar charts' rows (data-href, no <a> inside an image); the
            # country table under the map has these links for the keyboard.
            out.append(f'<g class="country-link" data-href="{esc(href)}">{path}</g>')
    out.append("</g>")
    if not totals:
        no_data = esc(gettext("No data"))  # not inside the f-string: makemessages skips those
        out.append(
            f'<text class="no-data" x="{_num(x0 + w / 2)}" y="{_num(y0 + h / 2)}" '
            f'text-anchor="middle">{no_data}</text>'
        )
    elif legend:
        out.append(_legend(maximum, x=x0 + 8, bottom=y0 + h - 8))
    out.append("</svg>")
    return "".join(out)


def _legend(maximum: int, *, x: float, bottom: float) -> str:
    rows = [(0, gettext("none"))] + [
        (k, count_text(lo) if lo == hi else f"{count_text(lo)}\u2013{count_text(hi)}")
        for k, lo, hi in shade_bounds(maximum)
    ]
    size, gap = 10.0, 14.0
    y = bottom - gap * len(rows)
    out = ['<g class="legend">']
    for i, (k, text) in enumerate(rows):
        ry = y + i * gap
        out.append(
            f'<rect class="swatch c{k}" x="{_num(x)}" y="{_num(ry)}" width="{_num(size)}" '
            f'height="{_num(size)}"/><text class="legend-label" x="{_num(x + size + 5)}" '
            f'y="{_num(ry + size - 1)}">{esc(text)}</text>'
        )
    out.append("</g>")
    return "".join(out)
