"""Hosts in the Django admin: the private key in no form and no page, an SSH host added here
gets its key pair, the local host cannot be deleted, groups are given hosts (both pages)."""

from __future__ import annotations

import html

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from jails.blocklists.models import BlocklistSource
from jails.hosts.models import LOCAL_HOST, Host
from jails.models import AuditEntry, SiteSettings
from tests.support.host_traces import KEPT, REMOVED, traces_count, traces_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(role_client):
    SiteSettings.objects.update_or_create(
        singleton=1, defaults={"setup_complete": True, "fail2ban_socket": "/tmp/x.sock"}
    )
    return role_client("administrator", staff=True)


def text(response) -> str:
    return html.unescape(response.content.decode())


def add_ssh_host(client, name: str = "far", address: str = "root@far.example.org") -> Host:
    response = client.post(
        reverse("admin:hosts_host_add"),
        {
            "name": name,
            "kind": "ssh",
            "address": address,
            "time_zone": "",
            "enabled": "on",
            "note": "",
            "groups": [],
        },
    )
    assert response.status_code == 302, text(response)
    return Host.objects.get(name=name)


def test_an_ssh_host_added_in_the_admin_gets_a_key_pair_never_shown(admin_client):
    host = add_ssh_host(admin_client)
    assert host.address == "root@far.example.org:22"
    assert host.ssh_private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert host.ssh_public_key.startswith("ssh-ed25519 ")
    assert AuditEntry.objects.filter(action="admin_add").exists()
    change = admin_client.get(reverse("admin:hosts_host_change", args=[host.pk]))
    assert change.status_code == 200
    form = change.context["adminform"].form
    assert "ssh_private_key" not in form.fields and "ssh_host_key" not in form.fields
    assert "ssh_public_key" not in form.fields  # read-only: shown, not editable
    body = text(change)
    assert host.ssh_public_key in body and "not confirmed" in body
    assert "PRIVATE KEY" not in body
    for line in host.ssh_private_key.splitlines()[1:-1]:
        assert line not in body
    listing = text(admin_client.get(reverse("admin:hosts_host_changelist")))
    assert "far" in listing and "root@far.example.org:22" in listing
    assert "PRIVATE KEY" not in listing


def test_admin_checks_addresses_and_keeps_the_key_on_change(admin_client):
    bad = admin_client.post(
        reverse("admin:hosts_host_add"),
        {"name": "bad", "kind": "socket", "address": "relative.sock", "time_zone": ""},
    )
    assert bad.status_code == 200 and "absolute path" in text(bad)
    assert not Host.objects.filter(name="bad").exists()
    local_kind = admin_client.post(
        reverse("admin:hosts_host_add"),
        {"name": "two", "kind": "local", "address": "", "time_zone": ""},
    )
    assert local_kind.status_code == 200 and not Host.objects.filter(name="two").exists()
    host = add_ssh_host(admin_client)
    private = host.ssh_private_key
    Host.objects.filter(pk=host.pk).update(ssh_host_key=host.ssh_public_key.rsplit(" ", 1)[0])
    response = admin_client.post(
        reverse("admin:hosts_host_change", args=[host.pk]),
        {
            "name": "far",
            "address": "root@moved.example.org",
            "time_zone": "UTC",
            "enabled": "on",
            "note": "moved",
        },
    )
    assert response.status_code == 302, text(response)
    host.refresh_from_db()
    assert host.ssh_private_key == private and host.time_zone == "UTC"
    assert host.ssh_host_key == ""  # another destination: confirm its key anew


def test_the_local_host_cannot_be_deleted_in_the_admin(admin_client):
    local = Host.objects.get(name=LOCAL_HOST)
    change = admin_client.get(reverse("admin:hosts_host_change", args=[local.pk]))
    fields = change.context["adminform"].form.fields
    # The site's own fail2ban setting: only the note, enabled and groups are the admin's here.
    assert {"name", "kind", "address", "time_zone"}.isdisjoint(fields)
    assert {"note", "enabled", "groups"} <= set(fields)
    page = admin_client.get(reverse("admin:hosts_host_delete", args=[local.pk]))
    assert page.status_code == 403
    response = admin_client.post(
        reverse("admin:hosts_host_changelist"),
        {"action": "delete_selected", "_selected_action": [local.pk], "post": "yes"},
    )
    assert response.status_code == 403  # the bulk deletion is refused for it too
    assert Host.objects.filter(name=LOCAL_HOST).exists()
    assert not AuditEntry.objects.filter(action__in=["admin_delete", "host-remove"]).exists()
    far = add_ssh_host(admin_client)
    response = admin_client.post(reverse("admin:hosts_host_delete", args=[far.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Host.objects.filter(name="far").exists()
    assert AuditEntry.objects.get(action="host-remove").parameters["host"] == "far"


def test_the_admin_delete_page_says_what_is_kept_and_removed(admin_client):
    far = add_ssh_host(admin_client)
    source = BlocklistSource.objects.create(name="only-far", url="https://example.org/a")
    source.hosts.set([far])
    traces_make("far", source)
    page = admin_client.get(reverse("admin:hosts_host_delete", args=[far.pk]))
    assert page.status_code == 200
    body = text(page)
    kept = body[body.index('id="remove-kept"') : body.index('id="remove-removed"')]
    assert "<li>1 archived ban</li>" in kept and "<li>1 configuration version</li>" in kept
    removed = body[body.index('id="remove-removed"') :]
    assert "<li>1 history sync cursor</li>" in removed
    assert "only-far" in body[body.index('id="remove-disabled-sources"') :]
    response = admin_client.post(reverse("admin:hosts_host_delete", args=[far.pk]), {"post": "yes"})
    assert response.status_code == 302
    counts = traces_count("far")
    assert all(counts[label] >= 1 for label in KEPT)
    assert all(counts[label] == 0 for label in REMOVED)
    record = AuditEntry.objects.get(action="host-remove")
    assert record.parameters["removed"]["blocklist entries held on it"] == 1


def test_groups_are_given_hosts_on_either_page(admin_client):
    host = add_ssh_host(admin_client)
    group = Group.objects.create(name="far operators")
    change = admin_client.get(reverse("admin:hosts_host_change", args=[host.pk]))
    assert "far operators" in text(change)
    response = admin_client.post(
        reverse("admin:hosts_host_change", args=[host.pk]),
        {
            "name": "far",
            "address": host.address,
            "time_zone": "",
            "enabled": "on",
            "note": "",
            "groups": [group.pk],
        },
    )
    assert response.status_code == 302, text(response)
    assert list(host.groups.all()) == [group]
    group_page = admin_client.get(reverse("admin:auth_group_change", args=[group.pk]))
    assert group_page.status_code == 200
    body = text(group_page)
    assert "Hosts this group is limited to" in body
    inline = group_page.context["inline_admin_formsets"][0].formset
    assert [form.instance.host for form in inline.forms] == [host]


def test_viewers_see_hosts_in_the_admin_but_change_nothing(role_client, admin_client):
    viewer = role_client("viewer", username="v", staff=True)
    assert viewer.get(reverse("admin:hosts_host_changelist")).status_code == 200
    assert viewer.get(reverse("admin:hosts_host_add")).status_code == 403
    local = Host.objects.get(name=LOCAL_HOST)
    page = viewer.get(reverse("admin:hosts_host_change", args=[local.pk]))
    assert page.status_code == 200 and "Save" not in text(page)
