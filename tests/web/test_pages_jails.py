"""The jail pages against a real private fail2ban server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.test import Client

from jails.fail2ban import Fail2banUnreachable
from jails.services import jails as jail_service
from tests.conftest import point_state_at, wait_until

# Every test that uses `runtime` runs directly against fail2ban and again through the agent.
RUNTIME_MODES = ("direct", "agent")
pytestmark = pytest.mark.django_db


def test_jail_list_shows_every_jail_with_counters(runtime, f2b, logged_in_client: Client):
    f2b.client().send("set", "sshd", "banip", "203.0.113.5", "2001:db8::5")
    response = logged_in_client.get("/jails/")
    assert response.status_code == 200
    body = response.content.decode()
    for name in ("sshd", "nginx-http-auth", "postfix"):
        assert f'href="/jails/{name}/"' in body
    assert str(f2b.log_path("sshd")) in body
    # status bar: version and totals
    assert "fail2ban 1.0.2" in body
    assert "<strong>2</strong> banned now" in body
    assert "<strong>3</strong> jails" in body


def test_jail_list_sorts_by_banned_descending(runtime, f2b, logged_in_client: Client):
    f2b.client().send("set", "postfix", "banip", "203.0.113.9")
    body = logged_in_client.get("/jails/?sort=-banned").content.decode()
    assert body.index("/jails/postfix/") < body.index("/jails/sshd/")
    body = logged_in_client.get("/jails/?sort=name").content.decode()
    assert body.index("/jails/nginx-http-auth/") < body.index("/jails/postfix/")


def test_jail_list_filters_by_name(runtime, f2b, logged_in_client: Client):
    body = logged_in_client.get("/jails/?q=ngin").content.decode()
    assert "/jails/nginx-http-auth/" in body
    assert "/jails/sshd/" not in body


def test_jail_list_unknown_sort_key_falls_back_to_name(runtime, f2b, logged_in_client: Client):
    response = logged_in_client.get("/jails/?sort=__class__")
    assert response.status_code == 200


def test_jail_list_htmx_request_returns_partial_with_vary(runtime, f2b, logged_in_client):
    response = logged_in_client.get("/jails/", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="jail-table"')
    assert "<html" not in body
    assert "HX-Request" in response.headers["Vary"]
    full = logged_in_client.get("/jails/")
    assert "HX-Request" in full.headers["Vary"]
    assert "<html" in full.content.decode()


def test_jail_list_paginates(runtime, f2b, logged_in_client, settings):
    from dataclasses import replace

    runtime.snapshot_replace(settings=replace(runtime.settings, page_size=2))
    first = logged_in_client.get("/jails/").content.decode()
    assert "Page 1 of 2" in first
    second = logged_in_client.get("/jails/?page=2").content.decode()
    assert "/jails/sshd/" in second and "/jails/nginx-http-auth/" not in second


def test_jail_detail_shows_settings_and_bans_with_converted_times(runtime, f2b, logged_in_client):
    f2b.client().send("set", "sshd", "banip", "198.51.100.20")
    before = datetime.now(UTC).replace(microsecond=0)
    response = logged_in_client.get("/jails/sshd/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "198.51.100.20" in body
    assert "10m" in body  # bantime 600 s
    assert "AUTH FAIL" in body  # the filter's failregex
    assert "jailadmin-record" in body  # the action
    # The server runs in Asia/Kolkata; the page shows UTC (TIME_ZONE): the ban start must be
    # now in UTC, not five and a half hours off.
    bans = jail_service.jail_bans_list(runtime, name="sshd")
    assert abs((bans[0].banned_at - before).total_seconds()) < 120
    assert bans[0].banned_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") in body
    assert bans[0].bantime == 600
    assert "not reported by fail2ban 1.0.2" in body  # idle/backend on 1.0.2


def test_jail_detail_search_filters_bans(runtime, f2b, logged_in_client):
    f2b.client().send("set", "sshd", "banip", "198.51.100.21", "203.0.113.77")
    response = logged_in_client.get(
        "/jails/sshd/?q=203.0", headers={"HX-Request": "true", "HX-Target": "jail-bans"}
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="jail-bans"')
    assert "203.0.113.77" in body and "198.51.100.21" not in body


def test_jail_detail_paginates_many_bans(runtime, f2b, logged_in_client):
    ips = [f"10.1.{i // 250}.{i % 250 + 1}" for i in range(120)]
    f2b.client().send("set", "postfix", "banip", *ips)
    body = logged_in_client.get("/jails/postfix/?page=3").content.decode()
    assert "Page 3 of 3 (120 in all)" in body


def test_jail_detail_counters_partial(runtime, f2b, logged_in_client):
    response = logged_in_client.get(
        "/jails/sshd/", headers={"HX-Request": "true", "HX-Target": "jail-counters"}
    )
    assert response.content.decode().lstrip().startswith('<section id="jail-counters"')


def test_jail_detail_unknown_jail_is_404(runtime, f2b, logged_in_client):
    response = logged_in_client.get("/jails/nosuchjail/")
    assert response.status_code == 404
    assert "no jail named" in response.content.decode()


def test_jail_detail_invalid_name_is_404_and_nothing_sent(runtime, f2b, logged_in_client):
    response = logged_in_client.get("/jails/--all/")
    assert response.status_code == 404


def test_pages_when_fail2ban_is_down_answer_503_with_clear_message(logged_in_client):
    point_state_at("/tmp/jailadmin-no-such.sock")
    for url in ("/jails/", "/jails/sshd/"):
        response = logged_in_client.get(url)
        assert response.status_code == 503
        assert "fail2ban is not reachable at" in response.content.decode()
        assert "/tmp/jailadmin-no-such.sock" in response.content.decode()


def test_pages_when_fail2ban_hangs_answer_503_within_timeout(runtime_at, logged_in_client):
    from tests.support.fakeserver import FakeFail2ban, hang

    with FakeFail2ban(hang()) as fake:
        runtime_at(fake.path, timeout=0.3)
        response = logged_in_client.get("/jails/")
    assert response.status_code == 503


def test_htmx_request_when_fail2ban_down_returns_partial_503(runtime_at, logged_in_client):
    runtime_at("/tmp/jailadmin-no-such.sock")
    response = logged_in_client.get("/jails/", headers={"HX-Request": "true"})
    assert response.status_code == 503
    assert response.content.decode().lstrip().startswith('<section id="fail2ban-unavailable"')


def test_healthz_reports_fail2ban_state_without_login(runtime_at, client):
    assert client.get("/healthz").status_code == 200
    runtime_at("/tmp/jailadmin-no-such.sock")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert b"sock" not in response.content


def test_pages_need_login(runtime, f2b, client):
    response = client.get("/jails/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/jails/")


def test_status_bar_partial(runtime, f2b, logged_in_client):
    body = logged_in_client.get("/status-bar/").content.decode()
    assert body.lstrip().startswith('<div id="status-bar"')
    assert "fail2ban 1.0.2" in body


def test_csp_header_forbids_inline_scripts(runtime, f2b, logged_in_client):
    policy = logged_in_client.get("/jails/").headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_capability_probe_runs_once_for_20_threads(runtime, f2b):
    barrier = threading.Barrier(20)
    results = []

    def ask():
        barrier.wait()
        results.append(jail_service.capabilities_get(runtime))

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runtime.jail_service.probes_run == 1
    assert len(results) == 20 and len({id(r) for r in results}) == 1
    assert results[0].version == f2b.client().send("version")
    assert results[0].get_backend is False and results[0].get_idle is False


def test_capabilities_not_cached_while_fail2ban_is_down(runtime_at):
    state = runtime_at("/tmp/jailadmin-no-such.sock")
    with pytest.raises(Fail2banUnreachable):
        jail_service.capabilities_get(state)
    assert state.jail_service.capabilities is None


def test_log_lines_make_fail2ban_ban_and_page_shows_it(runtime, f2b, logged_in_client):
    f2b.append_failures("nginx-http-auth", ["192.0.2.44"], count=3)
    wait_until(lambda: "192.0.2.44" in f2b.client().send("get", "nginx-http-auth", "banip"))
    body = logged_in_client.get("/jails/nginx-http-auth/").content.decode()
    assert "192.0.2.44" in body


def test_jail_detail_counters_poll_sends_only_status_short(runtime_at, f2b, logged_in_client):
    from tests.support.recording_proxy import RecordingProxy

    f2b.client().send("set", "sshd", "banip", "203.0.113.8", "203.0.113.9")
    with RecordingProxy(str(f2b.socket_path)) as proxy:
        runtime_at(proxy.path, timeout=10, recorded_by=proxy)
        response = logged_in_client.get(
            "/jails/sshd/", headers={"HX-Request": "true", "HX-Target": "jail-counters"}
        )
    body = response.content.decode()
    # Every open tab polls every few seconds: one short status, no settings, no ban list.
    assert proxy.commands == [["status", "sshd", "short"]]
    assert '<span class="figure">2</span> currently banned' in body
    assert 'hx-get="/jails/sshd/"' in body


def test_jail_detail_full_page_reads_the_ban_list_once(runtime_at, f2b, logged_in_client):
    from tests.support.recording_proxy import RecordingProxy

    f2b.client().send("set", "sshd", "banip", "203.0.113.8")
    with RecordingProxy(str(f2b.socket_path)) as proxy:
        runtime_at(proxy.path, timeout=10, recorded_by=proxy)
        response = logged_in_client.get("/jails/sshd/")
    assert response.status_code == 200 and "203.0.113.8" in response.content.decode()
    assert proxy.commands.count(["get", "sshd", "banip", "--with-time"]) == 1


def test_jail_detail_10000_bans_pages_and_searches(logged_in_client):
    import shutil
    import tempfile
    from pathlib import Path

    from jails.fail2ban.server import JailSpec, PrivateServer

    # Its own server with no-op actions: 10 000 recorded actions would spawn 10 000 shells.
    base = Path(tempfile.mkdtemp(prefix="jm-", dir="/tmp"))
    server = PrivateServer(base, [JailSpec("many")], record_actions=False)
    server.start()
    try:
        ips = [f"10.2.{i // 250}.{i % 250 + 1}" for i in range(10_000)]
        client = server.client(timeout=120)
        for start in range(0, len(ips), 2000):
            client.send("set", "many", "banip", *ips[start : start + 2000])
        state = point_state_at(str(server.socket_path), timeout=60)
        page_size = state.settings.page_size
        body = logged_in_client.get("/jails/many/?page=2").content.decode()
        assert f"Page 2 of {10_000 // page_size} (10000 in all)" in body
        assert body.count('name="selected"') == page_size
        found = logged_in_client.get(
            "/jails/many/?q=10.2.39.250",
            headers={"HX-Request": "true", "HX-Target": "jail-bans"},
        ).content.decode()
        assert "<code>10.2.39.250</code>" in found and "1 in all" in found
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


# Direct mode only: pure parsing, no fail2ban call that an agent could carry.
@pytest.mark.parametrize("runtime", ["direct"], indirect=True)
def test_ban_lines_parse_only_what_is_read_and_skip_unreadable_lines(runtime):
    lines = [
        "203.0.113.1 \t2026-11-28 21:50:59 + 600 = 2026-11-28 22:00:59",
        "garbage without tabs",
        "203.0.113.3 \t2026-11-28 21:51:00 + -1 = 9999-12-31 23:59:59",
    ]
    bans = jail_service.BanLines(runtime.jail_service.server_time_zone, lines)
    assert len(bans) == 3
    assert [b.ip for b in bans[:]] == ["203.0.113.1", "203.0.113.3"]
    assert bans[2].ends_at is None
    assert [
        b.ip
        for b in jail_service.BanLines(runtime.jail_service.server_time_zone, lines, "113.3")[:]
    ] == ["203.0.113.3"]


def test_jail_page_defers_the_status_bar_and_sends_no_overview(runtime_at, f2b, logged_in_client):
    from tests.support.recording_proxy import RecordingProxy

    with RecordingProxy(str(f2b.socket_path)) as proxy:
        runtime_at(proxy.path, timeout=10, recorded_by=proxy)
        body = logged_in_client.get("/jails/sshd/").content.decode()
    # `status` + `status J short` for every jail was most of the page's cost (50 jails).
    assert ["status"] not in proxy.commands
    other_jails = {"nginx-http-auth", "postfix"}
    assert not [c for c in proxy.commands if c[0] == "status" and set(c) & other_jails]
    assert 'hx-get="/status-bar/" hx-trigger="load, every 10s"' in body
    runtime_at(str(f2b.socket_path))
    assert "fail2ban 1.0.2" in logged_in_client.get("/status-bar/").content.decode()


def test_jail_list_renders_the_status_bar_it_already_has(runtime, f2b, logged_in_client):
    body = logged_in_client.get("/jails/").content.decode()
    assert "fail2ban 1.0.2" in body and 'hx-trigger="every 10s"' in body
