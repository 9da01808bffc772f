"""Session storage failures: a stopped Redis gives clear 503 pages (never a 500) and the
site recovers by itself; the system checks refuse configurations that cannot work."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.http import HttpResponse
from django.test import Client, RequestFactory

from jails.checks import session_storage_check
from jails.sessions import SessionMiddleware
from jails.state import session_cache_build
from tests.support.redis_server import RedisServer, free_port

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

PASSWORD = "a-long-test-password-1"
MESSAGE = "Session storage unavailable"


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, so it can be stopped and started again."""
    server = RedisServer(Path(tempfile.mkdtemp(prefix="ja-redis-o-", dir="/tmp")))
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def redis_sessions(runtime, own_redis):
    runtime.snapshot_replace(
        settings=replace(runtime.settings, session_cache="redis", redis_url=own_redis.url)
    )
    runtime.snapshot_replace(
        session_cache=session_cache_build(runtime, kind="redis", redis_url=own_redis.url)
    )
    return runtime


@pytest.fixture
def viewer_client(django_user_model) -> Client:
    user = django_user_model.objects.create_user(username="vera", password=PASSWORD)
    user.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    assert client.post("/login/", {"username": "vera", "password": PASSWORD}).status_code == 302
    return client


def assert_unavailable(response) -> None:
    assert response.status_code == 503
    assert MESSAGE in response.content.decode()
    assert response["Retry-After"] == "5"


def test_redis_stopped_pages_answer_503_and_recover_by_themselves(
    redis_sessions, own_redis, viewer_client: Client
):
    assert viewer_client.get("/jails/").status_code == 200
    assert Client().get("/healthz").status_code == 200

    own_redis.stop()
    assert_unavailable(viewer_client.get("/jails/"))
    assert_unavailable(viewer_client.get("/jails/sshd/"))
    assert_unavailable(viewer_client.get("/jails/", headers={"HX-Request": "true"}))
    assert_unavailable(viewer_client.post("/logout/"))
    assert Client().get("/healthz").status_code == 503
    # What is down, and no details (no URL, no reason): /healthz is public.
    assert Client().get("/healthz").content == b"unavailable: session storage unavailable\n"
    # Logging in needs a new session: refused cleanly too; the form itself still shows.
    anonymous = Client()
    assert anonymous.get("/login/").status_code == 200
    assert_unavailable(anonymous.post("/login/", {"username": "vera", "password": PASSWORD}))

    own_redis.start()  # same port, same data (Redis saved it when stopped)
    assert viewer_client.get("/jails/").status_code == 200
    assert Client().get("/healthz").status_code == 200


def test_session_save_failure_in_the_response_is_a_503(redis_sessions, own_redis):
    """The session is written after the view ran (process_response): still a 503 page."""

    def view_writing_the_session(request):
        request.session["written"] = True
        return HttpResponse("ok")

    middleware = SessionMiddleware(view_writing_the_session)
    request = RequestFactory().get("/anything/")
    own_redis.stop()
    assert_unavailable(middleware(request))


def test_session_unavailable_page_is_plain_and_needs_no_session(redis_sessions, own_redis):
    client = Client()
    client.cookies["sessionid"] = "x" * 32
    own_redis.stop()
    response = client.get("/jails/")
    assert_unavailable(response)
    body = response.content.decode()
    assert "(redis)" in body
    assert "Try again in a few seconds" in body
    assert response["Cache-Control"] == "no-store"


# System checks ---------------------------------------------------------------------------------
def ids(messages) -> list[str]:
    return [message.id for message in messages]


def test_check_memory_sessions_with_several_workers_is_an_error(runtime):
    runtime.snapshot_replace(
        settings=replace(runtime.settings, session_cache="memory", web_workers=3)
    )
    assert ids(session_storage_check()) == ["jails.E010"]
    runtime.snapshot_replace(settings=replace(runtime.settings, web_workers=1))
    assert session_storage_check() == []


def test_check_redis_without_url_is_an_error(runtime):
    runtime.snapshot_replace(
        settings=replace(runtime.settings, session_cache="redis", redis_url="")
    )
    assert ids(session_storage_check()) == ["jails.E011"]


def test_check_unreachable_redis_is_a_warning(runtime, private_redis):
    url = f"redis://127.0.0.1:{free_port()}/0"
    runtime.snapshot_replace(
        settings=replace(runtime.settings, session_cache="redis", redis_url=url)
    )
    runtime.snapshot_replace(
        session_cache=session_cache_build(runtime, kind="redis", redis_url=url)
    )
    assert ids(session_storage_check()) == ["jails.W012"]
    runtime.snapshot_replace(settings=replace(runtime.settings, redis_url=private_redis.url))
    runtime.snapshot_replace(
        session_cache=session_cache_build(runtime, kind="redis", redis_url=private_redis.url)
    )
    assert session_storage_check() == []


def test_check_database_sessions_pass(runtime):
    assert runtime.settings.session_cache == "database"
    assert session_storage_check() == []
