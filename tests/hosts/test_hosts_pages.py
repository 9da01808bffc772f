"""The /hosts/ pages: the live list (a second real private fail2ban plays a socket host, a dead
socket and a hung fake server play unreachable ones), adding each kind, editing, checking,
removing, the SSH key pair and install steps (the private key never rendered), roles and CSRF.
The SSH flows run against the real private sshd of tests/hosts/conftest.py."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import replace

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils.timezone import localtime

from jails.agent import ssh
from jails.blocklists.models import BlocklistSource
from jails.fail2ban.server import JailSpec, PrivateServer
from jails.hosts.models import LOCAL_HOST, Host
from jails.models import AuditEntry, SiteSettings
from jails.roles import ADMINISTRATOR
from jails.state import RuntimeState
from tests.conftest import point_state_at
from tests.hosts.conftest import quiet_servers, server_ready, ssh_host_rows
from tests.support.fakeserver import FakeFail2ban, hang
from tests.support.host_traces import KEPT, REMOVED, traces_count, traces_make
from tests.support.sshd import agent_command

pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]

OTHER_JAILS = (JailSpec("web", bantime="1h"), JailSpec("mail", bantime="1h"))
AGENT_COMMAND_OPTION = (
    'command="/usr/bin/python3 -I /usr/local/lib/jailadmin/agent.pyz --stdio",restrict'
)


@pytest.fixture(scope="module")
def other_server() -> Iterator[PrivateServer]:
    for servers in quiet_servers("jhp-", ["other"], OTHER_JAILS):
        yield servers["other"]


@pytest.fixture
def other(other_server: PrivateServer) -> PrivateServer:
    return server_ready(other_server)


@pytest.fixture
def state(f2b: PrivateServer) -> RuntimeState:
    SiteSettings.objects.update_or_create(
        singleton=1, defaults={"setup_complete": True, "fail2ban_socket": str(f2b.socket_path)}
    )
    return point_state_at(str(f2b.socket_path), timeout=5.0)


@pytest.fixture
def admin_client(role_client, state) -> Client:
    return role_client("administrator", staff=True)


def text(response) -> str:
    return html.unescape(response.content.decode())


def page_list(response, element_id: str) -> list[str]:
    """The items of the list with this id on the page."""
    body = text(response)
    start = body.index(f'id="{element_id}"')
    inner = body[start : body.index("</ul>", start)]
    return [item.split("</li>")[0].strip() for item in inner.split("<li>")[1:]]


def socket_host(name: str, path: str, **fields) -> Host:
    return Host.objects.create(name=name, kind=Host.Kind.SOCKET, address=path, **fields)


# --- the list ----------------------------------------------------------------------------------
def test_list_asks_every_host_live_local_first(admin_client, other, f2b):
    socket_host("web1", str(other.socket_path))
    page = admin_client.get(reverse("jails:hosts:list"))
    assert page.status_code == 200
    body = text(page)
    rows = [check.host.name for check in page.context["checks"]]
    assert rows == [LOCAL_HOST, "web1"]
    web1 = next(check for check in page.context["checks"] if check.host.name == "web1")
    assert web1.ok and set(web1.jails) == {"web", "mail"}
    assert "2 jails" in body and f"fail2ban {web1.fail2ban_version}" in body
    local = page.context["checks"][0]
    assert local.ok and set(local.jails) == {spec.name for spec in f2b.jails}
    assert Host.objects.get(name="web1").last_seen is not None


def test_list_shows_an_unreachable_host_since_when_with_its_error(admin_client, other):
    socket_host("web1", str(other.socket_path))
    socket_host("gone", "/tmp/jailadmin-no-such-host.sock")
    page = admin_client.get(reverse("jails:hosts:list"))
    assert page.status_code == 200
    body = text(page)
    row = Host.objects.get(name="gone")
    assert row.unreachable_since is not None and "jailadmin-no-such-host.sock" in row.last_error
    since = localtime(row.unreachable_since)
    assert f'unreachable</span> since <time datetime="{since.isoformat()}">' in body
    assert f"{since:%Y-%m-%d %H:%M:%S}</time>" in body
    assert row.last_error in body
    # The others still answer on the same page.
    assert "fail2ban" in body and Host.objects.get(name="web1").unreachable_since is None


def test_list_renders_when_a_host_hangs(admin_client, state, other):
    state.snapshot_replace(settings=replace(state.settings, host_deadline=1.0))
    socket_host("web1", str(other.socket_path))
    with FakeFail2ban(hang()) as hung:
        socket_host("stuck", hung.path)
        page = admin_client.get(reverse("jails:hosts:list"))
    assert page.status_code == 200
    assert "no answer within 1 s" in text(page)
    checks = {check.host.name: check for check in page.context["checks"]}
    assert checks["stuck"].timed_out and checks["web1"].ok


def test_list_does_not_contact_disabled_or_unconfirmed_hosts(admin_client):
    socket_host("off", "/tmp/jailadmin-off.sock", enabled=False)
    Host.objects.create(name="far", kind=Host.Kind.SSH, address="root@192.0.2.1:22")
    page = admin_client.get(reverse("jails:hosts:list"))
    body = text(page)
    assert "not asked" in body and "its SSH host key is not confirmed yet" in body
    assert Host.objects.get(name="off").unreachable_since is None
    assert Host.objects.get(name="far").unreachable_since is None


# --- adding -----------------------------------------------------------------------------------
def test_add_a_socket_host_audited_then_check_it(admin_client, other):
    response = admin_client.post(
        reverse("jails:hosts:add"),
        {"name": "web1", "kind": "socket", "address": str(other.socket_path), "note": "rack 3"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("jails:hosts:detail", args=["web1"])
    host = Host.objects.get(name="web1")
    assert (host.kind, host.address, host.note) == ("socket", str(other.socket_path), "rack 3")
    assert not host.ssh_private_key
    record = AuditEntry.objects.get(action="host-add")
    assert record.parameters["host"] == "web1" and record.actor == "administrator-user"
    assert record.host == "web1"
    check = admin_client.post(reverse("jails:hosts:check", args=["web1"]))
    assert check.status_code == 200
    body = text(check)
    assert "answers" in body and "<code>web</code>" in body and "<code>mail</code>" in body


def test_add_refuses_bad_addresses_and_names(admin_client):
    url = reverse("jails:hosts:add")
    cases = [
        ({"name": "a", "kind": "socket", "address": "run/f.sock"}, "absolute path"),
        ({"name": "a", "kind": "socket", "address": "/" + "x" * 120}, "longer than 107 bytes"),
        ({"name": "a", "kind": "agent", "address": "unix:relative.sock"}, "unix:/run/jailadmin"),
        ({"name": "a", "kind": "ssh", "address": "host-without-user"}, "names no user"),
        ({"name": "a", "kind": "ssh", "address": "root@-oProxyCommand=x"}, "not a host name"),
        ({"name": "Bad_Name", "kind": "socket", "address": "/run/f.sock"}, "lower-case"),
        ({"name": "add", "kind": "socket", "address": "/run/f.sock"}, "page under /hosts/"),
        ({"name": LOCAL_HOST, "kind": "socket", "address": "/run/f.sock"}, "already a host"),
        ({"name": "a", "kind": "local", "address": "/run/f.sock"}, "Select a valid choice"),
        (
            {"name": "a", "kind": "socket", "address": "/run/f.sock", "time_zone": "Mars/Base"},
            "unknown time zone",
        ),
    ]
    for data, message in cases:
        response = admin_client.post(url, data)
        assert response.status_code == 400, data
        assert message in text(response), (data, text(response))
    assert list(Host.objects.values_list("name", flat=True)) == [LOCAL_HOST]
    assert not AuditEntry.objects.filter(action="host-add").exists()


def test_add_an_ssh_host_makes_its_key_and_shows_the_install_steps(admin_client):
    response = admin_client.post(
        reverse("jails:hosts:add"),
        {"name": "far", "kind": "ssh", "address": "root@far.example.org", "time_zone": "UTC"},
    )
    assert response.status_code == 302
    host = Host.objects.get(name="far")
    assert host.address == "root@far.example.org:22"  # canonical form
    assert host.ssh_private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert host.ssh_public_key.startswith("ssh-ed25519 ") and not host.ssh_host_key
    page = admin_client.get(reverse("jails:hosts:detail", args=["far"]))
    body = text(page)
    key_type, key_blob = host.ssh_public_key.split()[:2]
    line = f"{AGENT_COMMAND_OPTION} {key_type} {key_blob} jailadmin-far"
    assert line in body
    assert "/root/.ssh/authorized_keys" in body
    assert "manage.py agent_bundle agent.pyz --force" in body
    assert "scp agent.pyz root@far.example.org:/tmp/jailadmin-agent.pyz" in body
    assert "install -m 0644 /tmp/jailadmin-agent.pyz /usr/local/lib/jailadmin/agent.pyz" in body
    assert "not confirmed" in body and "Fetch the host's key" in body
    # The audit record names the key by its fingerprint, never the key itself.
    record = AuditEntry.objects.get(action="host-add")
    assert record.parameters["key_fingerprint"].startswith("SHA256:")
    assert_private_key_never_rendered(admin_client, host)


def assert_private_key_never_rendered(client: Client, host: Host) -> None:
    """No page the site renders for `host` carries any part of its private key."""
    body_lines = [line for line in host.ssh_private_key.splitlines() if "-----" not in line]
    assert len(body_lines) >= 3
    urls = [
        reverse("jails:hosts:list"),
        reverse("jails:hosts:detail", args=[host.name]),
        reverse("jails:hosts:edit", args=[host.name]),
        reverse("jails:hosts:confirm-key", args=[host.name]),
        reverse("jails:hosts:remove", args=[host.name]),
        reverse("jails:audit"),
        reverse("admin:hosts_host_change", args=[host.pk]),
        reverse("admin:hosts_host_changelist"),
        reverse("admin:jails_auditentry_changelist"),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        body = text(response)
        assert "PRIVATE KEY" not in body, url
        for line in body_lines:
            assert line not in body, url
    for record in AuditEntry.objects.all():
        for line in body_lines:
            assert line not in str(record.parameters)


def test_the_authorized_keys_line_has_the_forced_command(admin_client):
    admin_client.post(
        reverse("jails:hosts:add"), {"name": "far", "kind": "ssh", "address": "ops@far:2222"}
    )
    host = Host.objects.get(name="far")
    body = text(admin_client.get(reverse("jails:hosts:detail", args=["far"])))
    assert f"{AGENT_COMMAND_OPTION} {host.ssh_public_key}" in body
    # Not root: that user's authorized_keys; the port goes to scp.
    assert "~ops/.ssh/authorized_keys" in body
    assert "scp -P 2222 agent.pyz ops@far:/tmp/jailadmin-agent.pyz" in body


# --- editing and removing ---------------------------------------------------------------------
def test_edit_changes_note_zone_and_enabled_audited(admin_client, other):
    socket_host("web1", str(other.socket_path))
    url = reverse("jails:hosts:edit", args=["web1"])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(
        url,
        {"address": str(other.socket_path), "time_zone": "Europe/Berlin", "note": "n"},
    )
    assert response.status_code == 302
    host = Host.objects.get(name="web1")
    assert (host.time_zone, host.note, host.enabled) == ("Europe/Berlin", "n", False)
    record = AuditEntry.objects.get(action="host-change")
    assert record.parameters["changes"]["enabled"] is False
    assert record.parameters["changes"]["time_zone"] == "Europe/Berlin"
    bad = admin_client.post(url, {"address": "relative", "time_zone": "", "enabled": "on"})
    assert bad.status_code == 400 and "absolute path" in text(bad)


def test_a_new_ssh_destination_drops_the_confirmed_host_key(admin_client):
    admin_client.post(
        reverse("jails:hosts:add"), {"name": "far", "kind": "ssh", "address": "root@far"}
    )
    host = Host.objects.get(name="far")
    Host.objects.filter(pk=host.pk).update(ssh_host_key=host.ssh_public_key.rsplit(" ", 1)[0])
    private = host.ssh_private_key
    response = admin_client.post(
        reverse("jails:hosts:edit", args=["far"]),
        {"address": "root@other.example.org", "time_zone": "", "enabled": "on"},
    )
    assert response.status_code == 302
    host.refresh_from_db()
    assert host.address == "root@other.example.org:22" and host.ssh_host_key == ""
    assert host.ssh_private_key == private  # the key is never edited


def test_the_local_host_is_edited_without_an_address_and_never_removed(admin_client):
    edit = admin_client.get(reverse("jails:hosts:edit", args=[LOCAL_HOST]))
    assert {"address", "time_zone"}.isdisjoint(edit.context["form"].fields)
    page = admin_client.get(reverse("jails:hosts:remove", args=[LOCAL_HOST]))
    assert "cannot be removed" in text(page)
    refused = admin_client.post(reverse("jails:hosts:remove", args=[LOCAL_HOST]))
    assert refused.status_code == 409 and "disable it instead" in text(refused)
    assert Host.objects.filter(name=LOCAL_HOST).exists()
    assert not AuditEntry.objects.filter(action="host-remove").exists()
    response = admin_client.post(reverse("jails:hosts:edit", args=[LOCAL_HOST]), {"note": "here"})
    assert response.status_code == 302
    assert not Host.objects.get(name=LOCAL_HOST).enabled


def test_remove_asks_first_then_removes_audited(admin_client, other):
    web1 = socket_host("web1", str(other.socket_path))
    source = BlocklistSource.objects.create(name="only-web1", url="https://example.org/a")
    source.hosts.set([web1])
    traces_make("web1", source)
    page = admin_client.get(reverse("jails:hosts:remove", args=["web1"]))
    assert page.status_code == 200 and "Remove web1" in text(page)
    # The confirmation says what is kept (history) and what goes (live bookkeeping).
    kept = page_list(page, "remove-kept")
    assert "1 archived ban" in kept and "1 configuration version" in kept
    removed = page_list(page, "remove-removed")
    assert "1 blocklist entry held on it" in removed and "1 history sync cursor" in removed
    assert "only-web1" in text(page)
    assert Host.objects.filter(name="web1").exists()
    assert traces_count("web1")["HistorySource"] == 1
    response = admin_client.post(reverse("jails:hosts:remove", args=["web1"]))
    assert response.status_code == 302
    assert not Host.objects.filter(name="web1").exists()
    counts = traces_count("web1")
    assert all(counts[label] >= 1 for label in KEPT)
    assert all(counts[label] == 0 for label in REMOVED)
    source.refresh_from_db()
    assert not source.enabled
    record = AuditEntry.objects.get(action="host-remove")
    assert record.parameters["host"] == "web1"
    assert admin_client.get(reverse("jails:hosts:detail", args=["web1"])).status_code == 404


def test_check_reports_a_dead_host_clearly(admin_client):
    socket_host("gone", "/tmp/jailadmin-no-such-host.sock")
    response = admin_client.post(reverse("jails:hosts:check", args=["gone"]))
    assert response.status_code == 502
    body = text(response)
    assert "failed" in body and "jailadmin-no-such-host.sock" in body
    assert Host.objects.get(name="gone").unreachable_since is not None
    detail = text(admin_client.get(reverse("jails:hosts:detail", args=["gone"])))
    assert "unreachable" in detail and "since" in detail


def test_an_unconfirmed_ssh_host_is_not_contacted_by_check(admin_client):
    Host.objects.create(name="far", kind=Host.Kind.SSH, address="root@192.0.2.1:22")
    response = admin_client.post(reverse("jails:hosts:check", args=["far"]))
    assert response.status_code == 502
    assert "not contacted" in text(response)
    assert Host.objects.get(name="far").unreachable_since is None


# --- roles, CSRF, navigation --------------------------------------------------------------------
def test_viewers_see_the_list_but_change_nothing(role_client, state, other):
    socket_host("web1", str(other.socket_path))
    viewer = role_client("viewer")
    page = viewer.get(reverse("jails:hosts:list"))
    assert page.status_code == 200 and "web1" in text(page)
    assert "Add a host" not in text(page)
    assert viewer.get(reverse("jails:hosts:detail", args=["web1"])).status_code == 200
    far = Host.objects.create(
        name="far", kind=Host.Kind.SSH, address="root@far:22", ssh_public_key="x", enabled=False
    )
    detail = viewer.get(reverse("jails:hosts:detail", args=["far"]))
    assert detail.status_code == 200 and "authorized_keys" not in text(detail)
    assert "<form" not in text(detail).split("<main", 1)[1]  # no action for a viewer
    far.delete()
    add = {"name": "x", "kind": "socket", "address": "/run/x.sock"}
    for client in (viewer, role_client("operator", username="op")):
        assert client.get(reverse("jails:hosts:add")).status_code == 403
        assert client.post(reverse("jails:hosts:add"), add).status_code == 403
        assert client.post(reverse("jails:hosts:check", args=["web1"])).status_code == 403
        assert client.post(reverse("jails:hosts:remove", args=["web1"])).status_code == 403
        assert client.post(reverse("jails:hosts:edit", args=["web1"]), {}).status_code == 403
        assert client.post(reverse("jails:hosts:confirm-key", args=["web1"])).status_code == 403
    assert list(Host.objects.values_list("name", flat=True)) == [LOCAL_HOST, "web1"]


def test_anonymous_is_sent_to_log_in(client, state):
    response = client.get(reverse("jails:hosts:list"))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_changes_need_the_csrf_token(role_client, state, other):
    client = role_client("administrator", csrf=True)
    data = {"name": "web1", "kind": "socket", "address": str(other.socket_path)}
    assert client.post(reverse("jails:hosts:add"), data).status_code == 403
    assert not Host.objects.filter(name="web1").exists()
    form = client.get(reverse("jails:hosts:add"))
    data["csrfmiddlewaretoken"] = form.context["csrf_token"]
    assert client.post(reverse("jails:hosts:add"), data).status_code == 302
    assert client.post(reverse("jails:hosts:remove", args=["web1"])).status_code == 403
    assert Host.objects.filter(name="web1").exists()


def test_the_nav_links_hosts_for_administrators_only(role_client, state):
    url = reverse("jails:hosts:list")
    admin_page = role_client("administrator").get(reverse("jails:audit"))
    assert f'href="{url}"' in admin_page.content.decode()
    viewer_page = role_client("viewer", username="v2").get(url)
    assert f'href="{url}"' not in viewer_page.content.decode()


# --- SSH hosts against the real private sshd (tests/hosts/conftest.py) ---------------------------
@pytest.fixture
def ssh_state(state: RuntimeState) -> RuntimeState:
    # The agent's cold start over ssh takes about 1 s here, several on a loaded 1-core box.
    state.snapshot_replace(
        settings=replace(state.settings, fail2ban_timeout=20.0, host_deadline=30.0)
    )
    return state


def test_ssh_host_added_installed_confirmed_and_checked(
    admin_client, ssh_state, ssh_hosts, fleet_sshd
):
    """The whole path an administrator takes, against a real sshd: add, install the key,
    fetch and compare the host's key, confirm it, check."""
    server = ssh_hosts[0].server
    response = admin_client.post(
        reverse("jails:hosts:add"),
        {"name": "new1", "kind": "ssh", "address": fleet_sshd.destination()},
    )
    assert response.status_code == 302
    host = Host.objects.get(name="new1")
    # Not confirmed: the host is not contacted at all.
    not_yet = admin_client.post(reverse("jails:hosts:check", args=["new1"]))
    assert "not contacted" in text(not_yet)
    # Fetch the key: the page shows the sshd's fingerprint and how to compare it.
    expected = ssh.fingerprint(fleet_sshd.host_key_line())
    scan = admin_client.post(reverse("jails:hosts:confirm-key", args=["new1"]))
    assert scan.status_code == 200
    assert expected in text(scan)
    assert "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub" in text(scan)
    assert Host.objects.get(pk=host.pk).ssh_host_key == ""  # fetching stores nothing
    confirmed = admin_client.post(
        reverse("jails:hosts:confirm-key", args=["new1"]), {"fingerprint": expected}
    )
    assert confirmed.status_code == 302
    host.refresh_from_db()
    assert host.ssh_host_key == fleet_sshd.host_key_line()
    record = AuditEntry.objects.get(action="host-key-confirm")
    assert record.parameters == {
        "host": "new1",
        "fingerprint": expected,
        "previous_fingerprint": None,
    }
    # The key is not on the host yet: refused, said plainly.
    refused = admin_client.post(reverse("jails:hosts:check", args=["new1"]))
    assert refused.status_code == 502
    assert "did not accept the site's key" in text(refused)
    # Install its line on the host (the test's forced command runs this checkout's agent).
    fleet_sshd.add_key(host.ssh_public_key, agent_command(server))
    try:
        checked = admin_client.post(reverse("jails:hosts:check", args=["new1"]))
        assert checked.status_code == 200, text(checked)
        body = text(checked)
        assert "jailadmin agent" in body and "<code>sshd</code>" in body
        assert "<code>web</code>" in body
        host.refresh_from_db()
        assert host.unreachable_since is None and host.last_seen is not None
        assert_private_key_never_rendered(admin_client, host)
    finally:
        fleet_sshd.remove_key(host.ssh_public_key)


def test_ssh_confirm_refuses_a_fingerprint_the_host_does_not_present(
    admin_client, ssh_state, ssh_hosts
):
    h1 = ssh_hosts[0]
    Host.objects.create(
        name="h1",
        kind=Host.Kind.SSH,
        address=h1.destination,
        ssh_private_key=h1.private_key,
        ssh_public_key=h1.public_key,
    )
    wrong = ssh.fingerprint(h1.public_key)  # a real fingerprint, but not the host's
    response = admin_client.post(
        reverse("jails:hosts:confirm-key", args=["h1"]), {"fingerprint": wrong}
    )
    assert response.status_code == 409
    assert "does not present the key" in text(response) and "nothing was stored" in text(response)
    assert Host.objects.get(name="h1").ssh_host_key == ""
    assert not AuditEntry.objects.filter(action="host-key-confirm").exists()
    garbage = admin_client.post(
        reverse("jails:hosts:confirm-key", args=["h1"]), {"fingerprint": "SHA256:nope"}
    )
    assert garbage.status_code == 400


def test_ssh_changed_host_key_is_refused_then_confirmed_again_with_a_warning(
    admin_client, ssh_state, ssh_hosts, fleet_sshd
):
    h1, h2 = ssh_hosts[0], ssh_hosts[1]
    # The key confirmed earlier is not the one the host presents now (a reinstalled host).
    old_key = " ".join(h2.public_key.split()[:2])
    (row,) = ssh_host_rows([h1])
    Host.objects.filter(pk=row.pk).update(ssh_host_key=old_key)
    refused = admin_client.post(reverse("jails:hosts:check", args=["h1"]))
    assert refused.status_code == 502
    body = text(refused)
    assert "the host's key changed" in body and "refused" in body
    assert "Fetch again and confirm" in body
    assert Host.objects.get(pk=row.pk).unreachable_since is not None
    scan = admin_client.post(reverse("jails:hosts:confirm-key", args=["h1"]))
    body = text(scan)
    assert "The host presents a different key" in body
    assert ssh.fingerprint(old_key) in body
    current = ssh.fingerprint(fleet_sshd.host_key_line())
    assert current in body
    admin_client.post(reverse("jails:hosts:confirm-key", args=["h1"]), {"fingerprint": current})
    record = AuditEntry.objects.get(action="host-key-confirm")
    assert record.parameters["previous_fingerprint"] == ssh.fingerprint(old_key)
    checked = admin_client.post(reverse("jails:hosts:check", args=["h1"]))
    assert checked.status_code == 200, text(checked)
    assert Host.objects.get(pk=row.pk).unreachable_since is None


def test_ssh_check_refuses_a_key_that_opens_a_shell(admin_client, ssh_state, ssh_hosts, fleet_sshd):
    """A host whose authorized_keys line lacks the forced command: the site will not use it."""
    admin_client.post(
        reverse("jails:hosts:add"),
        {"name": "shell1", "kind": "ssh", "address": fleet_sshd.destination()},
    )
    host = Host.objects.get(name="shell1")
    Host.objects.filter(pk=host.pk).update(ssh_host_key=fleet_sshd.host_key_line())
    fleet_sshd.add_key(host.ssh_public_key, None)  # no command="…": this key gets a shell
    try:
        response = admin_client.post(reverse("jails:hosts:check", args=["shell1"]))
    finally:
        fleet_sshd.remove_key(host.ssh_public_key)
    assert response.status_code == 502
    body = text(response)
    assert "the site's key opens a shell" in body and "refused" in body
    assert Host.objects.get(pk=host.pk).unreachable_since is not None


def test_a_group_given_hosts_sees_and_manages_those_hosts_only(django_user_model, state, other):
    socket_host("web1", str(other.socket_path))
    socket_host("web2", str(other.socket_path))
    group = Group.objects.create(name="web1 admins")
    group.permissions.set(Group.objects.get(name=ADMINISTRATOR).permissions.all())
    Host.objects.get(name="web1").groups.add(group)
    user = django_user_model.objects.create_user("limited", password="x")
    user.groups.add(group)
    client = Client()
    client.force_login(user)
    page = client.get(reverse("jails:hosts:list"))
    assert [check.host.name for check in page.context["checks"]] == ["web1"]
    assert "Add a host" not in text(page)
    assert client.get(reverse("jails:hosts:detail", args=["web2"])).status_code == 403
    assert client.post(reverse("jails:hosts:remove", args=["web2"])).status_code == 403
    assert client.get(reverse("jails:hosts:add")).status_code == 403
    assert client.post(reverse("jails:hosts:check", args=["web1"])).status_code == 200
    assert client.post(reverse("jails:hosts:remove", args=["web1"])).status_code == 302
    assert list(Host.objects.values_list("name", flat=True)) == [LOCAL_HOST, "web2"]
