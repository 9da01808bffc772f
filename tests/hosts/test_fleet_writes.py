"""Changes on several hosts run at once (issue 12, item 3): ban / unban everywhere from
/ip/<address>/ and `manage.py jails ban|unban … --all-hosts` ask every host in parallel,
each within the per-host deadline. A host that misses it holds up no other and is reported
as "no answer within N s — the ban may still have happened" (never as done or failed); the
audit records are written on the calling thread, one per host, and say the same.

Real private fail2ban servers play the healthy hosts (web_hosts: local, web1, web2; their
real ban lists are asserted); a fake server that never answers plays the hung one.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from jails.fail2ban.server import PrivateServer
from jails.hosts.models import LOCAL_HOST, Host
from jails.models import AuditEntry
from tests.conftest import runtime_install
from tests.support.fakeserver import FakeFail2ban, hang

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.61"
HEALTHY = (LOCAL_HOST, "web1", "web2")


def banned(server: PrivateServer, jail: str = "sshd") -> set[str]:
    return {str(ip) for ip in server.client().send("get", jail, "banip")}


@pytest.fixture
def hung(web_hosts, f2b) -> Iterator[FakeFail2ban]:
    """web_hosts plus "stuck", which never answers; a 1 s deadline and a link timeout far
    beyond it, so only the deadline can end the wait for it."""
    runtime_install(f2b, agent=None, host_deadline=1.0, fail2ban_timeout=60.0)
    with FakeFail2ban(hang()) as server:
        Host.objects.create(name="stuck", kind=Host.Kind.SOCKET, address=server.path)
        yield server


def result_row(page: str, host: str) -> tuple[str, str]:
    found = re.search(
        rf"<tr class=\"result-[a-z-]+\"><td>{host}</td><td>([^<]*)</td><td>([^<]*)<", page
    )
    assert found, f"no result line for {host}"
    return found.group(1), found.group(2)


def test_ban_everywhere_with_a_hung_host_bans_the_others_and_says_what_is_unknown(
    web_hosts, hung, logged_in_client, db_threads
):
    response = logged_in_client.post(
        reverse("jails:ip-ban", args=[ADDRESS]),
        {"jail": "sshd", "everywhere": "1", "confirm": "yes"},
        HTTP_HX_REQUEST="true",
    )
    page = response.content.decode()
    for name in HEALTHY:
        assert banned(web_hosts[name]) == {ADDRESS}
        assert result_row(page, name) == ("ok", "banned in sshd")
    assert result_row(page, "stuck") == (
        "unreachable",
        "no answer within 1 s — the ban may still have happened",
    )
    assert f"Banned {ADDRESS} on 3 of 4 hosts." in page
    # One record per host, written by the request's thread: done on three, unknown on one.
    records = {e.host: e for e in AuditEntry.objects.filter(action="ban")}
    assert sorted(records) == sorted([*HEALTHY, "stuck"])
    assert all(records[name].ok is True and records[name].ips == [ADDRESS] for name in HEALTHY)
    assert records["stuck"].ok is None
    assert records["stuck"].error == "no answer within 1 s — the ban may still have happened"
    assert not [name for name in db_threads if name.startswith("fleet-")]
    assert Host.objects.get(name="stuck").unreachable_since is not None
    # The audit page tells "unknown" from "failed".
    audit = logged_in_client.get(reverse("jails:audit")).content.decode()
    assert "the ban may still have happened" in audit


def test_unconfirmed_ban_everywhere_checks_in_parallel_and_sends_nothing_to_a_hung_host(
    web_hosts, hung, logged_in_client
):
    response = logged_in_client.post(
        reverse("jails:ip-ban", args=[ADDRESS]),
        {"jail": "sshd", "everywhere": "1"},
        HTTP_HX_REQUEST="true",
    )
    page = response.content.decode()
    for name in HEALTHY:
        assert banned(web_hosts[name]) == {ADDRESS}
    # Only the check was asked there, and it did not answer: the ban was never sent.
    assert result_row(page, "stuck") == ("unreachable", "not sent: no answer within 1 s")
    hosts = sorted(AuditEntry.objects.filter(action="ban").values_list("host", flat=True))
    assert hosts == sorted(HEALTHY)


def test_unban_everywhere_skips_a_host_seen_hung_a_moment_ago_and_audits_it(
    web_hosts, hung, logged_in_client
):
    for name in HEALTHY:
        web_hosts[name].client().send("set", "sshd", "banip", ADDRESS)
    # The page's read finds stuck hung: its call is still waiting, so nobody asks it again.
    logged_in_client.get(reverse("jails:ip-detail", args=[ADDRESS]))
    asked = hung.connections
    response = logged_in_client.post(
        reverse("jails:ip-unban", args=[ADDRESS]),
        {"jail": "*", "everywhere": "1"},
        HTTP_HX_REQUEST="true",
    )
    page = response.content.decode()
    for name in HEALTHY:
        assert banned(web_hosts[name]) == set()
        assert result_row(page, name) == ("ok", "unbanned from every jail")
    status, message = result_row(page, "stuck")
    assert status == "unreachable"
    assert message.startswith("not sent: last error: no answer within 1 s; next try")
    assert hung.connections == asked
    records = {e.host: e for e in AuditEntry.objects.filter(action="unban_everywhere")}
    assert all(records[name].ok is True for name in HEALTHY)
    assert records["stuck"].ok is False and records["stuck"].error.startswith("not sent:")


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("jails", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), f"{err.getvalue()}{exc}"
    return 0, out.getvalue(), err.getvalue()


def test_command_ban_all_hosts_with_a_hung_host(web_hosts, hung, db_threads):
    code, out, err = run("ban", "sshd", ADDRESS, "198.51.100.9", "--all-hosts", "--json")
    assert code == 1
    records = {record["host"]: record for record in json.loads(out)}
    for name in HEALTHY:
        assert banned(web_hosts[name]) == {ADDRESS, "198.51.100.9"}
        assert records[name]["ok"] and records[name]["counts"] == {"banned": 2}
    assert records["stuck"] == {
        "host": "stuck",
        "ok": False,
        "error": "no answer within 1 s — the ban may still have happened",
        "timed_out": True,
    }
    assert "stuck: error: no answer within 1 s — the ban may still have happened" in err
    entries = {e.host: e for e in AuditEntry.objects.filter(action="ban")}
    assert entries["stuck"].ok is None and all(entries[name].ok for name in HEALTHY)
    assert not [name for name in db_threads if name.startswith("fleet-")]
    # ...and unban from every host (in this same process: stuck's call is still waiting, so
    # it is not asked again and nothing is sent there); the others are cleared.
    code, out, err = run("unban", ADDRESS, "--all-hosts")
    assert code == 1
    assert out.count("unban in every jail: 1 unbanned") == 3
    for name in HEALTHY:
        assert banned(web_hosts[name]) == {"198.51.100.9"}
    assert "stuck: error: not sent: last error: no answer within 1 s" in err
