"""What moved below the views in issue 9 still works where it now lives (and only there)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.sessions.backends.cache import KEY_PREFIX
from django.template import Context, Template

from jails.fail2ban import UnknownJail
from jails.formatting import duration, duration_input
from jails.history.models import BanEvent
from jails.history.selectors import archive as history_selectors
from jails.models import SiteSettings
from jails.runtime import runtime_apply
from jails.services import bans as ban_service
from jails.services import health as health_service
from jails.services import settings as settings_service
from jails.services import setup as setup_service
from jails.services.audit import Actor
from jails.services.settings import SiteValues
from jails.sessions import SessionStorageUnavailable, SessionStore, build_session_cache
from tests.conftest import point_state_at
from tests.support.redis_server import free_port
from tests.support.site_helpers import site_settings_create

pytestmark = pytest.mark.django_db

ACTOR = Actor(name="tester", source="command", address="192.0.2.200")
HX = {"HX-Request": "true"}


# A typed error instead of its wording --------------------------------------------------------
def test_unban_report_carries_the_typed_failure(runtime, f2b):
    f2b.client().send("stop", "postfix")
    report = ban_service.ips_unban(runtime, jail="postfix", lines=["203.0.113.5"], actor=ACTOR)
    assert isinstance(report.failure, UnknownJail) and report.failure.jail == "postfix"
    assert report.error  # the text for people is still there
    assert "failure" not in report.as_dict()  # not part of the command's JSON


def test_unban_report_has_no_failure_when_it_worked(runtime, f2b):
    f2b.client().send("set", "sshd", "banip", "203.0.113.6")
    report = ban_service.ips_unban(runtime, jail="sshd", lines=["203.0.113.6"], actor=ACTOR)
    assert report.failure is None and report.error == ""


def test_ip_page_unban_from_a_stopped_jail_names_the_jail(runtime, f2b, logged_in_client):
    f2b.client().send("stop", "postfix")
    body = logged_in_client.post(
        "/ip/203.0.113.5/unban/", {"jail": "postfix"}, headers=HX
    ).content.decode()
    assert "fail2ban has no jail named postfix." in body


# The history's "everything" window is a selector ------------------------------------------------
def _event(timeofban: int) -> BanEvent:
    return BanEvent.objects.create(
        jail="sshd", ip="203.0.113.9", network="203.0.113.0/24", timeofban=timeofban, bantime=600
    )


def test_window_everything_starts_at_the_utc_day_of_the_oldest_ban():
    now = datetime(2026, 11, 28, 16, 47, 13, tzinfo=UTC)
    oldest = int(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp())
    _event(oldest)
    _event(oldest + 86400 * 30)
    start, end = history_selectors.window_everything(now=now)
    assert start == int(datetime(2026, 3, 4, tzinfo=UTC).timestamp())
    assert end == int(now.timestamp()) + 1


def test_window_everything_of_an_empty_or_new_archive_is_at_least_a_day():
    now = datetime(2026, 11, 28, 16, 47, 13, tzinfo=UTC)
    day_before = int(datetime(2026, 11, 27, tzinfo=UTC).timestamp())
    assert history_selectors.window_everything(now=now)[0] == day_before
    _event(int(now.timestamp()) - 60)  # a ban a minute ago: still the whole day before
    assert history_selectors.window_everything(now=now)[0] == day_before


def test_history_everything_window_page_counts_the_oldest_ban(runtime, logged_in_client):
    _event(int(datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()))
    response = logged_in_client.get("/history/", {"window": "all"})
    assert response.status_code == 200
    assert "203.0.113.9" in response.content.decode()


# fail2ban is reached through services only ----------------------------------------------------
def test_health_check_answers_true_with_fail2ban_up(runtime):
    assert health_service.health_check(runtime) is True


def test_health_check_answers_false_without_fail2ban(tmp_path, client):
    state = point_state_at(str(tmp_path / "none.sock"), timeout=0.2)
    assert health_service.health_check(state) is False
    assert client.get("/healthz").status_code == 503


# The storage switch is a service (the view and the admin both call it) --------------------------
def _values(row: SiteSettings, **changes: object) -> SiteValues:
    return SiteValues(**{**SiteValues.from_row(row).__dict__, **changes})


def test_storage_switch_keep_session_copies_the_session(runtime, f2b, private_redis):
    row = site_settings_create(str(f2b.socket_path))
    session = SessionStore()
    session["kept"] = 1
    session.save()
    values = _values(row, session_cache="redis", redis_url=private_redis.url)
    settings_service.storage_switch_keep_session(runtime, session=session, values=values)
    redis_backend = build_session_cache("redis", private_redis.url).backend
    assert redis_backend.get(KEY_PREFIX + session.session_key) == {"kept": 1}


def test_storage_switch_keep_session_raises_when_the_new_storage_is_down(runtime, f2b):
    row = site_settings_create(str(f2b.socket_path))
    session = SessionStore()
    session["kept"] = 1
    session.save()
    values = _values(row, session_cache="redis", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(SessionStorageUnavailable):
        settings_service.storage_switch_keep_session(runtime, session=session, values=values)


@pytest.mark.usefixtures("fast_password_hashing")
def test_admin_storage_switch_keeps_the_administrator_logged_in(
    runtime, f2b, role_client, private_redis
):
    row = site_settings_create(str(f2b.socket_path))
    runtime_apply(runtime, row)
    client = role_client("administrator", staff=True)
    session_key = client.cookies["sessionid"].value
    data = {
        "fail2ban_socket": row.fail2ban_socket,
        "display_time_zone": row.display_time_zone,
        "session_lifetime_seconds": str(row.session_lifetime_seconds),
        "session_cache": "redis",
        "redis_url": private_redis.url,
        "history_retention_days": str(row.history_retention_days),
    }
    response = client.post(f"/admin/jails/sitesettings/{row.pk}/change/", data)
    assert response.status_code == 302
    redis_backend = build_session_cache("redis", private_redis.url).backend
    assert redis_backend.get(KEY_PREFIX + session_key) is not None


# The setup's defaults are the service's --------------------------------------------------------
def test_setup_initial_is_the_seed_settings(runtime):
    initial = setup_service.setup_initial(runtime.settings)
    assert initial == {
        "fail2ban_socket": runtime.settings.fail2ban_socket,
        "fail2ban_agent": runtime.settings.fail2ban_agent,
        "display_time_zone": runtime.settings.display_time_zone,
        "session_lifetime_seconds": runtime.settings.session_lifetime_seconds,
        "session_cache": runtime.settings.session_cache,
        "redis_url": runtime.settings.redis_url,
        "history_retention_days": runtime.settings.history_retention_days,
    }


# Durations: one plain function, registered as template filters ------------------------------
def test_formatting_duration_and_its_filter_agree():
    assert [duration(v) for v in (600, 90061, -1, 0, "x")] == [
        "10m",
        "1d 1h 1m 1s",
        "permanent",
        "0s",
        "—",
    ]
    assert [duration_input(v) for v in (600, 90, -1, 604800, None)] == ["10m", "90", "-1", "1w", ""]
    rendered = Template(
        "{% load jailadmin jail_actions %}{{ 90061|duration }}|{{ 600|duration_input }}"
    ).render(Context())
    assert rendered == "1d 1h 1m 1s|10m"
