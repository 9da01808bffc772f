"""The dashboard, the history list, the CSV export and the address history, end to end."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Group
from django.template.loader import render_to_string
from django.test import RequestFactory

from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create
from jails.history.models import BanEvent
from jails.history.services import sync as history
from jails.history.views.archive import csv_cell
from jails.models import SiteSettings
from jails.views.ip import ip_history_context
from tests.conftest import wait_until

pytestmark = pytest.mark.django_db
NOW = int(datetime.now(UTC).timestamp())


@pytest.fixture(autouse=True)
def _set_up(db):
    SiteSettings.objects.update_or_create(
        singleton=1, defaults={"setup_complete": True, "fail2ban_socket": "/tmp/none.sock"}
    )


@pytest.fixture
def archive(runtime, tmp_path):
    """Bans read from a fail2ban database file: two jails, a <script> log line, a formula."""
    path = tmp_path / "f2b.sqlite3"
    fail2ban_db_create(path)
    fail2ban_db_add(
        path,
        [
            Fail2banBan("sshd", "203.0.113.7", NOW - 3600, matches=["sshd: fail from 203.0.113.7"]),
            Fail2banBan("sshd", "203.0.113.7", NOW - 3 * 86400, matches=["older"]),
            Fail2banBan("sshd", "203.0.113.8", NOW - 7200, matches=["<script>alert(1)</script>"]),
            Fail2banBan("postfix", "198.51.100.9", NOW - 600, matches=['=HYPERLINK("x")']),
            Fail2banBan("postfix", "198.51.100.10", NOW - 40 * 86400, matches=["a month ago"]),
        ],
    )
    history.history_sync(runtime, dbfile=str(path))
    return path


def test_dashboard_shows_figures_charts_map_and_offenders(archive, logged_in_client):
    response = logged_in_client.get("/?window=7d")
    body = response.content.decode()
    assert response.status_code == 200
    assert '<span class="figure">4</span> bans' in body
    assert '<span class="figure">3</span> unique addresses' in body
    assert ">sshd</a> busiest jail (3 bans)" in body
    assert 'class="chart chart-bar"' in body and 'class="chart chart-map' in body
    assert 'href="/ip/203.0.113.7/"' in body
    assert "repeat offender" in body  # 203.0.113.7 was banned on two different days
    assert 'aria-current="page">7 days</a>' in body
    assert "HX-Request" in response.headers["Vary"]


def test_dashboard_map_outlines_are_a_cached_static_asset(archive, logged_in_client):
    from django.templatetags.static import static

    from jails.history.charts import WORLD_OUTLINES_ASSET

    body = logged_in_client.get("/?window=30d").content.decode()
    asset = static(WORLD_OUTLINES_ASSET)  # hashed name: served with a far-future expiry
    assert f'href="{asset}#DE"' in body
    # The outlines were 171 KB of every response; now the page only references them.
    assert ' d="M' not in body
    assert len(body.encode()) < 100_000


def test_dashboard_filters_by_jail_and_window(archive, logged_in_client):
    body = logged_in_client.get("/?window=365d&jail=postfix").content.decode()
    assert '<span class="figure">2</span> bans' in body
    assert "203.0.113.7" not in body
    assert "198.51.100.10" in body


def test_dashboard_refresh_returns_only_the_panels(archive, logged_in_client):
    response = logged_in_client.get(
        "/?window=24h", headers={"HX-Request": "true", "HX-Target": "dashboard-panels"}
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="dashboard-panels"')
    assert "<html" not in body and "<form" not in body
    assert 'hx-get="/?window=24h"' in body  # it keeps refreshing the same window


def test_dashboard_window_links_are_real_links(archive, logged_in_client):
    body = logged_in_client.get("/?window=7d&jail=sshd").content.decode()
    assert 'href="?window=30d&amp;jail=sshd" hx-get="?window=30d&amp;jail=sshd"' in body


def test_dashboard_with_an_empty_archive_explains_the_job_runner(runtime, logged_in_client):
    body = logged_in_client.get("/").content.decode()
    assert "No bans archived yet" in body


@pytest.mark.parametrize(
    "query",
    [
        "window=bogus",
        "jail=--all",
        "country=123",
        "origin=evil",
        "window=custom",
        "window=custom&start=2026-02-01&end=2026-01-01",
        "window=custom&start=notadate&end=2026-01-01",
        "page=-3",
    ],
)
def test_dashboard_and_history_survive_bad_parameters(archive, logged_in_client, query):
    for url in ("/", "/history/", "/history/export.csv"):
        assert logged_in_client.get(f"{url}?{query}").status_code == 200


def test_dashboard_custom_window(archive, logged_in_client):
    day = datetime.fromtimestamp(NOW - 40 * 86400, tz=UTC).date().isoformat()
    body = logged_in_client.get(f"/?window=custom&start={day}&end={day}").content.decode()
    assert '<span class="figure">1</span> bans' in body
    assert "198.51.100.10" in body
    # Dates filled in while a fixed window is still selected: the dates win.
    body = logged_in_client.get(f"/?window=7d&start={day}&end={day}").content.decode()
    assert '<span class="figure">1</span> bans' in body


def test_history_lists_every_archived_ban_with_log_lines_escaped(archive, logged_in_client):
    body = logged_in_client.get("/history/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>alert(1)</script>" not in body
    assert "5</strong> bans" in body


def test_history_search_by_address_and_network(archive, logged_in_client):
    body = logged_in_client.get("/history/?q=203.0.113.0/24").content.decode()
    assert "3</strong> bans" in body and "198.51.100.9" not in body
    body = logged_in_client.get("/history/?q=198.51.100.9").content.decode()
    assert "1</strong> ban ·" in body
    body = logged_in_client.get("/history/?q=10.0.0.0/8").content.decode()
    assert "too large a network" in body
    body = logged_in_client.get("/history/?q=example.com").content.decode()
    assert "not an IP address" in body


def test_history_sorts_and_paginates_with_htmx_partial(archive, logged_in_client):
    response = logged_in_client.get("/history/?sort=ip", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="history-table"')
    assert body.index("198.51.100.10") < body.index("203.0.113.8")


def test_history_csv_exports_the_filtered_set_without_formulas(archive, logged_in_client):
    response = logged_in_client.get("/history/export.csv?jail=postfix")
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["time_utc", "jail", "ip"]
    # `host` came last (issue 12): every column before it kept its place.
    assert rows[0][-2:] == ["matches", "host"]
    assert sorted(r[2] for r in rows[1:]) == ["198.51.100.10", "198.51.100.9"]
    matches = {r[2]: r[-2] for r in rows[1:]}
    assert matches["198.51.100.9"] == '\'=HYPERLINK("x")'
    assert {r[-1] for r in rows[1:]} == {"local"}


def test_csv_cell_defuses_formula_prefixes():
    assert [csv_cell(v) for v in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "ok", 5)] == [
        "'=1+1",
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "'\tx",
        "ok",
        5,
    ]


def test_ip_history_include_shows_every_ban_of_the_address(archive, runtime, operator_user):
    request = RequestFactory().get("/ip/203.0.113.7/")
    request.user = operator_user
    html = render_to_string(
        "history/_ip_history.html",
        ip_history_context(request, runtime, "203.0.113.7"),
        request=request,
    )
    assert "2 in 1 jail, on 2 days" in html
    assert "repeat offender" in html
    assert "sshd: fail from 203.0.113.7" in html and "older" in html
    escaped = render_to_string(
        "history/_ip_history.html",
        ip_history_context(request, runtime, "203.0.113.8"),
        request=request,
    )
    assert "&lt;script&gt;" in escaped and "<script>alert" not in escaped
    nothing = render_to_string(
        "history/_ip_history.html",
        ip_history_context(request, runtime, "192.0.2.99"),
        request=request,
    )
    assert "No archived ban" in nothing


def test_history_pages_need_the_view_permission(archive, client, django_user_model):
    for url in ("/", "/history/", "/history/export.csv"):
        assert client.get(url).status_code == 302  # to the login page
    nobody = django_user_model.objects.create_user("nobody", password="a-long-test-password-2")
    client.force_login(nobody)
    for url in ("/", "/history/", "/history/export.csv"):
        assert client.get(url).status_code == 403
    viewer = django_user_model.objects.create_user("viewer", password="a-long-test-password-3")
    viewer.groups.add(Group.objects.get(name="viewer"))
    client.force_login(viewer)
    for url in ("/", "/history/", "/history/export.csv"):
        assert client.get(url).status_code == 200
    assert client.post("/history/").status_code == 405


def test_dashboard_after_fail2ban_banned_from_log_lines(runtime, f2b, logged_in_client):
    f2b.append_failures("sshd", ["203.0.113.77"], count=3)
    wait_until(
        lambda: "203.0.113.77" in {str(i) for i in f2b.client().send("get", "sshd", "banip")}
    )
    wait_until(lambda: history.history_sync(runtime).archived or BanEvent.objects.exists())
    body = logged_in_client.get("/?window=24h").content.decode()
    assert 'href="/ip/203.0.113.77/"' in body
    # The status bar above the dashboard loads itself (the dashboard reads the archive,
    # not fail2ban): it is there, empty, and its partial names the server.
    assert 'id="status-bar"' in body and 'hx-trigger="load, every' in body
    assert "fail2ban 1.0.2" in logged_in_client.get("/status-bar/").content.decode()


def test_ip_page_shows_the_archived_history_below_the_live_bans(archive, f2b, logged_in_client):
    response = logged_in_client.get("/ip/203.0.113.7/")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="ip-history"' in body
    assert "2 in 1 jail, on 2 days" in body
    assert "sshd: fail from 203.0.113.7" in body
    body = logged_in_client.get("/ip/203.0.113.8/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert(1)" not in body


def test_admin_lists_archived_bans_read_only_with_escaped_log_lines(archive, admin_client):
    response = admin_client.get("/admin/history/banevent/?jail=sshd")
    body = response.content.decode()
    assert response.status_code == 200
    assert "203.0.113.8" in body and "198.51.100.9" not in body
    assert "Add ban event" not in body
    event = BanEvent.objects.get(ip="203.0.113.8")
    detail = admin_client.get(f"/admin/history/banevent/{event.pk}/change/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail and "<script>alert(1)" not in detail
    assert admin_client.get("/admin/jails/scheduledjob/").status_code == 200
