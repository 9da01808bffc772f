"""The allow-list and its validators, pinned down to which refusal says what (`make mutation`).

test_fail2ban_validation.py proves that bad input is refused; these tests also prove *why*:
the message the caller shows, the boundary values on either side of each limit, and the
order of the checks. A mutant that refuses for the wrong reason, or lets one value past a
bound, fails here (README, "Mutation testing").
"""

from __future__ import annotations

import ipaddress

import pytest

from jails.fail2ban.commands import PROBE_JAIL, check_command
from jails.fail2ban.errors import InvalidArgument
from jails.fail2ban.validation import (
    MAX_ARGUMENT_LENGTH,
    MAX_DURATION_SECONDS,
    check_argument,
    is_canonical_ipv4,
    normalise_ip,
    parse_count,
    parse_duration,
    parse_ip,
    parse_ip_or_network,
    validate_jail_name,
)

END_MARKER = "<F2B_END_COMMAND>"
NOT_CANONICAL = "address is not in canonical form: '2001:DB8::1'"
EVERY_ADDRESS = "'0.0.0.0/0' covers every address; name a smaller network"


def refusal(call, *args, **kwargs) -> str:
    """The message of the InvalidArgument the call raises (it must raise one)."""
    with pytest.raises(InvalidArgument) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# check_argument ---------------------------------------------------------------------------
def test_check_argument_names_each_reason():
    assert refusal(check_argument, 5) == "argument must be a string, not int"
    assert refusal(check_argument, b"x") == "argument must be a string, not bytes"
    assert refusal(check_argument, "a\nb") == "argument contains control characters"
    assert refusal(check_argument, "a\x7fb") == "argument contains control characters"
    assert refusal(check_argument, "a\x1fb") == "argument contains control characters"
    assert refusal(check_argument, "a\x00b") == "argument contains control characters"
    assert (
        refusal(check_argument, "x" + END_MARKER) == "argument contains fail2ban's protocol marker"
    )
    # The shared prefix alone: any later marker in the same style is refused too.
    assert refusal(check_argument, "x<F2B_") == "argument contains fail2ban's protocol marker"


def test_check_argument_length_bound_is_exact():
    assert check_argument("x" * MAX_ARGUMENT_LENGTH) == "x" * MAX_ARGUMENT_LENGTH
    assert refusal(check_argument, "x" * (MAX_ARGUMENT_LENGTH + 1)) == "argument is too long"
    assert MAX_ARGUMENT_LENGTH == 4096


def test_check_argument_reports_the_marker_before_the_length_and_the_length_before_controls():
    # The marker is the attack, so it is named even in an over-long argument; an over-long
    # argument is refused as such before its characters are judged.
    long_marker = "x" * MAX_ARGUMENT_LENGTH + END_MARKER
    assert refusal(check_argument, long_marker) == "argument contains fail2ban's protocol marker"
    long_control = "x" * MAX_ARGUMENT_LENGTH + "\n"
    assert refusal(check_argument, long_control) == "argument is too long"


def test_check_argument_accepts_printable_text_unchanged():
    for value in ("", " ", "~", "<F2B", "F2B_END", "ünïcode", "a b c"):
        assert check_argument(value) == value


# is_canonical_ipv4 (the fast path that skips the parse) ------------------------------------
@pytest.mark.parametrize("text", ["0.0.0.0", "1.2.3.4", "255.255.255.255", "10.200.0.99"])
def test_is_canonical_ipv4_accepts_canonical_quads(text):
    assert is_canonical_ipv4(text) is True


@pytest.mark.parametrize(
    "text",
    ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.256.1.1", "1.1.256.1", "1.1.1.256", "01.1.1.1",
     "1.01.1.1", "1.1.01.1", "1.1.1.01", "1.2.3.4 ", " 1.2.3.4", "١.2.3.4", "1.2.3.٤",
     "1111.2.3.4", "255.255.255.2555", "::1"],
)  # fmt: skip
def test_is_canonical_ipv4_refuses_everything_else(text):
    assert is_canonical_ipv4(text) is False


# Jail names -------------------------------------------------------------------------------
def test_validate_jail_name_message_and_length_bound():
    assert validate_jail_name("j" * 64) == "j" * 64
    assert refusal(validate_jail_name, "j" * 65) == f"invalid jail name: {'j' * 65!r}"
    assert refusal(validate_jail_name, "a b") == "invalid jail name: 'a b'"
    assert refusal(validate_jail_name, 7) == "invalid jail name: 7"


# Addresses and networks -------------------------------------------------------------------
def test_parse_ip_messages_quote_the_value_as_given():
    assert refusal(parse_ip, "fe80::1%eth0") == "not an IP address: 'fe80::1%eth0'"
    assert refusal(parse_ip, "192.0.2.0/24") == "not an IP address: '192.0.2.0/24'"
    assert refusal(parse_ip, " nope ") == "not an IP address: ' nope '"
    assert refusal(parse_ip, "") == "not an IP address: ''"
    assert refusal(parse_ip, 5) == "not an IP address: 5"


def test_parse_ip_refuses_scoped_addresses_that_ipaddress_accepts():
    # ipaddress parses "fe80::1%eth0" since Python 3.9; fail2ban has no use for a zone.
    ipaddress.ip_address("fe80::1%eth0")
    with pytest.raises(InvalidArgument):
        parse_ip("fe80::1%eth0")


def test_parse_ip_unwraps_ipv4_mapped_and_strips_blanks():
    assert parse_ip(" ::ffff:192.0.2.1\n") == ipaddress.IPv4Address("192.0.2.1")
    assert parse_ip("2001:db8::1") == ipaddress.IPv6Address("2001:db8::1")
    assert parse_ip("::1") == ipaddress.IPv6Address("::1")


def test_parse_ip_or_network_results():
    assert parse_ip_or_network("192.0.2.77/24") == ipaddress.IPv4Network("192.0.2.0/24")
    assert parse_ip_or_network(" 192.0.2.7/32 ") == ipaddress.IPv4Address("192.0.2.7")
    assert parse_ip_or_network("::ffff:192.0.2.7/128") == ipaddress.IPv4Address("192.0.2.7")
    assert parse_ip_or_network("192.0.2.0/31") == ipaddress.IPv4Network("192.0.2.0/31")
    assert parse_ip_or_network("2001:db8::/127") == ipaddress.IPv6Network("2001:db8::/127")
    assert parse_ip_or_network("128.0.0.0/1") == ipaddress.IPv4Network("128.0.0.0/1")
    assert parse_ip_or_network("::/1") == ipaddress.IPv6Network("::/1")
    assert parse_ip_or_network("::ffff:192.0.2.7") == ipaddress.IPv4Address("192.0.2.7")


def test_parse_ip_or_network_messages():
    assert refusal(parse_ip_or_network, "0.0.0.0/0") == (
        "'0.0.0.0/0' covers every address; name a smaller network"
    )
    assert (
        refusal(parse_ip_or_network, "::/0")
        == "'::/0' covers every address; name a smaller network"
    )
    assert refusal(parse_ip_or_network, "fe80::/64%eth0") == (
        "not an IP address or network: 'fe80::/64%eth0'"
    )
    assert refusal(parse_ip_or_network, "fe80::1%eth0") == (
        "not an IP address or network: 'fe80::1%eth0'"
    )
    assert (
        refusal(parse_ip_or_network, "1.2.3.4/33") == "not an IP address or network: '1.2.3.4/33'"
    )
    assert refusal(parse_ip_or_network, " ") == "not an IP address or network: ' '"
    assert refusal(parse_ip_or_network, None) == "not an IP address or network: None"
    # A bare address goes through parse_ip, whose message it keeps.
    assert refusal(parse_ip_or_network, "example.com") == "not an IP address: 'example.com'"


def test_normalise_ip_takes_networks_only_when_asked():
    assert refusal(normalise_ip, "192.0.2.0/24") == "not an IP address: '192.0.2.0/24'"
    assert normalise_ip("192.0.2.9/24", allow_network=True) == "192.0.2.0/24"
    assert normalise_ip("192.0.2.9/32", allow_network=True) == "192.0.2.9"
    assert normalise_ip(" 192.0.2.9 ") == "192.0.2.9"
    assert normalise_ip("2001:DB8::0:1") == "2001:db8::1"
    assert normalise_ip("192.0.2.9") == "192.0.2.9"


# Counts and durations ---------------------------------------------------------------------
def test_parse_count_results_and_messages():
    assert parse_count("0", name="maxretry") == 0  # the default minimum is zero
    assert parse_count(" 7 ", name="maxretry") == 7
    assert parse_count(5, name="maxretry") == 5
    assert parse_count("1", name="maxretry", minimum=1) == 1
    assert refusal(parse_count, "-1", name="maxretry") == "maxretry must be at least 0"
    assert refusal(parse_count, "x", name="maxlines") == "maxlines must be a whole number, not 'x'"
    assert refusal(parse_count, "0", name="maxretry", minimum=1) == "maxretry must be at least 1"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1", 1), ("5s", 5), ("10m", 600), ("3h", 10800), ("2d", 172800), ("2w", 1209600),
     (" 10 M ", 600), ("7 D", 604800), (90, 90), ("-1", -1), (-1, -1), (" -1 ", -1)],
)  # fmt: skip
def test_parse_duration_units(value, seconds):
    assert parse_duration(value) == seconds


def test_parse_duration_messages_and_bounds():
    assert parse_duration(MAX_DURATION_SECONDS) == MAX_DURATION_SECONDS
    assert MAX_DURATION_SECONDS == 100 * 365 * 86400
    too_long = refusal(parse_duration, MAX_DURATION_SECONDS + 1)
    assert too_long == "a duration must be at most 100 years"
    assert refusal(parse_duration, "0") == "a duration must be positive"
    assert refusal(parse_duration, "0m") == "a duration must be positive"
    assert refusal(parse_duration, "-1", allow_permanent=False) == (
        "a permanent (-1) value is not allowed here"
    )
    assert refusal(parse_duration, "10x") == (
        "not a duration: '10x' (use e.g. 600, 10m, 1h, 1d or -1)"
    )
    assert refusal(parse_duration, "-2") == "not a duration: '-2' (use e.g. 600, 10m, 1h, 1d or -1)"


# The allow-list: which refusal each shape meets ------------------------------------------
@pytest.mark.parametrize(
    ("command", "message"),
    [
        ([], "empty command"),
        (["reload"], "command 'reload' is not allowed"),
        (["status", "--all"], "invalid jail name: '--all'"),
        (["status", "--all", "basic"], "invalid jail name: '--all'"),
        (["stop"], "the command takes exactly one jail"),
        (["ping", "x"], "the command takes no arguments"),
        (["version", "x"], "the command takes no arguments"),
        (["stats", "x"], "the command takes no arguments"),
        (["start"], "the command takes exactly one jail"),
        (["start", "sshd", "x"], "the command takes exactly one jail"),
        (["stop", "--all"], "invalid jail name: '--all'"),
        (["status", "sshd", "long"], "status takes a jail and an optional flavor"),
        (["status", "sshd", "short", "x"], "status takes a jail and an optional flavor"),
        (["status", "a b"], "invalid jail name: 'a b'"),
        (["get"], "get needs a jail and a key"),
        (["get", "sshd"], "get needs a jail and a key"),
        (["get", "nonsense"], "get needs a jail and a key"),
        (["get", "dbfile", "x"], "get 'x' is not an allowed command"),
        (["get", "sshd", "nonsense"], "get 'nonsense' is not an allowed command"),
        (["get", "sshd", "bantime", "x"], "get 'bantime' is not an allowed command"),
        (["get", "sshd", "banip", "x"], "get 'banip' is not an allowed command"),
        (["get", "sshd", "banip", "--with-time", "x"], "get 'banip' is not an allowed command"),
        (["get", "sshd", "banned"], "get 'banned' is not an allowed command"),
        (["get", "sshd", "banned", "nope"], "not an IP address: 'nope'"),
        (["get", "a b", "bantime"], "invalid jail name: 'a b'"),
        (["get", "sshd", "dbfile"], "get 'dbfile' is not an allowed command"),
        (["set"], "set needs a jail, a key and a value"),
        (["set", "sshd", "banip"], "set needs a jail, a key and a value"),
        (["set", PROBE_JAIL, "banip", "192.0.2.1"], f"invalid jail name: {PROBE_JAIL!r}"),
        (["set", "sshd", "logpath", "/etc/shadow"], "set 'logpath' is not an allowed command"),
        (["set", "sshd", "bantime", "10m"], "not a whole number: '10m'"),
        (["set", "sshd", "bantime", "-2"], "not a whole number: '-2'"),
        (["set", "sshd", "findtime", "-1"], "not a whole number: '-1'"),
        (["set", "sshd", "maxretry", "-1"], "not a whole number: '-1'"),
        (["set", "sshd", "maxretry", "٣"], "not a whole number: '٣'"),
        (["set", "sshd", "maxretry", "²"], "not a whole number: '²'"),
        (["set", "sshd", "maxretry", "1" * 13], f"not a whole number: {'1' * 13!r}"),
        (["set", "sshd", "bantime", "600", "600"], "set 'bantime' is not an allowed command"),
        (["set", "sshd", "maxretry", "3", "3"], "set 'maxretry' is not an allowed command"),
        (["set", "sshd", "idle", "yes"], "set 'idle' is not an allowed command"),
        (["set", "sshd", "idle", "on", "off"], "set 'idle' is not an allowed command"),
        (
            ["set", "sshd", "addignoreip", "192.0.2.1", "192.0.2.2"],
            "set 'addignoreip' is not an allowed command",
        ),
        (["set", "sshd", "addignoreip", "nope"], "not an IP address: 'nope'"),
        (["set", "sshd", "banip", "2001:DB8::1"], NOT_CANONICAL),
        (["set", "sshd", "banip", "0.0.0.0/0"], EVERY_ADDRESS),
        (["set", "sshd", "unbanip", "192.0.2.1", "nope"], "not an IP address: 'nope'"),
        (["unban"], "at least one address is required"),
        (["unban", "--all", "192.0.2.1"], "not an IP address: '--all'"),
        (["banned", "nope"], "not an IP address: 'nope'"),
        (["set", "sshd", "banip", "192.0.2.1\n"], "argument contains control characters"),
    ],
)  # fmt: skip
def test_check_command_refusal_names_the_reason(command, message):
    assert refusal(check_command, command) == message


@pytest.mark.parametrize(
    "command",
    [
        ["get", "dbpurgeage"],
        ["get", "syslogsocket"],
        ["get", PROBE_JAIL, "idle"],
        ["get", "sshd", "banned", "192.0.2.0/24", "2001:db8::1"],
        ["get", "sshd", "ignoreip"],
        ["get", "sshd", "bantime.overalljails"],
        ["set", "sshd", "maxretry", "1" * 12],
        ["set", "sshd", "maxretry", "0"],
        ["set", "sshd", "bantime", "1" * 12],
        ["set", "sshd", "unbanip", "192.0.2.0/24", "2001:db8::/64"],
        ["set", "sshd", "delignoreip", "2001:db8::/64"],
        ["unban", "192.0.2.0/24"],
        ["banned", "192.0.2.0/24"],
    ],
)
def test_check_command_admits_each_allowed_slot(command):
    assert check_command(command) == command


def test_check_command_returns_a_fresh_list_of_the_words():
    command = ("set", "sshd", "banip", "192.0.2.1")
    words = check_command(command)
    assert words == list(command)
    assert type(words) is list


def test_server_stop_is_the_bare_word_only():
    assert check_command(["stop"], allow_server_stop=True) == ["stop"]
    assert check_command(["stop", "sshd"], allow_server_stop=True) == ["stop", "sshd"]
    assert refusal(check_command, ["stop"], allow_server_stop=False) == (
        "the command takes exactly one jail"
    )
    # The flag never lets a marker or control character through: words are checked first.
    assert refusal(check_command, ["stop" + END_MARKER], allow_server_stop=True) == (
        "argument contains fail2ban's protocol marker"
    )


def test_status_all_short_is_checked_word_by_word_first():
    assert check_command(("status", "--all", "short")) == ["status", "--all", "short"]
    assert refusal(check_command, ["status", "--all", "short\n"]) == (
        "argument contains control characters"
    )
