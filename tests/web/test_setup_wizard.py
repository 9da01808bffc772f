"""The first-run setup wizard (/setup/) against a real private fail2ban and Redis."""

from __future__ import annotations

import re
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from jails.fail2ban import Fail2banUnreachable
from jails.history.models import BanEvent, HistorySource
from jails.history.services.jobs import SYNC_JOB
from jails.jobs import job_acquire
from jails.models import AuditEntry, ScheduledJob, SiteSettings
from jails.runtime import runtime_refresh
from jails.services import settings as settings_service
from jails.services.settings import SetupFailed, SiteValues
from jails.services.setup import setup_history_sync, setup_token_ensure
from tests.support.redis_server import free_port
from tests.support.site_helpers import STRONG_PASSWORD, setup_post_data

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]


@pytest.fixture
def token_file(settings, tmp_path) -> Path:
    """This test's own setup-token file (never the site's var/)."""
    settings.JAILADMIN_SETUP_TOKEN_FILE = tmp_path / "var" / "setup-token"
    return settings.JAILADMIN_SETUP_TOKEN_FILE


@pytest.fixture
def fresh_install(runtime, token_file):
    """A process that has not seen a completed setup, and a database without one."""
    runtime.setup_pending = True
    assert not SiteSettings.objects.exists()
    return runtime


def setup_data(socket_path: str, **overrides) -> dict:
    """A complete, valid wizard submission with the setup token (created if missing)."""
    from django.conf import settings

    token = setup_token_ensure(path=Path(settings.JAILADMIN_SETUP_TOKEN_FILE))
    return setup_post_data(socket_path, **{"token": token, **overrides})


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path (a Unix socket path is at most 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="ja-w-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def nothing_saved() -> bool:
    return (
        not SiteSettings.objects.filter(setup_complete=True).exists()
        and not get_user_model().objects.exists()
        and not AuditEntry.objects.exists()
    )


def form_errors(response) -> str:
    return response.content.decode()


# Redirect-everything -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["/", "/jails/", "/jails/sshd/", "/audit/", "/settings/", "/admin/", "/login/", "/nope/"],
)
def test_setup_redirects_every_page_until_complete(fresh_install, client: Client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == "/setup/"


def test_setup_redirects_posts_and_htmx_requests_too(fresh_install, client: Client):
    assert client.post("/logout/")["Location"] == "/setup/"
    response = client.get("/jails/", headers={"HX-Request": "true"})
    assert response.status_code == 204  # htmx reloads the whole page there
    assert response["HX-Redirect"] == "/setup/"


def test_setup_leaves_healthz_static_and_the_wizard_reachable(fresh_install, client: Client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/static/jails/app.css").status_code == 200
    response = client.get("/setup/")
    assert response.status_code == 200
    assert "Set up jailadmin" in response.content.decode()


def test_setup_form_defaults_come_from_the_environment_seeds(fresh_install, client: Client):
    body = client.get("/setup/").content.decode()
    assert f'value="{fresh_install.settings.fail2ban_socket}"' in body
    assert 'value="8h"' in body  # JAILADMIN_SESSION_LIFETIME default, shown as a duration
    assert re.search(r'value="database"[^>]*checked', body)
    assert not re.search(r'value="redis"[^>]*checked', body)


# Saving ------------------------------------------------------------------------------------------
def test_setup_saves_settings_administrator_and_audit_then_login_works(
    fresh_install, f2b, client: Client
):
    response = client.post("/setup/", setup_data(str(f2b.socket_path)))
    assert response.status_code == 302
    assert response["Location"] == "/login/"

    row = SiteSettings.objects.get()
    assert row.setup_complete
    assert row.fail2ban_socket == str(f2b.socket_path)
    assert row.display_time_zone == "Europe/Berlin"
    assert row.session_lifetime_seconds == 8 * 3600
    assert row.session_cache == "database"
    assert row.version == 1

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert list(admin.groups.values_list("name", flat=True)) == ["administrator"]
    assert admin.check_password(STRONG_PASSWORD)

    entry = AuditEntry.objects.get(action="setup")
    assert (entry.actor, entry.source, entry.address, entry.ok) == (
        "admin",
        "web",
        "127.0.0.1",
        True,
    )
    assert entry.parameters["fail2ban_socket"] == str(f2b.socket_path)
    assert STRONG_PASSWORD not in str(entry.parameters)

    # Every process's watcher picks the settings up (here: one tick, by hand).
    assert runtime_refresh(fresh_install)
    assert fresh_install.settings.display_time_zone == "Europe/Berlin"
    assert fresh_install.settings_version == 1

    login_page = client.get("/login/")
    assert login_page.status_code == 200
    assert "Setup complete (fail2ban 1.0.2). Log in as admin." in login_page.content.decode()
    response = client.post("/login/", {"username": "admin", "password": STRONG_PASSWORD})
    assert response.status_code == 302
    assert client.get("/jails/").status_code == 200


def test_setup_with_redis_storage_checks_redis_live_and_saves_it(
    fresh_install, f2b, private_redis, client: Client
):
    data = setup_data(str(f2b.socket_path), session_cache="redis", redis_url=private_redis.url)
    response = client.post("/setup/", data)
    assert response.status_code == 302
    row = SiteSettings.objects.get()
    assert (row.session_cache, row.redis_url) == ("redis", private_redis.url)
    runtime_refresh(fresh_install)
    assert fresh_install.session_cache.kind == "redis"


def test_setup_check_button_runs_every_check_and_saves_nothing(fresh_install, f2b, client):
    data = setup_data(str(f2b.socket_path), check="1")
    response = client.post("/setup/", data)
    assert response.status_code == 200
    body = response.content.decode()
    assert "All checks passed: fail2ban 1.0.2 answers at" in body
    assert nothing_saved()


def test_setup_htmx_post_returns_the_form_partial(fresh_install, f2b, client: Client):
    data = setup_data("/nonexistent/f2b.sock")
    response = client.post("/setup/", data, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<form id="setup-form"')
    assert "<html" not in body


# Each validation -------------------------------------------------------------------------------
def test_setup_refuses_a_missing_socket_path(fresh_install, client: Client):
    response = client.post("/setup/", setup_data("/nonexistent/jailadmin/f2b.sock"))
    assert response.status_code == 200
    assert "Nothing exists at /nonexistent/jailadmin/f2b.sock" in form_errors(response)
    assert nothing_saved()


def test_setup_refuses_a_relative_socket_path(fresh_install, client: Client):
    response = client.post("/setup/", setup_data("run/fail2ban.sock"))
    assert "Give an absolute path" in form_errors(response)
    assert nothing_saved()


def test_setup_refuses_a_file_that_is_not_a_socket(fresh_install, client: Client, short_dir):
    plain = short_dir / "fail2ban.sock"
    plain.write_text("not a socket")
    response = client.post("/setup/", setup_data(str(plain)))
    assert f"{plain} exists but is a regular file, not fail2ban" in form_errors(response)
    assert nothing_saved()


def test_setup_refuses_a_directory(fresh_install, client: Client, short_dir):
    response = client.post("/setup/", setup_data(str(short_dir)))
    assert "exists but is a directory" in form_errors(response)
    assert nothing_saved()


def test_setup_refuses_a_dead_socket(fresh_install, client: Client, short_dir):
    path = short_dir / "dead.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.close()  # the socket file stays; nobody listens on it
    assert path.is_socket()
    response = client.post("/setup/", setup_data(str(path)))
    body = form_errors(response)
    assert f"{path} is a socket, but fail2ban does not answer on it" in body
    assert "connection refused" in body
    assert nothing_saved()


def test_setup_refuses_a_socket_that_does_not_speak_fail2ban(fresh_install, client, short_dir):
    path = short_dir / "other.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    try:
        fresh_install.snapshot_replace(
            settings=replace(fresh_install.settings, fail2ban_timeout=0.5)
        )
        response = client.post("/setup/", setup_data(str(path)))
    finally:
        listener.close()
    assert "fail2ban does not answer on it: no answer within 0.5 s" in form_errors(response)
    assert nothing_saved()


def test_setup_refuses_a_redis_url_with_a_wrong_scheme(fresh_install, f2b, client: Client):
    data = setup_data(
        str(f2b.socket_path), session_cache="redis", redis_url="http://127.0.0.1:6379/0"
    )
    response = client.post("/setup/", data)
    assert "A Redis URL starts with redis://, rediss:// or unix://" in form_errors(response)
    assert nothing_saved()


def test_setup_refuses_a_redis_url_nobody_answers(fresh_install, f2b, client: Client):
    url = f"redis://127.0.0.1:{free_port()}/0"
    data = setup_data(str(f2b.socket_path), session_cache="redis", redis_url=url)
    response = client.post("/setup/", data)
    assert f"Could not reach Redis at {url}" in form_errors(response)
    assert nothing_saved()


def test_setup_refuses_an_unparsable_redis_url(fresh_install, f2b, client: Client):
    data = setup_data(
        str(f2b.socket_path), session_cache="redis", redis_url="redis://127.0.0.1:notaport/0"
    )
    response = client.post("/setup/", data)
    assert "is not a usable Redis URL" in form_errors(response)
    assert nothing_saved()


def test_setup_refuses_redis_storage_without_a_url(fresh_install, f2b, client: Client):
    data = setup_data(str(f2b.socket_path), session_cache="redis", redis_url="")
    response = client.post("/setup/", data)
    assert "Enter the Redis URL" in form_errors(response)
    assert nothing_saved()


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("password123", "This password is too common."),
        ("short", "This password is too short."),
        ("8127364519283", "This password is entirely numeric."),
    ],
)
def test_setup_refuses_a_weak_password(fresh_install, f2b, client: Client, password, message):
    data = setup_data(str(f2b.socket_path), password1=password, password2=password)
    response = client.post("/setup/", data)
    assert message in form_errors(response)
    assert nothing_saved()


def test_setup_refuses_different_passwords(fresh_install, f2b, client: Client):
    data = setup_data(str(f2b.socket_path), password2=STRONG_PASSWORD + "x")
    assert "The two passwords differ." in form_errors(client.post("/setup/", data))
    assert nothing_saved()


def test_setup_refuses_memory_sessions_with_several_workers(fresh_install, f2b, client):
    assert fresh_install.settings.web_workers == 3
    data = setup_data(str(f2b.socket_path), session_cache="memory")
    body = form_errors(client.post("/setup/", data))
    assert "Process memory only works with a single process" in body
    assert nothing_saved()


def test_setup_refuses_bad_lifetime_time_zone_and_retention(fresh_install, f2b, client):
    data = setup_data(
        str(f2b.socket_path),
        session_lifetime_seconds="eternity",
        display_time_zone="Mars/Olympus",
        history_retention_days="0",
    )
    body = form_errors(client.post("/setup/", data))
    assert "Write a duration such as 30m, 8h or 7d." in body
    assert "Select a valid choice. Mars/Olympus is not one of the available choices." in body
    assert "Ensure this value is greater than or equal to 1." in body
    assert nothing_saved()


# All or nothing, and only once ------------------------------------------------------------------
def test_setup_save_failing_midway_keeps_nothing(fresh_install, f2b, django_user_model):
    """The settings row is written first; the administrator then cannot be created (the
    name was taken after the form was checked): the row must not survive."""
    django_user_model.objects.create_user(username="admin", password="x")
    values = SiteValues(
        fail2ban_socket=str(f2b.socket_path),
        display_time_zone="UTC",
        session_lifetime_seconds=3600,
        session_cache="database",
        redis_url="",
        history_retention_days=30,
    )
    with pytest.raises(SetupFailed, match="a user named 'admin' already exists"):
        settings_service.site_setup(
            fresh_install, values=values, username="admin", password=STRONG_PASSWORD, source="web"
        )
    assert not SiteSettings.objects.exists()
    assert not AuditEntry.objects.exists()
    assert django_user_model.objects.count() == 1


def test_setup_is_unusable_once_complete(fresh_install, f2b, client: Client, django_user_model):
    assert client.post("/setup/", setup_data(str(f2b.socket_path))).status_code == 302
    assert client.get("/setup/")["Location"] == "/login/"
    second = setup_data(str(f2b.socket_path), username="intruder")
    response = client.post("/setup/", second)
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert not django_user_model.objects.filter(username="intruder").exists()
    assert AuditEntry.objects.filter(action="setup").count() == 1


def test_setup_completed_by_another_process_is_noticed(fresh_install, f2b, client: Client):
    """Another worker finished the wizard: this process stops redirecting, /setup/ is shut."""
    from tests.support.site_helpers import site_settings_create

    site_settings_create(str(f2b.socket_path))
    assert client.get("/jails/")["Location"].startswith("/login/")
    assert fresh_install.setup_pending is False
    assert client.get("/setup/")["Location"] == "/login/"


# The setup token ---------------------------------------------------------------------------------
@pytest.fixture
def listener(short_dir) -> Iterator[socket.socket]:
    """A Unix socket nobody should ever connect to: it notices whether a check ran."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(short_dir / "probe.sock"))
    sock.listen(4)
    sock.setblocking(False)
    yield sock
    sock.close()


def connected(listener: socket.socket) -> bool:
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def test_setup_token_is_created_on_first_need_private_and_never_shown(
    fresh_install, token_file, client: Client
):
    assert not token_file.exists()
    body = client.get("/setup/").content.decode()
    assert token_file.exists()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 40
    assert token not in body
    assert 'name="token"' in body
    assert "jailadmin_setup --print-token" in body
    # A second visit keeps the same token.
    client.get("/setup/")
    assert token_file.read_text().strip() == token


def test_setup_token_from_the_link_prefills_the_form(fresh_install, token_file, client: Client):
    token = setup_token_ensure(path=token_file)
    body = client.get(f"/setup/?token={token}").content.decode()
    assert re.search(rf'name="token" value="{re.escape(token)}"', body)


@pytest.mark.parametrize(
    ("token", "message"),
    [("", "Enter the setup token."), ("not-the-token", "This is not the setup token.")],
)
def test_setup_without_the_token_checks_nothing_and_saves_nothing(
    fresh_install, f2b, listener, client: Client, token, message
):
    """An anonymous visitor used to make the server connect to any socket or Redis URL."""
    probe = listener.getsockname()
    for data in (
        setup_data(probe, token=token, check="1"),
        setup_data(probe, token=token),
        setup_data(str(f2b.socket_path), token=token),
    ):
        response = client.post("/setup/", data)
        assert response.status_code == 200
        body = response.content.decode()
        assert message in body
        assert "Nothing was checked or saved." in body
        assert "All checks passed" not in body
    assert not connected(listener)
    assert nothing_saved()


def test_setup_without_the_token_does_not_contact_redis(fresh_install, f2b, client: Client):
    redis_side = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    redis_side.bind(("127.0.0.1", 0))
    redis_side.listen(4)
    redis_side.setblocking(False)
    url = f"redis://127.0.0.1:{redis_side.getsockname()[1]}/0"
    try:
        data = setup_data(
            str(f2b.socket_path), token="", session_cache="redis", redis_url=url, check="1"
        )
        assert "Enter the setup token." in client.post("/setup/", data).content.decode()
        assert not connected(redis_side)
    finally:
        redis_side.close()
    assert nothing_saved()


def test_setup_token_is_deleted_once_setup_is_complete(
    fresh_install, f2b, token_file, client: Client
):
    data = setup_data(str(f2b.socket_path))
    assert token_file.exists()
    assert client.post("/setup/", data).status_code == 302
    assert not token_file.exists()
    # The same token, again: the wizard is shut.
    again = client.post("/setup/", {**data, "username": "intruder"})
    assert again["Location"] == "/login/"
    assert not get_user_model().objects.filter(username="intruder").exists()


def test_setup_reports_an_unwritable_token_directory_clearly(
    fresh_install, settings, short_dir, client: Client
):
    blocked = short_dir / "file-not-dir"
    blocked.write_text("x")
    settings.JAILADMIN_SETUP_TOKEN_FILE = blocked / "setup-token"
    response = client.get("/setup/")
    assert response.status_code == 503
    body = response.content.decode()
    assert "The setup cannot start: cannot read the setup token" in body
    assert "Not a directory" in body
    assert 'name="username"' not in body


# The first history sync --------------------------------------------------------------------------
def test_setup_syncs_the_bans_fail2ban_already_holds(fresh_install, f2b, client: Client):
    f2b.client().send("set", "sshd", "banip", "203.0.113.9")
    response = client.post("/setup/", setup_data(str(f2b.socket_path)))
    assert response.status_code == 302
    assert BanEvent.objects.filter(jail="sshd", ip="203.0.113.9").exists()
    client.post("/login/", {"username": "admin", "password": STRONG_PASSWORD})
    body = client.get("/").content.decode()
    assert "Ban history: 1 ban archived from fail2ban." in body
    assert "No bans archived yet" not in body
    assert HistorySource.objects.get().last_rowid > 0


def test_setup_succeeds_when_the_first_sync_cannot_run(
    fresh_install, f2b, client: Client, monkeypatch
):
    def unreachable(state, **kwargs):
        raise Fail2banUnreachable("/run/f2b.sock", "connection refused")

    monkeypatch.setattr("jails.services.setup.history_service.history_sync", unreachable)
    response = client.post("/setup/", setup_data(str(f2b.socket_path)))
    assert response.status_code == 302
    assert SiteSettings.objects.get().setup_complete
    body = client.get("/login/").content.decode()
    assert "Setup complete (fail2ban 1.0.2)" in body
    assert (
        "Ban history not synced yet (fail2ban is not reachable at /run/f2b.sock: connection "
        "refused); the job runner will sync it." in body
    )


def test_setup_history_sync_against_a_dead_socket_says_why_and_frees_the_job(
    fresh_install, short_dir
):
    path = short_dir / "dead.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.close()  # the socket file stays; nobody listens on it
    sync = setup_history_sync(fresh_install, fail2ban_socket=str(path))
    assert not sync.ok
    assert f"fail2ban is not reachable at {path}" in sync.reason
    job = ScheduledJob.objects.get(name=SYNC_JOB)
    assert (job.locked_by, job.last_ok) == ("", False)


def test_setup_history_sync_is_skipped_while_the_job_runner_syncs(fresh_install, f2b):
    from django.utils import timezone

    assert job_acquire(name=SYNC_JOB, owner="runner", now=timezone.now(), lease=timedelta(hours=1))
    sync = setup_history_sync(fresh_install, fail2ban_socket=str(f2b.socket_path))
    assert (sync.ok, sync.reason) == (False, "the job runner is syncing right now")
    assert ScheduledJob.objects.get(name=SYNC_JOB).locked_by == "runner"
