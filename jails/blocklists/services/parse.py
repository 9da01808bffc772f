"""Reading a blocklist: every common format, every entry validated, deduplicated, collapsed.

One entry a line; ``#`` and ``;`` start a comment (also after an entry: Spamhaus DROP's
``a.b.c.d/n ; SBL…``), a ``,`` ends the entry (``ip,comment`` CSV), and anything after the
first blank-separated field is a comment too. CRLF and a byte-order mark are fine. FireHOL
netsets are plain lists with ``#`` headers.

Lists overlap themselves (FireHOL level 1 holds networks and addresses inside them) and
hold runs of neighbours: an entry inside another entry is a duplicate, and neighbours that
together form a network are banned as that network, so fail2ban holds the fewest entries
that cover the list. The collapse gives exactly what `ipaddress.collapse_addresses` gives
(tests/blocklists/test_parse.py proves it on random input) at a fraction of its cost: it
works on integer ranges, which matters for 100 000-line lists.
"""

from __future__ import annotations

import bisect
import heapq
import ipaddress
import socket
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jails.fail2ban.validation import is_canonical_ipv4
from jails.services.operations import (
    MAX_ECHO_LENGTH,
    SPECIAL_FIRST_OCTETS,
    entry_parse,
    special_use_reason,
)

SAMPLE_LINES = 100  # lines kept per status for the preview
FIRST_INVALID = 20  # invalid lines kept in an import run's record
# Wider than this is refused even from a trusted list: one bad line (0.0.0.0/1) would lock
# out half the internet, the operators included. Spamhaus DROP's widest entries are /10s.
MIN_PREFIX_V4 = 8
MIN_PREFIX_V6 = 16
BOM = "\ufeff"

_UNPACK_V4 = struct.Struct("!I").unpack


class LineStatus(StrEnum):
    ACCEPTED = "to ban"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    INVALID = "invalid"


STATUS_ORDER = tuple(LineStatus)


@dataclass(frozen=True, slots=True)
class LineSample:
    number: int
    text: str
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.number, "text": self.text, "reason": self.reason}


@dataclass
class ParsedList:
    """A list read and checked: the entries to hold in the jail, and what happened to each line."""

    lines: int = 0  # every line read, comments and blanks included
    entries: list[str] = field(default_factory=list)  # canonical, deduplicated, collapsed
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUS_ORDER, 0))
    samples: dict[str, list[LineSample]] = field(
        default_factory=lambda: {status: [] for status in STATUS_ORDER}
    )
    skipped_reasons: Counter[str] = field(default_factory=Counter)
    collapsed: int = 0  # accepted entries merged into wider networks

    def note(self, status: LineStatus, number: int, text: str, reason: str = "") -> None:
        self.counts[status] += 1
        kept = self.samples[status]
        if len(kept) < SAMPLE_LINES:
            if len(text) > MAX_ECHO_LENGTH:
                text = text[: MAX_ECHO_LENGTH - 1] + "…"
            kept.append(LineSample(number, text, reason))

    @property
    def first_invalid(self) -> list[LineSample]:
        return self.samples[LineStatus.INVALID][:FIRST_INVALID]


@dataclass(frozen=True, slots=True)
class Range:
    """An address or network as integers: (IP version, first address, last address)."""

    version: int
    first: int
    last: int

    def overlaps(self, other: Range) -> bool:
        return (
            self.version == other.version and self.first <= other.last and other.first <= self.last
        )


def range_of(address: str) -> Range:
    """The integer range of a canonical address or network."""
    if is_canonical_ipv4(address):
        value: int = _UNPACK_V4(socket.inet_aton(address))[0]
        return Range(4, value, value)
    network = ipaddress.ip_network(address)
    return Range(network.version, int(network.network_address), int(network.broadcast_address))


def _network_text(version: int, first: int, last: int) -> list[str]:
    """The fewest networks covering [first, last], as fail2ban should get them."""
    address_class = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    if first == last:
        return [str(address_class(first))]
    return [
        str(net.network_address) if net.num_addresses == 1 else str(net)
        for net in ipaddress.summarize_address_range(address_class(first), address_class(last))
    ]


@dataclass(frozen=True)
class Exclusion:
    """What an entry must not touch: a network, and why (the jail's ignore list, the site)."""

    range: Range
    reason: str


def exclusions_build(*, ignore: Iterable[str], own: Iterable[str]) -> list[Exclusion]:
    """The jail's ignore list and the site's own addresses as ranges (unparseable ones left out)."""
    found: list[Exclusion] = []
    for text in own:
        entry = entry_parse(text)
        if entry.valid:
            found.append(Exclusion(range_of(entry.address), f"the site's own address ({text})"))
    for text in ignore:
        entry = entry_parse(text)
        if entry.valid:
            found.append(Exclusion(range_of(entry.address), f"on the jail's ignore list ({text})"))
    return found


def _first_field(line: str) -> str:
    for marker in ("#", ";", ","):
        if marker in line:
            line = line.split(marker, 1)[0]
    fields = line.split(None, 1)
    return fields[0] if fields else ""


class _Excluder:
    """Whether a range touches an exclusion: one bisect over the merged ranges per version
    (a list's 100 000 lines against a handful of exclusions), the reason looked up on a hit."""

    def __init__(self, exclusions: Sequence[Exclusion]) -> None:
        self.exclusions = list(exclusions)
        self.starts: dict[int, list[int]] = {4: [], 6: []}
        self.ends: dict[int, list[int]] = {4: [], 6: []}
        for version in (4, 6):
            spans = sorted(
                (e.range.first, e.range.last) for e in exclusions if e.range.version == version
            )
            for first, last in spans:
                ends = self.ends[version]
                if ends and first <= ends[-1] + 1:
                    ends[-1] = max(ends[-1], last)
                else:
                    self.starts[version].append(first)
                    ends.append(last)

    def reason(self, version: int, first: int, last: int) -> str:
        starts = self.starts[version]
        index = bisect.bisect_right(starts, last) - 1
        if index < 0 or self.ends[version][index] < first:
            return ""
        span = Range(version, first, last)
        return next(e.reason for e in self.exclusions if span.overlaps(e.range))


def list_parse(
    text: str, *, allow_private: bool = False, exclusions: Sequence[Exclusion] = ()
) -> ParsedList:
    """Read a list: validate every line, skip what must not be banned, dedupe and collapse."""
    result = ParsedList()
    if text.startswith(BOM):
        text = text[1:]
    accepted: list[tuple[int, int, int, int, str]] = []  # version, first, -last, line, address
    excluder = _Excluder(exclusions)
    inet_aton, unpack, special_octets = socket.inet_aton, _UNPACK_V4, SPECIAL_FIRST_OCTETS
    for number, line in enumerate(text.splitlines(), start=1):
        result.lines = number
        if is_canonical_ipv4(line):  # most lines of a big list: nothing to cut, parse or strip
            value: int = unpack(inet_aton(line))[0]
            # An ordinary public address (its first octet says so) skips the special-use check.
            special = not allow_private and (value >> 24) in special_octets
            reason = _skip_reason(line, 4, value, value, special=special, excluder=excluder)
            if reason:
                _skipped(result, number, line, reason)
            else:
                accepted.append((4, value, -value, number, line))
            continue
        token = _first_field(line)
        if not token:
            continue
        entry = entry_parse(token, number=number)
        if not entry.valid:
            result.note(LineStatus.INVALID, number, line.strip(), entry.error)
            continue
        address = entry.address
        span = range_of(address)
        reason = _width_reason(address, span.version) or _skip_reason(
            address,
            span.version,
            span.first,
            span.last,
            special=not allow_private,
            excluder=excluder,
        )
        if reason:
            _skipped(result, number, token, reason)
            continue
        accepted.append((span.version, span.first, -span.last, number, address))
    _dedupe_collapse(result, accepted)
    return result


def _skipped(result: ParsedList, number: int, text: str, reason: str) -> None:
    result.note(LineStatus.SKIPPED, number, text, reason)
    result.skipped_reasons[reason.split(" (", 1)[0]] += 1


def _width_reason(address: str, version: int) -> str:
    if "/" not in address:
        return ""
    bound = MIN_PREFIX_V4 if version == 4 else MIN_PREFIX_V6
    if ipaddress.ip_network(address).prefixlen < bound:
        return f"wider than /{bound} (never banned from a list)"
    return ""


def _skip_reason(
    address: str, version: int, first: int, last: int, *, special: bool, excluder: _Excluder
) -> str:
    if special:
        kind = special_use_reason(address)
        if kind:
            return f"private or reserved ({kind})"
    return excluder.reason(version, first, last)


def _dedupe_collapse(result: ParsedList, accepted: list[tuple[int, int, int, int, str]]) -> None:
    # Sorted by start, widest first: CIDR blocks are nested or disjoint, so an entry inside
    # an earlier one ends at or before that one's end.
    accepted.sort()
    kept: list[tuple[int, int, int, str]] = []  # version, first, last, address
    firsts: list[tuple[int, str, str]] = []  # line, address, reason
    duplicates: list[tuple[int, str, str]] = []
    owner_version, owner_first, owner_last, owner_line, owner_address = -1, 0, -1, 0, ""
    for version, first, neg_last, number, address in accepted:
        last = -neg_last
        if version == owner_version and last <= owner_last:
            if first == owner_first and last == owner_last:
                reason = f"same as line {owner_line}"
            else:
                reason = f"inside {owner_address} (line {owner_line})"
            duplicates.append((number, address, reason))
            continue
        owner_version, owner_first, owner_last = version, first, last
        owner_line, owner_address = number, address
        firsts.append((number, address, ""))
        kept.append((version, first, last, address))
    # The preview shows the first lines of each status, in the list's own order.
    for status, found in ((LineStatus.ACCEPTED, firsts), (LineStatus.DUPLICATE, duplicates)):
        result.counts[status] += len(found)
        result.samples[status] = [
            LineSample(number, text, reason)
            for number, text, reason in heapq.nsmallest(SAMPLE_LINES, found)
        ]
    entries: list[str] = []
    run_start = 0
    for index in range(1, len(kept) + 1):
        if index < len(kept):
            version, first, _, _ = kept[index]
            prev_version, _, prev_last, _ = kept[index - 1]
            if version == prev_version and first == prev_last + 1:
                continue  # the run of neighbours goes on
        version, run_first, _, address = kept[run_start]
        if index - run_start == 1:
            entries.append(address)  # alone: already canonical
        else:
            entries.extend(_network_text(version, run_first, kept[index - 1][2]))
        run_start = index
    result.entries = entries
    result.collapsed = len(kept) - len(entries)
