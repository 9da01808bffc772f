"""Property tests: whatever gets through validation is canonical and marker-free."""

from __future__ import annotations

import ipaddress
import pickle

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from jails.fail2ban.client import Fail2banClient
from jails.fail2ban.commands import PROBE_JAIL, check_command
from jails.fail2ban.errors import InvalidArgument
from jails.fail2ban.protocol import CLOSE, END
from jails.fail2ban.validation import (
    JAIL_NAME_RE,
    MARKER_PREFIX,
    MAX_ARGUMENT_LENGTH,
    MAX_DURATION_SECONDS,
    check_argument,
    is_canonical_ipv4,
    normalise_ip,
    parse_duration,
    parse_ip,
    parse_ip_or_network,
    validate_jail_name,
)
from tests.support.fakeserver import FakeFail2ban, reply_value

MARKERS = ("<F2B_END_COMMAND>", "<F2B_CLOSE_COMMAND>")
PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def ip_spellings(ip) -> list[str]:
    """Spellings of one address: canonical, exploded, upper case, padded."""
    text = str(ip)
    spellings = [text, ip.exploded, text.upper(), ip.exploded.upper(), f" {text} ", f"{text}\n"]
    if ip.version == 4:
        spellings.append(".".join(f"{int(octet):03d}" for octet in text.split(".")))
        spellings.append(f"::ffff:{text}")
    return spellings


def ip_variants(ip) -> st.SearchStrategy[str]:
    """A spelling of the address, possibly with a prefix, a zone id or a marker after it."""
    suffixes = ["", f"/{ip.max_prefixlen}", "/24", "/64", "/33", "/129", "%eth0", *MARKERS]
    return st.tuples(st.sampled_from(ip_spellings(ip)), st.sampled_from(suffixes)).map("".join)


ip_like_text = st.one_of(
    st.text(max_size=50),
    st.text(alphabet="0123456789abcdefABCDEF:./% \n", max_size=45),
    st.ip_addresses().flatmap(ip_variants),
)
jail_like_text = st.one_of(
    st.text(max_size=80),
    st.from_regex(r"[A-Za-z0-9_.\-;<> ]{0,70}", fullmatch=True),
    st.sampled_from(["sshd", "--all", PROBE_JAIL, "sshd" + MARKERS[0], "a" * 64, "a" * 65]),
)
KNOWN_WORDS = "set get status unban banned banip unbanip sshd --all bantime maxretry action -1 600"
KNOWN_WORDS_LIST = [*KNOWN_WORDS.split(), "192.0.2.1", "2001:db8::1", *MARKERS]
word = st.one_of(st.text(max_size=30), st.sampled_from(KNOWN_WORDS_LIST))
ALLOWED_VERBS = {
    "ping",
    "version",
    "status",
    "banned",
    "get",
    "set",
    "unban",
    "start",
    "stop",
    "stats",
}
IP_LIST_KEYS = {"banip", "unbanip", "addignoreip", "delignoreip"}
durations = st.one_of(
    st.text(max_size=30), st.integers(), st.from_regex(r"\s*-?\d{1,12}\s*[smhdwSMHDW]?\s*")
)
ip_spelled = st.ip_addresses().flatmap(lambda ip: st.sampled_from(ip_spellings(ip)))


def is_canonical(text: str, *, allow_network: bool) -> bool:
    if "/" in text and allow_network:
        return str(ipaddress.ip_network(text, strict=True)) == text
    return str(ipaddress.ip_address(text)) == text


def has_marker(text: str) -> bool:
    return "<F2B_" in text


# Pure validation --------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["::FFFF:0:0/128", "::ffff:203.0.113.7/128"])
def test_normalise_ip_single_mapped_network_is_a_fixed_point(value):
    # Found by Hypothesis: the /128 form kept the IPv6 spelling, the bare address did not.
    result = normalise_ip(value, allow_network=True)
    assert normalise_ip(result, allow_network=True) == result
    assert "." in result


@PROPERTY_SETTINGS
@given(ip_like_text, st.booleans())
def test_normalise_ip_output_is_canonical(value, allow_network):
    try:
        result = normalise_ip(value, allow_network=allow_network)
    except InvalidArgument:
        return
    assert is_canonical(result, allow_network=allow_network)
    assert not has_marker(result)
    assert result.isascii() and result.isprintable() and " " not in result
    assert "%" not in result
    # The canonical form is a fixed point and is what check_command wants.
    assert normalise_ip(result, allow_network=allow_network) == result
    assert check_command(["set", "sshd", "banip", result]) == ["set", "sshd", "banip", result]


@PROPERTY_SETTINGS
@given(jail_like_text, st.lists(ip_like_text, min_size=1, max_size=4))
def test_check_command_banip_accepts_only_canonical(jail, ips):
    try:
        words = check_command(["set", jail, "banip", *ips])
    except InvalidArgument:
        return
    assert words[:3] == ["set", jail, "banip"]
    assert JAIL_NAME_RE.fullmatch(words[1])
    for ip in words[3:]:
        assert is_canonical(ip, allow_network=True)
        assert not has_marker(ip)


@PROPERTY_SETTINGS
@given(jail_like_text)
def test_validate_jail_name_accepts_only_pattern(name):
    try:
        result = validate_jail_name(name)
    except InvalidArgument:
        assert not JAIL_NAME_RE.fullmatch(name)
        return
    assert result == name
    assert JAIL_NAME_RE.fullmatch(result)
    assert result.isascii() and not result.startswith("-") and 1 <= len(result) <= 64
    assert not has_marker(result)


@PROPERTY_SETTINGS
@given(durations)
def test_parse_duration_returns_bounded_int(value):
    try:
        seconds = parse_duration(value)
    except InvalidArgument:
        return
    assert type(seconds) is int
    assert seconds == -1 or 1 <= seconds <= MAX_DURATION_SECONDS
    # What would be sent (str of the int) is accepted by the allow-list as is.
    assert check_command(["set", "sshd", "bantime", str(seconds)])


@PROPERTY_SETTINGS
@given(st.lists(word, min_size=0, max_size=6), st.booleans())
def test_check_command_output_is_marker_free(command, allow_server_stop):
    try:
        words = check_command(command, allow_server_stop=allow_server_stop)
    except InvalidArgument:
        return
    assert words == list(command)
    assert words[0] in ALLOWED_VERBS
    for accepted in words:
        assert isinstance(accepted, str)
        assert not has_marker(accepted)
        assert all(ord(ch) >= 32 and ord(ch) != 127 for ch in accepted)
    if words[0] in {"set", "start", "stop"} and len(words) > 1:
        assert JAIL_NAME_RE.fullmatch(words[1])
    if words[0] == "set" and len(words) > 2 and words[2] in IP_LIST_KEYS:
        for ip in words[3:]:
            assert is_canonical(ip, allow_network=True)


# What reaches the socket ------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake():
    with FakeFail2ban(reply_value(0, 1)) as server:
        yield server


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.one_of(ip_like_text, ip_spelled))
def test_only_canonical_ips_reach_the_socket(fake, value):
    fake.reset()
    client = Fail2banClient(fake.path, timeout=2.0)
    try:
        ip = normalise_ip(value)
    except InvalidArgument:
        event("refused by normalise_ip")
        return  # never reaches the client
    event("sent to the fake server")
    # normalise_ip's output is always what the allow-list wants: it is sent.
    assert client.send("set", "sshd", "banip", ip) == 1
    fake.settle()
    (request,) = fake.requests
    # Exactly one framed request and the goodbye: no marker smuggled into the payload.
    assert bytes(fake.raw).count(END) == 2
    # Stock pickle is fine here: the bytes came from our own client under test.
    command = pickle.loads(request)
    assert type(command) is list
    assert all(type(part) is str for part in command)
    assert command == ["set", "sshd", "banip", ip]
    assert command[3] == str(ipaddress.ip_address(command[3]))


# The IPv4 fast path (validation.is_canonical_ipv4, used by normalise_ip, entries_parse and the
# allow-list) must agree with the full parse exactly ----------------------------------------
def slow_is_canonical_ipv4(text: str) -> bool:
    """The reference: ipaddress parses it as IPv4 and writes it back unchanged."""
    try:
        return str(ipaddress.IPv4Address(text)) == text
    except ValueError:
        return False


def slow_normalise_ip(value: str, *, allow_network: bool) -> str:
    """normalise_ip without its fast path: always the full ipaddress parse."""
    return str(parse_ip_or_network(value) if allow_network else parse_ip(value))


quad_like_text = st.one_of(
    st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,4}){2,4}\n?", fullmatch=True),
    st.text(alphabet="0123456789. \n\t/:x٣", max_size=20),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=4).flatmap(lambda ip: st.sampled_from(ip_spellings(ip))),
    st.tuples(
        st.ip_addresses(v=4).map(str), st.sampled_from(["", ".", ".0", "0", " ", "\x00"])
    ).map("".join),
    # Dotted words built from octet-like parts around every boundary the fast path decides:
    # leading zeros, 255/256, signs, blanks, empty parts, non-ASCII digits, 3 to 5 parts.
    st.lists(
        st.one_of(
            st.integers(0, 300).map(str),
            st.integers(0, 99).map(lambda n: f"{n:02d}"),
            st.integers(0, 999).map(lambda n: f"{n:03d}"),
            st.sampled_from(["", "-0", "+1", " 1", "1 ", "٣", "0x1", "1_0"]),
        ),
        min_size=3,
        max_size=5,
    ).map(".".join),
)


@PROPERTY_SETTINGS
@given(st.ip_addresses(v=4))
def test_canonical_ipv4_fast_path_accepts_every_canonical_address(address):
    assert is_canonical_ipv4(str(address))


@PROPERTY_SETTINGS
@given(st.one_of(quad_like_text, ip_like_text))
@example("0.0.0.0")
@example("255.255.255.255")
@example("256.0.0.0")
@example("01.2.3.4")
@example("1.2.3.00")
@example("1.2.3.4.5")
@example("1.2.3.4\n")
@example("١.2.3.4")
def test_canonical_ipv4_fast_path_agrees_with_the_full_parse(text):
    fast = is_canonical_ipv4(text)
    event(f"fast path {'taken' if fast else 'not taken'}")
    assert fast == slow_is_canonical_ipv4(text)
    if fast:
        assert check_command(["set", "sshd", "banip", text]) == ["set", "sshd", "banip", text]


@PROPERTY_SETTINGS
@given(st.one_of(quad_like_text, ip_like_text), st.booleans())
@example("01.2.3.4", False)
@example("255.255.255.255", True)
@example("1.2.3.4/32", True)
def test_normalise_ip_fast_path_agrees_with_the_full_parse(text, allow_network):
    try:
        expected = slow_normalise_ip(text, allow_network=allow_network)
    except InvalidArgument:
        with pytest.raises(InvalidArgument):
            normalise_ip(text, allow_network=allow_network)
        return
    assert normalise_ip(text, allow_network=allow_network) == expected


@pytest.mark.parametrize(
    "text",
    ["01.2.3.4", "1.2.3.4\n", "256.1.1.1", "1.2.3", " 1.2.3.4", "1.2.3.04", "1.2.3.4.", "١.2.3.4"],
)
def test_check_command_still_refuses_non_canonical_ipv4(text):
    assert not is_canonical_ipv4(text)
    with pytest.raises(InvalidArgument):
        check_command(["set", "sshd", "banip", text])


# check_argument: one search for the marker prefix and control characters ------------------
def test_marker_prefix_starts_both_protocol_markers():
    assert MARKER_PREFIX == "<F2B_"
    assert END.decode().startswith(MARKER_PREFIX) and CLOSE.decode().startswith(MARKER_PREFIX)


def slow_check_argument(value: str) -> str:
    """The checks one by one, in the order check_argument reports them."""
    if any(marker in value for marker in (END.decode(), CLOSE.decode())) or "<F2B_" in value:
        return "marker"
    if len(value) > MAX_ARGUMENT_LENGTH:
        return "long"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return "control"
    return "ok"


@PROPERTY_SETTINGS
@given(
    st.one_of(
        word,
        st.tuples(
            word, st.sampled_from([*MARKERS, "<F2B_", "\x00", "\x1f", "\x7f", "\n", ""]), word
        ).map("".join),
        st.tuples(
            st.just("x" * MAX_ARGUMENT_LENGTH), st.sampled_from(["", "y", "\n", "<F2B_"])
        ).map("".join),
    )
)
def test_check_argument_agrees_with_the_checks_one_by_one(value):
    expected = slow_check_argument(value)
    event(expected)
    if expected == "ok":
        assert check_argument(value) == value
        return
    with pytest.raises(InvalidArgument) as refused:
        check_argument(value)
    wording = {"marker": "marker", "long": "too long", "control": "control characters"}
    assert wording[expected] in str(refused.value)
