"""The dashboard's and history list's per-process figures never outlive the archive or the window.

Each test fills the cache through real pages (the Django test client), changes the archive
the way production does (the history sync from a fail2ban database file, the retention
purge, a summaries rebuild) or moves the clock, and asserts the next page shows the change.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create
from jails.history.figures_cache import FiguresCache
from jails.history.models import BanEvent
from jails.history.services import sync as history
from jails.history.services.summaries import summaries_rebuild
from jails.models import AuditEntry, SiteSettings
from jails.services.audit import Actor

pytestmark = pytest.mark.django_db
# A fixed clock on a minute boundary: the tests move it, the pages read it.
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
PANELS = {"HX-Request": "true", "HX-Target": "dashboard-panels"}


@pytest.fixture(autouse=True)
def _set_up(db, monkeypatch):
    SiteSettings.objects.update_or_create(
        singleton=1, defaults={"setup_complete": True, "fail2ban_socket": "/tmp/none.sock"}
    )
    monkeypatch.setattr(timezone, "now", lambda: NOW)


def _clock(monkeypatch, moment: datetime) -> None:
    monkeypatch.setattr(timezone, "now", lambda: moment)


@pytest.fixture
def dbfile(runtime, tmp_path):
    """A fail2ban database with three bans in the last day, archived by the real sync."""
    path = tmp_path / "f2b.sqlite3"
    fail2ban_db_create(path)
    fail2ban_db_add(
        path,
        [
            Fail2banBan("sshd", "203.0.113.7", T - 3600, matches=["one"]),
            Fail2banBan("sshd", "203.0.113.8", T - 7200, matches=["two"]),
            Fail2banBan("postfix", "198.51.100.9", T - 600, matches=["three"]),
        ],
    )
    history.history_sync(runtime, dbfile=str(path))
    return path


def _bans(body: str) -> str:
    """The headline ban count of a dashboard page or panel."""
    start = body.index('<span class="figure">') + len('<span class="figure">')
    return body[start : body.index("</span>", start)]


def _dashboard(client, query: str = "window=24h", **kwargs) -> str:
    response = client.get(f"/?{query}", **kwargs)
    assert response.status_code == 200
    return response.content.decode()


def test_dashboard_shows_bans_a_later_sync_archived(runtime, dbfile, logged_in_client):
    assert _bans(_dashboard(logged_in_client)) == "3"
    assert _bans(_dashboard(logged_in_client, headers=PANELS)) == "3"
    fail2ban_db_add(dbfile, [Fail2banBan("sshd", "192.0.2.44", T - 60, matches=["new"])])
    assert history.history_sync(runtime, dbfile=str(dbfile)).archived == 1

    body = _dashboard(logged_in_client)
    assert _bans(body) == "4"
    assert 'href="/ip/192.0.2.44/"' in body  # the top offenders too, not just the counter
    assert _bans(_dashboard(logged_in_client, headers=PANELS)) == "4"
    # The jail filter's choices come from the archive as well.
    fail2ban_db_add(dbfile, [Fail2banBan("nginx-new", "192.0.2.45", T - 30, matches=["x"])])
    history.history_sync(runtime, dbfile=str(dbfile))
    assert '<option value="nginx-new"' in _dashboard(logged_in_client)
    assert '<option value="nginx-new"' in logged_in_client.get("/history/").content.decode()


def test_dashboard_drops_bans_the_purge_deleted(runtime, tmp_path, logged_in_client):
    path = tmp_path / "f2b.sqlite3"
    fail2ban_db_create(path)
    fail2ban_db_add(
        path,
        [
            Fail2banBan("sshd", "203.0.113.1", T - 40 * 86400, matches=["old"]),
            Fail2banBan("sshd", "203.0.113.2", T - 5 * 86400, matches=["recent"]),
        ],
    )
    history.history_sync(runtime, dbfile=str(path))
    # A fixed-length window: the same filter before and after, only the archive changes.
    body = _dashboard(logged_in_client, "window=365d")
    assert _bans(body) == "2" and "203.0.113.1" in body
    assert "203.0.113.1" in logged_in_client.get("/history/?window=365d").content.decode()

    deleted = history.history_purge(
        retention_days=30, now=NOW, actor=Actor.system("test", source=AuditEntry.Source.JOB)
    ).deleted
    assert deleted == 1

    body = _dashboard(logged_in_client, "window=365d")
    assert _bans(body) == "1" and "203.0.113.1" not in body
    history_page = logged_in_client.get("/history/?window=365d").content.decode()
    assert "203.0.113.1" not in history_page and "203.0.113.2" in history_page
    assert "<strong>1</strong> ban " in history_page


def _history(client, query: str = "", **kwargs) -> str:
    response = client.get(f"/history/?{query}", **kwargs)
    assert response.status_code == 200
    return response.content.decode()


def test_history_list_shows_bans_a_later_sync_archived(runtime, dbfile, logged_in_client):
    htmx = {"HX-Request": "true"}
    assert "<strong>3</strong> bans" in _history(logged_in_client)
    assert "<strong>3</strong> bans" in _history(logged_in_client, "sort=ip", headers=htmx)
    assert "192.0.2.44" not in _history(logged_in_client, "q=192.0.2.0/24")
    fail2ban_db_add(dbfile, [Fail2banBan("sshd", "192.0.2.44", T - 60, matches=["new"])])
    history.history_sync(runtime, dbfile=str(dbfile))

    body = _history(logged_in_client)
    assert "<strong>4</strong> bans" in body and 'href="/ip/192.0.2.44/"' in body
    assert "<strong>4</strong> bans" in _history(logged_in_client, "sort=ip", headers=htmx)
    assert 'href="/ip/192.0.2.44/"' in _history(logged_in_client, "q=192.0.2.0/24")


def test_history_list_window_moves_with_the_clock(runtime, dbfile, logged_in_client, monkeypatch):
    # The 2-hour-old ban of `dbfile` is inside the 24-hour window until 22 hours later.
    assert "<strong>3</strong> bans" in _history(logged_in_client, "window=24h")
    _clock(monkeypatch, NOW + timedelta(hours=22, minutes=1))
    body = _history(logged_in_client, "window=24h")
    assert "<strong>2</strong> bans" in body and "203.0.113.8" not in body


def test_dashboard_follows_a_rebuild_of_the_summaries(runtime, dbfile, logged_in_client):
    assert _bans(_dashboard(logged_in_client)) == "3"
    # Bans written around the summaries (as bench/seed_history.py does), then the rebuild the
    # history_sync command offers: the figures come from the rebuilt summaries.
    BanEvent.objects.create(
        jail="sshd", ip="192.0.2.9", network="192.0.2.0/24", timeofban=T - 100, bantime=600
    )
    summaries_rebuild()
    assert _bans(_dashboard(logged_in_client)) == "4"


def test_dashboard_window_moves_with_the_clock(runtime, tmp_path, logged_in_client, monkeypatch):
    # The 24-hour window of the minute starting at NOW is [T + 59 - 86400, T + 60): a ban one
    # second inside its start leaves the window when the clock reaches the next minute.
    edge = T + 59 - 86400 + 1
    path = tmp_path / "f2b.sqlite3"
    fail2ban_db_create(path)
    fail2ban_db_add(
        path,
        [
            Fail2banBan("sshd", "203.0.113.3", edge, matches=["edge"]),
            Fail2banBan("sshd", "203.0.113.4", T - 60, matches=["recent"]),
        ],
    )
    history.history_sync(runtime, dbfile=str(path))
    assert _bans(_dashboard(logged_in_client)) == "2"
    _clock(monkeypatch, NOW + timedelta(seconds=59))  # the same minute: the same window
    assert _bans(_dashboard(logged_in_client)) == "2"
    _clock(monkeypatch, NOW + timedelta(seconds=60))
    body = _dashboard(logged_in_client)
    assert _bans(body) == "1" and "203.0.113.3" not in body
    assert _bans(_dashboard(logged_in_client, headers=PANELS)) == "1"


def test_dashboard_panels_are_rendered_per_language(runtime, dbfile, logged_in_client):
    assert "unique addresses" in _dashboard(logged_in_client)
    chosen = logged_in_client.post(reverse("jails:language"), {"language": "de", "next": "/"})
    assert chosen.status_code == 302
    german = _dashboard(logged_in_client)
    assert "unique addresses" not in german and "eindeutige" in german.lower()
    assert "unique addresses" not in _dashboard(logged_in_client, headers=PANELS)


def test_dashboard_repeated_reads_only_the_stamp(runtime, dbfile, logged_in_client):
    _dashboard(logged_in_client)
    with CaptureQueriesContext(connection) as queries:
        body = _dashboard(logged_in_client)
    assert _bans(body) == "3"
    archive = [q["sql"] for q in queries if "history_" in q["sql"]]
    # One query reads the stamp; the figures, charts and choices come from the cache.
    assert len(archive) == 1, archive
    assert runtime.history.figures.hits >= 2
    _history(logged_in_client, "window=7d")
    with CaptureQueriesContext(connection) as queries:
        assert "<strong>3</strong> bans" in _history(logged_in_client, "window=7d")
    assert len([q for q in queries if "history_" in q["sql"]]) == 1


def test_figures_cache_drops_every_entry_when_the_stamp_changes():
    cache = FiguresCache(max_entries=2)
    assert cache.get_or_build(1, "a", lambda: "a1") == "a1"
    assert cache.get_or_build(1, "a", lambda: "other") == "a1"
    assert cache.get_or_build(2, "a", lambda: "a2") == "a2"
    assert cache.get_or_build(1, "a", lambda: "a1 again") == "a1 again"
    # At most max_entries, the least recently used dropped first.
    cache.get_or_build(1, "b", lambda: "b")
    cache.get_or_build(1, "a", lambda: "unused")
    cache.get_or_build(1, "c", lambda: "c")
    assert list(cache.entries) == ["a", "c"]


def test_figures_cache_builds_a_missing_value_once_for_threads_asking_together():
    cache = FiguresCache()
    building, release = threading.Event(), threading.Event()
    builds: list[str] = []

    def slow_build() -> str:
        builds.append("first")
        building.set()
        release.wait(60)
        return "built"

    def other_build() -> str:
        builds.append("second")
        return "built again"

    results: list[str] = []
    first = threading.Thread(target=lambda: results.append(cache.get_or_build(1, "k", slow_build)))
    first.start()
    assert building.wait(60)
    second = threading.Thread(
        target=lambda: results.append(cache.get_or_build(1, "k", other_build))
    )
    second.start()
    second.join(timeout=1.0)
    assert second.is_alive()  # waiting for the first thread's build, not building its own
    release.set()
    first.join(60)
    second.join(60)
    assert results == ["built", "built"] and builds == ["first"]
    assert (cache.misses, cache.hits) == (1, 1)
