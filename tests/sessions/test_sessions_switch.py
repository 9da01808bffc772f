"""Switching the session storage away and back does not revive the sessions left behind.

Issue 8, item 4: a session left in the old storage (a logged-out or stolen cookie, or a
user whose access was since revoked) came back to life when the site switched back to it.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.contrib.sessions.backends.cache import KEY_PREFIX

from jails.models import SessionCacheEntry, SiteSettings
from jails.runtime import runtime_apply, runtime_refresh
from tests.support.site_helpers import site_settings_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]


@pytest.fixture
def site(runtime, f2b) -> SiteSettings:
    """A completed setup on database sessions; one web worker, so `memory` is allowed."""
    row = site_settings_create(str(f2b.socket_path))
    runtime_apply(runtime, row)
    runtime.snapshot_replace(settings=replace(runtime.settings, web_workers=1))
    return row


def switch(admin, runtime, row: SiteSettings, *, storage: str, redis_url: str = "") -> None:
    """Switch on /settings/ as `admin`, then let this process's watcher apply it."""
    row.refresh_from_db()
    data = {
        "fail2ban_socket": row.fail2ban_socket,
        "display_time_zone": row.display_time_zone,
        "session_lifetime_seconds": str(row.session_lifetime_seconds),
        "session_cache": storage,
        "redis_url": redis_url,
        "history_retention_days": str(row.history_retention_days),
    }
    response = admin.post("/settings/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert runtime_refresh(runtime)
    assert runtime.session_cache.kind == storage


def logged_in(client) -> bool:
    response = client.get("/audit/")
    assert response.status_code in (200, 302)
    return response.status_code == 200


@pytest.mark.parametrize("away", ["memory", "redis"])
def test_session_switch_back_does_not_revive_old_sessions(
    site, runtime, role_client, away, request
):
    url = request.getfixturevalue("private_redis").url if away == "redis" else ""
    viewer = role_client("viewer")
    admin = role_client("administrator")
    old_cookie = viewer.cookies["sessionid"].value
    assert logged_in(viewer)

    switch(admin, runtime, site, storage=away, redis_url=url)
    assert not logged_in(viewer)  # the viewer's session is not in the new storage
    assert logged_in(admin)  # the one who switched keeps theirs

    switch(admin, runtime, site, storage="database")
    viewer.cookies["sessionid"] = old_cookie
    assert not logged_in(viewer)  # the session left in the database stays dead
    assert logged_in(admin)
    assert not SessionCacheEntry.objects.filter(cache_key__endswith=old_cookie).exists()


def test_session_switch_clears_sessions_written_to_the_target_earlier(
    site, runtime, role_client, private_redis
):
    # Sessions another worker wrote into Redis while it was briefly still in use (before
    # its watcher swapped away from it) must not come back when Redis is chosen again.
    from jails.sessions import build_session_cache

    redis_storage = build_session_cache("redis", private_redis.url)
    redis_storage.backend.set(KEY_PREFIX + "leftover", {"_auth_user_id": "1"}, None)
    redis_storage.backend.set("another-program:key", "kept", None)
    admin = role_client("administrator")

    switch(admin, runtime, site, storage="redis", redis_url=private_redis.url)

    assert redis_storage.backend.get(KEY_PREFIX + "leftover") is None
    assert redis_storage.backend.get("another-program:key") == "kept"  # not ours: untouched
    assert logged_in(admin)
    assert SessionCacheEntry.objects.count() == 0  # the old storage was emptied too


def test_session_switch_away_from_a_stopped_redis_still_works(runtime, caplog):
    # Leaving a storage that no longer answers (a reason to switch) must not fail the switch.
    from jails.sessions import SessionStore, build_session_cache, session_storage_switch
    from tests.support.redis_server import free_port

    dead = build_session_cache("redis", f"redis://127.0.0.1:{free_port()}/0")
    database = build_session_cache("database")
    session = SessionStore()
    session["x"] = 1
    session.save()  # into the runtime's storage: the database

    assert session_storage_switch(session, old=dead, new=database)

    assert SessionStore(session.session_key)["x"] == 1
    assert SessionCacheEntry.objects.count() == 1  # only the copied session
    assert "sessions left in the old storage" in caplog.text
