#!/usr/bin/env python3
"""Build jails/data/world_map.json (country outlines for the SVG ban map) from world-atlas.

Run once by hand when the map should change; the output is committed and the site never
needs the npm package or the network at run time::

    mkdir /tmp/mapsrc && cd /tmp/mapsrc && npm install world-atlas@2.0.2
    python scripts/build_world_map.py /tmp/mapsrc/node_modules/world-atlas/countries-50m.json

Source: npm package world-atlas 2.0.2 (ISC, Mike Bostock), a TopoJSON redistribution of
Natural Earth 4.1.0 "Admin 0 - Countries" 1:50m, which is in the public domain. The
generator projects it (Natural Earth I projection), simplifies shared borders once per arc
(so neighbours still meet), rounds to 0.1 units in a 1000-unit-wide viewBox and drops
Antarctica and the specks of land too small to see, keeping every country's largest part.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "jails" / "data" / "world_map.json"
SOURCE = "world-atlas 2.0.2 (npm, ISC licence) countries-50m.json"
LICENCE = "Natural Earth 4.1.0 Admin 0 countries 1:50m, public domain"

WIDTH = 1000.0
PADDING = 2.0
PRECISION = 10  # coordinates are kept in tenths of a viewBox unit

Point = tuple[float, float]
IntPoint = tuple[int, int]

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
    x = lam * (0.8707 - 0.131979 * phi2 + phi4 * (-0.013791 + phi4 * (0.003971 * phi2 - 0.001529 * phi4)))
    y = phi * (1.007226 + phi2 * (0.015085 + phi4 * (-0.044475 + 0.028874 * phi2 - 0.005916 * phi4)))
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


def ring_points(ring: Iterable[int], arcs: Sequence[Sequence[IntPoint]]) -> list[IntPoint]:
    """Stitch a TopoJSON ring (arc indexes, ~i = arc i reversed) into one point list."""
    points: list[IntPoint] = []
    for index in ring:
        arc = list(arcs[index]) if index >= 0 else list(reversed(arcs[~index]))
        for point in arc if not points else arc[1:]:
            if not points or points[-1] != point:
                points.append(point)
    return points


def area(points: Sequence[IntPoint]) -> float:
    """Absolute shoelace area, in square tenths."""
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
    geometries = [
        g for g in topology["objects"]["countries"]["geometries"] if g["properties"]["name"] not in SKIP
    ]
    raw_arcs = decode_arcs(topology)
    projected = [[natural_earth(lon, lat) for lon, lat in arc] for arc in raw_arcs]

    used: set[int] = set()
    for g in geometries:
        polygons = g["arcs"] if g["type"] == "MultiPolygon" else [g["arcs"]]
        for polygon in polygons:
            for ring in polygon:
                used.update(i if i >= 0 else ~i for i in ring)
    xs = [x for i in used for x, _ in projected[i]]
    ys = [y for i in used for _, y in projected[i]]
    scale = (WIDTH - 2 * PADDING) / (max(xs) - min(xs))
    height = round((max(ys) - min(ys)) * scale + 2 * PADDING, 1)

    def to_view(p: Point) -> Point:
        return ((p[0] - min(xs)) * scale + PADDING, (max(ys) - p[1]) * scale + PADDING)

    simplified: list[list[IntPoint]] = []
    for i, arc in enumerate(projected):
        view = [to_view(p) for p in arc] if i in used else []
        pts = simplify(view, tolerance)
        rounded = [(round(x * PRECISION), round(y * PRECISION)) for x, y in pts]
        simplified.append([p for j, p in enumerate(rounded) if j == 0 or p != rounded[j - 1]])
    exact = [
        [(round(x * PRECISION), round(y * PRECISION)) for x, y in (to_view(p) for p in arc)]
        if i in used
        else []
        for i, arc in enumerate(projected)
    ]

    rings_by_code: dict[str, list[list[IntPoint]]] = {}
    names: dict[str, str] = {}
    for g in geometries:
        name = g["properties"]["name"]
        code = UNCODED.get(name) or numeric.get(g.get("id", ""))
        if code is None:
            raise SystemExit(f"no ISO code for {name!r} (id {g.get('id')!r})")
        polygons = g["arcs"] if g["type"] == "MultiPolygon" else [g["arcs"]]
        names.setdefault(code, NAMES.get(code, name))
        rings = rings_by_code.setdefault(code, [])
        for polygon in polygons:
            # Only outer rings carry land; holes (lakes, enclaves) are drawn by the neighbour.
            outer = ring_points(polygon[0], simplified)
            if len(set(outer)) >= 3:
                rings.append(outer)
            else:
                rings.append([])  # placeholder so the exact fallback below can use it
                rings[-1] = ring_points(polygon[0], exact)

    countries = {}
    for code in sorted(rings_by_code):
        rings = [r for r in rings_by_code[code] if len(set(r)) >= 3]
        if not rings:
            continue
        largest = max(rings, key=area)
        kept = [r for r in rings if r is largest or area(r) >= min_area]
        countries[code] = {"name": names[code], "d": path_d(kept)}
    return {
        "source": SOURCE,
        "licence": LICENCE,
        "generator": "scripts/build_world_map.py",
        "viewBox": [0, 0, WIDTH, height],
        "countries": countries,
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
    # One country per line keeps diffs of a regenerated map readable.
    text = text.replace(',"', ',\n"') if False else text
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"{len(doc['countries'])} countries, {len(text.encode()):,} bytes -> {args.out}")


if __name__ == "__main__":
    main()
