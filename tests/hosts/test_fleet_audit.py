"""Audit records name the host (issue 12, item 4): an action through a host-scoped state is
recorded with that host, the audit page filters by host in a fleet, a role limited to some
hosts sees only their records, and the archive explains a manual ban only by an audit
record of the same host. Real private fail2ban servers play the hosts."""

from __future__ import annotations

import importlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from jails.fail2ban.server import JailSpec, PrivateServer
from jails.history.models import BanEvent
from jails.history.services import sync as history
from jails.hosts.models import LOCAL_HOST, Host
from jails.hosts.services import fleet
from jails.models import AuditEntry
from jails.roles import VIEWER
from jails.services import bans as ban_service
from jails.services import control
from jails.services.audit import Actor, audit_record
from jails.state import RuntimeState
from tests.conftest import point_state_at, user_with_role, wait_until
from tests.hosts.conftest import quiet_servers, server_ready

pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]

HOST_JAILS = (JailSpec("web", bantime="1h"),)
OPERATOR = Actor(name="oper", source=AuditEntry.Source.WEB, address="192.0.2.1")


@pytest.fixture(scope="module")
def other_server() -> Iterator[PrivateServer]:
    for servers in quiet_servers("jfa-", ["other"], HOST_JAILS):
        yield servers["other"]


@pytest.fixture
def other(other_server: PrivateServer) -> PrivateServer:
    return server_ready(other_server)


@pytest.fixture
def state(f2b: PrivateServer) -> RuntimeState:
    return point_state_at(str(f2b.socket_path), timeout=10.0)


@pytest.fixture
def web1(other: PrivateServer) -> Host:
    return Host.objects.create(name="web1", kind=Host.Kind.SOCKET, address=str(other.socket_path))


def banned(server: PrivateServer, jail: str) -> set[str]:
    return {str(ip) for ip in server.client().send("get", jail, "banip")}


def test_an_action_through_a_scoped_state_is_audited_with_its_host(
    state: RuntimeState, other: PrivateServer, web1: Host
) -> None:
    scoped = fleet.host_state(state, web1)
    report = ban_service.ips_ban(scoped, jail="web", lines=["203.0.113.40"], actor=OPERATOR)
    assert not report.error
    assert "203.0.113.40" in banned(other, "web")  # fail2ban's real state on that host
    control.ignore_add(scoped, jail="web", address="192.0.2.200", actor=OPERATOR)

    ban_service.ips_unban(state, jail=None, lines=["203.0.113.41"], actor=OPERATOR)

    records = list(AuditEntry.objects.order_by("id").values_list("action", "host", "ok"))
    assert records == [
        ("ban", "web1", True),
        ("ignore_add", "web1", True),
        ("unban_everywhere", LOCAL_HOST, True),
    ]


def test_records_that_concern_no_host_stay_blank(state: RuntimeState) -> None:
    entry = audit_record(actor=OPERATOR, action="settings_change", parameters={"x": 1})
    assert AuditEntry.objects.get(pk=entry.pk).host == ""


@pytest.fixture
def fleet_entries(state: RuntimeState, web1: Host) -> dict[str, AuditEntry]:
    Host.objects.create(name="web2", kind=Host.Kind.SOCKET, address="/tmp/jfa-web2-none.sock")
    return {
        "local": audit_record(actor=OPERATOR, action="ban", jail="sshd", host=LOCAL_HOST),
        "web1": audit_record(actor=OPERATOR, action="ban", jail="web", host="web1"),
        "web2": audit_record(actor=OPERATOR, action="unban", jail="web", host="web2"),
        "login": audit_record(actor=OPERATOR, action="login"),
    }


def audit_rows(client, query: str = "") -> int:
    body = client.get("/audit/" + query).content.decode()
    return body.count("<tr>") - 1  # minus the header row


def test_audit_page_has_a_host_column_and_filter_in_a_fleet(fleet_entries, role_client) -> None:
    client = role_client(VIEWER)
    page = client.get("/audit/").content.decode()
    assert '<th scope="col">Host</th>' in page
    assert 'name="host"' in page and '<option value="web2">web2</option>' in page
    assert audit_rows(client) == 5  # the four, and this client's own login
    assert audit_rows(client, "?host=web2") == 1
    only = client.get("/audit/?host=web1").content.decode()
    assert "<td>web1</td>" in only and "<td>web2</td>" not in only
    # A host that is in no record is no choice: the form refuses it, the filter is dropped.
    assert audit_rows(client, "?host=nowhere") == 5


def test_a_single_host_site_shows_no_host_column(state: RuntimeState, role_client) -> None:
    audit_record(actor=OPERATOR, action="ban", jail="sshd", host=LOCAL_HOST)
    page = role_client(VIEWER).get("/audit/").content.decode()
    assert '<th scope="col">Host</th>' not in page and 'name="host"' not in page


def test_a_viewer_limited_to_a_host_sees_its_records_and_hostless_ones(
    fleet_entries, client, django_user_model
) -> None:
    viewer = user_with_role(django_user_model, VIEWER, username="web1-only")
    limited = Group.objects.create(name="web1 viewers")
    limited.permissions.set(Group.objects.get(name=VIEWER).permissions.all())
    viewer.groups.set([limited])
    Host.objects.get(name="web1").groups.add(limited)
    client.force_login(viewer)
    page = client.get("/audit/").content.decode()
    assert "<td>web1</td>" in page
    assert "<td>web2</td>" not in page and "<td>local</td>" not in page
    assert audit_rows(client) == 3  # web1's ban and the two logins
    assert audit_rows(client, "?host=web2") == 3  # not a choice for this user: ignored


def test_the_archive_takes_a_manual_bans_actor_from_the_same_hosts_audit(
    state: RuntimeState, other: PrivateServer, web1: Host, f2b: PrivateServer
) -> None:
    """The same address banned by hand on two hosts in the same minute: only the host whose
    ban went through jailadmin names its operator."""
    scoped = fleet.host_state(state, web1)
    ban_service.ips_ban(scoped, jail="web", lines=["198.51.100.44"], actor=OPERATOR)
    other_db = other.dbfile
    # A ban someone made with fail2ban-client on the local host: no audit record.
    jail = f2b.jails[0].name
    f2b.client().send("set", jail, "banip", "198.51.100.44")

    def in_db(path: Path) -> bool:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return (
                db.execute("SELECT 1 FROM bans WHERE ip = '198.51.100.44'").fetchone() is not None
            )
        finally:
            db.close()

    wait_until(lambda: in_db(other_db) and in_db(f2b.dbfile))
    history.history_sync_hosts(state, scopes=fleet.scopes_list(state), deadline=60.0)
    events = dict(BanEvent.objects.filter(ip="198.51.100.44").values_list("host", "banned_by"))
    assert events == {"web1": "oper", LOCAL_HOST: ""}
    assert set(BanEvent.objects.filter(ip="198.51.100.44").values_list("origin", flat=True)) == {
        BanEvent.Origin.MANUAL
    }


def test_the_migration_names_the_local_host_on_earlier_host_actions(state) -> None:
    migration = importlib.import_module("jails.migrations.0004_auditentry_host")
    made = [
        audit_record(actor=OPERATOR, action=action)
        for action in ("ban", "config_restore", "login", "settings_change", "blocklist_import")
    ]
    from django.apps import apps

    migration.backfill(apps, None)
    hosts = dict(
        AuditEntry.objects.filter(pk__in=[e.pk for e in made]).values_list("action", "host")
    )
    assert hosts == {
        "ban": LOCAL_HOST,
        "config_restore": LOCAL_HOST,
        "blocklist_import": LOCAL_HOST,
        "login": "",
        "settings_change": "",
    }
