"""Parsing lists: every format and bad-line kind, dedupe, skips, collapse (against ipaddress)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from jails.blocklists.services.parse import (
    SAMPLE_LINES,
    LineStatus,
    exclusions_build,
    list_parse,
)


def reasons(parsed, status):
    return {s.text: s.reason for s in parsed.samples[status]}


def test_parse_reads_every_common_format():
    text = (
        "\ufeff# FireHOL-style header\r\n"
        "; Spamhaus DROP header\r\n"
        "\r\n"
        "11.1.1.1\r\n"  # plain, CRLF
        "12.0.0.0/16 ; SBL12345\r\n"  # Spamhaus DROP
        "13.2.2.2,first seen 2026-01-01\n"  # CSV ip,comment
        "14.3.3.3   # inline comment\n"
        "2a01:4f8::1\n"  # IPv6
        "2a01:4f9::/32\n"  # IPv6 CIDR
        "15.4.4.4\tsome trailing text\n"
    )
    parsed = list_parse(text)
    assert parsed.entries == [
        "11.1.1.1",
        "12.0.0.0/16",
        "13.2.2.2",
        "14.3.3.3",
        "15.4.4.4",
        "2a01:4f8::1",
        "2a01:4f9::/32",
    ]
    assert parsed.counts[LineStatus.ACCEPTED] == 7
    assert parsed.counts[LineStatus.INVALID] == 0
    assert parsed.lines == 10


def test_parse_reports_every_bad_line_kind_with_its_line_number():
    text = "\n".join(
        [
            "11.1.1.1",
            "not-an-address",
            "999.1.1.1",
            "11.1.1",
            "1.2.3.4/33",
            "2a01:zz::1",
            "x" * 200,
            "0.0.0.0/0",
        ]
    )
    parsed = list_parse(text)
    invalid = parsed.samples[LineStatus.INVALID]
    assert [s.number for s in invalid] == [2, 3, 4, 5, 6, 7, 8]
    assert all(s.reason for s in invalid)
    assert parsed.counts[LineStatus.INVALID] == 7
    assert len(invalid[5].text) <= 80  # a long line is cut for the report
    assert parsed.entries == ["11.1.1.1"]


def test_parse_dedupes_exact_and_overlapping_entries():
    text = "20.0.0.5\n20.0.0.0/24\n20.0.0.5\n20.0.0.0/25\n2a01::1\n2a01::/64\n"
    parsed = list_parse(text)
    assert parsed.entries == ["20.0.0.0/24", "2a01::/64"]
    dupes = {s.number: s.reason for s in parsed.samples[LineStatus.DUPLICATE]}
    assert dupes == {
        1: "inside 20.0.0.0/24 (line 2)",
        3: "inside 20.0.0.0/24 (line 2)",
        4: "inside 20.0.0.0/24 (line 2)",
        5: "inside 2a01::/64 (line 6)",
    }


def test_parse_collapses_adjacent_networks():
    text = "\n".join(f"30.0.0.{i}" for i in range(256)) + "\n30.0.1.0/24\n31.0.0.1\n31.0.0.2\n"
    parsed = list_parse(text)
    assert parsed.entries == ["30.0.0.0/23", "31.0.0.1", "31.0.0.2"]
    assert parsed.collapsed == 256  # 257 entries became one


def test_parse_skips_private_reserved_and_too_wide_unless_allowed():
    text = (
        "10.1.2.3\n127.0.0.1\n169.254.1.1\n192.168.0.0/16\nfe80::1\n240.0.0.1\n8.0.0.0/7\n"
        "40.1.1.1\n"
    )
    parsed = list_parse(text)
    assert parsed.entries == ["40.1.1.1"]
    assert parsed.counts[LineStatus.SKIPPED] == 7
    assert parsed.skipped_reasons == {"private or reserved": 6, "wider than /8": 1}
    allowed = list_parse(text, allow_private=True)
    assert "10.1.2.3" in allowed.entries and "127.0.0.1" in allowed.entries
    assert "8.0.0.0/7" not in allowed.entries  # too wide, allowed or not


def test_parse_skips_the_ignore_list_and_the_sites_own_addresses():
    exclusions = exclusions_build(ignore=["50.0.0.0/24", "not-an-ip"], own=["51.1.1.1"])
    parsed = list_parse(
        "50.0.0.7\n50.0.0.0/16\n51.1.1.1\n51.1.1.0/24\n52.2.2.2\n", exclusions=exclusions
    )
    assert parsed.entries == ["52.2.2.2"]
    why = reasons(parsed, LineStatus.SKIPPED)
    assert why["50.0.0.7"] == "on the jail's ignore list (50.0.0.0/24)"
    assert why["50.0.0.0/16"] == "on the jail's ignore list (50.0.0.0/24)"
    assert why["51.1.1.1"] == "the site's own address (51.1.1.1)"
    assert why["51.1.1.0/24"] == "the site's own address (51.1.1.1)"


def test_parse_keeps_the_first_lines_of_each_status_in_list_order():
    text = "\n".join(f"60.0.{i // 256}.{i % 256}" for i in range(300, 0, -1))
    parsed = list_parse(text + "\nbad\n" * 150)
    accepted = parsed.samples[LineStatus.ACCEPTED]
    assert len(accepted) == SAMPLE_LINES
    assert [s.number for s in accepted] == list(range(1, SAMPLE_LINES + 1))
    assert len(parsed.samples[LineStatus.INVALID]) == SAMPLE_LINES
    assert parsed.counts[LineStatus.INVALID] == 150


addresses_v4 = st.builds(
    lambda value, prefix: str(ipaddress.ip_network((value, prefix), strict=False)),
    st.integers(0x0B000000, 0x0B0000FF),  # 11.0.0.0 - 11.0.0.255: dense, so runs form
    st.integers(24, 32),
)
addresses_v6 = st.builds(
    lambda value, prefix: str(ipaddress.ip_network((value, prefix), strict=False)),
    st.integers(0x2A010000 << 96, (0x2A010000 << 96) + 255),
    st.integers(120, 128),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(addresses_v4, addresses_v6), max_size=60))
def test_parse_collapse_equals_ipaddress_collapse_addresses(values):
    parsed = list_parse("\n".join(values))
    expected = []
    for version in (4, 6):
        nets = [
            ipaddress.ip_network(v) for v in values if ipaddress.ip_network(v).version == version
        ]
        expected += [
            str(n.network_address) if n.num_addresses == 1 else str(n)
            for n in ipaddress.collapse_addresses(nets)
        ]
    assert parsed.entries == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(addresses_v4, max_size=6),
    st.lists(addresses_v4, min_size=1, max_size=30),
)
def test_parse_exclusions_skip_exactly_the_overlapping_entries(excluded, values):
    exclusions = exclusions_build(ignore=excluded, own=[])
    parsed = list_parse("\n".join(values), exclusions=exclusions)
    nets = [ipaddress.ip_network(v) for v in excluded]
    expected = sum(1 for v in values if any(ipaddress.ip_network(v).overlaps(n) for n in nets))
    assert parsed.counts[LineStatus.SKIPPED] == expected
