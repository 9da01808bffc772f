"""Operating jails from the web pages: real fail2ban state after every action."""
# Fixtures imported by name from tests/support/fixtures_bans.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from jails.models import AuditEntry
from tests.support.fixtures_bans import quiet_f2b, quiet_server  # noqa: F401

# `fail2ban`: `make test` runs this module again on fail2ban 1.1.
# Every test that uses `runtime` runs directly against fail2ban and again through the agent.
RUNTIME_MODES = ("direct", "agent")
pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]

HX = {"HX-Request": "true"}


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


def oob_ids(body: str) -> list[str]:
    # The live regions (messages, counters) swap their content only: innerHTML (tests/a11y).
    return re.findall(r'<[a-z]+ id="([a-z-]+)"[^>]*hx-swap-oob="(?:true|innerHTML)"', body)


# Logins are audited too (by the login feature): these tests look at jail actions only.
JAIL_ACTIONS = (
    "ban",
    "unban",
    "unban_everywhere",
    "unban_jail",
    "unban_all",
    "ignore_add",
    "ignore_remove",
    "tune",
    "idle",
    "stop",
    "start",
    "reload",
)


def records() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action__in=JAIL_ACTIONS).order_by("id"))


def actions() -> list[tuple[str, str, bool]]:
    return [(e.action, e.jail, e.ok) for e in records()]


# Ban ----------------------------------------------------------------------------------------------
def test_jail_page_shows_operator_controls(runtime, f2b, logged_in_client: Client):
    f2b.client().send("set", "sshd", "banip", "203.0.113.3")
    body = logged_in_client.get("/jails/sshd/").content.decode()
    for marker in (
        'action="/jails/sshd/ban/"',
        'action="/jails/sshd/unban/"',
        'name="selected" value="203.0.113.3"',
        'action="/jails/sshd/ignore/"',
        'action="/jails/sshd/tune/"',
        'action="/jails/sshd/control/"',
        'href="/jails/sshd/bulk-ban/"',
        'href="/ip/203.0.113.3/"',
        "lost when it reloads",
    ):
        assert marker in body or marker.replace("lost when it reloads", "forgets") in body


def test_ban_form_without_htmx_bans_and_redirects_with_message(runtime, f2b, logged_in_client):
    response = logged_in_client.post("/jails/sshd/ban/", {"ip": " 203.0.113.8 "}, follow=True)
    assert response.redirect_chain == [("/jails/sshd/", 302)]
    assert "Banned 203.0.113.8 in sshd." in response.content.decode()
    assert banned(f2b, "sshd") == {"203.0.113.8"}
    assert actions() == [("ban", "sshd", True)]


def test_ban_form_with_htmx_returns_oob_fragments(runtime, f2b, logged_in_client):
    response = logged_in_client.post("/jails/sshd/ban/", {"ip": "2001:DB8::7"}, headers=HX)
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert oob_ids(body) == [
        "action-message",
        "action-confirm",
        "jail-counters",
        "jail-settings",
        "ban-form",
        "jail-ignore",
        "jail-bans",
    ]
    assert "Banned 2001:db8::7 in sshd." in body
    assert '<span class="figure">1</span> currently banned' in body
    assert banned(f2b, "sshd") == {"2001:db8::7"}


def test_ban_form_invalid_input_shows_error_and_sends_nothing(runtime, f2b, logged_in_client):
    response = logged_in_client.post("/jails/sshd/ban/", {"ip": "<script>x</script>"}, headers=HX)
    body = response.content.decode()
    assert "is not an IP address or network" in body
    assert "<script>x</script>" not in body and "&lt;script&gt;" in body
    assert banned(f2b, "sshd") == set()
    assert actions() == []


def test_ban_own_address_asks_for_confirmation_first(runtime, f2b, logged_in_client):
    # The test client connects from 127.0.0.1.
    response = logged_in_client.post("/jails/sshd/ban/", {"ip": "127.0.0.1"}, headers=HX)
    body = response.content.decode()
    assert "Ban 127.0.0.1 in sshd?" in body
    assert "this is the address you are connected from" in body
    assert 'name="confirm" value="yes"' in body
    assert banned(f2b, "sshd") == set() and actions() == []
    response = logged_in_client.post(
        "/jails/sshd/ban/", {"ip": "127.0.0.1", "confirm": "yes"}, headers=HX
    )
    assert "Banned 127.0.0.1 in sshd." in response.content.decode()
    assert banned(f2b, "sshd") == {"127.0.0.1"}
    assert actions() == [("ban", "sshd", True)]


def test_ban_ignored_address_without_htmx_shows_confirmation_page(runtime, f2b, logged_in_client):
    f2b.client().send("set", "postfix", "addignoreip", "198.51.100.0/24")
    response = logged_in_client.post("/jails/postfix/ban/", {"ip": "198.51.100.9"})
    body = response.content.decode()
    assert response.status_code == 200 and "<html" in body
    assert "on the jail&#x27;s ignore list (198.51.100.0/24)" in body
    assert banned(f2b, "postfix") == set()


def test_ban_into_stopped_jail_redirects_to_jail_list(runtime, f2b, logged_in_client):
    f2b.client().send("stop", "postfix")
    response = logged_in_client.post("/jails/postfix/ban/", {"ip": "203.0.113.1"}, follow=True)
    assert response.redirect_chain[-1][0] == "/jails/"
    assert "fail2ban has no jail named postfix" in response.content.decode()


# Unban --------------------------------------------------------------------------------------------
def test_unban_row_button_removes_row_and_updates_counters(runtime, f2b, logged_in_client):
    f2b.client().send("set", "sshd", "banip", "203.0.113.21", "203.0.113.22")
    response = logged_in_client.post(
        "/jails/sshd/unban/", {"ip": "203.0.113.21", "selected": ["203.0.113.22"]}, headers=HX
    )
    body = response.content.decode()
    assert "Unbanned 203.0.113.21 from sshd." in body
    assert 'value="203.0.113.21"' not in body and 'value="203.0.113.22"' in body
    assert '<span class="figure">1</span> currently banned' in body
    assert banned(f2b, "sshd") == {"203.0.113.22"}


def test_unban_selected_addresses(runtime, f2b, logged_in_client):
    f2b.client().send("set", "sshd", "banip", "203.0.113.31", "203.0.113.32", "203.0.113.33")
    response = logged_in_client.post(
        "/jails/sshd/unban/", {"selected": ["203.0.113.31", "203.0.113.33"]}, follow=True
    )
    assert "Unbanned 2 addresses from sshd." in response.content.decode()
    assert banned(f2b, "sshd") == {"203.0.113.32"}
    assert actions() == [("unban", "sshd", True)]


def test_unban_nothing_selected_says_so(runtime, f2b, logged_in_client):
    response = logged_in_client.post("/jails/sshd/unban/", {}, headers=HX)
    assert "Tick at least one address" in response.content.decode()
    assert actions() == []


def test_unban_all_of_jail_needs_confirmation(runtime, f2b, logged_in_client):
    f2b.client().send("set", "sshd", "banip", "203.0.113.41", "203.0.113.42")
    f2b.client().send("set", "postfix", "banip", "203.0.113.41")
    body = logged_in_client.post("/jails/sshd/unban-all/", {}, headers=HX).content.decode()
    assert "Unban all 2 addresses of sshd?" in body
    assert len(banned(f2b, "sshd")) == 2
    response = logged_in_client.post("/jails/sshd/unban-all/", {"confirm": "yes"}, follow=True)
    assert "Unbanned all 2 addresses of sshd." in response.content.decode()
    assert banned(f2b, "sshd") == set() and banned(f2b, "postfix") == {"203.0.113.41"}
    assert actions() == [("unban_jail", "sshd", True)]


# Bulk ---------------------------------------------------------------------------------------------
def test_bulk_ban_paste_reports_each_line(runtime, f2b, logged_in_client):
    f2b.client().send("set", "postfix", "banip", "198.51.100.1")
    text = "198.51.100.1\n198.51.100.2\n# comment\nbogus<b>\n198.51.100.2\n2001:db8::/64\n"
    response = logged_in_client.post("/jails/postfix/bulk-ban/", {"text": text})
    body = response.content.decode()
    assert response.status_code == 200
    assert "sent to fail2ban in 1 batch; fail2ban banned 2 new" in body
    for label, count in (("banned", 2), ("already banned", 1), ("invalid", 1), ("skipped", 1)):
        assert f'<tr><td>{label}</td><td class="num">{count}</td></tr>' in body
    assert "bogus&lt;b&gt;" in body and "duplicate of line 2" in body
    assert banned(f2b, "postfix") == {"198.51.100.1", "198.51.100.2", "2001:db8::/64"}
    [entry] = records()
    assert entry.action == "ban" and entry.ip_count == 2


def test_bulk_ban_upload_and_confirm_held_back_addresses(runtime, f2b, logged_in_client):
    f2b.client().send("set", "sshd", "addignoreip", "10.0.0.0/8")
    upload = SimpleUploadedFile("list.txt", b"10.1.1.1\n10.2.2.2\n11.1.1.1\n", "text/plain")
    body = logged_in_client.post("/jails/sshd/bulk-ban/", {"upload": upload}).content.decode()
    assert "2</strong> addresses held back" in body
    assert banned(f2b, "sshd") == {"11.1.1.1"}
    confirm_text = re.search(r'<textarea name="text" hidden[^>]*>(.*?)</textarea>', body, re.S)
    assert confirm_text is not None
    response = logged_in_client.post(
        "/jails/sshd/bulk-ban/", {"text": confirm_text.group(1), "confirm": "True"}
    )
    assert "fail2ban banned 2 new" in response.content.decode()
    assert banned(f2b, "sshd") == {"10.1.1.1", "10.2.2.2", "11.1.1.1"}
    assert [e.parameters["confirmed"] for e in records()] == [False, True]


def test_bulk_ban_refuses_both_or_neither_input(runtime, f2b, logged_in_client):
    body = logged_in_client.post("/jails/sshd/bulk-ban/", {"text": " "}).content.decode()
    assert "Paste at least one address" in body
    upload = SimpleUploadedFile("l.txt", b"10.0.0.1\n")
    body = logged_in_client.post(
        "/jails/sshd/bulk-ban/", {"text": "10.0.0.2", "upload": upload}
    ).content.decode()
    assert "not both" in body
    assert actions() == []


def test_bulk_ban_refuses_binary_upload(runtime, f2b, logged_in_client):
    upload = SimpleUploadedFile("x.bin", b"\x00\x01\x02" * 10)
    body = logged_in_client.post("/jails/sshd/bulk-ban/", {"upload": upload}).content.decode()
    assert "not a text file" in body


@pytest.mark.slow
def test_bulk_ban_100k_lines_through_the_page(quiet_f2b, logged_in_client):
    lines = [f"11.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(100_000)]  # public
    lines[500] = "not-an-address"
    upload = SimpleUploadedFile("big.txt", "\n".join(lines).encode())
    response = logged_in_client.post("/jails/bulk/bulk-ban/", {"upload": upload})
    body = response.content.decode()
    assert "fail2ban banned 99999 new" in body
    assert "Banned lines are counted, not listed" in body
    assert "not-an-address" in body
    assert len(banned(quiet_f2b, "bulk")) == 99_999
    assert len(body) < 400_000


def test_bulk_ban_over_limit_is_refused_whole(quiet_f2b, logged_in_client):
    text = "\n".join(f"10.0.{i // 256 % 256}.{i % 256}" for i in range(100_001))
    body = logged_in_client.post("/jails/bulk/bulk-ban/", {"text": text}).content.decode()
    assert "too many addresses: at most 100 000 in one go" in body
    assert banned(quiet_f2b, "bulk") == set()


# Ignore list --------------------------------------------------------------------------------------
def test_ignore_add_and_remove_from_page(runtime, f2b, logged_in_client):
    body = logged_in_client.post(
        "/jails/sshd/ignore/", {"op": "add", "ip": "192.0.2.0/24"}, headers=HX
    ).content.decode()
    assert "Added 192.0.2.0/24 to the ignore list of sshd" in body
    assert "forgets it on the next reload" in body
    assert f2b.client().send("get", "sshd", "ignoreip") == ["192.0.2.0/24"]
    logged_in_client.post("/jails/sshd/ignore/", {"op": "remove", "ip": "192.0.2.0/24"})
    assert f2b.client().send("get", "sshd", "ignoreip") == []
    assert actions() == [("ignore_add", "sshd", True), ("ignore_remove", "sshd", True)]


def test_ignore_add_invalid_value_shows_error(runtime, f2b, logged_in_client):
    body = logged_in_client.post(
        "/jails/sshd/ignore/", {"op": "add", "ip": "localhost"}, headers=HX
    ).content.decode()
    assert "“localhost” is not an IP address or network." in body
    assert f2b.client().send("get", "sshd", "ignoreip") == []


# Tune and control ---------------------------------------------------------------------------------
def test_tune_shows_change_then_applies_on_confirmation(runtime, f2b, logged_in_client):
    data = {"bantime": "2h", "findtime": "10m", "maxretry": "3"}
    body = logged_in_client.post("/jails/sshd/tune/", data, headers=HX).content.decode()
    assert "Change the settings of sshd?" in body and "bantime: 10m → 2h" in body
    assert f2b.client().send("get", "sshd", "bantime") == 600
    body = logged_in_client.post(
        "/jails/sshd/tune/", {**data, "confirm": "yes"}, headers=HX
    ).content.decode()
    assert "Changed bantime 10m → 2h on sshd." in body
    assert f2b.client().send("get", "sshd", "bantime") == 7200
    assert actions() == [("tune", "sshd", True)]


def test_tune_invalid_duration_is_explained(runtime, f2b, logged_in_client):
    body = logged_in_client.post(
        "/jails/sshd/tune/", {"bantime": "soon"}, headers=HX
    ).content.decode()
    assert "not a duration: &#x27;soon&#x27; (use e.g. 600, 10m, 1h, 1d or -1)" in body
    assert f2b.client().send("get", "sshd", "bantime") == 600


@pytest.mark.parametrize(("op", "message"), [("idle-on", "sshd is now idle.")])
def test_control_idle_with_confirmation(runtime, f2b, logged_in_client, op, message):
    body = logged_in_client.post("/jails/sshd/control/", {"op": op}, headers=HX).content.decode()
    assert "Pause sshd (idle on)?" in body
    body = logged_in_client.post(
        "/jails/sshd/control/", {"op": op, "confirm": "yes"}, headers=HX
    ).content.decode()
    assert message in body
    assert actions() == [("idle", "sshd", True)]


def test_control_stop_then_start_from_missing_jail_page(runtime, f2b, logged_in_client):
    response = logged_in_client.post(
        "/jails/postfix/control/", {"op": "stop", "confirm": "yes"}, headers=HX
    )
    assert response["HX-Redirect"] == "/jails/"
    assert "postfix" not in str(f2b.client().send("status"))
    missing = logged_in_client.get("/jails/postfix/")
    assert missing.status_code == 404
    assert 'action="/jails/postfix/control/"' in missing.content.decode()
    confirm = logged_in_client.post("/jails/postfix/control/", {"op": "start"}).content.decode()
    assert "Start postfix?" in confirm and "reloads the whole configuration" in confirm
    response = logged_in_client.post(
        "/jails/postfix/control/", {"op": "start", "confirm": "yes"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/jails/postfix/"
    assert "Started postfix by reloading the configuration." in response.content.decode()
    assert actions() == [("stop", "postfix", True), ("start", "postfix", True)]


def test_control_reload_jail(runtime, f2b, logged_in_client):
    f2b.client().send("set", "sshd", "maxretry", "8")
    body = logged_in_client.post(
        "/jails/sshd/control/", {"op": "reload", "confirm": "yes"}, headers=HX
    ).content.decode()
    assert "Reloaded sshd from the configuration." in body
    assert f2b.client().send("get", "sshd", "maxretry") == 3


# Server page --------------------------------------------------------------------------------------
def test_server_unban_everything_needs_the_typed_phrase(runtime, f2b, logged_in_client):
    f2b.client().send("set", "sshd", "banip", "203.0.113.51")
    body = logged_in_client.post("/server/unban-all/", {"phrase": "yes"}).content.decode()
    assert "Type “unban everything” to confirm." in body
    assert banned(f2b, "sshd") == {"203.0.113.51"}
    response = logged_in_client.post(
        "/server/unban-all/", {"phrase": "Unban Everything"}, follow=True
    )
    assert "Unbanned 1 address in every jail." in response.content.decode()
    assert banned(f2b, "sshd") == set()
    assert actions() == [("unban_all", "", True)]


def test_server_reload_with_confirmation(runtime, f2b, logged_in_client):
    f2b.client().send("stop", "postfix")
    body = logged_in_client.post("/server/reload/", {}).content.decode()
    assert "Reload fail2ban?" in body
    response = logged_in_client.post("/server/reload/", {"confirm": "yes"}, follow=True)
    assert "Reloaded fail2ban." in response.content.decode()
    assert "postfix" in str(f2b.client().send("status"))


# /ip/<address>/ -----------------------------------------------------------------------------------
def test_ip_page_lists_jails_with_times_and_actions(runtime, f2b, logged_in_client):
    f2b.client().send("set", "sshd", "banip", "203.0.113.60")
    f2b.client().send("set", "postfix", "banip", "203.0.113.0/24")
    body = logged_in_client.get("/ip/203.0.113.60/").content.decode()
    assert 'href="/jails/sshd/"' in body and 'href="/jails/postfix/"' in body
    assert "a network containing it" in body
    assert "Unban 203.0.113.60 in every jail" in body
    assert "<time datetime=" in body


def test_ip_page_canonicalises_and_rejects_garbage(runtime, f2b, logged_in_client):
    response = logged_in_client.get("/ip/2001:DB8:0::1/")
    assert response.status_code == 302 and response["Location"] == "/ip/2001:db8::1/"
    response = logged_in_client.get("/ip/not-an-ip/")
    assert response.status_code == 404
    assert "is not an IP address or network" in response.content.decode()


def test_ip_page_network_url(runtime, f2b, logged_in_client):
    f2b.client().send("set", "sshd", "banip", "198.51.100.77")
    body = logged_in_client.get("/ip/198.51.100.0/24/").content.decode()
    assert "198.51.100.77" in body and "inside this network" in body


def test_header_search_redirects_to_ip_page(runtime, f2b, logged_in_client):
    page = logged_in_client.get("/jails/").content.decode()
    assert 'action="/ip/"' in page and 'name="q"' in page
    response = logged_in_client.get("/ip/", {"q": " 203.0.113.9 "})
    assert response.status_code == 302 and response["Location"] == "/ip/203.0.113.9/"
    response = logged_in_client.get("/ip/", {"q": "evil<script>"})
    assert response.status_code == 400
    assert "evil&lt;script&gt;" in response.content.decode()


def test_ip_page_unban_everywhere_and_ban_and_whitelist(runtime, f2b, logged_in_client):
    for jail in ("sshd", "postfix"):
        f2b.client().send("set", jail, "banip", "203.0.113.70")
    body = logged_in_client.post(
        "/ip/203.0.113.70/unban/", {"jail": "*"}, headers=HX
    ).content.decode()
    assert oob_ids(body) == ["ip-message", "ip-confirm", "ip-live"]
    assert "Unbanned 203.0.113.70 from every jail." in body
    assert banned(f2b, "sshd") == set() and banned(f2b, "postfix") == set()
    logged_in_client.post("/ip/203.0.113.70/ban/", {"jail": "postfix"})
    assert banned(f2b, "postfix") == {"203.0.113.70"}
    logged_in_client.post("/ip/203.0.113.70/ignore/", {"jail": "sshd"})
    assert f2b.client().send("get", "sshd", "ignoreip") == ["203.0.113.70"]
    body = logged_in_client.post(
        "/ip/203.0.113.70/ban/", {"jail": "sshd"}, headers=HX
    ).content.decode()
    assert "Ban 203.0.113.70 in sshd?" in body and banned(f2b, "sshd") == set()
    assert actions() == [
        ("unban_everywhere", "", True),
        ("ban", "postfix", True),
        ("ignore_add", "sshd", True),
    ]


def test_ip_page_unban_network_entry_from_one_jail(runtime, f2b, logged_in_client):
    f2b.client().send("set", "postfix", "banip", "203.0.113.0/24")
    logged_in_client.post("/ip/203.0.113.80/unban/", {"jail": "postfix", "entry": "203.0.113.0/24"})
    assert banned(f2b, "postfix") == set()


# Permissions, CSRF, failures ----------------------------------------------------------------------
MUTATING_POSTS = [
    ("/jails/sshd/ban/", {"ip": "203.0.113.99"}),
    ("/jails/sshd/bulk-ban/", {"text": "203.0.113.99"}),
    ("/jails/sshd/unban/", {"ip": "203.0.113.98"}),
    ("/jails/sshd/unban-all/", {"confirm": "yes"}),
    ("/jails/sshd/ignore/", {"op": "add", "ip": "203.0.113.99"}),
    ("/jails/sshd/tune/", {"bantime": "1h", "confirm": "yes"}),
    ("/jails/sshd/control/", {"op": "stop", "confirm": "yes"}),
    ("/ip/203.0.113.98/unban/", {"jail": "*"}),
    ("/ip/203.0.113.99/ban/", {"jail": "sshd"}),
    ("/ip/203.0.113.99/ignore/", {"jail": "sshd"}),
    ("/server/reload/", {"confirm": "yes"}),
    ("/server/unban-all/", {"phrase": "unban everything"}),
]


def test_viewer_sees_no_controls_and_gets_403_on_every_mutating_url(runtime, f2b, role_client):
    f2b.client().send("set", "sshd", "banip", "203.0.113.98")
    viewer = role_client("viewer")
    page = viewer.get("/jails/sshd/").content.decode()
    assert "203.0.113.98" in page
    main = page.split('<main id="main"', 1)[1]
    assert 'method="post"' not in main and "hx-post" not in main
    ip_page = viewer.get("/ip/203.0.113.98/").content.decode()
    assert 'method="post"' not in ip_page.split('<main id="main"', 1)[1]
    for url, data in MUTATING_POSTS:
        assert viewer.post(url, data).status_code == 403, url
    assert viewer.get("/jails/sshd/bulk-ban/").status_code == 403
    assert viewer.get("/server/").status_code == 403
    assert banned(f2b, "sshd") == {"203.0.113.98"}
    assert f2b.client().send("get", "sshd", "ignoreip") == []
    assert actions() == []


def test_operator_role_can_act(runtime, f2b, role_client):
    operator = role_client("operator")
    operator.post("/jails/sshd/ban/", {"ip": "203.0.113.97"})
    assert banned(f2b, "sshd") == {"203.0.113.97"}
    [entry] = records()
    assert entry.actor == operator.user.username and entry.user_id == operator.user.pk
    assert entry.source == "web" and entry.address == "127.0.0.1"


def test_posts_without_csrf_token_are_refused(runtime, f2b, role_client):
    operator = role_client("operator", csrf=True)
    for url, data in MUTATING_POSTS:
        assert operator.post(url, data).status_code == 403, url
    assert banned(f2b, "sshd") == set() and actions() == []


def test_get_on_mutating_url_is_not_allowed(runtime, f2b, logged_in_client):
    assert logged_in_client.get("/jails/sshd/ban/?ip=203.0.113.1").status_code == 405
    assert banned(f2b, "sshd") == set()


def test_invalid_jail_name_in_action_url_is_404(runtime, f2b, logged_in_client):
    assert logged_in_client.post("/jails/--all/ban/", {"ip": "203.0.113.1"}).status_code == 404
    assert logged_in_client.get("/jails/..x/bulk-ban/").status_code == 404
    assert actions() == []


def test_actions_when_fail2ban_is_down_answer_503_not_500(runtime_at, logged_in_client):
    runtime_at("/tmp/jailadmin-no-such.sock")
    for url, data in MUTATING_POSTS:
        response = logged_in_client.post(url, data)
        assert response.status_code in (200, 302, 503), (url, response.status_code)
    response = logged_in_client.post("/jails/sshd/ban/", {"ip": "203.0.113.1"})
    assert response.status_code == 503
    assert "fail2ban is not reachable" in response.content.decode()
    assert logged_in_client.get("/ip/203.0.113.1/").status_code == 503
    # An action that reached its service is on record as failed.
    assert ("unban", "sshd", False) in actions()
