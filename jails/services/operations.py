"""What every operating action shares: parsing address lists and its one audit record.

The ban, unban, ignore-list and control services all take raw text from a form, a command
line or stdin, turn it into validated, canonical addresses here, and record exactly one
audit entry per action (written as "started" before it runs, completed after), whether it
worked, was refused as invalid, or failed in fail2ban.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

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
        return Entry(number, "", error="empty")
    if len(raw) > MAX_ENTRY_LENGTH:
        return Entry(number, _echo(raw), error="too long to be an address")
    try:
        address = normalise_ip(raw, allow_network=allow_network)
    except InvalidArgument:
        kind = "an IP address or network" if allow_network else "an IP address"
        return Entry(number, raw, error=f"not {kind}")
    return Entry(number, raw, address=address)


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
    ok: bool = True
    error: str = ""


@contextmanager
def audited(*, actor: Actor, action: str, jail: str = "") -> Iterator[AuditDraft]:
    """Audit the action in the block: its intent before it runs, its result after.

    The record is written (and, outside a transaction, committed) before the block runs,
    so an action is never unaudited: if the process dies mid-action the record stays
    "started"; if the database cannot take the intent, the action does not run. The result
    (ok, refused or failed) is stored when the block ends; a database error at that point
    is logged and never replaces the action's own result or exception.

    A Fail2banError (refused input or a failure in fail2ban) is recorded and re-raised;
    the block may also mark the draft as failed itself and return normally.
    """
    entry = audit_start(actor=actor, action=action, jail=jail[:64])
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
