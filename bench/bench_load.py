"""Pages under load: requests/s of each page against /healthz, through a real gunicorn.

    .venv/bin/python bench/bench_load.py [--seconds 8] [--connections 20]

What `make run` serves (gunicorn, 3 workers × 4 threads) in a throw-away directory with
its own fail2ban (5 jails, a few hundred bans, archived once so the dashboard has data),
loaded by 20 client threads (stdlib http.client, keep-alive, like wrk's connections)
for a bounded time and request count per page. It prints requests/s per page and the
ratio to /healthz (no login, one `ping`): what every authenticated page pays on top.
The client runs on the same machine and shares its cores, so absolute figures are low;
the ratios are the point.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import django_setup, print_table  # noqa: E402

JAILS = ("sshd", "nginx-http-auth", "postfix", "dovecot", "recidive")
BANS_PER_JAIL = 60
MAX_REQUESTS = 20_000  # per page: the bound on a fast machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn_start(
    work: Path, *, port: int, env: dict[str, str], workers: int, threads: int
) -> subprocess.Popen[bytes]:
    """gunicorn on 127.0.0.1:`port` in its own session, its log in `work`/gunicorn.log."""
    return subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "jailadmin.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--forwarded-allow-ips",
            "",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "gunicorn.log", "w"),  # noqa: SIM115 -- closed with the process
        start_new_session=True,
    )


def wait_for_http(port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status in (200, 503):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer")


def log_in(port: int, username: str, password: str) -> str:
    """A session cookie header, through the real login form (CSRF and all)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/login/")
    response = conn.getresponse()
    page = response.read().decode()
    csrf_cookie = re.search(r"csrftoken=([^;]+)", response.getheader("Set-Cookie", "")).group(1)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password})
    conn.request(
        "POST",
        "/login/",
        body=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={csrf_cookie}",
            "Referer": f"http://127.0.0.1:{port}/login/",
        },
    )
    response = conn.getresponse()
    response.read()
    cookies = response.getheader("Set-Cookie", "")
    session = re.search(r"sessionid=([^;]+)", cookies)
    if response.status != 302 or session is None:
        raise SystemExit(f"login failed: HTTP {response.status}")
    return f"sessionid={session.group(1)}; csrftoken={csrf_cookie}"


def hammer(
    port: int, path: str, *, headers: dict[str, str], connections: int, seconds: float
) -> tuple[float, int, int]:
    """(requests/s, errors, bytes of one response) for `path` under `connections` clients."""
    done = [0] * connections
    errors = [0] * connections
    size = [0]
    stop = threading.Event()

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set() and sum(done) < MAX_REQUESTS:
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            if response.status == 200:
                done[i] += 1
                size[0] = len(body)
            else:
                errors[i] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return sum(done) / elapsed, sum(errors), size[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per page")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    work = django_setup()
    from django.apps import apps
    from django.contrib.auth import get_user_model

    from jails.fail2ban.server import JailSpec, PrivateServer
    from jails.history.services import sync as history
    from jails.models import SiteSettings
    from jails.state import build_runtime_state

    base = Path(tempfile.mkdtemp(prefix="jl-", dir="/tmp"))
    server = PrivateServer(base, [JailSpec(name) for name in JAILS], record_actions=False)
    server.start()
    gunicorn = None
    try:
        client = server.client(timeout=60)
        for j, name in enumerate(JAILS):
            ips = [f"203.0.{j}.{n}" for n in range(1, BANS_PER_JAIL + 1)]
            client.send("set", name, "banip", *ips)
        config = apps.get_app_config("jails")
        config.state = build_runtime_state(
            replace(config.state.settings, fail2ban_socket=str(server.socket_path))
        )
        # fail2ban writes its database after answering: archive once it holds every ban.
        archived, deadline = 0, time.monotonic() + 60
        while archived < len(JAILS) * BANS_PER_JAIL and time.monotonic() < deadline:
            archived += history.history_sync(config.state, dbfile=str(server.dbfile)).read
            time.sleep(0.2)
        SiteSettings.objects.update_or_create(
            singleton=1,
            defaults={"setup_complete": True, "fail2ban_socket": str(server.socket_path)},
        )
        password = os.urandom(12).hex()  # a throw-away user in a throw-away database
        get_user_model().objects.create_superuser("bench", password=password)

        port = free_port()
        env = {
            **os.environ,
            "JAILADMIN_FAIL2BAN_SOCKET": str(server.socket_path),
            "JAILADMIN_WORKERS": str(args.workers),
        }
        gunicorn = gunicorn_start(
            work, port=port, env=env, workers=args.workers, threads=args.threads
        )
        wait_for_http(port, timeout=60)
        cookie = log_in(port, "bench", password)
        user = {"Cookie": cookie}
        poll = {**user, "HX-Request": "true", "HX-Target": "jail-counters"}
        pages = [
            ("/healthz (no login)", "/healthz", {}),
            ("/jails/", "/jails/", user),
            ("/jails/sshd/", "/jails/sshd/", user),
            ("/jails/sshd/ counters poll (htmx)", "/jails/sshd/", poll),
            ("/ dashboard", "/", user),
            ("/status-bar/ (htmx partial)", "/status-bar/", user),
        ]
        rows = []
        floor = 0.0
        for label, path, headers in pages:
            rate, errors, size = hammer(
                port, path, headers=headers, connections=args.connections, seconds=args.seconds
            )
            floor = floor or rate
            rows.append(
                (
                    label,
                    f"{rate:8.1f} req/s  {rate / floor:5.2f} × /healthz"
                    f"  {size / 1024:6.1f} KB{f'  {errors} errors' if errors else ''}",
                )
            )
        print_table(
            f"Under load: gunicorn {args.workers} workers × {args.threads} threads,"
            f" {args.connections} connections, {args.seconds:.0f} s per page",
            rows,
        )
        return 0
    finally:
        if gunicorn is not None:
            os.killpg(gunicorn.pid, signal.SIGTERM)
            gunicorn.wait(timeout=30)
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
