"""Who may scrape /metrics: a bearer token, a list of allowed addresses, or both."""

from __future__ import annotations

import enum
import hmac
import ipaddress
from collections.abc import Sequence


class Access(enum.Enum):
    """The outcome of the check; the view turns each into a status with no details."""

    OFF = "off"  # neither a token nor addresses are configured: /metrics does not exist
    ALLOWED = "allowed"
    ADDRESS_REFUSED = "address refused"
    TOKEN_REFUSED = "token refused"


def metrics_access(
    *, token: str, allowed: Sequence[str], client_address: str, authorization: str
) -> Access:
    """Whether a scrape from `client_address` with this Authorization header may proceed.

    With both a token and addresses configured, a scrape needs both: the token alone would
    let it leak from anywhere, the addresses alone trust everyone on that network.
    """
    if not token and not allowed:
        return Access.OFF
    if allowed and not _address_allowed(client_address, allowed):
        return Access.ADDRESS_REFUSED
    if token and not _token_matches(authorization, token):
        return Access.TOKEN_REFUSED
    return Access.ALLOWED


def _address_allowed(address: str, allowed: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    # An IPv4 client seen through an IPv6 socket (::ffff:192.0.2.1) is that IPv4 address.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(entry, strict=False) for entry in allowed)


def _token_matches(authorization: str, token: str) -> bool:
    scheme, _, presented = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        # Still compare, so a missing header costs the same as a wrong token.
        presented = ""
    # compare_digest takes the same time whatever the first differing byte (bytes: it
    # refuses non-ASCII str, and a header may hold anything).
    return hmac.compare_digest(presented.strip().encode(), token.encode())
