"""Per-host limits in the Django admin (issue 12): a user whose role holds on some hosts only
(a group given hosts, jails.hosts.permissions) sees and acts on those hosts' rows alone, in
every admin page whose rows belong to a host, and no host-limited user edits Host rows.

Two quiet private fail2ban servers are the hosts h1 and h2 (kind "socket"); the archived-ban
action's effect is checked in fail2ban itself on both.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jails.blocklists.models import BlocklistSource, ImportRun
from jails.configuration.models import ConfigVersion
from jails.fail2ban.server import JailSpec, PrivateServer
from jails.history.models import BanEvent
from jails.hosts.models import Host
from jails.models import AuditEntry, SiteSettings
from jails.roles import ADMINISTRATOR, OPERATOR, VIEWER
from tests.hosts.conftest import quiet_servers, server_ready

pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]

HOSTS = ("h1", "h2")
ADDRESS = {"h1": "203.0.113.1", "h2": "203.0.113.2"}


@pytest.fixture(scope="module")
def limit_servers() -> Iterator[dict[str, PrivateServer]]:
    yield from quiet_servers("jal-", HOSTS, (JailSpec("sshd", bantime="1h"),))


@pytest.fixture
def hosts(limit_servers: dict[str, PrivateServer]) -> dict[str, PrivateServer]:
    """h1 and h2 (reset) as enabled Host rows; the site's setup done."""
    SiteSettings.objects.update_or_create(
        singleton=1, defaults={"setup_complete": True, "fail2ban_socket": "/tmp/nowhere.sock"}
    )
    for name, server in limit_servers.items():
        server_ready(server)
        Host.objects.create(name=name, kind=Host.Kind.SOCKET, address=str(server.socket_path))
    return limit_servers


@pytest.fixture
def rows(hosts: dict[str, PrivateServer]) -> dict[str, dict[str, int]]:
    """One row per host in every host-bound admin page, each with a mark naming its host:
    {model: {host: pk}}. Also one audit record that concerns no host (pk under "")."""
    made: dict[str, dict[str, int]] = {
        "banevent": {},
        "auditentry": {},
        "configversion": {},
        "importrun": {},
    }
    for name in HOSTS:
        made["banevent"][name] = BanEvent.objects.create(
            host=name,
            jail="sshd",
            ip=ADDRESS[name],
            network="203.0.113.0/24",
            timeofban=1_700_000_000,
            bantime=3600,
        ).pk
        made["auditentry"][name] = AuditEntry.objects.create(
            actor="someone", source="web", action="ban", host=name, jail=f"jail-of-{name}"
        ).pk
        made["configversion"][name] = ConfigVersion.objects.create(
            host=name, path=f"jail.d/file-of-{name}.local", source="site"
        ).pk
        made["importrun"][name] = ImportRun.objects.create(
            label=f"run-of-{name}", jail="sshd", host=name, trigger="web", started_at=timezone.now()
        ).pk
    made["auditentry"][""] = AuditEntry.objects.create(
        actor="someone", source="web", action="login", jail="jail-of-no-host"
    ).pk
    return made


MARKS = {
    "banevent": ("history", lambda host: ADDRESS[host]),
    "auditentry": ("jails", lambda host: f"jail-of-{host or 'no-host'}"),
    "configversion": ("configuration", lambda host: f"jail.d/file-of-{host}.local"),
    "importrun": ("blocklists", lambda host: f"run-of-{host}"),
}


def limited_client(django_user_model, role: str, host: str, *, also: str = "") -> Client:
    """A staff client whose `role` holds on `host` only (a group given that host), and
    `also` (a role) on every host."""
    group = Group.objects.create(name=f"{role}s of {host}")
    group.permissions.set(Group.objects.get(name=role).permissions.all())
    Host.objects.get(name=host).groups.add(group)
    user = django_user_model.objects.create_user(f"{role}-{host}", password="x", is_staff=True)
    user.groups.add(group)
    if also:
        user.groups.add(Group.objects.get(name=also))
    client = Client()
    client.force_login(user)
    return client


def banned(server: PrivateServer) -> set[str]:
    return {str(ip) for ip in server.client().send("get", "sshd", "banip")}


def test_a_limited_operator_sees_only_their_hosts_rows_on_every_host_bound_page(
    rows, django_user_model, role_client
):
    limited = limited_client(django_user_model, OPERATOR, "h1")
    everywhere = role_client(OPERATOR, username="op-everywhere", staff=True)
    for model, (app, mark) in MARKS.items():
        listing = reverse(f"admin:{app}_{model}_changelist")
        page = limited.get(listing)
        assert page.status_code == 200, model
        text = page.content.decode()
        assert mark("h1") in text, model
        assert mark("h2") not in text, model
        # Nor is h2 offered as a filter choice.
        assert "host=h2" not in text, model
        # The same page for an operator of every host shows both: the limit is what hides h2.
        full = everywhere.get(listing).content.decode()
        assert mark("h1") in full and mark("h2") in full, model

        change = f"admin:{app}_{model}_change"
        assert limited.get(reverse(change, args=[rows[model]["h1"]])).status_code == 200
        # Another host's row answers like one that does not exist: nothing given away.
        assert limited.get(reverse(change, args=[rows[model]["h2"]])).status_code == 404
        assert (
            limited.get(
                reverse(f"admin:{app}_{model}_history", args=[rows[model]["h2"]])
            ).status_code
            == 404
        )
        assert everywhere.get(reverse(change, args=[rows[model]["h2"]])).status_code == 200

    # Audit records that concern no host (logins, settings) are every reader's, as on /audit/.
    audit = limited.get(reverse("admin:jails_auditentry_changelist")).content.decode()
    assert "jail-of-no-host" in audit
    no_host = reverse("admin:jails_auditentry_change", args=[rows["auditentry"][""]])
    assert limited.get(no_host).status_code == 200


def test_the_archived_ban_action_never_reaches_a_host_the_user_may_not_see(
    hosts, rows, django_user_model
):
    for name, server in hosts.items():
        server.client().send("set", "sshd", "banip", ADDRESS[name])
    limited = limited_client(django_user_model, OPERATOR, "h1")
    # Both rows ticked, h2's id slipped in by hand: only h1's row is acted on.
    response = limited.post(
        reverse("admin:history_banevent_changelist"),
        {
            "action": "unban_ban_events",
            "_selected_action": [rows["banevent"]["h1"], rows["banevent"]["h2"]],
        },
    )
    assert response.status_code == 302
    assert banned(hosts["h1"]) == set()
    assert banned(hosts["h2"]) == {ADDRESS["h2"]}
    unbans = AuditEntry.objects.filter(action="unban")
    assert list(unbans.values_list("host", flat=True)) == ["h1"]


def test_the_archived_ban_action_refuses_a_visible_host_the_user_may_not_operate(
    hosts, rows, django_user_model
):
    for name, server in hosts.items():
        server.client().send("set", "sshd", "banip", ADDRESS[name])
    # Views every host, operates on h1 only: h2's row is listed, its unban refused.
    client = limited_client(django_user_model, OPERATOR, "h1", also=VIEWER)
    listing = client.get(reverse("admin:history_banevent_changelist")).content.decode()
    assert ADDRESS["h2"] in listing
    response = client.post(
        reverse("admin:history_banevent_changelist"),
        {
            "action": "unban_ban_events",
            "_selected_action": [rows["banevent"]["h1"], rows["banevent"]["h2"]],
        },
        follow=True,
    )
    assert "Not permitted to unban on h2." in response.content.decode()
    assert banned(hosts["h1"]) == set()
    assert banned(hosts["h2"]) == {ADDRESS["h2"]}


def test_no_host_limited_administrator_edits_host_rows(hosts, django_user_model, role_client):
    limited = limited_client(django_user_model, ADMINISTRATOR, "h1")
    h1, h2 = Host.objects.get(name="h1"), Host.objects.get(name="h2")
    listing = limited.get(reverse("admin:hosts_host_changelist")).content.decode()
    assert reverse("admin:hosts_host_change", args=[h1.pk]) in listing
    assert reverse("admin:hosts_host_change", args=[h2.pk]) not in listing
    assert limited.get(reverse("admin:hosts_host_change", args=[h2.pk])).status_code == 404

    # Their own host: shown read-only; a change (here: lifting their group's limit) refused.
    shown = limited.get(reverse("admin:hosts_host_change", args=[h1.pk]))
    assert shown.status_code == 200 and not shown.context["has_change_permission"]
    response = limited.post(
        reverse("admin:hosts_host_change", args=[h1.pk]),
        {"name": "h1", "address": h1.address, "enabled": "on", "note": "mine", "groups": []},
    )
    assert response.status_code == 403
    h1.refresh_from_db()
    assert h1.note == "" and h1.groups.exists()
    add = reverse("admin:hosts_host_add")
    assert limited.get(add).status_code == 403
    assert limited.post(reverse("admin:hosts_host_delete", args=[h1.pk])).status_code == 403
    assert Host.objects.filter(name="h1").exists()

    # An administrator of every host may still edit them (tests/hosts/test_hosts_admin.py).
    admin = role_client(ADMINISTRATOR, username="admin-everywhere", staff=True)
    page = admin.get(reverse("admin:hosts_host_change", args=[h2.pk]))
    assert page.status_code == 200 and page.context["has_change_permission"]


def test_a_limited_administrator_cannot_change_what_a_source_bans_on_other_hosts(
    hosts, django_user_model
):
    mine = BlocklistSource.objects.create(name="mine", url="https://example.org/a.txt")
    mine.hosts.set([Host.objects.get(name="h1")])
    theirs = BlocklistSource.objects.create(name="theirs", url="https://example.org/b.txt")
    theirs.hosts.set(Host.objects.filter(name__in=HOSTS))
    limited = limited_client(django_user_model, ADMINISTRATOR, "h1")

    def change(source: BlocklistSource, url: str) -> int:
        data = {
            "name": source.name,
            "url": url,
            "jail": "elsewhere",
            "schedule": "weekly",
            "enabled": "on",
            "hosts": [Host.objects.get(name="h1").pk],
        }
        return limited.post(
            reverse("admin:blocklists_blocklistsource_change", args=[source.pk]), data
        ).status_code

    # A source that imports on h2 too: its list and jail decide what h2 bans, so they stay;
    # its schedule is theirs to change (and h2 stays a target: tests/hosts/test_fleet_blocklists).
    assert change(theirs, "https://example.org/evil.txt") == 302
    theirs.refresh_from_db()
    assert (theirs.url, theirs.jail, theirs.schedule) == (
        "https://example.org/b.txt",
        "blocklist",
        "weekly",
    )
    delete = reverse("admin:blocklists_blocklistsource_delete", args=[theirs.pk])
    assert limited.post(delete, {"post": "yes"}).status_code == 403
    assert BlocklistSource.objects.filter(name="theirs").exists()

    assert change(mine, "https://example.org/new.txt") == 302
    mine.refresh_from_db()
    assert (mine.url, mine.jail) == ("https://example.org/new.txt", "elsewhere")


def test_a_limited_administrator_cannot_change_users_and_only_a_superuser_grants_superuser(
    django_user_model, role_client
):
    """The administrator role holds auth.change_user: limited to h1, it could put itself in an
    unlimited group, or set an unlimited administrator's password, and lift its own limit."""
    for name in HOSTS:
        Host.objects.create(name=name, kind=Host.Kind.SOCKET, address=f"/tmp/{name}.sock")
    limited = limited_client(django_user_model, ADMINISTRATOR, "h1")
    me = django_user_model.objects.get(username="administrator-h1")
    other = django_user_model.objects.create_user("someone", password="x")
    for target in (me, other):
        change = reverse("admin:auth_user_change", args=[target.pk])
        shown = limited.get(change)
        assert shown.status_code in (200, 403)
        assert not shown.context or not shown.context["has_change_permission"]
        everyone = Group.objects.get(name=ADMINISTRATOR).pk
        posted = limited.post(
            change,
            {"username": target.username, "groups": [everyone], "is_active": "on"},
        )
        assert posted.status_code == 403
        target.refresh_from_db()
        assert not target.groups.filter(pk=everyone).exists()
    assert limited.get(reverse("admin:auth_user_add")).status_code == 403
    assert limited.post(reverse("admin:auth_user_delete", args=[other.pk])).status_code == 403
    assert django_user_model.objects.filter(username="someone").exists()

    # An administrator of every host changes users, but the superuser flag stays a superuser's.
    admin = role_client(ADMINISTRATOR, username="admin-everywhere", staff=True)
    change = reverse("admin:auth_user_change", args=[admin.user.pk])
    page = admin.get(change)
    assert page.status_code == 200 and page.context["has_change_permission"]
    assert "is_superuser" not in page.context["adminform"].form.fields
    admin.post(
        change,
        {
            "username": admin.user.username,
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [Group.objects.get(name=ADMINISTRATOR).pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    admin.user.refresh_from_db()
    assert not admin.user.is_superuser
