"""Blocklist imports across hosts (issue 12, jails.blocklists): one fetch, applied on every
target host with the state scoped to it; per-host bookkeeping, failures, ignore lists, the
commands' --host, the pages' host choices and per-host role limits.

Real private fail2ban servers play the hosts (kind "socket"): "local" (the site's own
setting), h1 and h2 (with a `blocklist` jail) and "nojail" (no such jail). The lists come
from the blocklist tests' own HTTP server (tests/blocklists/conftest.py ListServer).
The blocklist jail's creation per host runs on two hosts with writable configurations of
their own: the local host (reached directly) and h2 (only through a real agent).
"""

# Fixtures imported by name from tests/configuration/config_host.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from jails.blocklists.models import BlocklistSource, ImportRun, SourceEntry
from jails.blocklists.services.fetch import FetchPolicy
from jails.blocklists.services.imports import source_import
from jails.blocklists.services.jobs import blocklists_import_job
from jails.blocklists.services.sources import source_delete
from jails.fail2ban.server import JailSpec, PrivateServer
from jails.hosts.models import LOCAL_HOST, Host
from jails.hosts.services import fleet
from jails.jobs import JobContext
from jails.models import AuditEntry, SiteSettings
from jails.roles import ADMINISTRATOR, OPERATOR
from jails.services.audit import Actor
from jails.services.bans import ips_ban
from jails.state import RuntimeState
from tests.blocklists.conftest import ListServer, Route
from tests.configuration.config_host import (  # noqa: F401 (fixtures)
    CONFIG_JAILS,
    ConfigHost,
    config_agent_run,
    config_host,
    config_host_run,
    config_server,
)
from tests.conftest import point_state_at, runtime_install
from tests.hosts.conftest import ssh_host_rows
from tests.support.agent_process import AgentProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fail2ban]

ACTOR = Actor(name="alice", source="web", user_id=None, address="198.51.100.9")
POLICY = FetchPolicy(connect_timeout=5, read_timeout=5, attempts=1, backoff=0.01)
LIST_V1 = "11.1.1.1\n11.1.1.2\n12.0.0.0/24\n"
LIST_V2 = "11.1.1.1\n12.0.0.0/24\n"  # 11.1.1.2 left the list
BLOCKLIST = (JailSpec("blocklist", bantime="1d"),)
SERVER_NAMES = {"local": BLOCKLIST, "h1": BLOCKLIST, "h2": BLOCKLIST, "nojail": ()}
# Generous: a 1-core box under the whole suite answers slowly, and nothing here waits on it.
LINK_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def fl_servers() -> Iterator[dict[str, PrivateServer]]:
    """Four private fail2ban servers, started at once (about 0.2 s each)."""
    base = Path(tempfile.mkdtemp(prefix="jfbl-", dir="/tmp"))
    servers = {
        name: PrivateServer(base / name, jails or (JailSpec("sshd"),), record_actions=False)
        for name, jails in SERVER_NAMES.items()
    }
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        list(pool.map(lambda server: server.start(), servers.values()))
    try:
        yield servers
    finally:
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            list(pool.map(lambda server: server.stop(), servers.values()))
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def servers(fl_servers: dict[str, PrivateServer]) -> dict[str, PrivateServer]:
    for server in fl_servers.values():
        if not server.is_running():
            server.start()
        server.reset()
    return fl_servers


@pytest.fixture
def state(servers: dict[str, PrivateServer]) -> RuntimeState:
    """The site's state on "local"; h1, h2 and nojail as socket hosts (a fleet)."""
    SiteSettings.objects.update_or_create(
        singleton=1,
        defaults={"setup_complete": True, "fail2ban_socket": str(servers["local"].socket_path)},
    )
    for name in ("h1", "h2", "nojail"):
        Host.objects.create(
            name=name, kind=Host.Kind.SOCKET, address=str(servers[name].socket_path)
        )
    return point_state_at(str(servers["local"].socket_path), timeout=LINK_TIMEOUT)


@pytest.fixture
def lists() -> Iterator[ListServer]:
    server = ListServer()
    try:
        yield server
    finally:
        server.close()


def banned(server: PrivateServer, jail: str = "blocklist") -> set[str]:
    return {str(ip) for ip in server.client().send("get", jail, "banip")}


def make_source(
    lists: ListServer, body: str, *, hosts: tuple[str, ...] | list[str] = (), **fields
) -> BlocklistSource:
    lists.routes["/drop.txt"] = Route(body.encode(), etag=f'"{len(body)}"')
    source = BlocklistSource.objects.create(
        name="drop",
        url=lists.url("/drop.txt"),
        allow_private=True,  # the list server is on loopback
        confirmed=True,
        **fields,
    )
    source.hosts.set(Host.objects.filter(name__in=hosts))
    return source


def serve(lists: ListServer, body: str) -> None:
    lists.routes["/drop.txt"] = Route(body.encode(), etag=f'"{len(body)}"')


def run_import(state: RuntimeState, source: BlocklistSource, **kw) -> dict[str, ImportRun]:
    source.refresh_from_db()
    runs = source_import(
        state, source=source, actor=ACTOR, trigger="web", owner="test", policy=POLICY, **kw
    )
    return {run.host: run for run in runs}


def held(source: BlocklistSource, host: str) -> set[str]:
    return set(
        SourceEntry.objects.filter(source=source, host=host).values_list("address", flat=True)
    )


# --- the import on every target host ------------------------------------------------------------
def test_fleet_import_bans_on_every_host_once_fetched_and_unbans_removed_entries_on_each(
    state, servers, lists
):
    source = make_source(lists, LIST_V1, all_hosts=True)
    runs = run_import(state, source)
    targets = ["h1", "h2", LOCAL_HOST]
    assert sorted(runs) == sorted([*targets, "nojail"])
    assert lists.hits("/drop.txt") == 1  # fetched once for every host
    for name in targets:
        assert runs[name].status == ImportRun.Status.OK, runs[name].errors
        assert runs[name].banned == 3
        assert banned(servers[name]) == {"11.1.1.1", "11.1.1.2", "12.0.0.0/24"}
        for ip in ("11.1.1.2", "12.0.0.0/24"):
            assert servers[name].client().send("get", "blocklist", "banned", ip) == 1
        assert held(source, name) == {"11.1.1.1", "11.1.1.2", "12.0.0.0/24"}
        # Audited with the host it went to (the scoped state names it).
        record = AuditEntry.objects.get(action="blocklist_import", host=name)
        assert record.actor == "blocklist:drop" and record.parameters["run"] == runs[name].pk
    # A host without the jail is that host's failure, not the import's.
    assert runs["nojail"].status == ImportRun.Status.FAILED
    assert "does not exist in fail2ban on nojail" in runs["nojail"].errors
    assert held(source, "nojail") == set()

    serve(lists, LIST_V2)
    runs = run_import(state, source)
    for name in targets:
        assert runs[name].status == ImportRun.Status.OK, runs[name].errors
        assert runs[name].unbanned == 1
        assert banned(servers[name]) == {"11.1.1.1", "12.0.0.0/24"}
        assert servers[name].client().send("get", "blocklist", "banned", "11.1.1.2") == 0
        assert held(source, name) == {"11.1.1.1", "12.0.0.0/24"}
        assert AuditEntry.objects.filter(action="blocklist_unban", host=name).count() == 1


def test_fleet_import_a_down_host_is_reported_and_the_others_are_imported(state, servers, lists):
    Host.objects.create(name="gone", kind=Host.Kind.SOCKET, address="/tmp/jailadmin-gone.sock")
    source = make_source(lists, LIST_V1, hosts=["gone", "h1"])
    runs = run_import(state, source)
    assert sorted(runs) == ["gone", "h1"]
    assert runs["h1"].status == ImportRun.Status.OK and banned(servers["h1"]) == {
        "11.1.1.1",
        "11.1.1.2",
        "12.0.0.0/24",
    }
    assert runs["gone"].status == ImportRun.Status.FAILED and runs["gone"].errors
    assert runs["gone"].failed_at == "host"
    # Neither the local host (not a target) nor h2 got anything.
    assert banned(servers[LOCAL_HOST]) == set() and banned(servers["h2"]) == set()
    source.refresh_from_db()
    assert (
        source.consecutive_failures == 1
    )  # one host failing: the source is not where it should be


def test_fleet_import_a_failed_host_keeps_its_bookkeeping_and_catches_up(state, servers, lists):
    source = make_source(lists, LIST_V1, hosts=["h1", "h2"])
    assert {r.status for r in run_import(state, source).values()} == {ImportRun.Status.OK}
    # h1 goes away while 11.1.1.2 leaves the list: h2 unbans it, h1 keeps its record of it.
    Host.objects.filter(name="h1").update(address="/tmp/jailadmin-gone.sock")
    serve(lists, LIST_V2)
    runs = run_import(state, source)
    assert runs["h1"].status == ImportRun.Status.FAILED
    assert runs["h2"].status == ImportRun.Status.OK and runs["h2"].unbanned == 1
    assert "11.1.1.2" not in banned(servers["h2"]) and held(source, "h2") == {
        "11.1.1.1",
        "12.0.0.0/24",
    }
    assert "11.1.1.2" in banned(servers["h1"]) and "11.1.1.2" in held(source, "h1")
    # h1 is back; the list is unchanged (ETag): h1 failed last time, so the whole list is
    # fetched again and h1 unbans what left it meanwhile.
    Host.objects.filter(name="h1").update(address=str(servers["h1"].socket_path))
    before = lists.hits("/drop.txt")
    runs = run_import(state, source)
    assert lists.hits("/drop.txt") == before + 1
    assert runs["h1"].status == ImportRun.Status.OK and runs["h1"].unbanned == 1
    assert banned(servers["h1"]) == {"11.1.1.1", "12.0.0.0/24"}
    assert runs["h2"].status == ImportRun.Status.OK and runs["h2"].unbanned == 0
    # Every host settled: an unchanged list is now skipped on all of them.
    runs = run_import(state, source)
    assert {run.status for run in runs.values()} == {ImportRun.Status.UNCHANGED}
    assert lists.requests[-1].headers.get("If-None-Match") == f'"{len(LIST_V2)}"'


def test_fleet_import_holds_back_each_hosts_own_ignore_list(state, servers, lists):
    servers["h1"].client().send("set", "blocklist", "addignoreip", "11.1.1.1")
    source = make_source(lists, LIST_V1, hosts=["h1", "h2"])
    runs = run_import(state, source)
    assert banned(servers["h1"]) == {"11.1.1.2", "12.0.0.0/24"}
    assert banned(servers["h2"]) == {"11.1.1.1", "11.1.1.2", "12.0.0.0/24"}
    assert (runs["h1"].banned, runs["h1"].skipped) == (2, 1)
    assert (runs["h2"].banned, runs["h2"].skipped) == (3, 0)
    assert any("ignore list" in reason for reason in runs["h1"].skipped_reasons)


def test_fleet_scheduled_job_imports_on_every_target_host(state, servers, lists):
    source = make_source(lists, LIST_V1, hosts=["h1", "h2"], schedule="hourly")
    ctx = JobContext(
        state=state, now=timezone.now(), should_stop=lambda: False, heartbeat=lambda: None
    )
    message = blocklists_import_job(ctx, policy=POLICY)
    assert message == "drop: imported on h1, h2"
    for name in ("h1", "h2"):
        assert banned(servers[name]) == {"11.1.1.1", "11.1.1.2", "12.0.0.0/24"}
    assert banned(servers[LOCAL_HOST]) == set()
    assert set(source.runs.values_list("host", "trigger")) == {("h1", "job"), ("h2", "job")}


def test_fleet_source_delete_unbans_on_every_host_it_banned_on(state, servers, lists):
    # A person banned 11.1.1.1 on h2 before the list did: the source never owned that ban
    # there, so removing the source keeps it on h2 and lifts it on h1.
    h2 = fleet.host_state(state, Host.objects.get(name="h2"))
    ips_ban(h2, jail="blocklist", lines=["11.1.1.1"], actor=ACTOR)
    source = make_source(lists, LIST_V1, hosts=["h1", "h2"])
    runs = run_import(state, source)
    assert (runs["h1"].banned, runs["h2"].banned, runs["h2"].already_banned) == (3, 2, 1)
    unbanned = source_delete(state, source=source, actor=ACTOR)
    assert unbanned == 5
    assert banned(servers["h1"]) == set() and banned(servers["h2"]) == {"11.1.1.1"}
    assert not SourceEntry.objects.exists()
    assert AuditEntry.objects.filter(action="blocklist_unban", host="h1").exists()
    assert AuditEntry.objects.filter(action="blocklist_unban", host="h2").exists()


# --- the commands ------------------------------------------------------------------------------
def test_fleet_commands_host_override_and_list_show_the_hosts(state, servers, lists):
    make_source(lists, LIST_V1, hosts=["h1", "h2"])
    out = StringIO()
    call_command("blocklists_import", "--source", "drop", "--host", "h2", "--json", stdout=out)
    runs = json.loads(out.getvalue())["runs"]
    assert [(run["host"], run["status"], run["banned"]) for run in runs] == [("h2", "ok", 3)]
    assert banned(servers["h2"]) == {"11.1.1.1", "11.1.1.2", "12.0.0.0/24"}
    assert banned(servers["h1"]) == set()

    out = StringIO()
    call_command("blocklists", "list", "--json", stdout=out)
    [listed] = json.loads(out.getvalue())["sources"]
    assert listed["hosts"] == ["h1", "h2"] and listed["all_hosts"] is False
    assert [run["host"] for run in listed["last_runs"]] == ["h2"]
    out = StringIO()
    call_command("blocklists", "list", stdout=out)
    assert "hosts=h1,h2" in out.getvalue()

    with pytest.raises(CommandError) as refused:
        call_command("blocklists_import", "--source", "drop", "--host", "nosuch", stdout=out)
    assert refused.value.returncode == 2


def test_fleet_commands_file_import_on_chosen_hosts(state, servers, tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("21.1.1.1\n21.2.0.0/16\n")
    out = StringIO()
    call_command(
        "blocklists_import",
        "--file",
        str(path),
        "--jail",
        "blocklist",
        "--host",
        "h1",
        "--host",
        "h2",
        "--json",
        stdout=out,
    )
    runs = json.loads(out.getvalue())["runs"]
    assert [(run["host"], run["banned"]) for run in runs] == [("h1", 2), ("h2", 2)]
    for name in ("h1", "h2"):
        assert banned(servers[name]) == {"21.1.1.1", "21.2.0.0/16"}
    assert banned(servers[LOCAL_HOST]) == set()


def test_fleet_commands_as_a_user_limited_to_a_host(state, servers, lists, django_user_model):
    make_source(lists, LIST_V1, hosts=["h1", "h2"])
    limited = limited_user(django_user_model, OPERATOR, "h1")
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError):
        call_command(
            "blocklists_import",
            "--source",
            "drop",
            "--as",
            limited.username,
            "--json",
            stdout=out,
            stderr=err,
        )
    [result] = json.loads(out.getvalue())["runs"]
    assert result["status"] == "refused" and "h2" in result["errors"]
    assert banned(servers["h1"]) == set() and banned(servers["h2"]) == set()
    call_command(
        "blocklists_import",
        "--source",
        "drop",
        "--host",
        "h1",
        "--as",
        limited.username,
        stdout=out,
    )
    assert banned(servers["h1"]) == {"11.1.1.1", "11.1.1.2", "12.0.0.0/24"}


# --- the pages ---------------------------------------------------------------------------------
def limited_user(django_user_model, role: str, host: str):
    """A user whose only group holds `role`'s permissions on `host` alone."""
    group = Group.objects.create(name=f"{role} on {host}")
    group.permissions.set(Group.objects.get(name=role).permissions.all())
    Host.objects.get(name=host).groups.add(group)
    user = django_user_model.objects.create_user(f"{role}-{host}", password="x")
    user.groups.add(group)
    return user


def client_for(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def test_fleet_pages_import_now_only_on_the_hosts_the_operator_may_operate(
    state, servers, lists, django_user_model
):
    source = make_source(lists, LIST_V1, hosts=["h1", "h2"])
    client = client_for(limited_user(django_user_model, OPERATOR, "h1"))
    response = client.post(reverse("jails:blocklists:import", args=[source.name]), follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Not imported on h2" in html
    assert banned(servers["h1"]) == {"11.1.1.1", "11.1.1.2", "12.0.0.0/24"}
    assert banned(servers["h2"]) == set()
    assert list(ImportRun.objects.values_list("host", flat=True)) == ["h1"]
    preview = client.post(reverse("jails:blocklists:preview", args=[source.name]))
    assert '<strong id="preview-host">h1</strong>' in preview.content.decode()
    # The detail page shows each run's host and the source's targets.
    assert '<td class="run-host">h1</td>' in html
    assert '<dd id="source-targets">h1, h2</dd>' in html

    only_h2 = make_source_named(lists, "other", hosts=["h2"])
    denied = client.post(reverse("jails:blocklists:import", args=[only_h2.name]))
    assert denied.status_code == 403 and banned(servers["h2"]) == set()
    denied = client.post(reverse("jails:blocklists:preview", args=[only_h2.name]))
    assert denied.status_code == 403


def make_source_named(lists: ListServer, name: str, *, hosts: list[str]) -> BlocklistSource:
    lists.routes[f"/{name}.txt"] = Route(LIST_V1.encode())
    source = BlocklistSource.objects.create(
        name=name, url=lists.url(f"/{name}.txt"), allow_private=True, confirmed=True
    )
    source.hosts.set(Host.objects.filter(name__in=hosts))
    return source


def test_fleet_pages_add_form_offers_the_hosts_the_administrator_may_administer(
    state, lists, django_user_model
):
    limited = limited_user(django_user_model, ADMINISTRATOR, "h1")
    client = client_for(limited)
    page = client.get(reverse("jails:blocklists:list")).content.decode()
    h1, h2 = Host.objects.get(name="h1"), Host.objects.get(name="h2")
    assert f'name="hosts" value="{h1.pk}"' in page
    assert f'name="hosts" value="{h2.pk}"' not in page
    assert 'name="all_hosts"' not in page  # "every host" is for who administers them all
    data = {"name": "drop", "url": lists.url("/l.txt"), "jail": "blocklist", "schedule": "daily"}
    refused = client.post(reverse("jails:blocklists:add"), {**data, "hosts": [h2.pk]})
    assert refused.status_code == 400 and not BlocklistSource.objects.exists()
    # None chosen means the local host, where this administrator may not act.
    refused = client.post(reverse("jails:blocklists:add"), data)
    assert refused.status_code == 400 and not BlocklistSource.objects.exists()
    added = client.post(reverse("jails:blocklists:add"), {**data, "hosts": [h1.pk]})
    assert added.status_code == 302
    source = BlocklistSource.objects.get(name="drop")
    assert list(source.hosts.values_list("name", flat=True)) == ["h1"] and not source.all_hosts
    record = AuditEntry.objects.get(action="blocklist_add")
    assert record.parameters["hosts"] == ["h1"]


def test_fleet_pages_full_administrator_chooses_every_host(state, lists, role_client):
    client = role_client("administrator")
    page = client.get(reverse("jails:blocklists:list")).content.decode()
    assert 'name="all_hosts"' in page and '<th scope="col">Hosts</th>' in page
    data = {"name": "drop", "url": lists.url("/l.txt"), "jail": "blocklist", "schedule": "daily"}
    assert (
        client.post(reverse("jails:blocklists:add"), {**data, "all_hosts": "on"}).status_code == 302
    )
    assert BlocklistSource.objects.get(name="drop").all_hosts
    listed = client.get(reverse("jails:blocklists:list")).content.decode()
    assert '<td class="source-hosts">every enabled host</td>' in listed


def test_fleet_pages_a_single_host_site_shows_no_host_choice(servers, lists, role_client):
    SiteSettings.objects.update_or_create(
        singleton=1,
        defaults={"setup_complete": True, "fail2ban_socket": str(servers["local"].socket_path)},
    )
    point_state_at(str(servers[LOCAL_HOST].socket_path), timeout=LINK_TIMEOUT)
    client = role_client("administrator")
    page = client.get(reverse("jails:blocklists:list")).content.decode()
    assert 'name="hosts"' not in page and 'name="all_hosts"' not in page
    assert '<th scope="col">Hosts</th>' not in page
    source = make_source(lists, LIST_V1)
    response = client.post(reverse("jails:blocklists:import", args=[source.name]), follow=True)
    html = response.content.decode()
    assert "Imported: 3 banned" in html and "run-host" not in html
    assert banned(servers[LOCAL_HOST]) == {"11.1.1.1", "11.1.1.2", "12.0.0.0/24"}
    assert list(ImportRun.objects.values_list("host", flat=True)) == [LOCAL_HOST]


# --- over the real SSH hosts ----------------------------------------------------------------------
@pytest.mark.slow
def test_fleet_import_over_ssh_bans_and_unbans_on_each_host(servers, lists, ssh_hosts):
    """Two of the five sshd hosts (tests/hosts/conftest.py), reached as remote hosts are:
    the import's bans and unbans go through the agent behind the forced command."""
    state = point_state_at(str(servers[LOCAL_HOST].socket_path), timeout=LINK_TIMEOUT)
    chosen = ssh_hosts[:2]
    ssh_host_rows(chosen)
    source = make_source(lists, LIST_V1, hosts=[host.name for host in chosen], jail="web")
    try:
        runs = run_import(state, source)
        assert sorted(runs) == ["h1", "h2"]
        for host in chosen:
            assert runs[host.name].status == ImportRun.Status.OK, runs[host.name].errors
            assert banned(host.server, "web") == {"11.1.1.1", "11.1.1.2", "12.0.0.0/24"}
        assert banned(servers[LOCAL_HOST]) == set()
        serve(lists, LIST_V2)
        runs = run_import(state, source)
        for host in chosen:
            assert runs[host.name].unbanned == 1, runs[host.name].errors
            assert banned(host.server, "web") == {"11.1.1.1", "12.0.0.0/24"}
    finally:
        for _, service in state.fleet.services.values():
            service.client.close()  # the links own ssh processes


def test_fleet_admin_offers_permitted_hosts_and_keeps_the_others(
    state, servers, lists, django_user_model
):
    source = make_source(lists, LIST_V1, hosts=["h1", "h2"])
    limited = limited_user(django_user_model, ADMINISTRATOR, "h1")
    limited.is_staff = True
    limited.save()
    client = client_for(limited)
    url = reverse("admin:blocklists_blocklistsource_change", args=[source.pk])
    page = client.get(url).content.decode()
    h1, h2 = Host.objects.get(name="h1"), Host.objects.get(name="h2")
    assert f'value="{h1.pk}"' in page and f'value="{h2.pk}"' not in page
    assert 'name="all_hosts"' not in page
    data = {
        "name": "drop",
        "url": source.url,
        "jail": "blocklist",
        "schedule": "weekly",
        "enabled": "on",
        "allow_private": "on",
        "hosts": [],  # h1 taken off; h2 was never offered to this administrator
    }
    assert client.post(url, data).status_code == 302
    source.refresh_from_db()
    assert source.schedule == "weekly"
    assert list(source.hosts.values_list("name", flat=True)) == ["h2"]

    # The import-now action imports where the user may operate (an administrator of h1).
    source.hosts.set([h1, h2])
    response = client.post(
        reverse("admin:blocklists_blocklistsource_changelist"),
        {"action": "import_now", "_selected_action": [source.pk]},
        follow=True,
    )
    assert "not imported on h2" in response.content.decode()
    assert banned(servers["h1"]) == {"11.1.1.1", "11.1.1.2", "12.0.0.0/24"}
    assert banned(servers["h2"]) == set()


def test_fleet_admin_on_a_single_host_site_has_no_host_fields(role_client):
    admin = role_client("administrator", staff=True)
    page = admin.get(reverse("admin:blocklists_blocklistsource_add")).content.decode()
    assert 'name="hosts"' not in page and 'name="all_hosts"' not in page


def test_fleet_import_with_every_chosen_host_disabled_says_so(state, servers, lists):
    source = make_source(lists, LIST_V1, hosts=["h1"])
    Host.objects.filter(name="h1").update(enabled=False)
    [run] = run_import(state, source).values()
    assert run.status == ImportRun.Status.FAILED and "none of the source's hosts" in run.errors
    assert lists.hits("/drop.txt") == 0 and banned(servers["h1"]) == set()


# --- the blocklist jail, created on chosen hosts --------------------------------------------------
# The local host (config_host, reached directly) and h2 (its own fail2ban and configuration
# directory, reached only through a real agent): neither has the blocklist jail at first.
CREATE_URL = "jails:blocklists:jail-create"


@pytest.fixture(scope="module")
def jail_h2() -> Iterator[tuple[ConfigHost, AgentProcess]]:
    """h2's fail2ban (fail2ban's shipped actions too: the jail's banaction) and its agent."""
    for host in config_host_run("jbj-", CONFIG_JAILS, shipped_actions=True):
        for agent in config_agent_run(host):
            yield host, agent


@pytest.fixture
def jail_hosts(config_host, jail_h2) -> dict[str, ConfigHost]:
    """local and h2 as they were at start (no blocklist jail); h2 a Host of kind agent."""
    h2, agent = jail_h2
    runtime_install(config_host.server, agent=None)
    fleet.local_host()  # its row: the migration's is gone after an earlier test's flush
    h2.restore()
    agent.start()  # a no-op unless it stopped
    Host.objects.create(name="h2", kind=Host.Kind.AGENT, address=agent.address)
    return {LOCAL_HOST: config_host, "h2": h2}


def jail_written(host: ConfigHost) -> bool:
    return (host.conf / "jail.d" / "blocklist.local").exists()


def test_fleet_jail_create_shows_each_host_lacking_it_and_creates_on_the_hosts_ticked(
    jail_hosts, role_client
):
    local, h2 = jail_hosts[LOCAL_HOST], jail_hosts["h2"]
    admin = role_client(ADMINISTRATOR)
    page = admin.get(reverse("jails:blocklists:list")).content.decode()
    assert '<span class="jail-missing-hosts">h2, local</span>' in page
    for name in ("h2", LOCAL_HOST):
        assert f'<input type="checkbox" name="host" value="{name}" checked>' in page

    response = admin.post(reverse(CREATE_URL), {"jail": "blocklist", "host": ["h2"]}, follow=True)
    text = response.content.decode()
    assert response.status_code == 200, text[:2000]
    assert "h2: Created the jail blocklist" in text
    # fail2ban on h2 runs it; the local host, asked for nothing, has neither jail nor file.
    assert "blocklist" in h2.running() and h2.get("blocklist", "bantime") == -1
    assert jail_written(h2)
    assert "blocklist" not in local.running() and not jail_written(local)
    audit = AuditEntry.objects.get(action="config_jail_create", jail="blocklist")
    assert audit.ok and audit.host == "h2"
    # Now only the local host lacks it.
    assert '<span class="jail-missing-hosts">local</span>' in text


def test_fleet_jail_create_checks_the_administer_role_on_each_host(jail_hosts, django_user_model):
    local, h2 = jail_hosts[LOCAL_HOST], jail_hosts["h2"]
    client = client_for(limited_user(django_user_model, ADMINISTRATOR, LOCAL_HOST))
    page = client.get(reverse("jails:blocklists:list")).content.decode()
    # Missing on both, offered on the local host only.
    assert '<span class="jail-missing-hosts">h2, local</span>' not in page  # h2 not viewable
    assert f'<input type="checkbox" name="host" value="{LOCAL_HOST}" checked>' in page
    assert 'name="host" value="h2"' not in page

    # h2 slipped in by hand: nothing is done anywhere (not even on the local host).
    both = client.post(reverse(CREATE_URL), {"jail": "blocklist", "host": [LOCAL_HOST, "h2"]})
    assert both.status_code == 403
    assert not jail_written(h2) and not jail_written(local)
    assert not AuditEntry.objects.filter(action="config_jail_create").exists()

    mine = client.post(reverse(CREATE_URL), {"jail": "blocklist", "host": [LOCAL_HOST]})
    assert mine.status_code == 302
    assert "blocklist" in local.running() and "blocklist" not in h2.running()


def test_fleet_jail_create_reports_each_host_and_one_failing_stops_no_other(
    jail_hosts, role_client
):
    local, h2 = jail_hosts[LOCAL_HOST], jail_hosts["h2"]
    # fail2ban on h2 refuses the filter that is already there (see tests/blocklists).
    (h2.conf / "filter.d" / "jailadmin-blocklist.local").write_text(
        "[Definition]\nfailregex = ^no host group here$\n"
    )
    admin = role_client(ADMINISTRATOR)
    response = admin.post(
        reverse(CREATE_URL), {"jail": "blocklist", "host": ["h2", LOCAL_HOST, "nowhere"]}
    )
    assert response.status_code == 400  # a host that does not exist: nothing asked
    assert "no enabled host named &#x27;nowhere&#x27;" in response.content.decode()
    assert not jail_written(local) and not jail_written(h2)

    response = admin.post(reverse(CREATE_URL), {"jail": "blocklist", "host": ["h2", LOCAL_HOST]})
    text = response.content.decode()
    assert response.status_code == 409
    results = dict(re.findall(r'data-host="([^"]+)"><strong>[^<]+</strong>:\s*(\w+ ?\w*)', text))
    assert results == {"h2": "not created", LOCAL_HOST: "created"}
    assert "Not saved: fail2ban refused the configuration" in text
    assert "blocklist" in local.running() and jail_written(local)
    assert "blocklist" not in h2.running() and not jail_written(h2)
    outcomes = dict(
        AuditEntry.objects.filter(action="config_jail_create").values_list("host", "ok")
    )
    assert outcomes == {"h2": False, LOCAL_HOST: True}

    none = admin.post(reverse(CREATE_URL), {"jail": "blocklist"})
    assert none.status_code == 400 and "None was ticked" in none.content.decode()
