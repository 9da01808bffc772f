"""Argument validation and the command allow-list (validation.py, commands.py)."""

from __future__ import annotations

import ipaddress

import pytest

from jails.fail2ban.commands import PROBE_JAIL, check_command
from jails.fail2ban.errors import InvalidArgument
from jails.fail2ban.validation import (
    JAIL_NAME_RE,
    MAX_ARGUMENT_LENGTH,
    check_argument,
    normalise_ip,
    parse_count,
    parse_duration,
    parse_ip,
    parse_ip_or_network,
    validate_jail_name,
)

END_MARKER = "<F2B_END_COMMAND>"
CLOSE_MARKER = "<F2B_CLOSE_COMMAND>"

INVALID_IPS = [
    "",
    " ",
    "\t\n",
    "example.com",
    "localhost",
    "999.1.1.1",
    "256.0.0.1",
    "1.2.3",
    "1.2.3.4.5",
    "--all",
    "-1",
    "1.2.3.4/33",
    "1.2.3.4/24",  # a network where only an address is allowed
    "2001:db8::/129",
    "fe80::1%eth0",
    "fe80::1%1",
    "1.2.3.4 5.6.7.8",
    "1.2.3.4,5.6.7.8",
    "0x7f.0.0.1",
    "010.1.1.1",  # leading zeros: refused by ipaddress since Python 3.9.5
    "١.٢.٣.٤",  # Arabic-Indic digits
    "2001:db8:::1",
    "1.2.3.4" + END_MARKER,
    END_MARKER,
]


# IP addresses -----------------------------------------------------------------------------
@pytest.mark.parametrize("value", INVALID_IPS)
def test_parse_ip_refuses_invalid(value):
    with pytest.raises(InvalidArgument):
        parse_ip(value)


@pytest.mark.parametrize("value", INVALID_IPS)
def test_normalise_ip_refuses_invalid(value):
    with pytest.raises(InvalidArgument):
        normalise_ip(value)


@pytest.mark.parametrize(
    "value",
    ["", " ", "example.com", "999.1.1.1", "--all", "1.2.3.4/33", "::/129", "fe80::1%eth0/64",
     "fe80::%eth0", "1.2.3.4/-1", "1.2.3.4/", "/24", "1.2.3.4/24/8", "1.2.3.4/255.255.0.255"],
)  # fmt: skip
def test_normalise_ip_with_network_refuses_invalid(value):
    with pytest.raises(InvalidArgument):
        normalise_ip(value, allow_network=True)


@pytest.mark.parametrize("value", [None, 16909060, b"1.2.3.4", ["1.2.3.4"]])
def test_parse_ip_refuses_non_strings(value):
    with pytest.raises(InvalidArgument):
        parse_ip(value)
    with pytest.raises(InvalidArgument):
        parse_ip_or_network(value)


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("::FFFF:192.0.2.1", "192.0.2.1"),  # mapped IPv4 becomes IPv4, as fail2ban lists it
        ("::1", "::1"),
        (" 192.0.2.1 ", "192.0.2.1"),  # surrounding blanks are stripped, by design
        ("192.0.2.1\n", "192.0.2.1"),
        ("\t2001:db8::1\r\n", "2001:db8::1"),
    ],
)
def test_normalise_ip_returns_canonical_form(value, canonical):
    assert normalise_ip(value) == canonical
    assert str(ipaddress.ip_address(canonical)) == canonical


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("192.0.2.0/24", "192.0.2.0/24"),
        ("192.0.2.77/24", "192.0.2.0/24"),  # host bits are dropped (strict=False)
        ("192.0.2.1/32", "192.0.2.1"),  # a single-address network collapses
        ("2001:DB8::/32", "2001:db8::/32"),
        ("2001:db8::1/128", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("0.0.0.0/1", "0.0.0.0/1"),
    ],
)
def test_normalise_ip_with_network_returns_canonical_form(value, canonical):
    assert normalise_ip(value, allow_network=True) == canonical


@pytest.mark.parametrize("value", ["0.0.0.0/0", "::/0", "10.1.2.3/0"])
def test_normalise_ip_refuses_the_whole_internet(value):
    # fail2ban would ban (or ignore) everybody, and lists 0.0.0.0/0 as "0.0.0.0", so it
    # could not even be removed again.
    with pytest.raises(InvalidArgument, match="covers every address"):
        normalise_ip(value, allow_network=True)
    with pytest.raises(InvalidArgument):
        check_command(["set", "sshd", "addignoreip", value])


def test_parse_ip_returns_ipaddress_objects():
    assert parse_ip("192.0.2.1") == ipaddress.IPv4Address("192.0.2.1")
    assert parse_ip("2001:db8::1") == ipaddress.IPv6Address("2001:db8::1")


def test_parse_ip_or_network_returns_network_for_cidr():
    assert parse_ip_or_network("192.0.2.0/24") == ipaddress.IPv4Network("192.0.2.0/24")
    assert parse_ip_or_network("192.0.2.1") == ipaddress.IPv4Address("192.0.2.1")


# Jail names -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["sshd", "nginx-http-auth", "recidive", "postfix_sasl", "a", "A.b-c_d", "9jail", "x" * 64],
)
def test_validate_jail_name_accepts_real_names(name):
    assert validate_jail_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "--all",
        "-sshd",
        ".hidden",
        "a b",
        " sshd",
        "sshd ",
        "sshd\n",
        "x;rm",
        "x;rm -rf /",
        "$(reboot)",
        "a/b",
        "a\\b",
        "x" * 65,
        "jäil",
        "ssh\u0434",
        "ｓｓｈｄ",  # fullwidth letters
        "sshd\x00",
        PROBE_JAIL,
        "sshd" + END_MARKER,
        CLOSE_MARKER,
        None,
        42,
    ],
)
def test_validate_jail_name_refuses_invalid(name):
    with pytest.raises(InvalidArgument):
        validate_jail_name(name)


def test_jail_name_re_is_ascii_only():
    assert JAIL_NAME_RE.fullmatch("a" * 64)
    assert not JAIL_NAME_RE.fullmatch("a" * 65)
    assert not JAIL_NAME_RE.fullmatch("ä")


# Single arguments -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        END_MARKER,
        CLOSE_MARKER,
        "1.2.3.4" + END_MARKER,
        "x" + END_MARKER + "cos\nsystem\n(Vid\ntR.",
        "<F2B_",
        "<F2B_SOMETHING_ELSE>",
        "a\nb",
        "a\rb",
        "\x00",
        "\x7f",
        "tab\there",
        "x" * (MAX_ARGUMENT_LENGTH + 1),
    ],
)
def test_check_argument_refuses(value):
    with pytest.raises(InvalidArgument):
        check_argument(value)


@pytest.mark.parametrize("value", [None, 1, b"ping", ["ping"]])
def test_check_argument_refuses_non_strings(value):
    with pytest.raises(InvalidArgument):
        check_argument(value)


@pytest.mark.parametrize("value", ["", "ping", "x" * MAX_ARGUMENT_LENGTH, "<F2B", "ünï ☃"])
def test_check_argument_accepts_plain_text(value):
    assert check_argument(value) == value


# Numbers and durations --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("600", 600),
        (600, 600),
        ("10m", 600),
        ("1h", 3600),
        ("1d", 86400),
        ("2w", 1209600),
        (" 5 M ", 300),
        ("30s", 30),
        ("-1", -1),
        (-1, -1),
    ],
)
def test_parse_duration_accepts(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["", "0", "0m", "-2", "-1h", "1y", "10 minutes", "1.5h", "1e3", "abc", "--all",
     "600" + END_MARKER, "10m10s", str(100 * 365 * 86400 + 1), "99999999999w"],
)  # fmt: skip
def test_parse_duration_refuses(value):
    with pytest.raises(InvalidArgument):
        parse_duration(value)


def test_parse_duration_returns_plain_int_for_unicode_digits():
    # re's \d and int() accept any Unicode decimal digit; what reaches fail2ban is
    # str() of the int, so only ASCII digits are ever sent.
    assert parse_duration("٣m") == 180
    assert type(parse_duration("٣m")) is int


def test_parse_duration_refuses_permanent_when_not_allowed():
    with pytest.raises(InvalidArgument):
        parse_duration("-1", allow_permanent=False)


def test_parse_duration_accepts_upper_bound():
    assert parse_duration(str(100 * 365 * 86400)) == 100 * 365 * 86400


@pytest.mark.parametrize(("value", "number"), [("3", 3), (3, 3), (" 0 ", 0), ("10", 10)])
def test_parse_count_accepts(value, number):
    assert parse_count(value, name="maxretry") == number


@pytest.mark.parametrize("value", ["", "-1", "1.5", "abc", "3" + END_MARKER, "1e3"])
def test_parse_count_refuses(value):
    with pytest.raises(InvalidArgument):
        parse_count(value, name="maxretry")


def test_parse_count_enforces_minimum():
    with pytest.raises(InvalidArgument, match="at least 1"):
        parse_count("0", name="maxretry", minimum=1)


# The allow-list ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        ["ping"],
        ["version"],
        ["status"],
        ["status", "sshd"],
        ["status", "sshd", "short"],
        ["status", "sshd", "basic"],
        ["status", "--all", "short"],
        ["banned"],
        ["banned", "192.0.2.1", "2001:db8::1"],
        ["get", "dbfile"],
        ["get", "loglevel"],
        ["get", "sshd", "banip"],
        ["get", "sshd", "banip", "--with-time"],
        ["get", "sshd", "banned", "192.0.2.1"],
        ["get", "sshd", "bantime"],
        ["get", "sshd", "bantime.increment"],
        ["get", "sshd", "backend"],
        ["get", PROBE_JAIL, "backend"],
        ["set", "sshd", "banip", "192.0.2.1"],
        ["set", "sshd", "banip", "192.0.2.1", "192.0.2.2", "2001:db8::1", "198.51.100.0/24"],
        ["set", "sshd", "unbanip", "192.0.2.1"],
        ["set", "sshd", "addignoreip", "192.0.2.0/24"],
        ["set", "sshd", "delignoreip", "192.0.2.1"],
        ["set", "sshd", "bantime", "600"],
        ["set", "sshd", "bantime", "-1"],
        ["set", "sshd", "findtime", "600"],
        ["set", "sshd", "maxretry", "5"],
        ["set", "sshd", "idle", "on"],
        ["set", "sshd", "idle", "off"],
        ["unban", "192.0.2.1"],
        ["unban", "192.0.2.1", "2001:db8::1"],
        ["unban", "--all"],
        ["start", "sshd"],
        ["stop", "sshd"],
        ["stats"],
    ],
)
def test_check_command_accepts_allowed(command):
    assert check_command(command) == command


def test_check_command_returns_list_for_tuple():
    assert check_command(("status", "sshd")) == ["status", "sshd"]


@pytest.mark.parametrize(
    "command",
    [
        [],
        [""],
        ["reload"],
        ["reload", "sshd"],
        ["reload", "--all"],
        # Only the short flavor of `status --all`: the others list every banned address.
        ["status", "--all"],
        ["status", "--all", "basic"],
        ["status", "--all", "short", "sshd"],
        ["restart"],
        ["stop"],
        ["echo", "hi"],
        ["flushlogs"],
        ["add", "evil", "auto"],
        ["set", "sshd", "action", "jailadmin-record", "actionban", "touch /tmp/pwned"],
        ["set", "sshd", "addaction", "evil"],
        ["set", "sshd", "delaction", "jailadmin-record"],
        ["set", "sshd", "logpath", "/etc/shadow"],
        ["set", "sshd", "addlogpath", "/etc/shadow"],
        ["set", "sshd", "addfailregex", ".*"],
        ["set", "sshd", "ignorecommand", "touch /tmp/pwned"],
        ["set", "loglevel", "DEBUG"],
        ["set", "logtarget", "/etc/passwd"],
        ["set", "dbfile", "/tmp/x"],
        ["get", "sshd", "action", "x", "actionban"],
        ["get", "sshd", "actionmethods", "x"],
        ["get", "sshd", "bantime", "extra"],
        ["get", "sshd", "banip", "--with-time", "extra"],
        ["get", "sshd", "nonsense"],
        ["get", "sshd"],
        ["get", "nonsense"],
        ["get"],
        ["set", "sshd", "banip"],
        ["set", "sshd", "bantime"],
        ["set", "sshd", "bantime", "10m"],  # the client sends seconds
        ["set", "sshd", "bantime", "-2"],
        ["set", "sshd", "findtime", "-1"],
        ["set", "sshd", "maxretry", "-1"],
        ["set", "sshd", "maxretry", "٣"],
        ["set", "sshd", "maxretry", "1" * 13],
        ["set", "sshd", "bantime", "600", "600"],
        ["set", "sshd", "idle", "yes"],
        ["set", "sshd", "addignoreip", "192.0.2.1", "192.0.2.2"],
        ["set", PROBE_JAIL, "banip", "192.0.2.1"],
        ["set", "--all", "banip", "192.0.2.1"],
        ["set", "x;rm", "banip", "192.0.2.1"],
        ["status", "sshd", "long"],
        ["status", "sshd", "short", "x"],
        ["status", "--all", "x"],
        ["unban"],
        ["unban", "--all", "192.0.2.1"],
        ["start"],
        ["start", "sshd", "x"],
        ["stop", "sshd", "x"],
        ["stop", "--all"],
        ["ping", "x"],
        ["version", "x"],
        ["stats", "x"],
        ["PING"],
        [" ping"],
        ["ping" + END_MARKER],
    ],
)
def test_check_command_refuses_not_allowed(command):
    with pytest.raises(InvalidArgument):
        check_command(command)


def test_check_command_allows_server_stop_only_when_asked():
    with pytest.raises(InvalidArgument):
        check_command(["stop"])
    assert check_command(["stop"], allow_server_stop=True) == ["stop"]


def test_check_command_server_stop_flag_does_not_widen_anything_else():
    with pytest.raises(InvalidArgument):
        check_command(["reload"], allow_server_stop=True)
    with pytest.raises(InvalidArgument):
        check_command(["stop", "--all"], allow_server_stop=True)


@pytest.mark.parametrize(
    "ip",
    ["", " ", "example.com", "999.1.1.1", "--all", "1.2.3.4/33", "1.2.3.4\n", " 1.2.3.4",
     "fe80::1%eth0", "-1", "0.0.0.0/-1"],
)  # fmt: skip
@pytest.mark.parametrize("verb", [["set", "sshd", "banip"], ["set", "sshd", "unbanip"], ["unban"],
                                  ["banned"], ["get", "sshd", "banned"],
                                  ["set", "sshd", "addignoreip"]])  # fmt: skip
def test_check_command_refuses_invalid_ip(verb, ip):
    if verb == ["unban"] and ip == "--all":
        assert check_command(["unban", "--all"]) == ["unban", "--all"]  # a command of its own
        return
    with pytest.raises(InvalidArgument):
        check_command([*verb, ip])


@pytest.mark.parametrize(
    "ip",
    ["2001:DB8::1", "2001:0db8::1", "2001:db8:0:0:0:0:0:1", "192.0.2.1/32", "192.0.2.77/24",
     "2001:db8::1/128", "::FFFF:192.0.2.1", "::ffff:192.0.2.1"],
)  # fmt: skip
def test_check_command_refuses_non_canonical_ip(ip):
    # The client never canonicalises silently: callers pass normalise_ip()'s output.
    with pytest.raises(InvalidArgument, match="canonical"):
        check_command(["set", "sshd", "banip", ip])
    canonical = normalise_ip(ip, allow_network=True)
    assert check_command(["set", "sshd", "banip", canonical]) == ["set", "sshd", "banip", canonical]


def test_check_command_refuses_one_bad_ip_among_good():
    with pytest.raises(InvalidArgument):
        check_command(["set", "sshd", "banip", "192.0.2.1", "example.com", "192.0.2.2"])


@pytest.mark.parametrize("marker", [END_MARKER, CLOSE_MARKER])
@pytest.mark.parametrize("position", range(4))
def test_check_command_refuses_marker_in_any_word(marker, position):
    command = ["set", "sshd", "banip", "192.0.2.1"]
    command[position] = command[position] + marker + "cos\nsystem\n(Vid\ntR."
    with pytest.raises(InvalidArgument):
        check_command(command)


@pytest.mark.parametrize(
    "jail",
    ["", "--all", "a b", "x;rm", "x" * 65, "jäil", "-x", "sshd\n", ".x"],
)
def test_check_command_refuses_invalid_jail(jail):
    if jail != "--all":  # `status --all` is allowed (fail2ban 1.1+, probed first)
        with pytest.raises(InvalidArgument):
            check_command(["status", jail])
    for command in (
        ["get", jail, "bantime"],
        ["set", jail, "maxretry", "3"],
        ["start", jail],
        ["stop", jail],
    ):
        with pytest.raises(InvalidArgument):
            check_command(command)
