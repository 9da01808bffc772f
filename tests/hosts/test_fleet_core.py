"""The fleet core (jails.hosts): scoping the state to a host, asking hosts in parallel with a
deadline, reachability on the rows, per-host permissions. Real private fail2ban servers play
the hosts (kind "socket"); a fake server that never answers plays a hung one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from django.contrib.auth.models import Group

from jails.fail2ban.server import JailSpec, PrivateServer
from jails.hosts.models import LOCAL_HOST, Host
from jails.hosts.permissions import host_permitted, hosts_permitted
from jails.hosts.services import fleet
from jails.roles import OPERATOR, PERM_OPERATE, PERM_VIEW, VIEWER
from jails.services import jails as jail_service
from jails.state import RuntimeState
from tests.conftest import point_state_at, user_with_role
from tests.hosts.conftest import quiet_servers, server_ready
from tests.support.fakeserver import FakeFail2ban, hang

pytestmark = pytest.mark.django_db

OTHER_JAILS = (JailSpec("web", bantime="1h"), JailSpec("mail", bantime="1h"))


@pytest.fixture(scope="module")
def other_server() -> Iterator[PrivateServer]:
    for servers in quiet_servers("jh-", ["other"], OTHER_JAILS):
        yield servers["other"]


@pytest.fixture
def other(other_server: PrivateServer) -> PrivateServer:
    return server_ready(other_server)


@pytest.fixture
def state(f2b: PrivateServer) -> RuntimeState:
    return point_state_at(str(f2b.socket_path), timeout=5.0)


def test_the_migration_creates_the_local_host_alone() -> None:
    hosts = fleet.hosts_enabled()
    assert [(host.name, host.kind) for host in hosts] == [(LOCAL_HOST, Host.Kind.LOCAL)]
    assert not fleet.is_fleet()


def test_a_scoped_state_talks_to_its_host_and_names_it(
    state: RuntimeState, f2b: PrivateServer, other: PrivateServer
) -> None:
    Host.objects.create(name="web1", kind=Host.Kind.SOCKET, address=str(other.socket_path))
    assert fleet.is_fleet()
    local, web1 = fleet.scopes_list(state)
    assert (local.name, web1.name) == (LOCAL_HOST, "web1")
    # The local host is the state itself: its link and capability cache are not duplicated.
    assert local.state is state
    assert web1.state.snapshot.host == "web1"
    assert web1.state.jail_service is not state.jail_service
    assert set(jail_service.jail_names_list(web1.state)) == {"web", "mail"}
    assert set(jail_service.jail_names_list(local.state)) == {spec.name for spec in f2b.jails}
    # The same row gives the same link (and its probed capabilities) the next time.
    assert fleet.host_state(state, web1.host).jail_service is web1.state.jail_service


def test_a_changed_address_builds_a_new_link(
    state: RuntimeState, other: PrivateServer, f2b: PrivateServer
) -> None:
    host = Host.objects.create(name="web1", kind=Host.Kind.SOCKET, address=str(other.socket_path))
    first = fleet.host_state(state, host).jail_service
    host.address = str(f2b.socket_path)
    host.save()
    second = fleet.host_state(state, Host.objects.get(pk=host.pk)).jail_service
    assert second is not first
    assert "web" not in jail_service.jail_names_list(fleet.host_state(state, host))


def test_unknown_and_disabled_hosts_are_refused(state: RuntimeState, other: PrivateServer) -> None:
    Host.objects.create(
        name="off", kind=Host.Kind.SOCKET, address=str(other.socket_path), enabled=False
    )
    with pytest.raises(fleet.HostUnknown):
        fleet.host_get("off")
    with pytest.raises(fleet.HostUnknown):
        fleet.scopes_list(state, names=["nope"])
    assert [scope.name for scope in fleet.scopes_list(state)] == [LOCAL_HOST]


def test_a_hung_host_misses_the_deadline_and_the_others_answer(
    state: RuntimeState, other: PrivateServer
) -> None:
    Host.objects.create(name="web1", kind=Host.Kind.SOCKET, address=str(other.socket_path))
    with FakeFail2ban(hang()) as hung:
        Host.objects.create(name="stuck", kind=Host.Kind.SOCKET, address=hung.path)
        outcomes = fleet.fleet_map(
            fleet.scopes_list(state), jail_service.jail_names_list, deadline=2.0
        )
        by_name = {outcome.name: outcome for outcome in outcomes}
        assert by_name["web1"].ok and set(by_name["web1"].value or ()) == {"web", "mail"}
        assert by_name[LOCAL_HOST].ok
        stuck = by_name["stuck"]
        assert stuck.timed_out and not stuck.ok
        assert stuck.error == "no answer within 2 s"
    row = Host.objects.get(name="stuck")
    assert row.unreachable_since is not None
    assert row.last_error == "no answer within 2 s"
    assert Host.objects.get(name="web1").unreachable_since is None
    assert Host.objects.get(name="web1").last_seen is not None


def test_a_host_that_fails_reports_its_error_and_recovers(
    state: RuntimeState, other: PrivateServer
) -> None:
    host = Host.objects.create(
        name="gone", kind=Host.Kind.SOCKET, address="/tmp/jailadmin-no-such-host.sock"
    )
    (outcome,) = fleet.fleet_map(
        fleet.scopes_list(state, names=["gone"]), jail_service.jail_names_list, deadline=5.0
    )
    assert not outcome.ok and not outcome.timed_out
    assert "jailadmin-no-such-host.sock" in outcome.error
    since = Host.objects.get(pk=host.pk).unreachable_since
    assert since is not None
    # Still down: the first failure's time is kept.
    fleet.fleet_map(
        fleet.scopes_list(state, names=["gone"]), jail_service.jail_names_list, deadline=5.0
    )
    assert Host.objects.get(pk=host.pk).unreachable_since == since
    # Back: the row says so.
    Host.objects.filter(pk=host.pk).update(address=str(other.socket_path))
    (outcome,) = fleet.fleet_map(
        fleet.scopes_list(state, names=["gone"]), jail_service.jail_names_list, deadline=5.0
    )
    assert outcome.ok
    row = Host.objects.get(pk=host.pk)
    assert row.unreachable_since is None and row.last_error == ""


def test_outcomes_keep_the_order_asked(state: RuntimeState, other: PrivateServer) -> None:
    for name in ("c", "a", "b"):
        Host.objects.create(name=name, kind=Host.Kind.SOCKET, address=str(other.socket_path))
    scopes = fleet.scopes_list(state, names=["b", "c", LOCAL_HOST, "a"])
    outcomes = fleet.fleet_map(scopes, lambda scoped: scoped.snapshot.host, deadline=5.0)
    assert [outcome.value for outcome in outcomes] == ["b", "c", LOCAL_HOST, "a"]


def test_the_deadline_comes_from_the_settings(state: RuntimeState) -> None:
    state.snapshot_replace(settings=replace(state.settings, host_deadline=1.5))
    assert state.settings.host_deadline == 1.5


def test_a_group_given_hosts_grants_its_permissions_there_only(
    django_user_model, other: PrivateServer
) -> None:
    Host.objects.create(name="web1", kind=Host.Kind.SOCKET, address=str(other.socket_path))
    Host.objects.create(name="web2", kind=Host.Kind.SOCKET, address=str(other.socket_path))
    everywhere = user_with_role(django_user_model, OPERATOR, username="everywhere")
    assert hosts_permitted(everywhere, PERM_OPERATE) is None
    assert host_permitted(everywhere, PERM_OPERATE, "web2")

    limited_group = Group.objects.create(name="web1 operators")
    limited_group.permissions.set(Group.objects.get(name=OPERATOR).permissions.all())
    Host.objects.get(name="web1").groups.add(limited_group)
    limited = django_user_model.objects.create_user("limited", password="x")
    limited.groups.add(limited_group)
    assert hosts_permitted(limited, PERM_OPERATE) == {"web1"}
    assert host_permitted(limited, PERM_OPERATE, "web1")
    assert not host_permitted(limited, PERM_OPERATE, "web2")
    assert not host_permitted(limited, PERM_OPERATE, LOCAL_HOST)

    # A viewer role without hosts on top: view everywhere, operate on web1 only.
    limited.groups.add(Group.objects.get(name=VIEWER))
    assert hosts_permitted(limited, PERM_VIEW) is None
    assert hosts_permitted(limited, PERM_OPERATE) == {"web1"}

    limited.is_active = False
    assert hosts_permitted(limited, PERM_VIEW) == set()
    admin = django_user_model.objects.create_superuser("root", password="x")
    assert hosts_permitted(admin, PERM_OPERATE) is None
