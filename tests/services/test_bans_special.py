"""Wide and special-use bans are held back until confirmed (issue 17): the classification,
and the ban service against the real private fail2ban (nothing banned until confirmed)."""

from __future__ import annotations

import ipaddress
import random

import pytest
from django.core.exceptions import ImproperlyConfigured

from jailadmin.env import env_int
from jails.models import AuditEntry
from jails.services import bans as ban_service
from jails.services.audit import Actor
from jails.services.bans import LineStatus
from jails.services.operations import (
    SPECIAL_FIRST_OCTETS,
    special_use_reason,
    width_reason,
)
from jails.state import RuntimeSettings
from tests.conftest import runtime_install

# Every test that uses `runtime` runs directly against fail2ban and again through the agent.
RUNTIME_MODES = ("direct", "agent")

# The acting person's address is a public one, so only the class under test holds a line back.
ACTOR = Actor(name="tester", source="command", address="198.51.100.250")

# (address as given, what the reason must say): one or more per class the issue names.
SPECIAL = [
    ("10.1.2.3", "a private address"),
    ("172.16.5.4", "a private address"),
    ("192.168.1.1", "a private address"),
    ("fd00::1", "a private address"),
    ("127.0.0.2", "a loopback address"),
    ("::1", "a loopback address"),
    ("169.254.1.1", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("100.64.0.1", "a carrier-grade NAT address"),
    ("100.127.255.254", "a carrier-grade NAT address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a reserved address"),
    ("0.0.0.0", "the unspecified address"),
    ("::", "the unspecified address"),
    ("198.18.0.1", "a private address"),  # benchmarking range (RFC 2544)
    ("10.0.0.0/24", "this network includes a private address"),
    ("192.168.0.0/16", "this network includes a private address"),
    ("fe80::/64", "this network includes a link-local address"),
]
WIDE = [
    ("11.0.0.0/8", "a wide network (16 777 216 addresses), wider than the /16 bound"),
    ("11.0.0.0/15", "a wide network (131 072 addresses), wider than the /16 bound"),
    ("2a00::/32", "a wide network (2^96 addresses), wider than the /48 bound"),
    ("2a00::/47", "a wide network (2^81 addresses), wider than the /48 bound"),
]
# Documentation ranges (RFC 5737, RFC 3849): ipaddress calls them private, they are banned
# without asking (the README, demo and tests use them as attackers); plain public ones too.
NOT_HELD = [
    "192.0.2.1",
    "198.51.100.7",
    "203.0.113.77",
    "2001:db8::1",
    "192.0.2.0/24",
    "2001:db8:1::/48",
    "11.0.0.0/16",
    "2a00::/48",
    "8.8.8.8",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "2a00:1450::1",
]


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


# The classification (no fail2ban) ---------------------------------------------------------------
@pytest.mark.parametrize(("address", "says"), SPECIAL)
def test_special_use_reason_names_each_class(address, says):
    canonical = str(ipaddress.ip_network(address, strict=False))
    canonical = canonical.removesuffix("/32").removesuffix("/128")
    assert says in special_use_reason(canonical)


@pytest.mark.parametrize("address", NOT_HELD)
def test_documentation_and_public_addresses_are_not_special(address):
    assert special_use_reason(address) == ""


def test_special_use_network_reason_names_the_special_end():
    assert special_use_reason("169.254.0.0/16") == (
        "this network includes a link-local address (the local network segment): its first "
        "address, 169.254.0.0"
    )
    # Only its last address is special (100.127.255.255, the end of 100.64.0.0/10): still
    # held back, and the reason names that end.
    assert special_use_reason("100.0.0.0/9") == (
        "this network includes a carrier-grade NAT address (100.64.0.0/10: many customers "
        "behind one): its last address, 100.127.255.255"
    )
    assert "a reserved address" in special_use_reason("255.255.255.0/24")


@pytest.mark.parametrize(("network", "says"), WIDE)
def test_width_reason_beyond_the_default_bounds(network, says):
    assert width_reason(network, min_prefix_v4=16, min_prefix_v6=48) == says


def test_width_reason_at_the_bounds_and_for_addresses():
    assert width_reason("11.0.0.0/16", min_prefix_v4=16, min_prefix_v6=48) == ""
    assert width_reason("2a00::/48", min_prefix_v4=16, min_prefix_v6=48) == ""
    assert width_reason("11.1.2.3", min_prefix_v4=32, min_prefix_v6=128) == ""
    # Configurable: a /24 bound holds back a /20, a /8 bound lets a /8 through.
    assert "wider than the /24 bound" in width_reason(
        "11.0.0.0/20", min_prefix_v4=24, min_prefix_v6=48
    )
    assert width_reason("11.0.0.0/8", min_prefix_v4=8, min_prefix_v6=48) == ""
    assert "wider than the /64 bound" in width_reason(
        "2a00::/56", min_prefix_v4=16, min_prefix_v6=64
    )


def test_fast_first_octet_check_agrees_with_ipaddress():
    """A dotted quad whose first octet is outside SPECIAL_FIRST_OCTETS skips ipaddress: prove
    no special-use range ipaddress knows (its own tables, read here only) starts there."""
    constants = ipaddress.IPv4Address._constants  # type: ignore[attr-defined]
    special = [
        *constants._private_networks,
        constants._linklocal_network,
        constants._loopback_network,
        constants._multicast_network,
        constants._reserved_network,
        ipaddress.ip_network("100.64.0.0/10"),
        ipaddress.ip_network("0.0.0.0/32"),
    ]
    rng = random.Random(17)
    for octet in range(256):
        if octet in SPECIAL_FIRST_OCTETS:
            continue
        block = ipaddress.ip_network(f"{octet}.0.0.0/8")
        assert not any(block.overlaps(network) for network in special), octet
        for number in (0, 2**24 - 1, *(rng.randrange(2**24) for _ in range(20))):
            address = ipaddress.IPv4Address(int(block.network_address) + number)
            assert address.is_global and not address.is_multicast, address


@pytest.mark.parametrize("octet", sorted(SPECIAL_FIRST_OCTETS))
def test_public_addresses_under_special_first_octets_are_not_held(octet):
    """The slow path decides for these octets: a public address there is not held back."""
    rng = random.Random(octet)
    for _ in range(50):
        address = ipaddress.IPv4Address((octet << 24) + rng.randrange(2**24))
        held = bool(special_use_reason(str(address)))
        documentation = any(
            address in ipaddress.ip_network(n)
            for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
        )
        expected = not (address.is_global and not address.is_multicast) and not documentation
        assert held == expected, address


def test_ban_prefix_bounds_come_from_the_settings(settings):
    assert (RuntimeSettings.from_django_settings(settings).ban_min_prefix_v4) == 16
    settings.JAILADMIN_BAN_MIN_PREFIX_V4 = 20
    settings.JAILADMIN_BAN_MIN_PREFIX_V6 = 56
    seeded = RuntimeSettings.from_django_settings(settings)
    assert (seeded.ban_min_prefix_v4, seeded.ban_min_prefix_v6) == (20, 56)


def test_ban_prefix_bound_variables_refuse_out_of_range_values():
    name = "JAILADMIN_BAN_MIN_PREFIX_V4"
    assert env_int(name, 16, minimum=1, maximum=32, environ={name: "24"}) == 24
    with pytest.raises(ImproperlyConfigured, match="at most 32"):
        env_int(name, 16, minimum=1, maximum=32, environ={name: "33"})
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int(name, 16, minimum=1, maximum=32, environ={name: "0"})


# The service against fail2ban -------------------------------------------------------------------
@pytest.mark.django_db
def test_ips_ban_holds_back_every_special_and_wide_class_until_confirmed(runtime, f2b):
    lines = [address for address, _ in SPECIAL + WIDE]
    report = ban_service.ips_ban(runtime, jail="sshd", lines=lines, actor=ACTOR)
    assert banned(f2b, "sshd") == set()  # nothing sent
    assert report.sent == 0 and report.count(LineStatus.SKIPPED) == len(lines)
    assert len(report.needs_confirmation) == len(lines)
    for line, (_, says) in zip(report.lines, SPECIAL + WIDE, strict=True):
        assert says in line.reason and line.reason.endswith(": needs confirmation"), line
    confirmed = ban_service.ips_ban(runtime, jail="sshd", lines=lines, actor=ACTOR, confirmed=True)
    assert confirmed.count(LineStatus.BANNED) == len(lines)
    assert banned(f2b, "sshd") == set(report.needs_confirmation)
    entries = AuditEntry.objects.filter(action="ban").order_by("id")
    assert [e.parameters["confirmed"] for e in entries] == [False, True]


@pytest.mark.django_db
def test_ips_ban_sends_public_and_documentation_lines_and_holds_the_rest(runtime, f2b):
    report = ban_service.ips_ban(
        runtime, jail="sshd", lines=[*NOT_HELD, "10.0.0.0/8", "fe80::1"], actor=ACTOR
    )
    assert banned(f2b, "sshd") == set(NOT_HELD)
    assert report.needs_confirmation == ["10.0.0.0/8", "fe80::1"]
    # The weightiest reason is given: 10/8 is private before it is wide.
    assert "includes a private address" in report.lines[-2].reason


@pytest.mark.django_db
def test_ban_confirmations_gives_the_reason_per_address(runtime, f2b):
    f2b.client().send("set", "sshd", "banip", "10.9.9.9")  # already banned: nothing to ask
    reasons = ban_service.ban_confirmations(
        runtime,
        jail="sshd",
        lines=["100.64.1.1", "203.0.113.5", "10.9.9.9", "2a00::/40"],
        actor=ACTOR,
    )
    assert reasons == {
        "100.64.1.1": "a carrier-grade NAT address (100.64.0.0/10: many customers behind one)",
        "2a00::/40": "a wide network (2^88 addresses), wider than the /48 bound",
    }


@pytest.mark.django_db
def test_own_address_and_ignore_list_reasons_come_before_the_range(runtime, f2b):
    f2b.client().send("set", "sshd", "addignoreip", "10.1.0.0/16")
    own = Actor(name="tester", source="web", address="192.168.7.7")
    reasons = ban_service.ban_confirmations(
        runtime, jail="sshd", lines=["192.168.7.7", "10.1.2.3", "10.2.3.4"], actor=own
    )
    assert reasons == {
        "192.168.7.7": "this is the address you are connected from",
        "10.1.2.3": "on the jail's ignore list (10.1.0.0/16)",
        "10.2.3.4": "a private address (often the operators' own network)",
    }


@pytest.mark.django_db
def test_ban_prefix_bounds_are_configurable(f2b):
    state = runtime_install(f2b, agent=None, ban_min_prefix_v4=8, ban_min_prefix_v6=32)
    report = ban_service.ips_ban(
        state,
        jail="sshd",
        lines=["11.0.0.0/8", "12.0.0.0/7", "2a00::/32", "2a00::/31"],
        actor=ACTOR,
    )
    assert banned(f2b, "sshd") == {"11.0.0.0/8", "2a00::/32"}
    assert report.needs_confirmation == ["12.0.0.0/7", "2a00::/31"]
    assert "wider than the /8 bound" in report.lines[1].reason


@pytest.mark.django_db
@pytest.mark.parametrize("everything", ["0.0.0.0/0", "::/0", "1.2.3.4/0"])
def test_slash_zero_stays_refused_even_when_confirmed(runtime, f2b, everything):
    report = ban_service.ips_ban(
        runtime, jail="sshd", lines=[everything], actor=ACTOR, confirmed=True
    )
    assert report.lines[0].status is LineStatus.INVALID
    assert report.sent == 0 and banned(f2b, "sshd") == set()
