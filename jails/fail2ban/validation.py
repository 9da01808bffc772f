"""Validation of everything that is sent to fail2ban.

fail2ban itself validates nothing: it "bans" ``''``, ``example.com`` or ``--all``, and an
argument that contains the end marker followed by a pickle is run as a second command.
Every value therefore passes through here before it reaches the socket.
"""

from __future__ import annotations

import ipaddress
import os
import re

from .errors import InvalidArgument
from .protocol import CLOSE, END

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# fail2ban jail names are section names of jail.conf; real ones use letters, digits,
# dash, underscore and dot. Nothing else gets through, and never a leading dash
# (``--all`` is a keyword to the server).
JAIL_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")

# What both protocol markers start with ("<F2B_"): refusing it refuses either marker with
# one search, and any marker a later fail2ban might add in the same style.
MARKER_PREFIX = os.path.commonprefix([END.decode(), CLOSE.decode()])
MAX_ARGUMENT_LENGTH = 4096
# The marker prefix, C0 controls and DEL, found by one compiled search: a bulk ban checks
# 100 000 arguments, and a per-character (or per-marker) generator was a tenth of the
# service's time.
_FORBIDDEN = re.compile(rf"{re.escape(MARKER_PREFIX)}|[\x00-\x1f\x7f]")

# A dotted quad of octets written without leading zeros is exactly ipaddress's canonical
# IPv4 text, so it needs no parse: a bulk ban handles 100 000 of them, and ipaddress's
# parse and str() were most of the service's own time. Set lookups of the four parts cost
# a third of an equivalent regex; the set holds ASCII digits only (never Unicode digits).
_CANONICAL_OCTETS = frozenset(str(octet) for octet in range(256))
_MAX_IPV4_LENGTH = len("255.255.255.255")


def is_canonical_ipv4(text: str) -> bool:
    """Whether `text` is an IPv4 address exactly as ipaddress writes it (no parse needed)."""
    if len(text) > _MAX_IPV4_LENGTH:
        return False
    parts = text.split(".")
    octets = _CANONICAL_OCTETS
    return (
        len(parts) == 4
        and parts[0] in octets
        and parts[1] in octets
        and parts[2] in octets
        and parts[3] in octets
    )


def check_argument(value: str) -> str:
    """Refuse any argument that is not a short, printable, marker-free str."""
    if not isinstance(value, str):
        raise InvalidArgument(f"argument must be a string, not {type(value).__name__}")
    forbidden = _FORBIDDEN.search(value)
    if forbidden is not None and MARKER_PREFIX in value:
        raise InvalidArgument("argument contains fail2ban's protocol marker")
    if len(value) > MAX_ARGUMENT_LENGTH:
        raise InvalidArgument("argument is too long")
    if forbidden is not None:
        raise InvalidArgument("argument contains control characters")
    return value


def validate_jail_name(name: str) -> str:
    """Return the jail name if it matches the strict pattern, else raise InvalidArgument."""
    if not isinstance(name, str) or not JAIL_NAME_RE.fullmatch(name):
        raise InvalidArgument(f"invalid jail name: {name!r}")
    return name


def parse_ip(value: str) -> IPAddress:
    """Parse a single IPv4/IPv6 address (surrounding blanks allowed)."""
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or not text or "/" in text or "%" in text:
        raise InvalidArgument(f"not an IP address: {value!r}")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"not an IP address: {value!r}") from None
    # fail2ban lists ::ffff:1.2.3.4 as 1.2.3.4: use that form, so lists and actions agree.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_ip_or_network(value: str) -> IPAddress | IPNetwork:
    """Parse an address or a CIDR network; a /32 (/128) network collapses to its address."""
    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or not text or "%" in text:
        raise InvalidArgument(f"not an IP address or network: {value!r}")
    if "/" not in text:
        return parse_ip(text)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"not an IP address or network: {value!r}") from None
    if network.num_addresses == 1:
        # Through parse_ip, so ::ffff:a.b.c.d/128 becomes a.b.c.d like the bare address does.
        return parse_ip(str(network.network_address))
    if network.prefixlen == 0:
        # Every address at once: banning it locks everybody out, ignoring it disables the
        # jail, and fail2ban cannot even remove it again (it lists 0.0.0.0/0 as "0.0.0.0").
        raise InvalidArgument(f"{value!r} covers every address; name a smaller network")
    return network


def normalise_ip(value: str, *, allow_network: bool = False) -> str:
    """Validated, canonical text form of an address (or network) as fail2ban should get it."""
    if isinstance(value, str) and is_canonical_ipv4(value):
        return value  # what the parse below would return, at a fraction of the cost
    parsed = parse_ip_or_network(value) if allow_network else parse_ip(value)
    return str(parsed)


def parse_count(value: str | int, *, name: str, minimum: int = 0) -> int:
    """Parse a non-negative integer setting such as maxretry."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidArgument(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise InvalidArgument(f"{name} must be at least {minimum}")
    return number


_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION_SECONDS = 100 * 365 * 86400


def parse_duration(value: str | int, *, allow_permanent: bool = True) -> int:
    """Parse ``600``, ``10m``, ``1h``, ``1d``, ``2w`` or ``-1`` (permanent) into seconds."""
    text = str(value).strip().lower()
    if text == "-1":
        if not allow_permanent:
            raise InvalidArgument("a permanent (-1) value is not allowed here")
        return -1
    match = _DURATION_RE.fullmatch(text)
    if not match:
        raise InvalidArgument(f"not a duration: {value!r} (use e.g. 600, 10m, 1h, 1d or -1)")
    seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise InvalidArgument("a duration must be positive")
    if seconds > MAX_DURATION_SECONDS:
        raise InvalidArgument("a duration must be at most 100 years")
    return seconds
