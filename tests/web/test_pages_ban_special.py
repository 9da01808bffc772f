"""Wide and special-use bans on the pages (issue 17): the jail page and /ip/ (with and
without HTMX) ask first with the reason, the bulk page holds them back with the reason and
offers to ban them too. fail2ban's real state is asserted: nothing banned until confirmed."""
# Fixtures imported by name from tests/support/fixtures_bans.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

import html
import re

import pytest

from jails.models import AuditEntry

# Every test that uses `runtime` runs directly against fail2ban and again through the agent.
RUNTIME_MODES = ("direct", "agent")
pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}

# One address per class held back, with what the page must say about it. (The test client
# connects from 127.0.0.1, so loopback is 127.0.0.2 here: 127.0.0.1 is "your own address".)
CLASSES = [
    ("10.1.2.3", "a private address"),
    ("fd00::7", "a private address"),
    ("127.0.0.2", "a loopback address"),
    ("fe80::1", "a link-local address"),
    ("100.64.0.1", "a carrier-grade NAT address"),
    ("224.0.0.1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("0.0.0.0", "the unspecified address"),
    ("172.16.0.0/12", "this network includes a private address"),
    ("11.0.0.0/8", "a wide network (16 777 216 addresses), wider than the /16 bound"),
    ("2a00::/32", "a wide network (2^96 addresses), wider than the /48 bound"),
]


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


def ban_records() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action="ban").order_by("id"))


def text_of(response) -> str:
    return html.unescape(response.content.decode())


# The jail page's ban form ---------------------------------------------------------------------
@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "full-page"])
@pytest.mark.parametrize(("address", "says"), CLASSES)
def test_jail_ban_asks_first_with_the_reason(runtime, f2b, logged_in_client, address, says, htmx):
    headers = HX if htmx else {}
    response = logged_in_client.post("/jails/sshd/ban/", {"ip": address}, headers=headers)
    assert response.status_code == 200  # the confirmation step, not a redirect
    body = text_of(response)
    assert f"Ban {address} in sshd?" in body
    assert f"{address}: {says}" in body
    assert 'name="confirm" value="yes"' in body and "Ban anyway" in body
    assert banned(f2b, "sshd") == set() and ban_records() == []

    response = logged_in_client.post(
        "/jails/sshd/ban/", {"ip": address, "confirm": "yes"}, headers=headers, follow=not htmx
    )
    assert f"Banned {address} in sshd." in text_of(response)
    assert banned(f2b, "sshd") == {address}
    [record] = ban_records()
    assert record.ok and record.parameters["confirmed"] is True


@pytest.mark.parametrize("address", ["203.0.113.77", "2001:db8::5", "198.51.100.0/24"])
def test_jail_ban_of_documentation_addresses_needs_no_confirmation(
    runtime, f2b, logged_in_client, address
):
    body = text_of(logged_in_client.post("/jails/sshd/ban/", {"ip": address}, headers=HX))
    assert f"Banned {address} in sshd." in body and "Ban anyway" not in body
    assert banned(f2b, "sshd") == {address}


def test_jail_ban_of_slash_zero_is_refused_even_confirmed(runtime, f2b, logged_in_client):
    body = text_of(
        logged_in_client.post("/jails/sshd/ban/", {"ip": "0.0.0.0/0", "confirm": "yes"}, headers=HX)
    )
    assert "“0.0.0.0/0” is not an IP address or network." in body
    assert banned(f2b, "sshd") == set() and ban_records() == []


# /ip/<address>/ban/ ------------------------------------------------------------------------------
@pytest.mark.parametrize("htmx", [True, False], ids=["htmx", "full-page"])
@pytest.mark.parametrize(("address", "says"), CLASSES)
def test_ip_page_ban_asks_first_with_the_reason(
    runtime, f2b, logged_in_client, address, says, htmx
):
    headers = HX if htmx else {}
    url = f"/ip/{address}/ban/"
    response = logged_in_client.post(url, {"jail": "postfix"}, headers=headers)
    assert response.status_code == 200
    body = text_of(response)
    assert f"Ban {address} in postfix?" in body and f"{address}: {says}" in body
    assert banned(f2b, "postfix") == set() and ban_records() == []

    response = logged_in_client.post(
        url, {"jail": "postfix", "confirm": "yes"}, headers=headers, follow=not htmx
    )
    assert f"Banned {address} in postfix." in text_of(response)
    assert banned(f2b, "postfix") == {address}


# The bulk page -----------------------------------------------------------------------------------
def test_bulk_ban_holds_back_each_class_with_its_reason_then_bans_them(
    runtime, f2b, logged_in_client
):
    public = ["203.0.113.10", "2001:db8::10", "8.8.4.4"]
    text = "\n".join([*public, *(address for address, _ in CLASSES)])
    body = text_of(logged_in_client.post("/jails/sshd/bulk-ban/", {"text": text}))
    assert banned(f2b, "sshd") == set(public)
    assert f"{len(CLASSES)}</strong> addresses held back until you confirm" in body
    for address, says in CLASSES:
        row = re.search(
            rf"<code>{re.escape(address)}</code></td><td>skipped</td>.*?</tr>", body, re.S
        )
        assert row is not None, address
        assert f"{says}" in row.group(0) and "needs confirmation" in row.group(0), address

    held = re.search(r'<textarea name="text" hidden[^>]*>(.*?)</textarea>', body, re.S)
    assert held is not None
    assert held.group(1).split("\n") == [address for address, _ in CLASSES]
    response = logged_in_client.post(
        "/jails/sshd/bulk-ban/", {"text": held.group(1), "confirm": "True"}
    )
    assert f"fail2ban banned {len(CLASSES)} new" in text_of(response)
    assert banned(f2b, "sshd") == set(public) | {address for address, _ in CLASSES}
    assert [r.parameters["confirmed"] for r in ban_records()] == [False, True]


def test_bulk_page_states_the_bounds(runtime, f2b, logged_in_client):
    body = text_of(logged_in_client.get("/jails/sshd/bulk-ban/"))
    assert "networks wider than /16 (IPv6: /48) are held back" in body
