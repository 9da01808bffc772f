"""The ban history across hosts (issue 12, item 4): the archive records the host, the sync runs
per host (one failing host does not stop the others), the dashboard, /history/ and the CSV
filter by host, per-host permissions hide other hosts' bans.

Real private fail2ban servers play the hosts (Host rows of kind "socket"), both with jails of
the same names; a fake server that never answers plays a hung host.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.utils import timezone

from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create
from jails.fail2ban.server import JailSpec, PrivateServer
from jails.history.models import ROLLUP_ALL, BanEvent, BanRollup, HistorySource
from jails.history.services import sync as history
from jails.history.services.jobs import history_sync_job
from jails.hosts.models import LOCAL_HOST, Host
from jails.hosts.services import fleet
from jails.jobs import JobContext
from jails.models import SiteSettings
from jails.roles import VIEWER
from jails.state import RuntimeState
from tests.conftest import point_state_at, user_with_role, wait_until
from tests.history.test_history_sync import assert_summaries_match_archive
from tests.support.fakeserver import FakeFail2ban, hang

pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]

# Both hosts have a jail called "web": the same jail name on two hosts is two jails.
HOST_JAILS = (JailSpec("web", bantime="1h"), JailSpec("mail", bantime="1h"))
NOW = int(datetime.now(UTC).timestamp())


@pytest.fixture(scope="module")
def host_servers() -> Iterator[list[PrivateServer]]:
    base = Path(tempfile.mkdtemp(prefix="jfh-", dir="/tmp"))
    servers = [PrivateServer(base / name, HOST_JAILS, record_actions=False) for name in ("a", "b")]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def servers(host_servers: list[PrivateServer]) -> list[PrivateServer]:
    for server in host_servers:
        if not server.is_running():
            server.start()
        server.reset()
    return host_servers


@pytest.fixture
def state(f2b: PrivateServer) -> RuntimeState:
    # The local host is the session's server; a reply timeout sized for a loaded 1-core box.
    return point_state_at(str(f2b.socket_path), timeout=10.0)


@pytest.fixture
def hosts(servers: list[PrivateServer]) -> list[Host]:
    """web1 and web2: Host rows for the two servers (the site becomes a fleet)."""
    return [
        Host.objects.create(name=f"web{n}", kind=Host.Kind.SOCKET, address=str(s.socket_path))
        for n, s in enumerate(servers, start=1)
    ]


def db_rowids(server: PrivateServer) -> int:
    db = sqlite3.connect(f"file:{server.dbfile}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COALESCE(MAX(rowid), 0) FROM bans").fetchone()[0])
    finally:
        db.close()


def db_ips(server: PrivateServer) -> set[str]:
    db = sqlite3.connect(f"file:{server.dbfile}?mode=ro", uri=True)
    try:
        return {row[0] for row in db.execute("SELECT ip FROM bans")}
    finally:
        db.close()


def ban(server: PrivateServer, jail: str, ip: str) -> None:
    """A ban fail2ban makes and writes to its own database."""
    server.client().send("set", jail, "banip", ip)
    wait_until(lambda: ip in db_ips(server))


def sync_all(state: RuntimeState, *, deadline: float = 60.0) -> dict[str, fleet.HostOutcome]:
    outcomes = history.history_sync_hosts(state, scopes=fleet.scopes_list(state), deadline=deadline)
    return {outcome.name: outcome for outcome in outcomes}


def archived_hosts(ip: str) -> list[tuple[str, str, int]]:
    return sorted(BanEvent.objects.filter(ip=ip).values_list("host", "jail", "timeofban"))


def test_same_jail_same_address_same_second_on_two_hosts_is_two_bans(
    state: RuntimeState, servers: list[PrivateServer], hosts: list[Host]
) -> None:
    a, b = servers
    ban(a, "web", "203.0.113.50")
    ban(b, "web", "203.0.113.50")
    # The very same (jail, address, second) on both hosts, as fail2ban's own rows.
    for server in servers:
        fail2ban_db_add(server.dbfile, [Fail2banBan("web", "198.51.100.9", NOW - 60)])

    outcomes = sync_all(state)

    assert {name: o.error for name, o in outcomes.items()} == {
        LOCAL_HOST: "",
        "web1": "",
        "web2": "",
    }
    assert archived_hosts("198.51.100.9") == [
        ("web1", "web", NOW - 60),
        ("web2", "web", NOW - 60),
    ]
    assert [h for h, _, _ in archived_hosts("203.0.113.50")] == ["web1", "web2"]
    # Each host's cursor is its own, at the end of its own database (same path or not).
    cursors = dict(HistorySource.objects.values_list("host", "last_rowid"))
    assert cursors["web1"] == db_rowids(a)
    assert cursors["web2"] == db_rowids(b)
    assert {HistorySource.objects.get(host=h).dbfile for h in ("web1", "web2")} == {
        str(a.dbfile),
        str(b.dbfile),
    }
    # The rollups keep each host's count beside the "every host" total.
    totals = dict(
        BanRollup.objects.filter(
            grain=BanRollup.Grain.TOTAL, jail="web", country_code=ROLLUP_ALL
        ).values_list("host", "bans")
    )
    assert totals["web1"] == BanEvent.objects.filter(host="web1", jail="web").count() == 2
    assert totals["web2"] == 2
    assert totals[ROLLUP_ALL] == BanEvent.objects.filter(jail="web").count()
    assert_summaries_match_archive()

    # Again: nothing new, no duplicate.
    count = BanEvent.objects.count()
    again = sync_all(state)
    assert again["web1"].value is not None and again["web1"].value.archived == 0
    assert again["web2"].value is not None and again["web2"].value.archived == 0
    assert BanEvent.objects.count() == count

    # A new ban on web2 alone: web1's cursor does not move.
    web1_cursor = HistorySource.objects.get(host="web1").last_rowid
    ban(b, "mail", "192.0.2.77")
    third = sync_all(state)
    assert third["web1"].value is not None and third["web1"].value.archived == 0
    assert third["web2"].value is not None and third["web2"].value.archived == 1
    assert HistorySource.objects.get(host="web1").last_rowid == web1_cursor
    assert archived_hosts("192.0.2.77") == [("web2", "mail", archived_hosts("192.0.2.77")[0][2])]


def test_a_dead_host_does_not_stop_the_others_and_the_job_names_it(
    state: RuntimeState, servers: list[PrivateServer], hosts: list[Host], tmp_path: Path
) -> None:
    Host.objects.create(name="gone", kind=Host.Kind.SOCKET, address=str(tmp_path / "no.sock"))
    ban(servers[0], "web", "203.0.113.61")
    ban(servers[1], "mail", "203.0.113.62")
    ctx = JobContext(
        state=state, now=timezone.now(), should_stop=lambda: False, heartbeat=lambda: None
    )

    message = history_sync_job(ctx)

    assert "gone: FAILED" in message
    assert "web1: read" in message and "web2: read" in message
    assert archived_hosts("203.0.113.61")[0][0] == "web1"
    assert archived_hosts("203.0.113.62")[0][0] == "web2"
    gone = Host.objects.get(name="gone")
    assert gone.unreachable_since is not None and gone.last_error
    assert Host.objects.get(name="web1").unreachable_since is None

    ban(servers[1], "web", "203.0.113.63")
    again = history.fleet_history_sync(state)
    assert [(item.host, item.ok) for item in again.hosts] == [
        ("gone", False),
        (LOCAL_HOST, True),
        ("web1", True),
        ("web2", True),
    ]
    assert {item.host: item.archived for item in again.hosts}["web2"] == 1
    assert not again.all_failed and "gone: FAILED" in again.message


def test_every_host_down_is_the_jobs_failure(
    state: RuntimeState, tmp_path: Path, f2b: PrivateServer
) -> None:
    Host.objects.create(name="gone", kind=Host.Kind.SOCKET, address=str(tmp_path / "no.sock"))
    dead = point_state_at(str(tmp_path / "local-is-down.sock"), timeout=2.0)
    ctx = JobContext(
        state=dead, now=timezone.now(), should_stop=lambda: False, heartbeat=lambda: None
    )
    with pytest.raises(history.HistoryError) as failure:
        history_sync_job(ctx)
    assert "gone: FAILED" in str(failure.value) and f"{LOCAL_HOST}: FAILED" in str(failure.value)


def test_a_hung_host_is_given_up_at_the_deadline_and_the_others_archived(
    state: RuntimeState, servers: list[PrivateServer], hosts: list[Host], tmp_path: Path
) -> None:
    ban(servers[0], "web", "203.0.113.70")
    with FakeFail2ban(hang()) as fake:
        Host.objects.create(name="hung", kind=Host.Kind.SOCKET, address=str(fake.path))
        # A reply timeout far beyond the deadline: only the deadline can end the wait.
        slow = point_state_at(str(state.settings.fail2ban_socket), timeout=120.0)
        outcomes = sync_all(slow, deadline=2.0)
    assert outcomes["hung"].timed_out and "no answer within 2 s" in outcomes["hung"].error
    assert outcomes["web1"].ok and outcomes["web2"].ok
    assert archived_hosts("203.0.113.70")[0][0] == "web1"
    assert Host.objects.get(name="hung").unreachable_since is not None


def test_history_sync_command_syncs_the_named_host_or_every_host(
    state: RuntimeState, servers: list[PrivateServer], hosts: list[Host]
) -> None:
    ban(servers[0], "web", "203.0.113.81")
    ban(servers[1], "web", "203.0.113.82")
    out = io.StringIO()
    call_command("history_sync", "--host", "web2", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert list(report["hosts"]) == ["web2"] and report["sync"]["archived"] >= 1
    assert archived_hosts("203.0.113.81") == []
    assert [h for h, _, _ in archived_hosts("203.0.113.82")] == ["web2"]

    out = io.StringIO()
    call_command("history_sync", "--all-hosts", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert set(report["hosts"]) == {LOCAL_HOST, "web1", "web2"}
    assert [h for h, _, _ in archived_hosts("203.0.113.81")] == ["web1"]

    with pytest.raises(CommandError, match="no enabled host named 'nope'"):
        call_command("history_sync", "--host", "nope")


def test_history_sync_command_fails_when_a_host_fails_after_syncing_the_rest(
    state: RuntimeState, servers: list[PrivateServer], hosts: list[Host], tmp_path: Path
) -> None:
    Host.objects.create(name="gone", kind=Host.Kind.SOCKET, address=str(tmp_path / "no.sock"))
    ban(servers[0], "web", "203.0.113.91")
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 of 4 hosts could not be synced"):
        call_command("history_sync", stdout=io.StringIO(), stderr=err)
    assert "history sync failed on gone:" in err.getvalue()
    assert [h for h, _, _ in archived_hosts("203.0.113.91")] == ["web1"]


# --- Pages ---------------------------------------------------------------------------------------
@pytest.fixture
def fleet_archive(state: RuntimeState, tmp_path: Path) -> list[Host]:
    """Archived bans of the local host and of web1 and web2, read from database files (the
    `--dbfile` path: no host is asked), web2's hosts in another country's range too."""
    SiteSettings.objects.update_or_create(singleton=1, defaults={"setup_complete": True})
    rows = {
        LOCAL_HOST: [Fail2banBan("sshd", "203.0.113.1", NOW - 600)],
        "web1": [
            Fail2banBan("web", "198.51.100.1", NOW - 700),
            Fail2banBan("web", "198.51.100.2", NOW - 800),
        ],
        "web2": [
            Fail2banBan("web", "198.51.100.1", NOW - 700),
            Fail2banBan("mail", "192.0.2.3", NOW - 900),
            Fail2banBan("mail", "192.0.2.4", NOW - 2 * 86400),
        ],
    }
    made = []
    for name, bans in rows.items():
        if name == LOCAL_HOST:
            host = fleet.local_host()
        else:
            host = Host.objects.create(
                name=name, kind=Host.Kind.SOCKET, address=str(tmp_path / f"{name}.sock")
            )
        path = tmp_path / f"{name}.sqlite3"
        fail2ban_db_create(path)
        fail2ban_db_add(path, bans)
        history.history_sync(fleet.host_state(state, host), dbfile=str(path))
        made.append(host)
    return made


def history_rows(client, query: str) -> list[dict[str, str]]:
    response = client.get("/history/export.csv" + query)
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_history_and_csv_filter_by_host_with_a_host_column(fleet_archive, logged_in_client):
    page = logged_in_client.get("/history/?window=all").content.decode()
    assert 'id="f-host"' in page and '<option value="web2">web2</option>' in page
    assert ">Host</a>" in page  # the sortable host column

    only = logged_in_client.get("/history/?window=all&host=web2").content.decode()
    assert "<strong>3</strong> bans" in only
    assert "203.0.113.1" not in only and "198.51.100.2" not in only

    rows = history_rows(logged_in_client, "?window=all")
    assert sorted((r["host"], r["ip"]) for r in rows) == [
        ("local", "203.0.113.1"),
        ("web1", "198.51.100.1"),
        ("web1", "198.51.100.2"),
        ("web2", "192.0.2.3"),
        ("web2", "192.0.2.4"),
        ("web2", "198.51.100.1"),
    ]
    assert {r["host"] for r in history_rows(logged_in_client, "?window=all&host=web1")} == {"web1"}


def test_dashboard_filters_by_host(fleet_archive, logged_in_client):
    every = logged_in_client.get("/?window=7d").content.decode()
    assert '<span class="figure">6</span> bans' in every
    web2 = logged_in_client.get("/?window=7d&host=web2").content.decode()
    assert '<span class="figure">3</span> bans' in web2
    assert '<span class="figure">3</span> unique addresses' in web2
    assert ">mail</a> busiest jail (2 bans)" in web2
    assert "· host web2" in web2
    web1_day = logged_in_client.get("/?window=24h&host=web1").content.decode()
    assert '<span class="figure">2</span> bans' in web1_day
    assert ">web</a> busiest jail (2 bans)" in web1_day


def test_a_viewer_limited_to_a_host_sees_only_its_bans(fleet_archive, client, django_user_model):
    viewer = user_with_role(django_user_model, VIEWER, username="web1-viewer")
    limited = Group.objects.create(name="web1 viewers")
    limited.permissions.set(Group.objects.get(name=VIEWER).permissions.all())
    viewer.groups.set([limited])
    Host.objects.get(name="web1").groups.add(limited)
    client.force_login(viewer)

    rows = history_rows(client, "?window=all")
    assert {r["host"] for r in rows} == {"web1"} and len(rows) == 2
    assert history_rows(client, "?window=all&host=web2") == []
    page = client.get("/history/?window=all").content.decode()
    assert '<option value="web2">' not in page and '<option value="web1">' in page
    board = client.get("/?window=7d").content.decode()
    assert '<span class="figure">2</span> bans' in board


def test_a_single_host_site_shows_no_host_ui_but_the_csv_has_the_column(
    state: RuntimeState, logged_in_client, tmp_path: Path
) -> None:
    SiteSettings.objects.update_or_create(singleton=1, defaults={"setup_complete": True})
    path = tmp_path / "f2b.sqlite3"
    fail2ban_db_create(path)
    fail2ban_db_add(path, [Fail2banBan("sshd", "203.0.113.5", NOW - 60)])
    history.history_sync(state, dbfile=str(path))
    assert not fleet.is_fleet()
    page = logged_in_client.get("/history/?window=all&host=web9").content.decode()
    assert 'id="f-host"' not in page and ">Host</a>" not in page
    assert "<strong>1</strong> ban ·" in page  # ?host= means nothing on a single host
    assert [(r["host"], r["ip"]) for r in history_rows(logged_in_client, "?window=all")] == [
        ("local", "203.0.113.5")
    ]


def test_the_ip_history_names_the_hosts_of_a_fleet(fleet_archive, logged_in_client):
    from jails.history.selectors.archive import ip_history_get

    found = ip_history_get(ip="198.51.100.1")
    assert found.by_host == [("web1", 1), ("web2", 1)] and found.other_hosts
    assert [e.host for e in ip_history_get(ip="198.51.100.1", hosts=("web2",)).events] == ["web2"]
    assert not ip_history_get(ip="203.0.113.1").other_hosts


def test_the_migration_keeps_every_ban_as_the_local_hosts(
    state: RuntimeState, tmp_path: Path
) -> None:
    """history 0003's SQL on an archive made before it: the rollups' rows become the "every
    host" totals and a copy of each the local host's (new rows get host "local" from the
    column's database default, as every ban before the fleet was the local host's)."""
    import importlib

    from django.db import connection

    migration = importlib.import_module("jails.history.migrations.0003_host")
    path = tmp_path / "f2b.sqlite3"
    fail2ban_db_create(path)
    fail2ban_db_add(
        path,
        [
            Fail2banBan("sshd", "203.0.113.9", NOW - 60),
            Fail2banBan("web", "198.51.100.9", NOW - 40 * 86400),
        ],
    )
    history.history_sync(state, dbfile=str(path))
    kept = sorted(BanRollup.objects.values_list("grain", "period", "host", "jail", "bans"))
    BanRollup.objects.exclude(host=ROLLUP_ALL).delete()  # the rollups before 0003
    with connection.cursor() as cursor:
        cursor.execute(migration.COPY_ROLLUPS)
        # A row written without a host (an older script's plain SQL) is the local host's.
        cursor.execute(
            "INSERT INTO history_banevent (jail, ip, network, timeofban, bantime, bancount, "
            "failures, matches, origin, banned_by, country_code, country_name, as_name, "
            "archived_at) VALUES ('sshd', '192.0.2.9', '192.0.2.0/24', 1, 60, 1, 0, '', "
            "'jail', '', '', '', '', '2026-01-01 00:00:00')"
        )
    assert sorted(BanRollup.objects.values_list("grain", "period", "host", "jail", "bans")) == kept
    assert set(BanEvent.objects.values_list("host", flat=True)) == {LOCAL_HOST}


def test_a_stopped_fleet_sync_returns_at_once_with_every_host_stopped(
    state: RuntimeState, servers: list[PrivateServer], hosts: list[Host]
) -> None:
    ban(servers[0], "web", "203.0.113.99")
    outcomes = history.history_sync_hosts(
        state, scopes=fleet.scopes_list(state), deadline=60.0, should_stop=lambda: True
    )
    assert [o.name for o in outcomes] == [LOCAL_HOST, "web1", "web2"]
    for outcome in outcomes:
        assert outcome.error == "stopped before it answered" or (
            outcome.value is not None and outcome.value.stopped
        )
    assert archived_hosts("203.0.113.99") == []
    # Stopping says nothing about the hosts' health.
    assert not Host.objects.filter(unreachable_since__isnull=False).exists()
