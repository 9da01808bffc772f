"""Runtime settings on /settings/ and in the Django admin: one form, one service, audited."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.cache import KEY_PREFIX

from jails.models import AuditEntry, SessionCacheEntry, SiteSettings
from jails.runtime import runtime_apply, runtime_refresh
from jails.sessions import build_session_cache, mask_url_password
from tests.support.redis_server import free_port
from tests.support.site_helpers import site_settings_create

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]


@pytest.fixture
def site(runtime, f2b) -> SiteSettings:
    """A completed setup pointing at the private fail2ban, applied to this process."""
    row = site_settings_create(str(f2b.socket_path), display_time_zone="UTC")
    runtime_apply(runtime, row)
    return row


def form_data(row: SiteSettings, **overrides) -> dict[str, str]:
    data = {
        "fail2ban_socket": row.fail2ban_socket,
        "display_time_zone": row.display_time_zone,
        "session_lifetime_seconds": str(row.session_lifetime_seconds),
        "session_cache": row.session_cache,
        "redis_url": row.redis_url,
        "history_retention_days": str(row.history_retention_days),
    }
    data.update(overrides)
    return data


# /settings/ --------------------------------------------------------------------------------------
def test_settings_page_shows_the_values_and_the_storage_in_use(site, role_client):
    response = role_client("administrator").get("/settings/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f'value="{site.fail2ban_socket}"' in body
    assert 'value="8h"' in body
    assert "database — table jailadmin_session_cache" in body


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_settings_page_is_for_administrators_only(site, role_client, role):
    client = role_client(role)
    assert client.get("/settings/").status_code == 403
    response = client.post("/settings/", form_data(site, history_retention_days="7"))
    assert response.status_code == 403
    site.refresh_from_db()
    assert site.history_retention_days == 365
    assert not AuditEntry.objects.filter(action="settings_change").exists()


def test_settings_change_is_saved_audited_and_applied_by_the_watcher(site, runtime, role_client):
    client = role_client("administrator")
    response = client.post(
        "/settings/",
        form_data(site, session_lifetime_seconds="1h 30m", display_time_zone="Asia/Tokyo"),
    )
    assert response.status_code == 302
    site.refresh_from_db()
    assert (site.session_lifetime_seconds, site.display_time_zone, site.version) == (
        5400,
        "Asia/Tokyo",
        2,
    )
    entry = AuditEntry.objects.get(action="settings_change")
    assert entry.actor == "administrator-user"
    assert (entry.source, entry.address, entry.ok) == ("web", "127.0.0.1", True)
    assert entry.parameters == {
        "session_lifetime_seconds": {"from": 28800, "to": 5400},
        "display_time_zone": {"from": "UTC", "to": "Asia/Tokyo"},
    }
    # The request did not touch the state; the watcher's next tick does.
    assert runtime.settings.display_time_zone == "UTC"
    assert runtime_refresh(runtime)
    assert runtime.settings.display_time_zone == "Asia/Tokyo"
    assert runtime.settings.session_lifetime_seconds == 5400
    assert (
        "Saved: Display time zone, Session lifetime." in client.get("/settings/").content.decode()
    )


def test_settings_unchanged_save_records_nothing(site, role_client):
    response = role_client("administrator").post("/settings/", form_data(site), follow=True)
    assert "Nothing changed." in response.content.decode()
    site.refresh_from_db()
    assert site.version == 1
    assert not AuditEntry.objects.filter(action="settings_change").exists()


def test_settings_switch_to_redis_keeps_the_administrator_logged_in(
    site, runtime, role_client, private_redis
):
    client = role_client("administrator")
    session_key = client.cookies["sessionid"].value
    response = client.post(
        "/settings/", form_data(site, session_cache="redis", redis_url=private_redis.url)
    )
    assert response.status_code == 302
    redis_backend = build_session_cache("redis", private_redis.url).backend
    assert redis_backend.get(KEY_PREFIX + session_key) is not None  # copied over

    assert runtime_refresh(runtime)  # this process's watcher tick
    assert runtime.session_cache.kind == "redis"
    SessionCacheEntry.objects.all().delete()  # the old storage is empty: only Redis counts
    page = client.get("/settings/")
    assert page.status_code == 200
    assert f"redis — {private_redis.url}" in page.content.decode()
    entry = AuditEntry.objects.get(action="settings_change")
    assert entry.parameters["session_cache"] == {"from": "database", "to": "redis"}


def test_settings_switch_to_unreachable_redis_is_refused(site, runtime, role_client):
    url = f"redis://127.0.0.1:{free_port()}/0"
    response = role_client("administrator").post(
        "/settings/", form_data(site, session_cache="redis", redis_url=url)
    )
    assert response.status_code == 200
    assert f"Could not reach Redis at {url}" in response.content.decode()
    site.refresh_from_db()
    assert (site.session_cache, site.version) == ("database", 1)


def test_settings_unchanged_socket_is_not_rechecked_but_a_new_one_is(runtime, role_client):
    """fail2ban being down must not block an unrelated change; a new socket is checked."""
    row = site_settings_create("/nonexistent/old/f2b.sock")
    runtime_apply(runtime, row)
    client = role_client("administrator")
    response = client.post("/settings/", form_data(row, history_retention_days="30"))
    assert response.status_code == 302
    response = client.post("/settings/", form_data(row, fail2ban_socket="/nonexistent/new.sock"))
    assert "Nothing exists at /nonexistent/new.sock" in response.content.decode()


def test_settings_refuse_memory_with_several_workers(site, role_client):
    response = role_client("administrator").post(
        "/settings/", form_data(site, session_cache="memory")
    )
    assert "Process memory only works with a single process" in response.content.decode()


def test_mask_url_password_hides_only_the_password():
    assert mask_url_password("redis://:s3cret@redis.example:6380/2") == (
        "redis://:***@redis.example:6380/2"
    )
    assert mask_url_password("redis://user:pw@h/0") == "redis://user:***@h/0"
    assert mask_url_password("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


# The Django admin ------------------------------------------------------------------------------
ADMIN_CHANGE = "/admin/jails/sitesettings/{}/change/"


def test_admin_settings_use_the_same_validation(site, role_client):
    client = role_client("administrator", staff=True)
    url = ADMIN_CHANGE.format(site.pk)
    assert client.get(url).status_code == 200
    response = client.post(url, form_data(site, fail2ban_socket="/nonexistent/admin.sock"))
    assert response.status_code == 200
    assert "Nothing exists at /nonexistent/admin.sock" in response.content.decode()
    response = client.post(url, form_data(site, session_cache="memory"))
    assert "Process memory only works with a single process" in response.content.decode()
    site.refresh_from_db()
    assert site.version == 1


def test_admin_settings_change_goes_through_the_service(site, runtime, role_client):
    client = role_client("administrator", staff=True)
    response = client.post(
        ADMIN_CHANGE.format(site.pk), form_data(site, history_retention_days="30")
    )
    assert response.status_code == 302
    site.refresh_from_db()
    assert (site.history_retention_days, site.version) == (30, 2)
    entry = AuditEntry.objects.get(action="settings_change")
    assert entry.source == "admin"
    assert entry.parameters == {"history_retention_days": {"from": 365, "to": 30}}
    assert runtime_refresh(runtime)
    assert runtime.settings.history_retention_days == 30


def test_admin_settings_cannot_be_added_or_deleted(site, role_client):
    client = role_client("administrator", staff=True)
    assert client.get("/admin/jails/sitesettings/add/").status_code == 403
    assert client.post(f"/admin/jails/sitesettings/{site.pk}/delete/").status_code == 403
    assert SiteSettings.objects.count() == 1


def test_admin_settings_refused_to_operators_even_staff(site, role_client):
    client = role_client("operator", staff=True)
    assert client.get(ADMIN_CHANGE.format(site.pk)).status_code == 403


def test_admin_is_for_staff_only(site, role_client):
    response = role_client("administrator").get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# A stored Redis password never goes back to the browser --------------------------------------
SECRET_URL = "redis://:s3cret-pw@127.0.0.1:6390/0"
MASKED_URL = "redis://:***@127.0.0.1:6390/0"


@pytest.fixture
def site_with_redis_password(runtime, f2b) -> SiteSettings:
    """Database sessions, but a Redis URL with a password saved from earlier."""
    row = site_settings_create(str(f2b.socket_path), redis_url=SECRET_URL)
    runtime_apply(runtime, row)
    return row


def assert_not_cacheable(response) -> None:
    cache_control = response["Cache-Control"]
    assert "no-store" in cache_control and "private" in cache_control


@pytest.mark.parametrize("where", ["settings", "admin"])
def test_stored_redis_password_is_never_rendered(site_with_redis_password, role_client, where):
    client = role_client("administrator", staff=True)
    url = "/settings/" if where == "settings" else ADMIN_CHANGE.format(site_with_redis_password.pk)
    response = client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert "s3cret-pw" not in body
    assert f'value="{MASKED_URL}"' in body
    assert_not_cacheable(response)


@pytest.mark.parametrize("where", ["settings", "admin"])
def test_resaving_the_masked_url_keeps_the_stored_password(
    site_with_redis_password, role_client, where
):
    site = site_with_redis_password
    client = role_client("administrator", staff=True)
    url = "/settings/" if where == "settings" else ADMIN_CHANGE.format(site.pk)
    response = client.post(url, form_data(site, redis_url=MASKED_URL, history_retention_days="30"))
    assert response.status_code == 302
    site.refresh_from_db()
    assert (site.redis_url, site.history_retention_days) == (SECRET_URL, 30)
    entry = AuditEntry.objects.get(action="settings_change")
    assert entry.parameters == {"history_retention_days": {"from": 365, "to": 30}}


def test_a_new_redis_password_replaces_and_none_removes_it(site_with_redis_password, role_client):
    site = site_with_redis_password
    client = role_client("administrator")
    new_url = "redis://:other-pw@127.0.0.1:6390/0"
    assert client.post("/settings/", form_data(site, redis_url=new_url)).status_code == 302
    site.refresh_from_db()
    assert site.redis_url == new_url
    entry = AuditEntry.objects.get(action="settings_change")
    assert "other-pw" not in str(entry.parameters) and "s3cret-pw" not in str(entry.parameters)
    plain = "redis://127.0.0.1:6390/0"
    assert client.post("/settings/", form_data(site, redis_url=plain)).status_code == 302
    site.refresh_from_db()
    assert site.redis_url == plain


def test_masked_password_with_nothing_stored_is_refused(site, role_client):
    response = role_client("administrator").post(
        "/settings/", form_data(site, redis_url=MASKED_URL)
    )
    assert response.status_code == 200
    assert "No password is stored to keep" in response.content.decode()
    site.refresh_from_db()
    assert site.redis_url == ""


def test_form_with_errors_does_not_echo_a_typed_password(site_with_redis_password, role_client):
    site = site_with_redis_password
    response = role_client("administrator").post(
        "/settings/",
        form_data(site, redis_url="redis://:typed-pw@127.0.0.1:6390/0", history_retention_days="0"),
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "typed-pw" not in body and "s3cret-pw" not in body
    assert "Type the Redis password again" in body
    assert_not_cacheable(response)
    site.refresh_from_db()
    assert site.redis_url == SECRET_URL


def test_form_redisplay_of_the_masked_url_keeps_the_mask(site_with_redis_password, role_client):
    site = site_with_redis_password
    response = role_client("administrator").post(
        "/settings/", form_data(site, redis_url=MASKED_URL, history_retention_days="0")
    )
    body = response.content.decode()
    assert f'value="{MASKED_URL}"' in body and "s3cret-pw" not in body
    assert "Type the Redis password again" not in body
