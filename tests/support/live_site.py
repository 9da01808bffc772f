"""A real site for tests: gunicorn on a free port, its own migrated SQLite, an operator.

Used by the concurrency test and the browser test of the jail actions; `served` and `login` also
by the unprivileged-site test (tests/agent/test_unprivileged_site.py), which runs gunicorn as
another user.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a-long-concurrency-test-password-7"
USERNAME = "conc-operator"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None


def site_environment(f2b, tmp_path, *, secret_key: str, **overrides: str) -> dict[str, str]:
    """The environment of a gunicorn (or manage.py) serving the site on its own SQLite
    database in `tmp_path`, talking to `f2b`; `overrides` add or replace JAILADMIN_* values."""
    from django.conf import settings

    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("JAILADMIN_")},
        "DJANGO_SETTINGS_MODULE": "jailadmin.settings",
        "JAILADMIN_SECRET_KEY": secret_key,
        "JAILADMIN_DEBUG": "false",
        "JAILADMIN_VAR_DIR": str(tmp_path),
        "JAILADMIN_DATABASE_URL": f"sqlite:///{tmp_path / 'site.sqlite3'}",
        "JAILADMIN_FAIL2BAN_SOCKET": str(f2b.socket_path),
        "JAILADMIN_FAIL2BAN_TIME_ZONE": f2b.tz or "UTC",
        "JAILADMIN_SESSION_CACHE": "database",
        "JAILADMIN_ALLOWED_HOSTS": "127.0.0.1",
        # The test session has collected the static files already (tests/conftest.py).
        "JAILADMIN_STATIC_ROOT": str(settings.STATIC_ROOT),
        **overrides,
    }


@pytest.fixture
def site(f2b, tmp_path):
    """A migrated database with an operator, and gunicorn serving the site on it."""

    port = free_port()
    env = site_environment(
        f2b,
        tmp_path,
        secret_key="concurrency-test-secret-key-0123456789-abcdefghijklmnop",
        # 50 requests at once queue on fail2ban's single thread, whose recording action
        # spawns a shell per ban: on a loaded 2-core box the last answers took over 10 s.
        JAILADMIN_FAIL2BAN_TIMEOUT="60",
        JAILADMIN_WORKERS="4",
    )
    python = sys.executable
    subprocess.run(
        [python, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    prepare = f"""
SOCK = {str(f2b.socket_path)!r}
from django.contrib.auth.models import Group, User
from jails.models import SiteSettings
user = User.objects.create_user({USERNAME!r}, password={PASSWORD!r})
user.groups.add(Group.objects.get(name="operator"))
row, _ = SiteSettings.objects.get_or_create(singleton=1, defaults={{"fail2ban_socket": SOCK}})
row.fail2ban_socket = SOCK
row.setup_complete = True
row.save()
"""
    subprocess.run(
        [python, "manage.py", "shell", "-c", prepare],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    command = [str(Path(python).parent / "gunicorn"), *gunicorn_arguments(port)]
    with served(command, env=env, log_path=tmp_path / "gunicorn.log", port=port) as (base, _):
        yield base, tmp_path / "site.sqlite3"


def gunicorn_arguments(port: int, *, workers: int = 4) -> list[str]:
    """gunicorn's arguments after the program (`gunicorn` or `python -m gunicorn`)."""
    return [
        "jailadmin.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        "4",
        "--timeout",
        "60",
    ]


@contextmanager
def served(
    command: list[str], *, env: dict[str, str], log_path: Path, port: int
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `command` (gunicorn, possibly behind setpriv as another user) until /healthz on
    `port` answers 200; yield the base URL and the process; always stop it."""
    log = log_path.open("wb")
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Sized for a loaded one-core machine: four workers each import Django and load the
        # runtime before answering; the loop ends as soon as one answers.
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=15) as response:
                    if response.status == 200:
                        break
            except OSError:  # refused, reset, 503, or accepted but not answered in time yet
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text()[-3000:])
            time.sleep(0.1)
        yield base, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def login(
    base: str, *, username: str = USERNAME, password: str = PASSWORD
) -> tuple[urllib.request.OpenerDirector, str]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    with opener.open(f"{base}/login/", timeout=10) as response:
        page = response.read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": token}
    ).encode()
    try:
        opener.open(urllib.request.Request(f"{base}/login/", data=data), timeout=10)
    except urllib.error.HTTPError as exc:
        assert exc.code == 302, exc.read()[:2000]
    cookies = {cookie.name: cookie.value for cookie in jar}
    assert "sessionid" in cookies or any("session" in name for name in cookies), cookies
    return opener, cookies["csrftoken"]
