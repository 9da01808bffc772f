"""gunicorn with the shipped configuration (jailadmin/gunicorn_conf.py): the workers it starts,
and the graceful reload `systemctl reload jailadmin-web` sends (HUP) while clients keep asking.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.live_site import free_port, served

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
# Sized for a loaded one-core box: new workers import Django and load the runtime first.
RELOAD_TIMEOUT = 180

pytestmark = pytest.mark.slow


def workers_of(master: int) -> set[int]:
    """The master's child processes (its workers), from the kernel."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def test_gunicorn_conf_reload_on_hup_replaces_workers_without_a_failed_request(f2b, tmp_path):
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JAILADMIN_")},
        "DJANGO_SETTINGS_MODULE": "jailadmin.settings",
        "JAILADMIN_SECRET_KEY": "gunicorn-conf-test-secret-key-0123456789-abcdefghijklmnop",
        "JAILADMIN_VAR_DIR": str(tmp_path),
        "JAILADMIN_DATABASE_URL": f"sqlite:///{tmp_path / 'site.sqlite3'}",
        "JAILADMIN_FAIL2BAN_SOCKET": str(f2b.socket_path),
        "JAILADMIN_FAIL2BAN_TIMEOUT": "10",
        "JAILADMIN_BIND": f"127.0.0.1:{port}",
        "JAILADMIN_WORKERS": str(WORKERS),
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-c",
        "python:jailadmin.gunicorn_conf",
    ]
    log = tmp_path / "gunicorn.log"
    statuses: list[int | str] = []
    stop = threading.Event()

    def ask(base: str) -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=60) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
            except OSError as exc:  # refused or reset: what a reload must never cause
                statuses.append(repr(exc))

    with served(command, env=env, log_path=log, port=port) as (base, master):
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while len(before := workers_of(master.pid)) != WORKERS:
            assert time.monotonic() < deadline, before
            time.sleep(0.1)
        client = threading.Thread(target=ask, args=(base,))
        client.start()
        try:
            while not statuses:  # the client is asking before the reload starts
                assert time.monotonic() < deadline
                time.sleep(0.05)
            master.send_signal(signal.SIGHUP)
            while True:
                now = workers_of(master.pid)
                if len(now) == WORKERS and not now & before:
                    break
                assert time.monotonic() < deadline, (before, now)
                time.sleep(0.1)
            asked = len(statuses)
            while len(statuses) < asked + 5:  # and the new workers answer
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            stop.set()
            client.join(timeout=120)
        assert master.poll() is None  # the same master, still serving
    assert set(statuses) == {200}, [s for s in statuses if s != 200][:5]
    assert "Handling signal: hup" in log.read_text()
