#!/usr/bin/env python3
"""Screenshots of the main pages (dashboard, history, jails, a jail, an address, audit, settings).

    .venv/bin/python scripts/screenshot_dashboard.py [--out artifacts]

Builds a throw-away site in a temp directory: a SQLite database with a seeded archive (a
year of bans, real countries from the offline geo data), a private fail2ban server for the
status bar, gunicorn on a free loopback port, a logged-in session; then Chromium (Debian's,
driven by Playwright, no browser download) saves artifacts/<page>.png for each of PAGES
(dashboard.png, history.png, ...). Everything it starts is stopped again. Also reports
what the browser logged (a Content Security Policy violation shows up there).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGES = (
    ("dashboard", "/?window=30d"),
    ("history", "/history/?window=7d"),
    ("jails", "/jails/"),
    ("jail", "/jails/sshd/"),
    ("ip", "/ip/203.0.113.7/"),
    ("audit", "/audit/"),
    ("settings", "/settings/"),
)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def site_env(base: Path, socket_path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_"))}
    env.update(
        JAILADMIN_VAR_DIR=str(base / "var"),
        JAILADMIN_DATABASE_URL=f"sqlite:///{base / 'site.sqlite3'}",
        JAILADMIN_STATIC_ROOT=str(base / "static"),
        JAILADMIN_SECRET_KEY="screenshot-only-secret-key-0123456789-abcdefghijklmnop",
        JAILADMIN_DEBUG="false",
        JAILADMIN_SESSION_CACHE="database",
        JAILADMIN_FAIL2BAN_SOCKET=socket_path,
        DJANGO_SETTINGS_MODULE="jailadmin.settings",
    )
    return env


SETUP_CODE = """
import sys, time
sys.path.insert(0, {repo!r})
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("collectstatic", "--noinput", verbosity=0)
from bench.seed_history import seed
seed(events={events}, addresses={addresses}, days=365, now=int(time.time()))
from django.contrib.auth import get_user_model
from django.test import Client
from jails.models import SiteSettings
SiteSettings.objects.update_or_create(
    singleton=1, defaults={{"setup_complete": True, "fail2ban_socket": {socket!r}}}
)
user = get_user_model().objects.create_superuser("admin", "admin@example.com", "a-screenshot-pw-1")
client = Client()
client.force_login(user)
from django.conf import settings
print("SESSION", settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value)
"""


@contextlib.contextmanager
def demo_fail2ban(base: Path) -> Iterator[str]:
    sys.path.insert(0, str(REPO))
    from jails.demo import demo_server, random_attacker

    server = demo_server(base / "f2b")
    server.start()
    try:
        import random

        rng = random.Random(3)
        client = server.client()
        for jail in ("sshd", "nginx-http-auth", "postfix"):
            client.send("set", jail, "banip", *[random_attacker(rng) for _ in range(7)])
        yield str(server.socket_path)
    finally:
        server.stop()


@contextlib.contextmanager
def gunicorn(env: dict[str, str], port: int, base: Path) -> Iterator[str]:
    log = (base / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "gunicorn"), "jailadmin.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "2"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2)  # noqa: S310
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start; see " + str(log.name)) from None
                time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def capture(url: str, cookie: tuple[str, str], out: Path) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    console: list[str] = []
    shots = {}
    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="ja-chromium-") as profile:
        browser = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 1000},
            color_scheme="light",
        )
        try:
            browser.add_cookies([{"name": cookie[0], "value": cookie[1], "url": url}])
            page = browser.new_page()
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.on(
                "response",
                lambda r: console.append(f"http {r.status}: {r.url}") if r.status >= 400 else None,
            )
            for name, path in PAGES:
                response = page.goto(url + path, wait_until="networkidle")
                assert response is not None and response.status == 200, (path, response)
                target = out / f"{name}.png"
                page.screenshot(path=str(target), full_page=True)
                shots[name] = {
                    "file": str(target),
                    "bytes": target.stat().st_size,
                    "title": page.title(),
                    "svgs": page.locator("svg").count(),
                    "map_countries": page.locator("svg.chart-map .country").count(),
                    "shaded_countries": page.locator("svg.chart-map .country:not(.c0)").count(),
                }
        finally:
            browser.close()
    return {"shots": shots, "console": console}


def take_screenshots(out: Path, *, events: int = 60000, addresses: int = 15000) -> dict:
    base = Path(tempfile.mkdtemp(prefix="ja-shot-", dir="/tmp"))
    try:
        with demo_fail2ban(base) as socket_path:
            env = site_env(base, socket_path)
            code = SETUP_CODE.format(
                repo=str(REPO), events=events, addresses=addresses, socket=socket_path
            )
            done = subprocess.run(
                [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                timeout=600, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-3000:])
            line = next(x for x in done.stdout.splitlines() if x.startswith("SESSION "))
            _, cookie_name, cookie_value = line.split()
            with gunicorn(env, free_port(), base) as url:
                return capture(url, (cookie_name, cookie_value), out)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "artifacts")
    args = parser.parse_args()
    report = take_screenshots(args.out)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
