"""`manage.py jailadmin_setup`: the same setup, non-interactively."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from jails.history.models import BanEvent
from jails.models import AuditEntry, SiteSettings
from tests.support.redis_server import free_port
from tests.support.site_helpers import STRONG_PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]


@pytest.fixture
def token_file(settings, tmp_path) -> Path:
    """This test's own setup-token file (never the site's var/)."""
    settings.JAILADMIN_SETUP_TOKEN_FILE = tmp_path / "setup-token"
    return settings.JAILADMIN_SETUP_TOKEN_FILE


@pytest.fixture
def fresh_install(runtime, token_file):
    runtime.setup_pending = True
    return runtime


def test_setup_command_with_password_from_environment(fresh_install, f2b, monkeypatch):
    monkeypatch.setenv("JAILADMIN_ADMIN_PASSWORD", STRONG_PASSWORD)
    out = io.StringIO()
    call_command(
        "jailadmin_setup",
        "--username=root-admin",
        "--time-zone=Asia/Tokyo",
        "--session-lifetime=30m",
        "--history-retention-days=90",
        stdout=out,
    )
    assert (
        f"Setup complete: administrator root-admin, fail2ban 1.0.2 at {f2b.socket_path}, "
        "sessions in database." in out.getvalue()
    )
    row = SiteSettings.objects.get()
    assert row.setup_complete
    # the socket came from the JAILADMIN_* seed the runtime fixture points at the server
    assert row.fail2ban_socket == str(f2b.socket_path)
    assert (row.display_time_zone, row.session_lifetime_seconds) == ("Asia/Tokyo", 1800)
    assert row.history_retention_days == 90
    user = get_user_model().objects.get(username="root-admin")
    assert user.is_superuser and user.check_password(STRONG_PASSWORD)
    entry = AuditEntry.objects.get(action="setup")
    assert (entry.actor, entry.source, entry.address) == ("root-admin", "command", None)


def test_setup_command_with_password_from_stdin(fresh_install, f2b, monkeypatch, private_redis):
    monkeypatch.delenv("JAILADMIN_ADMIN_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(STRONG_PASSWORD + "\n"))
    call_command(
        "jailadmin_setup",
        "--username=admin",
        "--password-stdin",
        f"--socket={f2b.socket_path}",
        "--session-storage=redis",
        f"--redis-url={private_redis.url}",
        stdout=io.StringIO(),
    )
    row = SiteSettings.objects.get()
    assert (row.session_cache, row.redis_url) == ("redis", private_redis.url)
    assert get_user_model().objects.get(username="admin").check_password(STRONG_PASSWORD)


def test_setup_command_reports_every_problem_and_saves_nothing(fresh_install, monkeypatch):
    monkeypatch.setenv("JAILADMIN_ADMIN_PASSWORD", "password123")
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(CommandError) as raised:
        call_command(
            "jailadmin_setup",
            "--username=admin",
            "--socket=/nonexistent/f2b.sock",
            "--session-storage=redis",
            f"--redis-url={url}",
        )
    message = str(raised.value)
    assert message.startswith("Nothing was saved:")
    assert "fail2ban_socket: Nothing exists at /nonexistent/f2b.sock" in message
    assert f"redis_url: Could not reach Redis at {url}" in message
    assert "password1: This password is too common." in message
    assert not SiteSettings.objects.exists()
    assert not get_user_model().objects.exists()
    assert not AuditEntry.objects.exists()


def test_setup_command_needs_a_password(fresh_install, monkeypatch):
    monkeypatch.delenv("JAILADMIN_ADMIN_PASSWORD", raising=False)
    with pytest.raises(CommandError, match="Set the password in the environment variable"):
        call_command("jailadmin_setup", "--username=admin")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="No password on standard input"):
        call_command("jailadmin_setup", "--username=admin", "--password-stdin")


def test_setup_command_refuses_to_run_twice(fresh_install, f2b, monkeypatch):
    monkeypatch.setenv("ADMIN_PW", STRONG_PASSWORD)
    call_command(
        "jailadmin_setup", "--username=admin", "--password-env=ADMIN_PW", stdout=io.StringIO()
    )
    with pytest.raises(CommandError, match="already complete"):
        call_command("jailadmin_setup", "--username=other", "--password-env=ADMIN_PW")
    assert get_user_model().objects.count() == 1


def test_setup_command_print_token_creates_it_once_and_prints_it(fresh_install, token_file):
    out = io.StringIO()
    call_command("jailadmin_setup", "--print-token", stdout=out)
    token = out.getvalue().strip()
    assert token == token_file.read_text().strip()
    assert len(token) >= 40 and " " not in token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    again = io.StringIO()
    call_command("jailadmin_setup", "--print-token", stdout=again)
    assert again.getvalue().strip() == token
    assert not SiteSettings.objects.exists()  # printing the token sets nothing up


def test_setup_command_needs_no_token_deletes_it_and_syncs_the_history(
    fresh_install, f2b, token_file, monkeypatch
):
    call_command("jailadmin_setup", "--print-token", stdout=io.StringIO())
    assert token_file.exists()
    f2b.client().send("set", "nginx-http-auth", "banip", "198.51.100.23")
    monkeypatch.setenv("JAILADMIN_ADMIN_PASSWORD", STRONG_PASSWORD)
    out = io.StringIO()
    call_command("jailadmin_setup", "--username=admin", stdout=out)
    assert "Ban history: 1 ban archived from fail2ban." in out.getvalue()
    assert BanEvent.objects.filter(jail="nginx-http-auth", ip="198.51.100.23").exists()
    assert not token_file.exists()
    done = io.StringIO()
    call_command("jailadmin_setup", "--print-token", stdout=done)
    assert done.getvalue().strip() == (
        "The first-run setup is already complete: no setup token is needed."
    )
    assert not token_file.exists()


def test_setup_command_without_username_or_print_token_says_what_is_missing(fresh_install):
    with pytest.raises(CommandError, match="Give the first administrator with --username"):
        call_command("jailadmin_setup")
