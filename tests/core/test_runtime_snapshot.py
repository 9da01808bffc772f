"""One frozen snapshot of the settings-dependent state, swapped by a single assignment.

Issue 9: runtime_apply used to swap the settings, the jail service and the session cache
one attribute after the other, and services read `state.jail_service` twice in one
operation (capabilities, then the client), so a request could pair one server's
capabilities with another server's client. And the memory session storage lived in
Django's module-level LocMemCache registry, shared by every state in the process.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace

import pytest
from django.conf import settings
from django.contrib.sessions.backends.cache import KEY_PREFIX
from django.core.cache.backends import locmem

from jails.models import SiteSettings
from jails.runtime import runtime_apply
from jails.services import jails as jail_service
from jails.state import RuntimeSettings, build_runtime_state, session_cache_build
from tests.support.fakeserver import FakeFail2ban, pickled_reply, reply_for_each

COUNTERS = [
    ("Filter", [("Currently failed", 0), ("Total failed", 0)]),
    ("Actions", [("Currently banned", 0), ("Total banned", 0)]),
]


def fake_server(version: str, jail: str) -> FakeFail2ban:
    """A fail2ban that answers `version`, `status` and `status J short`, nothing else."""

    def answer(command: list[str]) -> bytes:
        if command == ["version"]:
            return pickled_reply(0, version)
        if command == ["status"]:
            return pickled_reply(0, [("Number of jail", 1), ("Jail list", jail)])
        if command == ["status", jail, "short"]:
            return pickled_reply(0, COUNTERS)
        return pickled_reply(1, Exception("Invalid command (not yet implemented)"))

    return FakeFail2ban(reply_for_each(answer))


@pytest.fixture
def two_servers() -> Iterator[dict[str, tuple[str, str]]]:
    """Two fake servers: socket path → (the version it reports, its one jail)."""
    with ExitStack() as stack:
        a = stack.enter_context(fake_server("1.0.2", "alpha"))
        b = stack.enter_context(fake_server("1.1.0", "bravo"))
        yield {a.path: ("1.0.2", "alpha"), b.path: ("1.1.0", "bravo")}


def settings_row(socket_path: str, *, version: int, session_cache: str = "database"):
    """An unsaved, complete SiteSettings row: runtime_apply needs no database."""
    return SiteSettings(
        singleton=1,
        fail2ban_socket=socket_path,
        display_time_zone="UTC",
        session_lifetime_seconds=3600,
        session_cache=session_cache,
        redis_url="",
        history_retention_days=365,
        setup_complete=True,
        version=version,
    )


def seed_settings(socket_path: str) -> RuntimeSettings:
    return replace(
        RuntimeSettings.from_django_settings(settings), fail2ban_socket=socket_path, web_workers=1
    )


def test_runtime_apply_installs_one_new_snapshot_and_leaves_the_old_one_whole():
    state = build_runtime_state(seed_settings("/run/a/f2b.sock"))
    old = state.snapshot
    runtime_apply(state, settings_row("/run/b/f2b.sock", version=2, session_cache="memory"))
    new = state.snapshot
    assert new is not old
    # A reader still holding the old snapshot sees all of it, consistent with itself.
    assert old.settings.fail2ban_socket == old.jail_service.client.socket_path == "/run/a/f2b.sock"
    assert (old.settings.session_cache, old.session_cache.kind) == ("database", "database")
    assert old.version == 0
    assert new.settings.fail2ban_socket == new.jail_service.client.socket_path == "/run/b/f2b.sock"
    assert (new.settings.session_cache, new.session_cache.kind) == ("memory", "memory")
    assert new.version == state.settings_version == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.jail_service = old.jail_service  # type: ignore[misc]


def test_runtime_apply_keeps_the_parts_whose_inputs_did_not_change():
    state = build_runtime_state(seed_settings("/run/a/f2b.sock"))
    runtime_apply(state, settings_row("/run/a/f2b.sock", version=1))
    first = state.snapshot
    changed = settings_row("/run/a/f2b.sock", version=2)
    changed.history_retention_days = 30
    runtime_apply(state, changed)
    assert state.settings.history_retention_days == 30
    assert state.jail_service is first.jail_service  # the probed capabilities are kept
    assert state.session_cache is first.session_cache


def test_jail_service_state_has_one_factory():
    """Every JailServiceState comes from jails.state.jail_service_build."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "jails"
    builders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "JailServiceState(" in path.read_text(encoding="utf-8")
    ]
    assert builders == ["state.py"]


def test_overview_never_pairs_one_servers_capabilities_with_another_servers_client(
    two_servers,
):
    """A thread swaps between two servers as fast as it can while pages are read.

    The overview reports the capabilities' version and the client's jails: with both
    read from one snapshot they always come from the same server.
    """
    paths = list(two_servers)
    state = build_runtime_state(seed_settings(paths[0]))
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            swaps += 1
            runtime_apply(state, settings_row(paths[swaps % 2], version=swaps))

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    seen = set()
    try:
        for _ in range(300):
            overview = jail_service.overview_get(state)
            seen.add((overview.version, tuple(j.name for j in overview.jails)))
    finally:
        stop.set()
        thread.join(5)
    assert swaps > 300  # the swaps really did interleave with the reads
    assert seen <= {("1.0.2", ("alpha",)), ("1.1.0", ("bravo",))}
    assert len(seen) == 2  # both servers were read


def test_snapshot_read_once_is_always_consistent_under_swaps():
    """settings, client and session storage of one read snapshot belong together."""
    state = build_runtime_state(seed_settings("/run/a/f2b.sock"))
    rows = [
        settings_row("/run/a/f2b.sock", version=1, session_cache="database"),
        settings_row("/run/b/f2b.sock", version=2, session_cache="memory"),
    ]
    stop = threading.Event()

    def swapper() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            runtime_apply(state, rows[n % 2])

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    try:
        for _ in range(20_000):
            snap = state.snapshot
            assert snap.settings.fail2ban_socket == snap.jail_service.client.socket_path
            assert snap.settings.session_cache == snap.session_cache.kind
    finally:
        stop.set()
        thread.join(5)


# Memory sessions: the store belongs to the state -------------------------------------------------
def memory_state():
    state = build_runtime_state(seed_settings("/run/a/f2b.sock"))
    state.snapshot_replace(session_cache=session_cache_build(state, kind="memory"))
    return state


def test_memory_sessions_of_two_states_are_separate():
    one, two = memory_state(), memory_state()
    one.session_cache.backend.set(KEY_PREFIX + "k", {"who": "one"}, None)
    assert one.session_cache.backend.get(KEY_PREFIX + "k") == {"who": "one"}
    assert two.session_cache.backend.get(KEY_PREFIX + "k") is None
    two.session_cache.backend.clear()
    assert one.session_cache.backend.get(KEY_PREFIX + "k") == {"who": "one"}


def test_memory_sessions_live_in_the_state_not_in_djangos_module_registry():
    before = (dict(locmem._caches), dict(locmem._expire_info), dict(locmem._locks))
    state = memory_state()
    state.session_cache.backend.set(KEY_PREFIX + "k", {"x": 1}, None)
    assert (dict(locmem._caches), dict(locmem._expire_info), dict(locmem._locks)) == before
    assert state.session_cache.backend is state.memory_sessions


def test_memory_sessions_survive_a_snapshot_rebuild_in_the_same_state():
    """Away from memory and back (or any rebuilt snapshot): the process's one store."""
    state = build_runtime_state(seed_settings("/run/a/f2b.sock"))
    runtime_apply(state, settings_row("/run/a/f2b.sock", version=1, session_cache="memory"))
    state.session_cache.backend.set(KEY_PREFIX + "k", {"x": 1}, None)
    runtime_apply(state, settings_row("/run/a/f2b.sock", version=2, session_cache="database"))
    runtime_apply(state, settings_row("/run/a/f2b.sock", version=3, session_cache="memory"))
    assert state.session_cache.backend.get(KEY_PREFIX + "k") == {"x": 1}


def test_memory_session_storage_needs_the_states_store():
    from jails.sessions import build_session_cache

    with pytest.raises(ValueError, match="runtime state"):
        build_session_cache("memory")
