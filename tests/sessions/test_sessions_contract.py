"""One contract for every session storage: database, memory and a real redis-server.

Each test runs once per backend, through the runtime state exactly as the site uses it
(SESSION_ENGINE = jails.sessions, the backend taken from state.session_cache).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.cache import KEY_PREFIX
from django.test import Client

from jails.sessions import SessionStore, session_storage_clear
from jails.state import session_cache_build
from tests.conftest import wait_until

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

PASSWORD = "a-long-test-password-1"


@pytest.fixture(params=["database", "memory", "redis"])
def storage(request, runtime):
    """The runtime state with its sessions in the backend under test (an empty one)."""
    kind = request.param
    url = request.getfixturevalue("private_redis").url if kind == "redis" else ""
    runtime.snapshot_replace(
        settings=replace(runtime.settings, session_cache=kind, redis_url=url, web_workers=1),
        session_cache=session_cache_build(runtime, kind=kind, redis_url=url),
    )
    runtime.session_cache.backend.clear()
    return runtime.session_cache


@pytest.fixture
def viewer(django_user_model):
    user = django_user_model.objects.create_user(username="vera", password=PASSWORD)
    user.groups.add(Group.objects.get(name="viewer"))
    return user


def stored(storage, session_key: str) -> bool:
    return storage.backend.get(KEY_PREFIX + session_key) is not None


def test_session_contract_save_and_load(storage):
    session = SessionStore()
    session["jail"] = "sshd"
    session["numbers"] = [1, 2, 3]
    session.save()
    assert session.session_key
    assert stored(storage, session.session_key)
    again = SessionStore(session.session_key)
    assert again["jail"] == "sshd"
    assert again["numbers"] == [1, 2, 3]
    assert again.exists(session.session_key)


def test_session_contract_unknown_key_is_a_new_empty_session(storage):
    session = SessionStore("k" * 32)
    assert session.get("jail") is None
    assert session.session_key is None
    assert not session.exists("k" * 32)


def test_session_contract_update_replaces_data(storage):
    session = SessionStore()
    session["count"] = 1
    session.save()
    loaded = SessionStore(session.session_key)
    loaded["count"] = 2
    loaded.save()
    assert SessionStore(session.session_key)["count"] == 2


def test_session_contract_delete(storage):
    session = SessionStore()
    session["x"] = 1
    session.save()
    key = session.session_key
    session.delete()
    assert not stored(storage, key)
    assert SessionStore(key).get("x") is None


def test_session_contract_cycle_key_keeps_data_and_drops_old_key(storage):
    session = SessionStore()
    session["x"] = "kept"
    session.save()
    old_key = session.session_key
    session.cycle_key()
    assert session.session_key != old_key
    assert not stored(storage, old_key)
    assert SessionStore(session.session_key)["x"] == "kept"


def test_session_contract_expired_session_is_gone(storage):
    session = SessionStore()
    session["x"] = 1
    session.set_expiry(1)
    session.save()
    key = session.session_key
    wait_until(lambda: SessionStore(key).get("x") is None, timeout=5, interval=0.2)


def test_session_contract_lifetime_comes_from_runtime_settings(storage, runtime, client, viewer):
    runtime.snapshot_replace(settings=replace(runtime.settings, session_lifetime_seconds=600))
    assert SessionStore().get_expiry_age() == 600
    response = client.post("/login/", {"username": "vera", "password": PASSWORD})
    assert response.status_code == 302
    assert response.cookies["sessionid"]["max-age"] == 600


def test_session_contract_login_and_logout_over_http(storage, client: Client, viewer):
    assert client.get("/jails/")["Location"].startswith("/login/")
    response = client.post("/login/", {"username": "vera", "password": PASSWORD})
    assert response.status_code == 302
    key = client.cookies["sessionid"].value
    assert stored(storage, key)
    assert client.get("/jails/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert not stored(storage, key)
    assert client.get("/jails/")["Location"].startswith("/login/")


def test_session_contract_sessions_are_separate(storage, django_user_model):
    for name in ("ann", "bob"):
        user = django_user_model.objects.create_user(username=name, password=PASSWORD)
        user.groups.add(Group.objects.get(name="viewer"))
    ann, bob = Client(), Client()
    ann.post("/login/", {"username": "ann", "password": PASSWORD})
    bob.post("/login/", {"username": "bob", "password": PASSWORD})
    assert ann.cookies["sessionid"].value != bob.cookies["sessionid"].value
    assert '<span class="who">ann</span>' in ann.get("/jails/").content.decode()
    assert '<span class="who">bob</span>' in bob.get("/jails/").content.decode()


def test_session_contract_storage_clear_drops_every_session(storage):
    keys = []
    for number in range(3):
        session = SessionStore()
        session["n"] = number
        session.save()
        keys.append(session.session_key)
    session_storage_clear(storage)
    assert not any(stored(storage, key) for key in keys)
    fresh = SessionStore()
    fresh["n"] = 4
    fresh.save()  # the storage is still usable afterwards
    assert SessionStore(fresh.session_key)["n"] == 4


@pytest.mark.parametrize("kind", ["database", "redis"])
def test_session_shared_storage_is_seen_by_another_process_backend(kind, request, runtime):
    """database and Redis: a backend built by another worker (or after a restart) sees it."""
    url = request.getfixturevalue("private_redis").url if kind == "redis" else ""
    runtime.snapshot_replace(session_cache=session_cache_build(runtime, kind=kind, redis_url=url))
    session = SessionStore()
    session["x"] = "shared"
    session.save()
    runtime.snapshot_replace(  # a new process's backend object
        session_cache=session_cache_build(runtime, kind=kind, redis_url=url)
    )
    assert SessionStore(session.session_key)["x"] == "shared"


def test_clearsessions_deletes_expired_database_sessions(runtime):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from jails.models import SessionCacheEntry

    live = SessionStore()
    live["x"] = 1
    live.save()
    SessionCacheEntry.objects.create(
        cache_key=KEY_PREFIX + "abandoned", value="x", expires=timezone.now() - timedelta(days=1)
    )
    call_command("clearsessions")
    assert list(SessionCacheEntry.objects.values_list("cache_key", flat=True)) == [
        ":1:" + KEY_PREFIX + live.session_key
    ]
