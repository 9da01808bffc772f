"""/metrics over several hosts: every fail2ban series carries its host, each host's values are
its own server's counters, a down or hung host reports up 0 and never hides the others.

The session's server is the local host; two more private servers are hosts of kind "socket";
a fake server that never answers plays a hung host.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from jails.fail2ban.server import PrivateServer
from jails.hosts.models import LOCAL_HOST, Host
from jails.metrics.services.fail2ban import CACHE_KEY, samples_from_cache
from tests.conftest import FAIL2BAN_VERSION, runtime_install, wait_until
from tests.hosts.conftest import LINK_TIMEOUT
from tests.metrics.helpers import TOKEN, samples, value
from tests.support.fakeserver import FakeFail2ban, hang

pytestmark = pytest.mark.django_db

COUNTERS = {
    "jailadmin_jail_currently_failed": "currently_failed",
    "jailadmin_jail_failed_total": "total_failed",
    "jailadmin_jail_currently_banned": "currently_banned",
    "jailadmin_jail_banned_total": "total_banned",
}


@pytest.fixture(autouse=True)
def metrics_allowed(settings) -> None:
    """Scraping allowed with the test token."""
    settings.JAILADMIN_METRICS_TOKEN = TOKEN
    settings.JAILADMIN_METRICS_ALLOWED = []


def scrape(client: Client) -> dict:
    response = client.get(
        reverse("jails:metrics:scrape"), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200
    return samples(response.content)


def status_counters(server: PrivateServer, jail: str) -> dict[str, int]:
    """What `status <jail>` says, straight from the server's socket."""
    reply = dict(server.client().send("status", jail))
    filt, actions = dict(reply["Filter"]), dict(reply["Actions"])
    return {
        "currently_failed": int(filt["Currently failed"]),
        "total_failed": int(filt["Total failed"]),
        "currently_banned": int(actions["Currently banned"]),
        "total_banned": int(actions["Total banned"]),
    }


def test_fleet_metrics_every_host_reports_its_own_counters(web_hosts, client):
    web1, web2 = web_hosts["web1"], web_hosts["web2"]
    web1.client().send("set", "sshd", "banip", "203.0.113.1", "203.0.113.2")
    web2.client().send("set", "web", "banip", "198.51.100.9")
    # A real failure on web2 (one line: below maxretry, counted as currently failed).
    web2.append_failures("sshd", ["192.0.2.77"])
    wait_until(lambda: status_counters(web2, "sshd")["currently_failed"] == 1)
    found = scrape(client)
    for name, server in web_hosts.items():
        assert value(found, "jailadmin_fail2ban_up", host=name) == 1
        assert value(found, "jailadmin_fail2ban_info", host=name, version=FAIL2BAN_VERSION) == 1
        jails = [spec.name for spec in server.jails]
        assert value(found, "jailadmin_fail2ban_jails", host=name) == len(jails)
        for jail in jails:
            counters = status_counters(server, jail)
            for metric, key in COUNTERS.items():
                assert value(found, metric, host=name, jail=jail) == counters[key], (name, jail)
    assert value(found, "jailadmin_jail_currently_banned", host="web1", jail="sshd") == 2
    assert value(found, "jailadmin_jail_currently_banned", host="web2", jail="web") == 1
    assert value(found, "jailadmin_jail_currently_failed", host="web2", jail="sshd") == 1
    # The same jail name on two hosts: two series, never merged.
    assert value(found, "jailadmin_jail_currently_banned", host=LOCAL_HOST, jail="sshd") == 0


def test_fleet_metrics_round_is_shared_for_every_host(web_hosts, client, runtime):
    scrape(client)
    stored = samples_from_cache(runtime.session_cache.backend.get(CACHE_KEY))
    assert stored is not None and [s.host for s in stored] == [LOCAL_HOST, "web1", "web2"]
    web_hosts["web1"].client().send("set", "sshd", "banip", "203.0.113.5")
    # Within the cache period a scrape reads the shared round (every host's, from one entry).
    cached = scrape(client)
    assert value(cached, "jailadmin_jail_currently_banned", host="web1", jail="sshd") == 0
    runtime.session_cache.backend.delete(CACHE_KEY)
    fresh = scrape(client)
    assert value(fresh, "jailadmin_jail_currently_banned", host="web1", jail="sshd") == 1


def test_fleet_metrics_a_down_host_is_up_zero_and_the_others_report(web_hosts, client):
    Host.objects.create(name="gone", kind=Host.Kind.SOCKET, address="/tmp/jm-no-such-host.sock")
    Host.objects.create(
        name="off", kind=Host.Kind.SOCKET, address=str(web_hosts["web1"].socket_path), enabled=False
    )
    web_hosts["web2"].client().send("set", "sshd", "banip", "203.0.113.7")
    found = scrape(client)
    assert value(found, "jailadmin_fail2ban_up", host="gone") == 0
    assert value(found, "jailadmin_jail_currently_banned", host="web2", jail="sshd") == 1
    assert value(found, "jailadmin_fail2ban_up", host="web1") == 1
    # A disabled host is not asked and has no series at all.
    assert not [labels for (_, labels) in found if ("host", "off") in labels]
    # The down host has only up and the sample's age: no counters made up for it.
    gone = {name for (name, labels) in found if ("host", "gone") in labels}
    assert gone == {"jailadmin_fail2ban_up", "jailadmin_fail2ban_sample_age_seconds"}
    assert Host.objects.get(name="gone").unreachable_since is not None


def test_fleet_metrics_a_hung_host_misses_the_deadline_and_the_others_report(
    web_hosts, f2b, client
):
    # A long link timeout: only the per-host deadline can end the wait for the hung host.
    runtime_install(f2b, agent=None, host_deadline=1.0, fail2ban_timeout=60.0)
    web_hosts["web1"].client().send("set", "web", "banip", "203.0.113.9")
    with FakeFail2ban(hang()) as hung:
        Host.objects.create(name="stuck", kind=Host.Kind.SOCKET, address=hung.path)
        found = scrape(client)
    assert value(found, "jailadmin_fail2ban_up", host="stuck") == 0
    assert value(found, "jailadmin_jail_currently_banned", host="web1", jail="web") == 1
    assert value(found, "jailadmin_fail2ban_up", host=LOCAL_HOST) == 1
    row = Host.objects.get(name="stuck")
    assert row.unreachable_since is not None and row.last_error == "no answer within 1 s"


def test_fleet_metrics_over_ssh_hosts(f2b, ssh_hosts, ssh_host_records, client):
    """Five hosts reached as remote hosts are (the agent behind sshd's forced command)."""
    runtime_install(f2b, agent=None, fail2ban_timeout=LINK_TIMEOUT, host_deadline=LINK_TIMEOUT)
    for index, host in enumerate(ssh_hosts, start=1):
        addresses = [f"203.0.113.{index * 10 + n}" for n in range(index)]
        host.server.client().send("set", "web", "banip", *addresses)
    found = scrape(client)
    for index, host in enumerate(ssh_hosts, start=1):
        assert value(found, "jailadmin_fail2ban_up", host=host.name) == 1
        assert value(found, "jailadmin_jail_currently_banned", host=host.name, jail="web") == index
        for jail in ("sshd", "web"):
            counters = status_counters(host.server, jail)
            for metric, key in COUNTERS.items():
                assert value(found, metric, host=host.name, jail=jail) == counters[key]
    assert value(found, "jailadmin_fail2ban_up", host=LOCAL_HOST) == 1
