#!/usr/bin/env python3
"""Build jails/history/data/world_map.json (country outlines for the SVG ban map) from world-atlas.

Run once by hand when the map should change; the output is committed and the site never
needs the npm package or the network at run time::

    mkdir /tmp/mapsrc && cd /tmp/mapsrc && npm install world-atlas@2.0.2
    python scripts/build_world_map.py /tmp/mapsrc/node_modules/world-atlas/countries-50m.json

Source: npm package world-atlas 2.0.2 (ISC, Mike Bostock), a TopoJSON redistribution of
Natural Earth 4.1.0 "Admin 0 - Countries" 1:50m, which is in the public domain. The
generator simplifies shared borders once per arc (so neighbours still meet), cuts rings at the
antimeridian, projects (Natural Earth I), rounds to 0.1 units in a 1000-unit-wide viewBox and
drops Antarctica and the specks of land too small to see, keeping every country's largest
part. Countries are stored largest first, so drawn in that order enclaves stay visible.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "jails" / "history" / "data" / "world_map.json"
SOURCE = "world-atlas 2.0.2 (npm, ISC licence) countries-50m.json"
LICENCE = "Natural Earth 4.1.0 Admin 0 countries 1:50m, public domain"

WIDTH = 1000.0
PADDING = 2.0
PRECISION = 10  # coordinates are kept in tenths of a viewBox unit

Point = tuple[float, float]
IntPoint = tuple[int, int]
P = TypeVar("P", Point, IntPoint)

# ISO 3166-1 numeric -> alpha-2, as "NNNCC" tokens (from the ISO 3166-1 table; 983 is the
# user-assigned code commonly used for Kosovo, XK, which GeoLite2 also uses).
ISO_TABLE = """
004AF 008AL 010AQ 012DZ 016AS 020AD 024AO 028AG 031AZ 032AR 036AU 040AT 044BS 048BH
050BD 051AM 052BB 056BE 060BM 064BT 068BO 070BA 072BW 074BV 076BR 084BZ 086IO 090SB
092VG 096BN 100BG 104MM 108BI 112BY 116KH 120CM 124CA 132CV 136KY 140CF 144LK 148TD
152CL 156CN 158TW 162CX 166CC 170CO 174KM 175YT 178CG 180CD 184CK 188CR 191HR 192CU
196CY 203CZ 204BJ 208DK 212DM 214DO 218EC 222SV 226GQ 231ET 232ER 233EE 234FO 238FK
239GS 242FJ 246FI 248AX 250FR 254GF 258PF 260TF 262DJ 266GA 268GE 270GM 275PS 276DE
288GH 292GI 296KI 300GR 304GL 308GD 312GP 316GU 320GT 324GN 328GY 332HT 334HM 336VA
340HN 344HK 348HU 352IS 356IN 360ID 364IR 368IQ 372IE 376IL 380IT 384CI 388JM 392JP
398KZ 400JO 404KE 408KP 410KR 414KW 417KG 418LA 422LB 426LS 428LV 430LR 434LY 438LI
440LT 442LU 446MO 450MG 454MW 458MY 462MV 466ML 470MT 474MQ 478MR 480MU 484MX 492MC
496MN 498MD 499ME 500MS 504MA 508MZ 512OM 516NA 520NR 524NP 528NL 531CW 533AW 534SX
535BQ 540NC 548VU 554NZ 558NI 562NE 566NG 570NU 574NF 578NO 580MP 581UM 583FM 584MH
585PW 586PK 591PA 598PG 600PY 604PE 608PH 612PN 616PL 620PT 624GW 626TL 630PR 634QA
638RE 642RO 643RU 646RW 652BL 654SH 659KN 660AI 662LC 663MF 666PM 670VC 674SM 678ST
682SA 686SN 688RS 690SC 694SL 702SG 703SK 704VN 705SI 706SO 710ZA 716ZW 724ES 728SS
729SD 732EH 740SR 744SJ 748SZ 752SE 756CH 760SY 762TJ 764TH 768TG 772TK 776TO 780TT
784AE 788TN 792TR 795TM 796TC 798TV 800UG 804UA 807MK 818EG 826GB 831GG 832JE 833IM
834TZ 840US 850VI 854BF 858UY 860UZ 862VE 876WF 882WS 887YE 894ZM 983XK
"""

# Features without an ISO numeric id in Natural Earth: Kosovo has its own code; the
# breakaway regions are drawn as part of the country ISO 3166 (and GeoIP) assigns them to.
UNCODED = {"Kosovo": "XK", "N. Cyprus": "CY", "Somaliland": "SO"}
# Not drawn: Antarctica (tall, empty of attackers), Siachen Glacier (no code),
# Australia's Indian Ocean Territories (one feature for two codes, CX and CC).
SKIP = {"Antarctica", "Siachen Glacier", "Indian Ocean Ter."}

# Natural Earth's short names abbreviate; spell them out for tooltips.
NAMES = {
    "AG": "Antigua and Barbuda",
    "AU": "Australia",
    "AX": "Åland Islands",
    "BA": "Bosnia and Herzegovina",
    "BL": "Saint Barthélemy",
    "CD": "DR Congo",
    "CF": "Central African Republic",
    "CG": "Congo",
    "CK": "Cook Islands",
    "CY": "Cyprus",
    "DO": "Dominican Republic",
    "EH": "Western Sahara",
    "FK": "Falkland Islands",
    "FO": "Faroe Islands",
    "GQ": "Equatorial Guinea",
    "GS": "South Georgia and the South Sandwich Islands",
    "HM": "Heard and McDonald Islands",
    "IO": "British Indian Ocean Territory",
    "KN": "Saint Kitts and Nevis",
    "KY": "Cayman Islands",
    "MF": "Saint Martin",
    "MH": "Marshall Islands",
    "MK": "North Macedonia",
    "MP": "Northern Mariana Islands",
    "PF": "French Polynesia",
    "PM": "Saint Pierre and Miquelon",
    "PN": "Pitcairn Islands",
    "SB": "Solomon Islands",
    "SO": "Somalia",
    "SS": "South Sudan",
    "ST": "São Tomé and Príncipe",
    "SZ": "Eswatini",
    "TC": "Turks and Caicos Islands",
    "TF": "French Southern Territories",
    "US": "United States",
    "VC": "Saint Vincent and the Grenadines",
    "VG": "British Virgin Islands",
    "VI": "U.S. Virgin Islands",
    "WF": "Wallis and Futuna",
}


def iso_numeric_to_alpha2() -> dict[str, str]:
    """The numeric -> alpha-2 table above as a dict."""
    return {token[:3]: token[3:] for token in ISO_TABLE.split()}


def natural_earth(lon: float, lat: float) -> Point:
    """Natural Earth I projection (Šavrič et al. 2011), as in d3-geo; y grows northwards."""
    lam, phi = math.radians(lon), math.radians(lat)
    phi2 = phi * phi
    phi4 = phi2 * phi2
    x = lam * (
        0.8707 - 0.131979 * phi2 + phi4 * (-0.013791 + phi4 * (0.003971 * phi2 - 0.001529 * phi4))
    )
    y = phi * (
        1.007226 + phi2 * (0.015085 + phi4 * (-0.044475 + 0.028874 * phi2 - 0.005916 * phi4))
    )
    return x, y


def decode_arcs(topology: dict) -> list[list[Point]]:
    """Delta-decoded, de-quantized arcs in (lon, lat)."""
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def simplify(points: Sequence[Point], tolerance: float) -> list[Point]:
    """Douglas-Peucker, iterative; always keeps both ends (they are shared with neighbours)."""
    if len(points) < 3:
        return list(points)
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        (ax, ay), (bx, by) = points[first], points[last]
        dx, dy = bx - ax, by - ay
        length = math.hypot(dx, dy)
        best, best_i = -1.0, -1
        for i in range(first + 1, last):
            px, py = points[i]
            if length == 0:
                d = math.hypot(px - ax, py - ay)
            else:
                d = abs(dy * px - dx * py + bx * ay - by * ax) / length
            if d > best:
                best, best_i = d, i
        if best > tolerance:
            keep[best_i] = True
            stack.append((first, best_i))
            stack.append((best_i, last))
    return [p for p, k in zip(points, keep, strict=True) if k]


def ring_points(ring: Iterable[int], arcs: Sequence[Sequence[P]]) -> list[P]:
    """Stitch a TopoJSON ring (arc indexes, ~i = arc i reversed) into one point list."""
    points: list[P] = []
    for index in ring:
        arc = list(arcs[index]) if index >= 0 else list(reversed(arcs[~index]))
        for point in arc if not points else arc[1:]:
            if not points or points[-1] != point:
                points.append(point)
    return points


def _clip(poly: Sequence[Point], edge: float, *, keep_above: bool) -> list[Point]:
    """Sutherland-Hodgman against the meridian lon = edge."""

    def inside(p: Point) -> bool:
        return p[0] >= edge if keep_above else p[0] <= edge

    def cross(a: Point, b: Point) -> Point:
        t = (edge - a[0]) / (b[0] - a[0])
        return (edge, a[1] + t * (b[1] - a[1]))

    out: list[Point] = []
    for i, cur in enumerate(poly):
        prev = poly[i - 1]
        if inside(cur):
            if not inside(prev):
                out.append(cross(prev, cur))
            out.append(cur)
        elif inside(prev):
            out.append(cross(prev, cur))
    return out


def _densify_edges(poly: Sequence[Point], step: float = 0.5) -> list[Point]:
    """Add points along stretches that run up the map edge, which is curved once projected."""
    out: list[Point] = []
    for i, (lon, lat) in enumerate(poly):
        out.append((lon, lat))
        nlon, nlat = poly[(i + 1) % len(poly)]
        if abs(lon) == 180 and nlon == lon and abs(nlat - lat) > step:
            n = int(abs(nlat - lat) / step)
            out.extend((lon, lat + (nlat - lat) * k / (n + 1)) for k in range(1, n + 1))
    return out


def cut_antimeridian(ring: Sequence[Point]) -> list[list[Point]]:
    """Split a lon/lat ring that crosses +-180 degrees into pieces inside [-180, 180].

    Natural Earth rings for Russia, Fiji and the Aleutians jump from 179.9 to -179.9; drawn
    as is, that jump becomes a line across the whole map.
    """
    unwrapped = [ring[0]]
    offset = 0.0
    for (lon, lat), (prev_lon, _) in zip(ring[1:], ring, strict=False):
        if lon - prev_lon > 180:
            offset -= 360
        elif lon - prev_lon < -180:
            offset += 360
        unwrapped.append((lon + offset, lat))
    if offset:
        raise SystemExit("a ring winds round a pole; skip it (like Antarctica)")
    lons = [lon for lon, _ in unwrapped]
    if min(lons) >= -180 and max(lons) <= 180:
        return [list(ring)]
    pieces = []
    for shift in (-360.0, 0.0, 360.0):
        moved = [(lon + shift, lat) for lon, lat in unwrapped]
        piece = _clip(_clip(moved, -180.0, keep_above=True), 180.0, keep_above=False)
        if len(piece) >= 3 and area(piece) > 1e-9:
            pieces.append(_densify_edges(piece))
    return pieces


def area(points: Sequence[IntPoint] | Sequence[Point]) -> float:
    """Absolute shoelace area (square tenths for view points)."""
    total = 0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        total += x1 * y2 - x2 * y1
    return abs(total) / 2


def fmt(tenths: int) -> str:
    """A coordinate in tenths as the shortest SVG number: 120 -> 12, 5 -> .5, -5 -> -.5."""
    sign = "-" if tenths < 0 else ""
    whole, frac = divmod(abs(tenths), PRECISION)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole if whole else ''}.{frac}"


def path_d(rings: Sequence[Sequence[IntPoint]]) -> str:
    """An SVG path: absolute move to the ring start, then relative line segments."""
    out = []
    for ring in rings:
        (x0, y0), rest = ring[0], ring[1:]
        parts = [f"M{fmt(x0)} {fmt(y0)}l"]
        numbers = []
        px, py = x0, y0
        for x, y in rest:
            numbers += [x - px, y - py]
            px, py = x, y
        text = ""
        for n in numbers:
            s = fmt(n)
            text += s if (not text or s.startswith("-")) else " " + s
        parts.append(text)
        out.append("".join(parts) + "z")
    return "".join(out)


def build(topology: dict, *, tolerance: float, min_area: float) -> dict:
    """Project, simplify and encode every country; returns the JSON document."""
    numeric = iso_numeric_to_alpha2()
    arcs = decode_arcs(topology)

    # code -> list of polygons, each a list of index rings (outer ring first, then holes)
    shapes: dict[str, list[list[list[int]]]] = {}
    names: dict[str, str] = {}
    for g in topology["objects"]["countries"]["geometries"]:
        name = g["properties"]["name"]
        if name in SKIP:
            continue
        code = UNCODED.get(name) or numeric.get(g.get("id", ""))
        if code is None:
            raise SystemExit(f"no ISO code for {name!r} (id {g.get('id')!r})")
        names.setdefault(code, NAMES.get(code, name))
        polygons = g["arcs"] if g["type"] == "MultiPolygon" else [g["arcs"]]
        shapes.setdefault(code, []).extend(polygons)

    # Fit the projected, cut outlines into the viewBox width.
    projected = [
        natural_earth(lon, lat)
        for polygons in shapes.values()
        for polygon in polygons
        for piece in cut_antimeridian(ring_points(polygon[0], arcs))
        for lon, lat in piece
    ]
    min_x, max_x = min(x for x, _ in projected), max(x for x, _ in projected)
    min_y, max_y = min(y for _, y in projected), max(y for _, y in projected)
    scale = (WIDTH - 2 * PADDING) / (max_x - min_x)
    height = round((max_y - min_y) * scale + 2 * PADDING, 1)

    def to_view(ring: Sequence[Point]) -> list[IntPoint]:
        out: list[IntPoint] = []
        for lon, lat in ring:
            x, y = natural_earth(lon, lat)
            p = (
                round(((x - min_x) * scale + PADDING) * PRECISION),
                round(((max_y - y) * scale + PADDING) * PRECISION),
            )
            if not out or out[-1] != p:
                out.append(p)
        return out

    # Simplify each arc once, in degrees (about `tolerance` view units at the equator), so
    # the border two countries share is simplified the same way for both.
    degrees = tolerance / (scale * math.pi / 180)
    simple = [simplify(arc, degrees) for arc in arcs]

    def draw(ring: list[int]) -> list[list[IntPoint]]:
        pieces = [to_view(p) for p in cut_antimeridian(ring_points(ring, simple))]
        pieces = [p for p in pieces if len(set(p)) >= 3]
        if not pieces:
            # Simplified away (a tiny island or city state): keep the exact outline so a
            # country made only of such parts still appears.
            pieces = [to_view(p) for p in cut_antimeridian(ring_points(ring, arcs))]
            pieces = [p for p in pieces if len(set(p)) >= 3]
        return pieces

    countries = {}
    for code, polygons in shapes.items():
        outers: list[list[IntPoint]] = []
        holes: list[list[IntPoint]] = []
        for polygon in polygons:
            outers.extend(draw(polygon[0]))
            for hole in polygon[1:]:
                holes.extend(draw(hole))
        if not outers:
            continue
        largest = max(outers, key=area)
        kept = [r for r in outers if r is largest or area(r) >= min_area]
        kept += [r for r in holes if area(r) >= min_area]
        countries[code] = {"name": names[code], "d": path_d(kept), "area": area(largest)}

    # Largest first: drawn in this order, small countries and enclaves stay on top.
    ordered = sorted(countries.items(), key=lambda item: -item[1]["area"])
    return {
        "source": SOURCE,
        "licence": LICENCE,
        "generator": "scripts/build_world_map.py",
        "projection": "Natural Earth I",
        "viewBox": [0, 0, WIDTH, height],
        "countries": {code: {"name": c["name"], "d": c["d"]} for code, c in ordered},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="world-atlas countries-50m.json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--tolerance", type=float, default=0.3, help="in viewBox units")
    parser.add_argument(
        "--min-area", type=float, default=25.0, help="drop islands under this (square tenths)"
    )
    args = parser.parse_args()
    topology = json.loads(args.source.read_text(encoding="utf-8"))
    doc = build(topology, tolerance=args.tolerance, min_area=args.min_area)
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=False)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"{len(doc['countries'])} countries, {len(text.encode()):,} bytes -> {args.out}")
    write_outlines_asset(args.out)


def write_outlines_asset(data: Path) -> None:
    """The same outlines as the static SVG the map <use>s (tests/history/test_charts.py checks)."""
    import sys

    sys.path.insert(0, str(REPO))
    from jails.history.charts import WORLD_OUTLINES_ASSET, load_world_map, world_outlines_svg

    asset = REPO / "static" / WORLD_OUTLINES_ASSET
    asset.write_text(world_outlines_svg(load_world_map(data)), encoding="utf-8")
    print(f"outlines -> {asset}")


if __name__ == "__main__":
    main()
