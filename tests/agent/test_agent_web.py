"""The site in agent mode (issue 10, the Django side): a real agent subprocess in front of the
real private fail2ban server, the site's state switched to go through it.

`runtime_agent` points the site's own socket, configuration directory and fail2ban-client
nowhere: every page, command and job below works only if it really goes through the agent.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from django.core.management import call_command

from jails.agent.client import AgentLink
from jails.agent.link import DirectLink
from jails.history.models import BanEvent
from jails.history.services import sync as history_service
from jails.models import AuditEntry, SiteSettings
from jails.runtime import runtime_apply, runtime_refresh
from jails.services import control as control_service
from jails.services import settings as settings_service
from jails.services.audit import Actor
from jails.services.settings import SettingsInvalid
from jails.services.setup import setup_token_ensure
from jails.session_storage import MemorySessions
from jails.state import RuntimeSettings, runtime_snapshot_build
from tests.conftest import FAIL2BAN_VERSION, wait_until
from tests.support.site_helpers import setup_post_data, site_settings_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

ACTOR = Actor(name="tester", source="command")
HX = {"HX-Request": "true"}


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


def audit() -> list[tuple[str, str, bool]]:
    entries = AuditEntry.objects.exclude(action="login").order_by("id")
    return list(entries.values_list("action", "jail", "ok"))


# The state ----------------------------------------------------------------------------------------
def test_agent_setting_builds_an_agent_link(runtime_agent, f2b_agent):
    link = runtime_agent.jail_service.client
    assert isinstance(link, AgentLink)
    assert link.location == f"agent at {f2b_agent.address}"
    info = link.hello()
    assert (info.agent_version is not None, info.fail2ban_version) == (True, FAIL2BAN_VERSION)


def test_snapshot_rebuild_keeps_the_link_unless_what_it_is_built_from_changed():
    memory = MemorySessions()
    base = RuntimeSettings(fail2ban_socket="/run/f2b.sock", fail2ban_agent="unix:/run/a.sock")
    first = runtime_snapshot_build(base, memory_sessions=memory)
    same = runtime_snapshot_build(
        replace(base, page_size=20), memory_sessions=memory, previous=first
    )
    assert same.jail_service is first.jail_service
    for change in (
        {"fail2ban_agent": "unix:/run/b.sock"},
        {"fail2ban_agent": ""},
        {"fail2ban_client": "/usr/local/bin/fail2ban-client"},
        {"fail2ban_config_dir": "/srv/fail2ban"},
    ):
        rebuilt = runtime_snapshot_build(
            replace(base, **change), memory_sessions=memory, previous=first
        )
        assert rebuilt.jail_service is not first.jail_service, change
    direct = runtime_snapshot_build(replace(base, fail2ban_agent=""), memory_sessions=memory)
    assert isinstance(direct.jail_service.client, DirectLink)
    assert isinstance(first.jail_service.client, AgentLink)


# Pages --------------------------------------------------------------------------------------------
def test_jails_list_and_jail_page_through_the_agent(runtime_agent, f2b, logged_in_client):
    f2b.client().send("set", "sshd", "banip", "203.0.113.50")
    body = logged_in_client.get("/jails/").content.decode()
    for jail in ("sshd", "nginx-http-auth", "postfix"):
        assert f'href="/jails/{jail}/"' in body
    response = logged_in_client.get("/jails/sshd/")
    assert response.status_code == 200
    assert "203.0.113.50" in response.content.decode()
    assert runtime_agent.jail_service.client.connections_opened >= 1


def test_ban_and_unban_through_the_page_via_the_agent(runtime_agent, f2b, logged_in_client):
    response = logged_in_client.post("/jails/sshd/ban/", {"ip": "203.0.113.8"}, follow=True)
    assert "Banned 203.0.113.8 in sshd." in response.content.decode()
    assert banned(f2b, "sshd") == {"203.0.113.8"}
    response = logged_in_client.post(
        "/jails/sshd/unban/", {"selected": ["203.0.113.8"]}, follow=True
    )
    assert "Unbanned 203.0.113.8 from sshd." in response.content.decode()
    assert banned(f2b, "sshd") == set()
    assert audit() == [("ban", "sshd", True), ("unban", "sshd", True)]


def test_jails_command_lists_and_bans_through_the_agent(runtime_agent, f2b):
    out = io.StringIO()
    call_command("jails", "status", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["version"] == FAIL2BAN_VERSION
    assert {row["jail"] for row in data["jails"]} == {"sshd", "nginx-http-auth", "postfix"}
    out = io.StringIO()
    call_command("jails", "ban", "postfix", "198.51.100.4", "--json", stdout=out)
    assert banned(f2b, "postfix") == {"198.51.100.4"}


# History ------------------------------------------------------------------------------------------
def test_history_sync_archives_rows_read_through_the_agent(runtime_agent, f2b):
    f2b.client().send("set", "sshd", "banip", "203.0.113.60", "203.0.113.61")
    # fail2ban writes its database from its own thread, just after answering the ban.
    wait_until(lambda: len(runtime_agent.jail_service.client.database_bans(after=0, limit=10)) >= 2)
    out = io.StringIO()
    call_command("history_sync", "--json", stdout=out)
    report = json.loads(out.getvalue())["sync"]
    assert report["dbfile"] == runtime_agent.jail_service.client.database_path()
    assert report["archived"] >= 2
    archived = set(BanEvent.objects.filter(jail="sshd").values_list("ip", flat=True))
    assert {"203.0.113.60", "203.0.113.61"} <= archived
    # An unban deletes the newest rows: the cursor check, through the agent, notices.
    f2b.client().send("set", "sshd", "unbanip", "203.0.113.61")
    wait_until(
        lambda: all(
            row[2] != "203.0.113.61"
            for row in runtime_agent.jail_service.client.database_bans(after=0, limit=10)
        )
    )
    result = history_service.history_sync(runtime_agent)
    assert result.rescanned and result.archived == 0


def test_history_sync_of_a_local_file_still_reads_it_here(runtime_agent, tmp_path):
    from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create

    path = tmp_path / "old-fail2ban.sqlite3"
    fail2ban_db_create(path, jails=["sshd"])
    fail2ban_db_add(path, [Fail2banBan("sshd", "192.0.2.77", 1_700_000_000)])
    result = history_service.history_sync(runtime_agent, dbfile=str(path))
    assert (result.dbfile, result.archived) == (str(path), 1)


def test_history_sync_of_an_unreadable_file_is_a_history_error(runtime_agent, tmp_path):
    path = tmp_path / "not-a-database"
    path.write_text("hello")
    with pytest.raises(history_service.HistoryError, match="cannot read fail2ban's database"):
        history_service.history_sync(runtime_agent, dbfile=str(path))


# Reload -------------------------------------------------------------------------------------------
def test_reload_goes_through_the_agent(runtime_agent, f2b):
    # The site's own fail2ban-client and configuration point nowhere: the agent's are used.
    f2b.client().send("set", "sshd", "maxretry", "9")
    result = control_service.server_reload(runtime_agent, actor=ACTOR, jail="sshd")
    assert f2b.client().send("get", "sshd", "maxretry") == 3
    assert result.jail == "sshd"
    assert audit() == [("reload", "sshd", True)]


# Status bar, /healthz and error pages: which one is down -----------------------------------------
def test_agent_stopped_is_told_apart(runtime_agent, f2b_agent, client, logged_in_client):
    f2b_agent.stop()
    response = client.get("/healthz")
    assert (response.status_code, response.content) == (503, b"unavailable: agent unreachable\n")
    bar = logged_in_client.get("/status-bar/").content.decode()
    assert "agent unreachable" in bar and "jailadmin agent is not reachable" in bar
    response = logged_in_client.get("/jails/")
    assert response.status_code == 503
    body = response.content.decode()
    assert f"The jailadmin agent is not reachable at {f2b_agent.address}" in body
    assert "jailadmin-agent.socket" in body
    f2b_agent.start()
    assert client.get("/healthz").status_code == 200  # and back, with no restart of the site


def test_fail2ban_stopped_behind_a_running_agent_is_told_apart(
    runtime_agent, f2b, f2b_agent, client, logged_in_client
):
    f2b.stop()
    response = client.get("/healthz")
    assert (response.status_code, response.content) == (
        503,
        b"unavailable: fail2ban unreachable\n",
    )
    bar = logged_in_client.get("/status-bar/").content.decode()
    assert "fail2ban unreachable" in bar and "agent unreachable" not in bar
    response = logged_in_client.get("/jails/")
    assert response.status_code == 503
    body = response.content.decode()
    assert f"fail2ban is not reachable behind the agent at {f2b_agent.address}" in body
    assert "The agent is running" in body


# Live checks: /settings/, the setup wizard -------------------------------------------------------
@pytest.fixture
def site(runtime, f2b) -> SiteSettings:
    """A completed setup in direct mode, applied to this process."""
    row = site_settings_create(str(f2b.socket_path))
    runtime_apply(runtime, row)
    return row


def settings_form(row: SiteSettings, **overrides: str) -> dict[str, str]:
    data = {
        "fail2ban_socket": row.fail2ban_socket,
        "fail2ban_agent": row.fail2ban_agent,
        "display_time_zone": row.display_time_zone,
        "session_lifetime_seconds": str(row.session_lifetime_seconds),
        "session_cache": row.session_cache,
        "redis_url": row.redis_url,
        "history_retention_days": str(row.history_retention_days),
    }
    data.update(overrides)
    return data


def test_settings_switch_direct_to_agent_and_back_live(site, runtime, f2b, f2b_agent, role_client):
    client = role_client("administrator")
    assert isinstance(runtime.jail_service.client, DirectLink)
    response = client.post("/settings/", settings_form(site, fail2ban_agent=f2b_agent.address))
    assert response.status_code == 302
    site.refresh_from_db()
    assert site.fail2ban_agent == f2b_agent.address
    entry = AuditEntry.objects.get(action="settings_change")
    assert entry.parameters == {"fail2ban_agent": {"from": "", "to": f2b_agent.address}}
    assert runtime_refresh(runtime)  # what every process's watcher does within a second
    assert isinstance(runtime.jail_service.client, AgentLink)
    page = client.get("/settings/").content.decode()
    assert f"through the host agent at <code>{f2b_agent.address}</code>" in page
    assert client.get("/jails/").status_code == 200

    assert client.post("/settings/", settings_form(site, fail2ban_agent="")).status_code == 302
    assert runtime_refresh(runtime)
    assert isinstance(runtime.jail_service.client, DirectLink)
    assert runtime.settings.fail2ban_agent == ""


def test_settings_refuse_an_agent_that_does_not_answer(site, runtime, role_client):
    client = role_client("administrator")
    with tempfile.TemporaryDirectory(prefix="ja-", dir="/tmp") as empty:
        address = f"unix:{empty}/agent.sock"
        body = client.post(
            "/settings/", settings_form(site, fail2ban_agent=address)
        ).content.decode()
    assert f"The jailadmin agent does not answer at {address}" in body
    body = client.post(
        "/settings/", settings_form(site, fail2ban_agent="tcp://10.0.0.1:9")
    ).content.decode()
    assert "must look like unix:/run/jailadmin/agent.sock" in body
    site.refresh_from_db()
    assert site.fail2ban_agent == "" and site.version == 1


def test_agent_check_says_when_fail2ban_behind_it_is_down(f2b, f2b_agent):
    assert (
        settings_service.fail2ban_agent_check(address=f2b_agent.address, timeout=5.0)
        == FAIL2BAN_VERSION
    )
    f2b.stop()
    with pytest.raises(SettingsInvalid, match="answers, but fail2ban does not answer behind it"):
        settings_service.fail2ban_agent_check(address=f2b_agent.address, timeout=5.0)


def test_agent_mode_does_not_check_the_socket_the_site_cannot_use(site, f2b_agent, role_client):
    # An operator's unprivileged site cannot even look at fail2ban's socket: not checked.
    response = role_client("administrator").post(
        "/settings/",
        settings_form(
            site, fail2ban_agent=f2b_agent.address, fail2ban_socket="/nonexistent/f2b.sock"
        ),
    )
    assert response.status_code == 302


@pytest.fixture
def token_file(settings, tmp_path) -> Path:
    settings.JAILADMIN_SETUP_TOKEN_FILE = tmp_path / "var" / "setup-token"
    return settings.JAILADMIN_SETUP_TOKEN_FILE


def test_setup_wizard_checks_the_agent_live_and_saves_it(
    runtime, f2b, f2b_agent, token_file, client
):
    runtime.setup_pending = True
    token = setup_token_ensure(path=token_file)
    data = setup_post_data(
        "/nonexistent/f2b.sock", token=token, fail2ban_agent=f2b_agent.address, check="1"
    )
    body = client.post("/setup/", data).content.decode()
    assert f"answers through the agent at\n      <code>{f2b_agent.address}</code>" in body
    del data["check"]
    assert client.post("/setup/", data).status_code == 302
    row = SiteSettings.objects.get()
    assert (row.setup_complete, row.fail2ban_agent) == (True, f2b_agent.address)


def test_setup_wizard_refuses_an_agent_that_is_down(runtime, f2b, f2b_agent, token_file, client):
    runtime.setup_pending = True
    f2b_agent.stop()
    data = setup_post_data(
        str(f2b.socket_path),
        token=setup_token_ensure(path=token_file),
        fail2ban_agent=f2b_agent.address,
    )
    body = client.post("/setup/", data).content.decode()
    assert f"The jailadmin agent does not answer at {f2b_agent.address}" in body
    assert not SiteSettings.objects.exists()


# System checks ------------------------------------------------------------------------------------
def test_system_check_looks_at_the_agent_socket_not_fail2bans(runtime_agent, f2b_agent):
    from jails.checks import fail2ban_socket_check

    # The site's own socket setting points nowhere: in agent mode that is not an error.
    assert fail2ban_socket_check() == []
    f2b_agent.stop()
    [warning] = fail2ban_socket_check()
    assert warning.id == "jails.W004" and str(f2b_agent.path) in warning.msg
