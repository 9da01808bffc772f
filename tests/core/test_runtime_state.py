"""The runtime state follows the stored settings: loaded explicitly at process start, then
watched; the accessor only returns the state."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command

from jails.apps import runtime_state
from jails.management.base import RuntimeCommand
from jails.models import SiteSettings
from jails.runtime import SettingsWatcher, runtime_load, runtime_refresh, runtime_snapshot_stored
from jails.state import RuntimeSettings, build_runtime_state
from tests.conftest import wait_until
from tests.support.site_helpers import site_settings_create


def startup_state():
    """The state as JailsConfig.ready() leaves it: seeds only, database not read yet."""
    state = build_runtime_state(RuntimeSettings.from_django_settings(settings))
    state.load_pending = True
    state.setup_pending = True
    return state


@pytest.fixture
def installed_startup_state():
    config = apps.get_app_config("jails")
    config.state = startup_state()
    return config.state


@pytest.mark.django_db
def test_runtime_accessor_does_no_io_and_returns_the_seed_state(
    installed_startup_state, django_assert_num_queries
):
    """The accessor only returns the state: reading the stored settings is runtime_load's."""
    site_settings_create("/run/other/f2b.sock", display_time_zone="Asia/Tokyo")
    with django_assert_num_queries(0):
        state = runtime_state()
        assert state.settings.fail2ban_socket == settings.JAILADMIN_FAIL2BAN_SOCKET
    assert state is installed_startup_state
    assert state.load_pending is True  # nothing loaded behind the caller's back


@pytest.mark.django_db
def test_runtime_load_reads_the_stored_settings_once(
    installed_startup_state, django_assert_num_queries
):
    site_settings_create(
        "/run/other/f2b.sock", display_time_zone="Asia/Tokyo", session_lifetime_seconds=600
    )
    assert installed_startup_state.settings.display_time_zone == "UTC"  # seeds until loaded
    runtime_load(installed_startup_state)
    state = runtime_state()
    assert state is installed_startup_state
    assert (state.load_pending, state.setup_pending) == (False, False)
    assert state.settings.fail2ban_socket == "/run/other/f2b.sock"
    assert state.jail_service.client.socket_path == "/run/other/f2b.sock"
    assert state.settings.display_time_zone == "Asia/Tokyo"
    assert state.settings.session_lifetime_seconds == 600
    # seeds the database does not hold are kept
    assert state.settings.fail2ban_timeout == settings.JAILADMIN_FAIL2BAN_TIMEOUT
    with django_assert_num_queries(0):
        runtime_load(state)  # once per process: a second call is free


@pytest.mark.django_db
def test_runtime_before_setup_keeps_the_seeds_and_waits_for_setup(installed_startup_state):
    runtime_load(installed_startup_state)
    state = runtime_state()
    assert state.load_pending is False
    assert state.setup_pending is True
    assert state.settings.fail2ban_socket == settings.JAILADMIN_FAIL2BAN_SOCKET


class _RuntimeProbeCommand(RuntimeCommand):
    """Records what handle() sees (a stand-in for jails, history_sync, run_jobs...)."""

    seen: list[tuple[bool, str]]

    def handle(self, *args: Any, **options: Any) -> None:
        state = runtime_state()
        self.seen.append((state.load_pending, state.settings.fail2ban_socket))


@pytest.mark.django_db
def test_runtime_command_loads_the_stored_settings_before_handle(installed_startup_state):
    site_settings_create("/run/cmd/f2b.sock")
    command = _RuntimeProbeCommand()
    command.seen = []
    call_command(command)
    assert command.seen == [(False, "/run/cmd/f2b.sock")]


@pytest.mark.parametrize("name", ["jails", "history_sync", "jailadmin_setup", "run_jobs"], ids=str)
def test_runtime_commands_that_use_the_state_are_runtime_commands(name):
    from django.core.management import get_commands, load_command_class

    # get_commands() names the app that provides it (history_sync: jails.history).
    assert isinstance(load_command_class(get_commands()[name], name), RuntimeCommand)


@pytest.mark.django_db
def test_runtime_checks_read_the_stored_settings_without_installing_them(
    installed_startup_state,
):
    """`manage.py check` runs before any process start loads: it checks what would run."""
    from jails.checks import fail2ban_socket_check

    site_settings_create("/run/checked/f2b.sock")
    messages = fail2ban_socket_check()
    assert [m.id for m in messages] == ["jails.W001"]
    assert "/run/checked/f2b.sock" in messages[0].msg
    assert installed_startup_state.load_pending is True  # checking changed nothing
    assert installed_startup_state.settings.fail2ban_socket == settings.JAILADMIN_FAIL2BAN_SOCKET
    assert runtime_snapshot_stored(installed_startup_state).version == 1


@pytest.mark.django_db
def test_runtime_refresh_swaps_only_what_changed(runtime, private_redis):
    row = site_settings_create(runtime.settings.fail2ban_socket)
    runtime_refresh(runtime)
    client, cache = runtime.jail_service, runtime.session_cache
    assert runtime_refresh(runtime) is False  # same version: nothing to do

    row.history_retention_days = 30
    row.version += 1
    row.save()
    assert runtime_refresh(runtime)
    assert runtime.settings.history_retention_days == 30
    assert runtime.jail_service is client  # capability cache kept
    assert runtime.session_cache is cache  # sessions' backend untouched

    row.session_cache, row.redis_url = "redis", private_redis.url
    row.fail2ban_socket = "/run/new/f2b.sock"
    row.version += 1
    row.save()
    assert runtime_refresh(runtime)
    assert runtime.session_cache is not cache
    assert runtime.session_cache.kind == "redis"
    assert runtime.jail_service is not client
    assert runtime.jail_service.client.socket_path == "/run/new/f2b.sock"
    assert runtime.settings_version == row.version


@pytest.mark.django_db
def test_runtime_refresh_ignores_an_incomplete_row(runtime):
    SiteSettings.objects.create(singleton=1, fail2ban_socket="/x.sock", version=5)
    assert runtime_refresh(runtime) is False
    assert runtime.settings.fail2ban_socket != "/x.sock"


@pytest.mark.django_db(transaction=True)
def test_settings_watcher_thread_applies_a_change_made_elsewhere(runtime):
    """The per-process thread (gunicorn workers run one each) notices another's change."""
    row = site_settings_create(runtime.settings.fail2ban_socket)
    watcher = SettingsWatcher(runtime, interval=0.05)
    watcher.start()
    try:
        wait_until(lambda: runtime.settings_version == 1, timeout=5)
        SiteSettings.objects.filter(pk=row.pk).update(display_time_zone="Europe/Paris", version=2)
        wait_until(lambda: runtime.settings.display_time_zone == "Europe/Paris", timeout=5)
    finally:
        watcher.stop()
    assert not watcher.thread.is_alive()
