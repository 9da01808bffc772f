"""The jail list's table and the main navigation, both built in Python (issue 15's hot page).

The page-level tests run against a real private fail2ban; the escaping tests call the tags
with values no fail2ban of ours can be made to report (markup in a log path or a backend).
"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from jails.services.jails import JailSummary
from jails.templatetags.jail_table import jail_rows, jail_sort_headers
from jails.views.jails import FleetRow

RUNTIME_MODES = ("direct",)
pytestmark = pytest.mark.django_db

NASTY = '<script>alert("x")</script>&'


def jail(name: str = "sshd", **changes) -> JailSummary:
    values = {
        "name": name,
        "log_sources": ("/var/log/auth.log",),
        "backend": "polling",
        "currently_failed": 1,
        "total_failed": 2,
        "currently_banned": 3,
        "total_banned": 4,
        "idle": False,
    }
    values.update(changes)
    return JailSummary(**values)


def header(body: str, label: str) -> str:
    """The <th> whose link text starts with `label`."""
    for cell in re.findall(r"<th scope=\"col\".*?</th>", body, re.S):
        if re.search(rf">{re.escape(label)}( [▲▼])?</a>", cell):
            return cell
    raise AssertionError(f"no header {label!r}")


def test_rows_escape_every_value_from_fail2ban_and_the_filter():
    html = jail_rows([jail(log_sources=(NASTY, "/b"), backend=NASTY)], fleet=False, query="")
    assert "<script>" not in html
    assert html.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;") == 2
    assert "<code>/b</code>" in html  # several sources, one <code> each
    empty = jail_rows([], fleet=False, query=NASTY)
    assert "<script>" not in empty
    assert "No jail matches “&lt;script&gt;" in empty


def test_rows_one_host_and_fleet_share_cells_the_fleet_adds_the_host():
    one = jail_rows([jail("web.1", backend=None, idle=None)], fleet=False, query="")
    assert '<a href="/jails/web.1/">web.1</a>' in one
    assert one.count('title="not reported by this fail2ban version">n/r') == 2
    assert one.count("<td") == 8
    many = jail_rows([FleetRow("h1", jail("web.1", idle=True))], fleet=True, query="")
    assert '<td><a href="/jails/?host=h1">h1</a></td>' in many
    assert '<a href="/hosts/h1/jails/web.1/">web.1</a>' in many
    assert "<td>idle</td>" in many
    assert many.count("<td") == 9


def test_rows_empty_says_why():
    assert "fail2ban has no jails." in jail_rows([], fleet=False, query="")
    assert 'colspan="8"' in jail_rows([], fleet=False, query="")
    assert "No jails on these hosts." in jail_rows([], fleet=True, query="")
    assert 'colspan="9"' in jail_rows([], fleet=True, query="")


def test_sort_headers_keep_filter_and_host_and_escape_them():
    html = jail_sort_headers(sort="-banned", query='a"&b', host_filter="h1", fleet=True)
    assert html.index(">Host</a>") < html.index(">Jail</a>")
    banned = header(html, "Currently banned")
    assert 'aria-sort="descending"' in banned
    assert 'class="num"' in banned
    assert ">Currently banned ▼</a>" in banned
    # The filter is URL-quoted, then the whole link HTML-escaped.
    assert 'href="?q=a%22%26b&amp;sort=banned&amp;host=h1"' in banned
    assert 'href="?q=a%22%26b&amp;sort=name&amp;host=h1"' in header(html, "Jail")
    assert "aria-sort" not in header(html, "Jail")
    one = jail_sort_headers(sort="name", query="", host_filter="", fleet=False)
    assert ">Host</a>" not in one
    assert 'aria-sort="ascending"' in header(one, "Jail")
    assert 'href="?q=&amp;sort=-name"' in header(one, "Jail")


def test_page_sort_headers_and_rows_from_a_real_fail2ban(runtime, f2b, logged_in_client: Client):
    f2b.client().send("set", "postfix", "banip", "203.0.113.9")
    body = logged_in_client.get("/jails/?sort=-banned&q=o").content.decode()
    assert 'aria-sort="descending"' in header(body, "Currently banned")
    assert 'href="?q=o&amp;sort=banned"' in header(body, "Currently banned")
    assert ">Host</a>" not in body  # one host: no host column
    assert "/jails/postfix/" in body and "/jails/sshd/" not in body  # the filter "o"
    row = re.search(r'<tr><td><a href="/jails/postfix/">postfix</a></td>.*?</tr>', body, re.S)
    assert row is not None
    assert '<td class="num">1</td>' in row.group(0)  # banned now
    htmx = logged_in_client.get("/jails/?q=zzz", headers={"HX-Request": "true"})
    assert "No jail matches “zzz”." in htmx.content.decode()


def nav(body: str) -> str:
    match = re.search(r'<nav aria-label="Main">(.*?)</nav>', body, re.S)
    assert match is not None
    return match.group(1)


def test_nav_links_follow_the_roles(runtime, f2b, role_client):
    viewer = nav(role_client("viewer").get("/jails/").content.decode())
    for label in ("Dashboard", "Jails", "History", "Configuration", "Blocklists", "Audit log"):
        assert f">{label}</a>" in viewer
    for label in ("Settings", "Notifications", "Hosts", "Admin"):
        assert f">{label}</a>" not in viewer
    admin = nav(role_client("administrator", staff=True).get("/jails/").content.decode())
    for label in ("Settings", "Notifications", "Hosts", "Admin"):
        assert f">{label}</a>" in admin


def test_nav_marks_the_current_section(runtime, f2b, role_client):
    client = role_client("administrator")
    jails = nav(client.get("/jails/").content.decode())
    assert jails.count('aria-current="page"') == 1
    assert '<a href="/jails/" aria-current="page">Jails</a>' in jails
    detail = nav(client.get("/jails/sshd/").content.decode())  # below /jails/
    assert '<a href="/jails/" aria-current="page">Jails</a>' in detail
    audit = nav(client.get("/audit/").content.decode())
    assert '<a href="/audit/" aria-current="page">Audit log</a>' in audit
    assert audit.count('aria-current="page"') == 1
    hosts = nav(client.get("/hosts/").content.decode())  # matched by URL namespace
    assert 'aria-current="page">Hosts</a>' in hosts
    assert hosts.count('aria-current="page"') == 1


def test_jail_list_reads_the_hosts_table_once(runtime, f2b, logged_in_client: Client):
    """ "A fleet or not" and the local host's row come from one query (they were two), and
    the next pages read none while the hosts' stamp holds (jails.hosts.services.rows)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def hosts_queries() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert logged_in_client.get("/jails/").status_code == 200
        # The per-host permission limits (the user's groups' hosts) are a question of their own.
        return [
            query["sql"]
            for query in queries
            if 'FROM "hosts_host"' in query["sql"] and "hosts_host_groups" not in query["sql"]
        ]

    assert len(hosts_queries()) == 1  # a fresh process state: read once
    assert hosts_queries() == []


def test_disabled_local_host_is_still_refused(runtime, f2b, logged_in_client: Client):
    from jails.hosts.models import LOCAL_HOST, Host

    Host.objects.filter(name=LOCAL_HOST).update(enabled=False)
    assert logged_in_client.get("/jails/").status_code == 404
