"""The pages across hosts (issue 12): /jails/ with a host column, jail pages under
/hosts/<host>/jails/<name>/, /ip/<address>/ on every host with ban/unban on chosen hosts or
everywhere, the status bar, per-host permissions.

The session's server is the local host (jails sshd, nginx-http-auth, postfix); three more
private servers are hosts of kind "socket" (jails sshd and web); a fake server that never
answers plays a hung host. Every change is checked in fail2ban itself, on every host.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from jails.fail2ban.server import JailSpec, PrivateServer
from jails.hosts.models import LOCAL_HOST, Host
from jails.models import AuditEntry
from jails.roles import OPERATOR
from tests.conftest import runtime_install
from tests.hosts.conftest import quiet_servers, socket_hosts_add
from tests.support.fakeserver import FakeFail2ban, hang

pytestmark = pytest.mark.django_db

SOCKET_JAILS = (JailSpec("sshd", bantime="1h"), JailSpec("web", bantime="1h"))
SOCKET_HOSTS = ("s1", "s2", "s3")
ADDRESS = "203.0.113.77"


@pytest.fixture(scope="module")
def socket_servers() -> Iterator[dict[str, PrivateServer]]:
    """Three quiet private fail2ban servers (no-op actions), for the module."""
    yield from quiet_servers("jfp-", SOCKET_HOSTS, SOCKET_JAILS)


@pytest.fixture
def hosts(f2b, socket_servers) -> dict[str, PrivateServer]:
    """local (the session's server) and s1..s3 (reset, as enabled rows of kind socket)."""
    return socket_hosts_add(f2b, socket_servers)


def banned(server: PrivateServer, jail: str) -> set[str]:
    return {str(ip) for ip in server.client().send("get", jail, "banip")}


def body(response) -> str:
    return response.content.decode()


def host_jail(host: str, jail: str, route: str = "detail") -> str:
    return reverse(f"jails:host-jail-{route}", args=[host, jail])


def limited_client(django_user_model, *hosts: str) -> Client:
    """An operator whose only group is limited to `hosts`."""
    group = Group.objects.create(name=f"operators of {'+'.join(hosts)}")
    group.permissions.set(Group.objects.get(name=OPERATOR).permissions.all())
    for name in hosts:
        Host.objects.get(name=name).groups.add(group)
    user = django_user_model.objects.create_user("limited", password="x")
    user.groups.add(group)
    client = Client()
    client.force_login(user)
    return client


# --- /jails/ across hosts ----------------------------------------------------------------------
def test_fleet_jail_list_has_a_host_column_and_per_host_totals(hosts, logged_in_client):
    hosts["s2"].client().send("set", "web", "banip", ADDRESS, "198.51.100.2")
    response = logged_in_client.get(reverse("jails:jail-list"))
    assert response.status_code == 200
    page = body(response)
    assert ">Host" in page
    for name in SOCKET_HOSTS:
        assert f'href="{host_jail(name, "web")}"' in page
        assert f'href="{host_jail(name, "sshd")}"' in page
    assert f'href="{host_jail(LOCAL_HOST, "postfix")}"' in page
    # The hosts' table: s2 has 2 jails and 2 bans; the total over all hosts is 2.
    assert re.search(r'host=s2">s2</a></td><td class="num">2</td><td class="num">2</td>', page)
    assert re.search(r'host=s1">s1</a></td><td class="num">2</td><td class="num">0</td>', page)
    assert re.search(r'All hosts</th><td></td><td class="num">2</td>', page)


def test_fleet_jail_list_filters_by_host_and_polls_with_the_filter(hosts, logged_in_client):
    url = reverse("jails:jail-list")
    page = body(logged_in_client.get(url, {"host": "s1"}))
    assert f'href="{host_jail("s1", "web")}"' in page
    assert host_jail("s2", "web") not in page
    assert host_jail(LOCAL_HOST, "postfix") not in page
    assert '<option value="s1" selected>' in page
    partial = logged_in_client.get(url, {"host": "s1", "q": "we"}, HTTP_HX_REQUEST="true")
    assert "HX-Request" in partial["Vary"]
    fragment = body(partial)
    assert fragment.lstrip().startswith('<div id="jail-table"')
    assert "&amp;host=s1" in fragment  # the poll keeps asking the same host
    assert f'href="{host_jail("s1", "web")}"' in fragment
    assert host_jail("s1", "sshd") not in fragment  # the name filter still applies
    assert logged_in_client.get(url, {"host": "nope"}).status_code == 404


def test_single_host_site_shows_no_host_column(runtime, f2b, logged_in_client):
    page = body(logged_in_client.get(reverse("jails:jail-list")))
    assert ">Host" not in page
    assert "/hosts/" not in page
    assert f'href="{reverse("jails:jail-detail", args=["sshd"])}"' in page


def test_a_hung_host_is_shown_unreachable_and_the_rest_renders(hosts, f2b, logged_in_client):
    runtime_install(f2b, agent=None, host_deadline=1.0)
    with FakeFail2ban(hang()) as hung:
        Host.objects.create(name="stuck", kind=Host.Kind.SOCKET, address=hung.path)
        response = logged_in_client.get(reverse("jails:jail-list"))
        assert response.status_code == 200
        page = body(response)
        assert re.search(r"<strong>stuck</strong> unreachable since <time", page)
        assert "no answer within 1 s" in page
        assert f'href="{host_jail("s3", "web")}"' in page
        # The same page's status bar reuses the answers: 4 of 5 hosts up.
        assert "<strong>4</strong> of 5 hosts up" in page
        assert "stuck unreachable</a>" in page
    row = Host.objects.get(name="stuck")
    assert row.unreachable_since is not None and row.last_error == "no answer within 1 s"


def test_a_disabled_host_is_not_shown_nor_served(hosts, logged_in_client):
    Host.objects.filter(name="s3").update(enabled=False)
    page = body(logged_in_client.get(reverse("jails:jail-list")))
    assert host_jail("s3", "web") not in page
    assert f'href="{host_jail("s2", "web")}"' in page
    assert logged_in_client.get(host_jail("s3", "web")).status_code == 404
    response = logged_in_client.post(host_jail("s3", "web", "ban"), {"ip": ADDRESS})
    assert response.status_code == 404
    assert ADDRESS not in banned(hosts["s3"], "web")


def test_status_bar_counts_hosts_up_and_bans_across_hosts(hosts, logged_in_client):
    hosts["s1"].client().send("set", "web", "banip", ADDRESS)
    hosts[LOCAL_HOST].client().send("set", "postfix", "banip", "198.51.100.9")
    page = body(logged_in_client.get(reverse("jails:status-bar")))
    assert "<strong>4</strong> of 4 hosts up" in page
    assert "<strong>2</strong> banned now, all hosts" in page
    assert "<strong>9</strong> jails" in page


# --- a jail's page on a host --------------------------------------------------------------------
def test_jail_name_on_several_hosts_lists_them(hosts, logged_in_client):
    response = logged_in_client.get(reverse("jails:jail-detail", args=["web"]))
    assert response.status_code == 200
    page = body(response)
    assert "web exists on s1, s2, s3." in page
    for name in SOCKET_HOSTS:
        assert f'href="{host_jail(name, "web")}"' in page


def test_jail_name_on_one_host_redirects_there(hosts, logged_in_client):
    response = logged_in_client.get(reverse("jails:jail-detail", args=["postfix"]), {"q": "1"})
    assert response.status_code == 302
    assert response["Location"] == host_jail(LOCAL_HOST, "postfix") + "?q=1"
    missing = logged_in_client.get(reverse("jails:jail-detail", args=["nope"]))
    assert missing.status_code == 404


def test_host_jail_page_links_and_forms_carry_the_host(hosts, logged_in_client):
    hosts["s2"].client().send("set", "web", "banip", ADDRESS)
    response = logged_in_client.get(host_jail("s2", "web"))
    assert response.status_code == 200
    page = body(response)
    assert "Jail <code>web</code> on <code>s2</code>" in page
    assert ADDRESS in page
    for route in ("ban", "bulk-ban", "unban", "unban-all", "ignore", "tune", "control"):
        assert host_jail("s2", "web", route) in page
    assert 'action="/jails/' not in page and 'hx-post="/jails/' not in page
    counters = logged_in_client.get(host_jail("s2", "web"), HTTP_HX_REQUEST="true")
    assert f'hx-get="{host_jail("s2", "web")}"' in body(counters)


def test_host_jail_page_of_an_unknown_host_or_jail_is_404(hosts, logged_in_client):
    assert logged_in_client.get(host_jail("nope", "web")).status_code == 404
    response = logged_in_client.get(host_jail("s1", "postfix"))
    assert response.status_code == 404
    assert "on <code>s1</code> has no jail named <code>postfix</code>" in body(response)
    assert host_jail("s1", "postfix", "control") in body(response)


def test_ban_and_unban_on_a_host_act_there_only_and_audit_the_host(hosts, logged_in_client):
    response = logged_in_client.post(host_jail("s2", "web", "ban"), {"ip": ADDRESS})
    assert response.status_code == 302
    assert response["Location"] == host_jail("s2", "web")
    assert banned(hosts["s2"], "web") == {ADDRESS}
    assert banned(hosts["s1"], "web") == set() and banned(hosts["s3"], "web") == set()
    entry = AuditEntry.objects.filter(action="ban").latest("id")
    assert (entry.host, entry.jail, entry.ips) == ("s2", "web", [ADDRESS])

    response = logged_in_client.post(
        host_jail("s2", "web", "unban"), {"ip": ADDRESS}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert f"Unbanned {ADDRESS} from web." in body(response)
    assert banned(hosts["s2"], "web") == set()


def test_bulk_ban_and_tune_on_a_host(hosts, logged_in_client):
    response = logged_in_client.post(
        host_jail("s3", "web", "bulk-ban"), {"text": "203.0.113.1\n203.0.113.2"}
    )
    assert response.status_code == 200
    assert banned(hosts["s3"], "web") == {"203.0.113.1", "203.0.113.2"}
    assert banned(hosts["s1"], "web") == set()
    response = logged_in_client.post(
        host_jail("s3", "web", "tune"), {"maxretry": "7", "confirm": "yes"}
    )
    assert response.status_code == 302
    assert hosts["s3"].client().send("get", "web", "maxretry") == 7
    assert hosts["s1"].client().send("get", "web", "maxretry") != 7


# --- per-host permissions and CSRF --------------------------------------------------------------
def test_a_group_given_one_host_sees_and_operates_there_only(hosts, django_user_model):
    client = limited_client(django_user_model, "s1")
    page = body(client.get(reverse("jails:jail-list")))
    assert f'href="{host_jail("s1", "web")}"' in page
    assert host_jail("s2", "web") not in page and "/hosts/local/" not in page
    assert client.get(host_jail("s2", "web")).status_code == 403
    assert client.get(reverse("jails:jail-list"), {"host": "s2"}).status_code == 403
    assert client.post(host_jail("s2", "web", "ban"), {"ip": ADDRESS}).status_code == 403
    assert banned(hosts["s2"], "web") == set()
    # The pre-fleet URLs mean the local host, which this group was not given.
    assert client.post(reverse("jails:jail-ban", args=["sshd"]), {"ip": ADDRESS}).status_code == 403
    assert client.post(host_jail("s1", "web", "ban"), {"ip": ADDRESS}).status_code == 302
    assert banned(hosts["s1"], "web") == {ADDRESS}

    # /ip/: only s1 is asked; "ban everywhere" says "not permitted" for the others.
    page = body(client.get(reverse("jails:ip-detail", args=[ADDRESS])))
    assert 'id="host-s1"' in page and 'id="host-s2"' not in page
    response = client.post(
        reverse("jails:ip-ban", args=[ADDRESS]), {"jail": "sshd", "everywhere": "1"}
    )
    page = body(response)
    assert "not permitted on s2" in page and "not permitted on local" in page
    assert banned(hosts["s1"], "sshd") == {ADDRESS}
    assert banned(hosts["s2"], "sshd") == set()


def test_posts_on_host_pages_need_the_csrf_token(hosts, role_client):
    client = role_client("operator", csrf=True)
    assert client.post(host_jail("s1", "web", "ban"), {"ip": ADDRESS}).status_code == 403
    response = client.post(
        reverse("jails:ip-ban", args=[ADDRESS]), {"jail": "web", "everywhere": "1"}
    )
    assert response.status_code == 403
    assert all(banned(hosts[name], "web") == set() for name in SOCKET_HOSTS)


# --- /ip/ on every host -------------------------------------------------------------------------
def test_ip_page_shows_the_address_on_every_host(hosts, logged_in_client):
    hosts["s3"].client().send("set", "web", "banip", ADDRESS)
    hosts["s1"].client().send("set", "sshd", "addignoreip", "203.0.113.0/24")
    page = body(logged_in_client.get(reverse("jails:ip-detail", args=[ADDRESS])))
    for name in (LOCAL_HOST, *SOCKET_HOSTS):
        assert f'id="host-{name}"' in page
    assert f'href="{host_jail("s3", "web")}">web</a>' in page
    assert f"{ADDRESS} is not banned on s2 right now." in page
    assert f'href="{host_jail("s1", "sshd")}">sshd</a> (<code>203.0.113.0/24</code>)' in page
    assert 'name="host" value="s3"' in page  # the row's unban names its host


def test_ban_everywhere_then_unban_everywhere(hosts, logged_in_client):
    url = reverse("jails:ip-ban", args=[ADDRESS])
    response = logged_in_client.post(url, {"jail": "web", "everywhere": "1"})
    assert response.status_code == 200
    page = body(response)
    for name in SOCKET_HOSTS:
        assert ADDRESS in banned(hosts[name], "web")
    # The local host has no jail "web": its own line says so, the others went ahead.
    assert "no jail named web" in page
    assert f"Banned {ADDRESS} on 3 of 4 hosts." in page
    assert sorted(
        AuditEntry.objects.filter(action="ban", ips=[ADDRESS]).values_list("host", flat=True)
    ) == list(SOCKET_HOSTS)

    response = logged_in_client.post(
        reverse("jails:ip-unban", args=[ADDRESS]),
        {"jail": "*", "everywhere": "1"},
        HTTP_HX_REQUEST="true",
    )
    page = body(response)
    assert 'id="ip-message"' in page and 'hx-swap-oob="innerHTML"' in page
    assert f"Unbanned {ADDRESS} on 3 of 4 hosts." in page
    for name in SOCKET_HOSTS:
        assert banned(hosts[name], "web") == set()


def test_ban_on_chosen_hosts_holds_back_a_private_address_per_host(hosts, logged_in_client):
    private = "10.9.8.7"
    url = reverse("jails:ip-ban", args=[private])
    response = logged_in_client.post(url, {"jail": "web", "host": ["s1", "s2"]})
    page = body(response)
    assert f"Ban {private} in web on s1, s2?" in page
    assert page.count(">held back<") == 2
    assert banned(hosts["s1"], "web") == set() and banned(hosts["s2"], "web") == set()
    # The confirmation form names the held-back hosts: posting it bans there.
    assert '<input type="hidden" name="host" value="s1">' in page
    response = logged_in_client.post(url, {"jail": "web", "host": ["s1", "s2"], "confirm": "yes"})
    assert f"Banned {private} on 2 of 2 hosts." in body(response)
    assert banned(hosts["s1"], "web") == {private} and banned(hosts["s2"], "web") == {private}
    assert banned(hosts["s3"], "web") == set()


def test_unban_one_row_on_one_host(hosts, logged_in_client):
    for name in ("s1", "s2"):
        hosts[name].client().send("set", "web", "banip", ADDRESS)
    response = logged_in_client.post(
        reverse("jails:ip-unban", args=[ADDRESS]), {"jail": "web", "host": "s2"}
    )
    assert f"Unbanned {ADDRESS} on 1 of 1 host." in body(response)
    assert banned(hosts["s2"], "web") == set()
    assert banned(hosts["s1"], "web") == {ADDRESS}


def test_ip_action_without_a_host_asks_for_one(hosts, logged_in_client):
    response = logged_in_client.post(reverse("jails:ip-ban", args=[ADDRESS]), {"jail": "web"})
    assert "Choose a host." in body(response)
    assert all(banned(hosts[name], "web") == set() for name in SOCKET_HOSTS)


def test_ip_ignore_on_a_chosen_host(hosts, logged_in_client):
    response = logged_in_client.post(
        reverse("jails:ip-ignore", args=[ADDRESS]), {"jail": "web", "host": "s3"}
    )
    assert response.status_code == 302
    assert ADDRESS in hosts["s3"].client().send("get", "web", "ignoreip")
    assert ADDRESS not in hosts["s1"].client().send("get", "web", "ignoreip")


def test_ip_page_with_a_hung_host_answers_and_shows_it(hosts, f2b, logged_in_client):
    runtime_install(f2b, agent=None, host_deadline=1.0)
    hosts["s1"].client().send("set", "web", "banip", ADDRESS)
    with FakeFail2ban(hang()) as hung:
        Host.objects.create(name="stuck", kind=Host.Kind.SOCKET, address=hung.path)
        page = body(logged_in_client.get(reverse("jails:ip-detail", args=[ADDRESS])))
        assert re.search(r"<strong>stuck</strong> unreachable since <time", page)
        assert f'href="{host_jail("s1", "web")}">web</a>' in page
        response = logged_in_client.post(
            reverse("jails:ip-unban", args=[ADDRESS]), {"jail": "*", "everywhere": "1"}
        )
        page = body(response)
        # Changes go to every host at once. The hung host missed the page's deadline a moment
        # ago and its call still runs, so it is not asked again: its line says nothing was
        # sent there, and every other host's change was made.
        assert re.search(r'<tr class="result-unreachable"><td>stuck</td><td>unreachable</td>', page)
        assert "not sent: last error: no answer within 1 s" in page
        assert f"Unbanned {ADDRESS} on 1 of 5 hosts." in page
    assert banned(hosts["s1"], "web") == set()


# --- the admin's unban action for archived bans ------------------------------------------------
def test_admin_unban_of_archived_bans_acts_on_the_host_that_banned(hosts, django_user_model):
    from django.contrib.messages import get_messages
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.test import RequestFactory

    from jails.admin_bans import unban_ban_events
    from jails.history.models import BanEvent

    for name in (LOCAL_HOST, "s1", "s2"):
        jail = "sshd"
        hosts[name].client().send("set", jail, "banip", ADDRESS)
        BanEvent.objects.create(
            host=name, jail=jail, ip=ADDRESS, network="203.0.113.0/24", timeofban=1, bantime=600
        )
    hosts["s3"].client().send("set", "sshd", "banip", ADDRESS)  # no archived ban there
    # s2's operator rights are missing for this user: s2 is reported, not touched.
    group = Group.objects.create(name="local+s1 operators")
    group.permissions.set(Group.objects.get(name=OPERATOR).permissions.all())
    for name in (LOCAL_HOST, "s1"):
        Host.objects.get(name=name).groups.add(group)
    user = django_user_model.objects.create_user("limited-admin", password="x", is_staff=True)
    user.groups.add(group)
    request = RequestFactory().post("/admin/history/banevent/")
    request.user = user
    request.session = {}
    request._messages = FallbackStorage(request)

    unban_ban_events(None, request, BanEvent.objects.all())

    assert banned(hosts[LOCAL_HOST], "sshd") == set()
    assert banned(hosts["s1"], "sshd") == set()
    assert banned(hosts["s2"], "sshd") == {ADDRESS}
    assert banned(hosts["s3"], "sshd") == {ADDRESS}
    texts = [str(message) for message in get_messages(request)]
    assert "Not permitted to unban on s2." in texts
    assert any(text.endswith("from sshd on s1.") for text in texts), texts
    records = AuditEntry.objects.filter(action="unban").values_list("host", flat=True)
    assert sorted(records) == [LOCAL_HOST, "s1"]


def test_admin_live_bans_show_and_unban_on_the_chosen_host(hosts, django_user_model):
    for name in (LOCAL_HOST, "s2"):
        hosts[name].client().send("set", "sshd", "banip", ADDRESS)
    admin = django_user_model.objects.create_superuser("root", password="x")
    client = Client()
    client.force_login(admin)
    url = "/admin/jails/liveban/"

    local_page = body(client.get(url))
    assert ADDRESS in local_page
    assert re.search(r'<option value="s2">s2</option>', local_page)  # the host choice
    s1_page = body(client.get(url, {"host": "s1"}))
    assert ADDRESS not in s1_page

    response = client.post(
        f"{url}?host=s2", {"action": "unban", "_selected_action": f"sshd|{ADDRESS}"}
    )
    assert response.status_code == 302
    assert banned(hosts["s2"], "sshd") == set()
    assert banned(hosts[LOCAL_HOST], "sshd") == {ADDRESS}  # the local host untouched
    assert list(AuditEntry.objects.filter(action="unban").values_list("host", flat=True)) == ["s2"]
    assert client.get(url, {"host": "nope"}).status_code == 404


def test_admin_live_bans_keep_a_limited_operator_on_their_hosts(hosts, django_user_model):
    hosts["s1"].client().send("set", "sshd", "banip", ADDRESS)
    hosts["s2"].client().send("set", "sshd", "banip", ADDRESS)
    group = Group.objects.create(name="s1 operators")
    group.permissions.set(Group.objects.get(name=OPERATOR).permissions.all())
    Host.objects.get(name="s1").groups.add(group)
    user = django_user_model.objects.create_user("s1-staff", password="x", is_staff=True)
    user.groups.add(group)
    client = Client()
    client.force_login(user)
    url = "/admin/jails/liveban/"

    assert ADDRESS in body(client.get(url))  # the local host is not theirs: their first
    assert client.get(url, {"host": LOCAL_HOST}).status_code == 404
    assert client.get(url, {"host": "s2"}).status_code == 404
    assert ADDRESS in body(client.get(url, {"host": "s1"}))
    refused = client.post(
        f"{url}?host=s2", {"action": "unban", "_selected_action": f"sshd|{ADDRESS}"}
    )
    assert refused.status_code == 404
    client.post(f"{url}?host=s1", {"action": "unban", "_selected_action": f"sshd|{ADDRESS}"})
    assert banned(hosts["s1"], "sshd") == set()
    assert banned(hosts["s2"], "sshd") == {ADDRESS}


# --- server actions on one host ------------------------------------------------------------------
def test_server_actions_unban_everything_on_the_chosen_host_only(hosts, logged_in_client):
    for name in (LOCAL_HOST, "s1", "s2"):
        hosts[name].client().send("set", "web" if name != LOCAL_HOST else "sshd", "banip", ADDRESS)
    page = body(logged_in_client.get(reverse("jails:host-server", args=["s1"])))
    assert "Server actions on s1" in page
    assert f'action="{reverse("jails:host-server-unban-all", args=["s1"])}"' in page
    assert f'action="{reverse("jails:host-server-reload", args=["s1"])}"' in page

    response = logged_in_client.post(
        reverse("jails:host-server-unban-all", args=["s1"]), {"phrase": "unban everything"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("jails:host-server", args=["s1"])
    assert banned(hosts["s1"], "web") == set()
    assert banned(hosts["s2"], "web") == {ADDRESS}
    assert banned(hosts[LOCAL_HOST], "sshd") == {ADDRESS}
    assert AuditEntry.objects.get(action="unban_all").host == "s1"
    # The jail list points at a host's server page once a host is chosen.
    listing = body(logged_in_client.get(reverse("jails:jail-list"), {"host": "s2"}))
    assert reverse("jails:host-server", args=["s2"]) in listing


def test_server_actions_on_a_host_need_the_operate_role_there(hosts, django_user_model):
    client = limited_client(django_user_model, "s1")
    hosts["s2"].client().send("set", "web", "banip", ADDRESS)
    assert client.get(reverse("jails:host-server", args=["s2"])).status_code == 403
    refused = client.post(
        reverse("jails:host-server-unban-all", args=["s2"]), {"phrase": "unban everything"}
    )
    assert refused.status_code == 403
    assert banned(hosts["s2"], "web") == {ADDRESS}
    assert client.get(reverse("jails:host-server", args=["nope"])).status_code == 404
    assert client.get(reverse("jails:host-server", args=["s1"])).status_code == 200
