"""What every operating action shares: parsing address lists and its one audit record.

The ban, unban, ignore-list and control services all take raw text from a form, a command
line or stdin, turn it into validated, canonical addresses here, and record exactly one
audit entry per action (written as "started" before it runs, completed after), whether it
worked, was refused as invalid, or failed in fail2ban.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext, gettext_noop

from jails.fail2ban import Fail2banError, InvalidArgument
from jails.fail2ban.validation import (
    IPAddress,
    IPNetwork,
    is_canonical_ipv4,
    normalise_ip,
    parse_ip,
    parse_ip_or_network,
)
from jails.services.audit import Actor, audit_finish, audit_start

# The bulk form and the command accept at most this many addresses in one action.
MAX_ENTRIES = 100_000
# No address or network is longer than this (IPv6 with a prefix: 43 characters).
MAX_ENTRY_LENGTH = 64
# Text kept from an invalid line for the report (the rest is cut off).
MAX_ECHO_LENGTH = 80
COMMENT_MARKERS = ("#", ";")
# Why an entry is invalid (Entry.error): English, as the audit record, the command's --json
# and the bulk report's lines carry it; entry_problem() says it in the user's language.
ENTRY_EMPTY = "empty"
ENTRY_TOO_LONG = "too long to be an address"
ENTRY_NOT_ADDRESS_OR_NETWORK = "not an IP address or network"
ENTRY_NOT_ADDRESS = "not an IP address"


@dataclass(frozen=True)
class Entry:
    """One address or network from the input, with its line number, as given and normalised."""

    number: int
    text: str
    address: str = ""  # canonical form; empty when the line is invalid
    error: str = ""

    @property
    def valid(self) -> bool:
        return bool(self.address)


def _echo(text: str) -> str:
    return text if len(text) <= MAX_ECHO_LENGTH else text[: MAX_ECHO_LENGTH - 1] + "…"


def entry_parse(text: str, *, number: int = 1, allow_network: bool = True) -> Entry:
    """Validate one address (or network) and return it in the form fail2ban should get."""
    raw = text.strip() if isinstance(text, str) else ""
    if not raw:
        return Entry(number, "", error=ENTRY_EMPTY)
    if len(raw) > MAX_ENTRY_LENGTH:
        return Entry(number, _echo(raw), error=ENTRY_TOO_LONG)
    try:
        address = normalise_ip(raw, allow_network=allow_network)
    except InvalidArgument:
        error = ENTRY_NOT_ADDRESS_OR_NETWORK if allow_network else ENTRY_NOT_ADDRESS
        return Entry(number, raw, error=error)
    return Entry(number, raw, address=address)


def entry_problem(entry: Entry) -> str:
    """Why the entry is invalid, as one sentence in the request's language, for a page:
    “x” is not an IP address or network. (Empty: "Enter an address or network.")"""
    values = {"text": entry.text}
    if entry.error == ENTRY_EMPTY or not entry.text:
        return gettext("Enter an address or network.")
    if entry.error == ENTRY_TOO_LONG:
        return gettext("“%(text)s” is too long to be an address.") % values
    if entry.error == ENTRY_NOT_ADDRESS_OR_NETWORK:
        return gettext("“%(text)s” is not an IP address or network.") % values
    if entry.error == ENTRY_NOT_ADDRESS:
        return gettext("“%(text)s” is not an IP address.") % values
    return gettext("“%(text)s” is %(error)s.") % {**values, "error": entry.error}


def entries_parse(
    lines: Iterable[str], *, allow_network: bool = True, max_entries: int = MAX_ENTRIES
) -> list[Entry]:
    """Parse a pasted or uploaded list: one address per line, blank lines and comments skipped.

    A comment starts with ``#`` or ``;`` (as in Spamhaus-style lists). More than
    ``max_entries`` addresses is refused as a whole, before anything is sent.
    """
    entries: list[Entry] = []
    for number, line in enumerate(lines, start=1):
        text = line if isinstance(line, str) else str(line)
        # A bare canonical dotted quad (most lines of a bulk list) has no comment or blank
        # to cut and is already what fail2ban should get: no parse, no split, no strip.
        fast = is_canonical_ipv4(text)
        if not fast:
            for marker in COMMENT_MARKERS:
                text = text.split(marker, 1)[0]
            text = text.strip()
            if not text:
                continue
        if len(entries) >= max_entries:
            raise InvalidArgument(
                f"too many addresses: at most {max_entries:,} in one go".replace(",", " ")
            )
        if fast:
            entries.append(Entry(number, text, address=text))
        else:
            entries.append(entry_parse(text, number=number, allow_network=allow_network))
    return entries


def as_network(value: str) -> IPNetwork | None:
    """An address or network as a network (an address is a /32 or /128); None if unparseable."""
    try:
        parsed = parse_ip_or_network(value)
    except InvalidArgument:
        return None
    if isinstance(parsed, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ipaddress.ip_network(parsed)
    return parsed


# Held back until confirmed (ipaddress knows these ranges; CGNAT it calls neither private nor
# global). ipaddress also counts the documentation ranges (RFC 5737, RFC 3849) as private,
# but no real host, and so no operator, sits in them: the README, the demo's attacker and
# the tests use them as stand-ins for attackers, and holding them back would only teach
# operators to click "Ban anyway" without reading.
DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(text)
    for text in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
CGNAT_NETWORK = ipaddress.IPv4Network("100.64.0.0/10")
# The first octets of every IPv4 range ipaddress does not call global, plus multicast and
# above (224-255). A dotted quad starting with any other octet is an ordinary public
# address: a bulk list of 100 000 lines skips the ipaddress checks (~20 us each) for it.
# tests/services/test_bans_special.py proves this against ipaddress for every octet.
SPECIAL_FIRST_OCTETS = frozenset({0, 10, 100, 127, 169, 172, 192, 198, 203, *range(224, 256)})


Translate = Callable[[str], str]


def english(text: str) -> str:
    """The `translate` of the hold-back reasons for what is stored, logged or printed as
    --json: the English text itself. Pages pass gettext (the reasons are marked with
    gettext_noop, so the catalogue has them)."""
    return text


def _address_kind(address: IPAddress) -> str:
    """What kind of special-use address this is, with a hint why it matters ("" if public).

    Untranslated (gettext_noop): the caller translates the sentence it ends up in."""
    if any(address in network for network in DOCUMENTATION_NETWORKS):
        return ""
    if address.is_unspecified:
        return gettext_noop("the unspecified address (no host at all)")
    if address.is_loopback:
        return gettext_noop("a loopback address (the host itself)")
    if address.is_link_local:
        return gettext_noop("a link-local address (the local network segment)")
    if address.is_multicast:
        return gettext_noop("a multicast address (no single host)")
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT_NETWORK:
        return gettext_noop(
            "a carrier-grade NAT address (100.64.0.0/10: many customers behind one)"
        )
    # Before private: ipaddress calls 240.0.0.0/4 both, and "reserved" is what it is.
    if address.is_reserved:
        return gettext_noop("a reserved address (no host on the internet)")
    if address.is_private:
        return gettext_noop("a private address (often the operators' own network)")
    if not address.is_global:
        return gettext_noop("a special-use address (not on the public internet)")
    return ""


def special_use_reason(address: str, *, translate: Translate = english) -> str:
    """Why banning this canonical address or network could hit the operators' own network or
    no real host at all (private, loopback, CGNAT...); "" for public ones. A network counts
    when its first or last address is special-use (a wider network that holds such a range
    only in its middle is wider than /16 anyway, and held back for that: width_reason).
    `translate`: gettext for a page; English by default."""
    head, dot, _ = address.partition(".")
    # A canonical dotted quad is only digits and dots, so `head` is its first octet.
    plain_v4 = dot and ":" not in address and "/" not in address and head.isdigit()
    if plain_v4 and int(head) not in SPECIAL_FIRST_OCTETS:
        return ""
    network = as_network(address)
    if network is None:
        return ""
    if network.num_addresses == 1:
        kind = _address_kind(network.network_address)
        return translate(kind) if kind else ""
    # Which end is special-use: its first address, or (only that one) its last.
    # Translators: %(kind)s is one of the "a private address (...)" texts; %(address)s is the
    # network's first address, the one that is of that kind.
    first = gettext_noop("this network includes %(kind)s: its first address, %(address)s")
    # Translators: as above, but the network's last address is the one of that kind.
    last = gettext_noop("this network includes %(kind)s: its last address, %(address)s")
    ends = ((network.network_address, first), (network.broadcast_address, last))
    for end, sentence in ends:
        kind = _address_kind(end)
        if kind:
            return translate(sentence) % {"kind": translate(kind), "address": end}
    return ""


def width_reason(
    address: str, *, min_prefix_v4: int, min_prefix_v6: int, translate: Translate = english
) -> str:
    """Why this network is too wide to ban without asking ("" for an address or a narrow one);
    `translate`: gettext for a page, English by default."""
    if "/" not in address:
        return ""
    network = as_network(address)
    if network is None:
        return ""
    bound = min_prefix_v4 if network.version == 4 else min_prefix_v6
    if network.prefixlen >= bound:
        return ""
    if network.version == 4:
        size = f"{network.num_addresses:,}".replace(",", " ")
    else:  # 2^80 reads better than a 25-digit number
        size = f"2^{network.max_prefixlen - network.prefixlen}"
    # Translators: %(size)s is a number of addresses (65 536, or 2^80), always many.
    text = translate(
        gettext_noop("a wide network (%(size)s addresses), wider than the /%(bound)d bound")
    )
    return text % {"size": size, "bound": bound}


def operator_address(actor: Actor) -> IPAddress | None:
    """The address the acting person is connected from, if known and valid."""
    if not actor.address:
        return None
    try:
        return parse_ip(actor.address)
    except InvalidArgument:
        return None


def overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    """Whether two networks share an address (False for IPv4 against IPv6)."""
    return a.version == b.version and a.overlaps(b)


@dataclass
class AuditDraft:
    """The result an action fills in while it runs; stored in its audit record when it ends."""

    ips: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    # None: the result is not known (a host that did not answer in time: the change may
    # still have happened there); the record stays "started", with `error` saying why.
    ok: bool | None = True
    error: str = ""


@contextmanager
def audited(
    *, actor: Actor, action: str, jail: str = "", host: str = "local"
) -> Iterator[AuditDraft]:
    """Audit the action in the block: its intent before it runs, its result after.

    The record is written (and, outside a transaction, committed) before the block runs,
    so an action is never unaudited: if the process dies mid-action the record stays
    "started"; if the database cannot take the intent, the action does not run. The result
    (ok, refused or failed) is stored when the block ends; a database error at that point
    is logged and never replaces the action's own result or exception.

    A Fail2banError (refused input or a failure in fail2ban) is recorded and re-raised;
    the block may also mark the draft as failed itself and return normally. `host` is the
    host the action goes to: `state.snapshot.host` of the (possibly host-scoped) state.
    """
    entry = audit_start(actor=actor, action=action, jail=jail[:64], host=host)
    draft = AuditDraft()
    try:
        yield draft
    except Fail2banError as exc:
        draft.ok = False
        draft.error = str(exc)
        raise
    except Exception as exc:
        draft.ok = False
        draft.error = f"internal error: {type(exc).__name__}"
        raise
    except BaseException as exc:
        # SystemExit (gunicorn aborting a timed-out worker), KeyboardInterrupt: the action
        # stopped part-way, which is not a success.
        draft.ok = False
        draft.error = f"interrupted: {type(exc).__name__}"
        raise
    finally:
        audit_finish(
            entry, ips=draft.ips, parameters=draft.parameters, ok=draft.ok, error=draft.error
        )
