"""The hold-back reasons and an entry's problem as a page shows them (issue 16).

The services keep these texts English for the audit log, the report's lines and --json; a
page passes its `translate` (gettext) and gets every fixed part of the sentence through it,
variables (addresses, sizes, bounds) filled in afterwards. A marker function stands in for
a catalogue here: it shows which parts went through `translate` and that the English
default is untouched.
"""

from __future__ import annotations

import pytest

from jails.services import bans as ban_service
from jails.services.audit import Actor
from jails.services.operations import (
    entry_parse,
    entry_problem,
    special_use_reason,
    width_reason,
)

ACTOR = Actor(name="tester", source="web", address="198.51.100.250")


def marked(text: str) -> str:
    return f"«{text}»"


def test_special_use_reason_of_an_address_goes_through_translate():
    assert special_use_reason("10.1.2.3", translate=marked) == (
        "«a private address (often the operators' own network)»"
    )
    # The default is the English text itself, unchanged.
    assert special_use_reason("10.1.2.3") == "a private address (often the operators' own network)"


def test_special_use_reason_of_a_network_translates_the_sentence_and_the_kind():
    assert special_use_reason("169.254.0.0/16", translate=marked) == (
        "«this network includes «a link-local address (the local network segment)»: its first "
        "address, 169.254.0.0»"
    )


def test_width_reason_translates_the_sentence_and_fills_in_the_numbers():
    assert width_reason("11.0.0.0/8", min_prefix_v4=16, min_prefix_v6=48, translate=marked) == (
        "«a wide network (16 777 216 addresses), wider than the /16 bound»"
    )
    assert width_reason("2a00::/40", min_prefix_v4=16, min_prefix_v6=48, translate=marked) == (
        "«a wide network (2^88 addresses), wider than the /48 bound»"
    )


@pytest.mark.parametrize(
    ("text", "allow_network", "says"),
    [
        ("", True, "Enter an address or network."),
        ("localhost", True, "“localhost” is not an IP address or network."),
        ("192.0.2.0/24", False, "“192.0.2.0/24” is not an IP address."),
        ("1" * 70, True, f"“{'1' * 70}” is too long to be an address."),
    ],
)
def test_entry_problem_is_one_whole_sentence_per_kind(text, allow_network, says):
    entry = entry_parse(text, allow_network=allow_network)
    assert not entry.valid
    assert entry_problem(entry) == says


@pytest.mark.django_db
def test_ban_confirmations_pass_every_reason_through_translate(runtime, f2b):
    f2b.client().send("set", "sshd", "addignoreip", "10.1.0.0/16")
    own = Actor(name="tester", source="web", address="192.168.7.7")
    lines = ["192.168.7.7", "192.168.7.0/24", "10.1.2.3", "100.64.1.1"]
    shown = ban_service.ban_confirmations(
        runtime, jail="sshd", lines=lines, actor=own, translate=marked
    )
    assert shown == {
        "192.168.7.7": "«this is the address you are connected from»",
        "192.168.7.0/24": (
            "«this network contains the address you are connected from (192.168.7.7)»"
        ),
        "10.1.2.3": "«on the jail's ignore list (10.1.0.0/16)»",
        "100.64.1.1": "«a carrier-grade NAT address (100.64.0.0/10: many customers behind one)»",
    }
    # Without `translate` (the report, the command, --json): the English text.
    english = ban_service.ban_confirmations(runtime, jail="sshd", lines=lines, actor=own)
    assert english["192.168.7.0/24"] == (
        "this network contains the address you are connected from (192.168.7.7)"
    )
