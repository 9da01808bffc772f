"""The pages over the five real SSH hosts (tests/hosts/conftest.py): one real sshd whose keys
each force the agent for a different private fail2ban, reached exactly as remote hosts are.

Ban everywhere / unban everywhere from /ip/<address>/, checked in fail2ban on every host.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from jails.fail2ban.server import PrivateServer
from jails.models import AuditEntry
from tests.conftest import runtime_install
from tests.hosts.conftest import LINK_TIMEOUT, SshHost

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

ADDRESS = "203.0.113.88"


def banned(server: PrivateServer, jail: str) -> set[str]:
    return {str(ip) for ip in server.client().send("get", jail, "banip")}


@pytest.fixture
def ssh_site(f2b, ssh_hosts: list[SshHost], ssh_host_records) -> list[SshHost]:
    """The local host plus h1..h5 over ssh. The agent's cold start over ssh takes about a
    second here and several on a loaded 1-core box: deadline and link timeout sized for it."""
    runtime_install(f2b, agent=None, host_deadline=LINK_TIMEOUT, fail2ban_timeout=LINK_TIMEOUT)
    return ssh_hosts


def test_ssh_hosts_list_and_jail_page(ssh_site: list[SshHost], logged_in_client) -> None:
    ssh_site[2].server.client().send("set", "web", "banip", ADDRESS)
    page = logged_in_client.get(reverse("jails:jail-list")).content.decode()
    assert "<strong>6</strong> of 6 hosts up" in page
    for host in ssh_site:
        assert reverse("jails:host-jail-detail", args=[host.name, "web"]) in page
    response = logged_in_client.get(reverse("jails:host-jail-detail", args=["h3", "web"]))
    assert response.status_code == 200
    assert ADDRESS in response.content.decode()


def test_ban_everywhere_and_unban_everywhere_over_ssh(
    ssh_site: list[SshHost], logged_in_client
) -> None:
    response = logged_in_client.post(
        reverse("jails:ip-ban", args=[ADDRESS]), {"jail": "sshd", "everywhere": "1"}
    )
    page = response.content.decode()
    assert f"Banned {ADDRESS} on 6 of 6 hosts." in page
    for host in ssh_site:
        assert banned(host.server, "sshd") == {ADDRESS}, host.name
        assert banned(host.server, "web") == set()
    audited = AuditEntry.objects.filter(action="ban", ips=[ADDRESS])
    assert sorted(audited.values_list("host", flat=True)) == sorted(
        ["local", *(host.name for host in ssh_site)]
    )

    page = logged_in_client.get(reverse("jails:ip-detail", args=[ADDRESS])).content.decode()
    for host in ssh_site:
        assert reverse("jails:host-jail-detail", args=[host.name, "sshd"]) in page

    response = logged_in_client.post(
        reverse("jails:ip-unban", args=[ADDRESS]), {"jail": "*", "everywhere": "1"}
    )
    assert f"Unbanned {ADDRESS} on 6 of 6 hosts." in response.content.decode()
    for host in ssh_site:
        assert banned(host.server, "sshd") == set(), host.name
