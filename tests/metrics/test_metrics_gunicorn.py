"""/metrics on a real gunicorn with two workers: the request counts of both workers in every
scrape, one fail2ban round for concurrent scrapes, and a clean slate at each start."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.metrics.helpers import TOKEN, samples, value
from tests.support.live_site import ROOT, free_port, served
from tests.support.recording_proxy import RecordingProxy

pytestmark = [pytest.mark.slow, pytest.mark.fail2ban]

SCRAPE = {"view": "jails:metrics:scrape", "method": "GET", "status": "200"}


def site_env(tmp_path: Path, f2b, *, cache_seconds: int) -> dict[str, str]:
    from django.conf import settings

    return {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("JAILADMIN_") and k != "PROMETHEUS_MULTIPROC_DIR"
        },
        "DJANGO_SETTINGS_MODULE": "jailadmin.settings",
        "JAILADMIN_SECRET_KEY": "metrics-test-secret-key-0123456789-abcdefghijklmnop",
        "JAILADMIN_DEBUG": "false",
        "JAILADMIN_VAR_DIR": str(tmp_path),
        "JAILADMIN_DATABASE_URL": f"sqlite:///{tmp_path / 'site.sqlite3'}",
        "JAILADMIN_FAIL2BAN_SOCKET": str(f2b.socket_path),
        "JAILADMIN_FAIL2BAN_TIMEOUT": "10",
        "JAILADMIN_FAIL2BAN_TIME_ZONE": f2b.tz or "UTC",
        "JAILADMIN_SESSION_CACHE": "database",
        "JAILADMIN_ALLOWED_HOSTS": "127.0.0.1",
        "JAILADMIN_WORKERS": "2",
        "JAILADMIN_METRICS_TOKEN": TOKEN,
        "JAILADMIN_METRICS_CACHE_SECONDS": str(cache_seconds),
        "JAILADMIN_STATIC_ROOT": str(settings.STATIC_ROOT),
    }


def site_prepare(env: dict[str, str], *, fail2ban_socket: str) -> None:
    """A migrated database whose first-run setup is done, pointing at `fail2ban_socket`."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    prepare = f"""
from jails.models import SiteSettings
SiteSettings.objects.update_or_create(
    singleton=1, defaults={{"fail2ban_socket": {fail2ban_socket!r}, "setup_complete": True}}
)
"""
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", prepare],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


@contextmanager
def gunicorn_site(env: dict[str, str], log_path: Path):
    """gunicorn with two workers, configured as deployed (jailadmin.gunicorn_conf)."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        # The site plus an X-Worker header naming the worker that answered.
        "tests.support.gunicorn_app:application",
        "--config",
        # The production configuration: its hooks empty the metrics directory at start.
        "python:jailadmin.gunicorn_conf",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--threads",
        "4",
        "--timeout",
        "60",
    ]
    with served(command, env=env, log_path=log_path, port=port) as (base, _):
        yield base


def get(base: str, path: str, *, token: str | None = TOKEN) -> tuple[int, str, bytes]:
    """(status, answering worker's pid, body)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers["X-Worker"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["X-Worker"], exc.read()


def scrapes_until_both_workers(base: str, *, batch: int = 8, batches: int = 40) -> Counter[str]:
    """Concurrent scrapes in batches until both workers have answered some; per-pid counts."""
    answered: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=batch) as pool:
        for _ in range(batches):
            for status, pid, _ in pool.map(lambda _: get(base, "/metrics"), range(batch)):
                assert status == 200
                answered[pid] += 1
            if len(answered) >= 2:
                break
    assert len(answered) == 2, f"one worker answered every scrape: {answered}"
    return answered


def test_metrics_request_counts_summed_across_two_gunicorn_workers(f2b, tmp_path):
    env = site_env(tmp_path, f2b, cache_seconds=5)
    site_prepare(env, fail2ban_socket=str(f2b.socket_path))
    with gunicorn_site(env, tmp_path / "gunicorn.log") as base:
        answered = scrapes_until_both_workers(base)
        refused = [get(base, "/metrics", token="wrong-token-0123456789") for _ in range(3)]
        assert {status for status, _, _ in refused} == {401}

        status, pid, body = get(base, "/metrics")
        assert status == 200
        found = samples(body)
        # Whichever worker answers, it reports both workers' requests (this one not yet).
        total = sum(answered.values())
        assert value(found, "jailadmin_http_requests_total", **SCRAPE) == total
        assert value(found, "jailadmin_http_requests_total", **{**SCRAPE, "status": "401"}) == 3
        assert (
            value(
                found,
                "jailadmin_http_request_duration_seconds_count",
                view="jails:metrics:scrape",
            )
            == total + 3
        )
        assert (
            value(
                found,
                "jailadmin_http_request_duration_seconds_bucket",
                view="jails:metrics:scrape",
                le="+Inf",
            )
            == total + 3
        )
        assert pid in answered


def test_metrics_concurrent_scrapes_make_one_fail2ban_round(f2b, tmp_path):
    with RecordingProxy(str(f2b.socket_path)) as proxy:
        # Long enough that every scrape below reads the one round, on a slow machine too.
        env = site_env(tmp_path, f2b, cache_seconds=600)
        site_prepare(env, fail2ban_socket=proxy.path)
        f2b.client().send("set", "sshd", "banip", "203.0.113.77")
        with gunicorn_site(env, tmp_path / "gunicorn.log") as base:
            proxy.clear()  # the start-up health checks' pings
            answered = scrapes_until_both_workers(base, batch=12)
            commands = [list(c) for c in proxy.commands if c is not None]
            # Every scrape, in either worker, reported the one round's counters.
            _, _, body = get(base, "/metrics")
            found = samples(body)
            assert value(found, "jailadmin_jail_currently_banned", host="local", jail="sshd") == 1
    # An overview round is `status` (1.0) or `status --all short` (1.1); a worker's one-off
    # capability probe starts with `version` and sends one `status --all short` as a trial.
    probes = commands.count(["version"])
    rounds = commands.count(["status"]) + commands.count(["status", "--all", "short"]) - probes
    assert rounds == 1, (answered, commands)
    assert probes <= 1  # only the worker that made the round needed the capabilities


def test_metrics_start_from_zero_when_gunicorn_starts_again(f2b, tmp_path):
    env = site_env(tmp_path, f2b, cache_seconds=5)
    site_prepare(env, fail2ban_socket=str(f2b.socket_path))
    metrics_dir = tmp_path / "metrics"  # JAILADMIN_METRICS_DIR's default under the var dir
    with gunicorn_site(env, tmp_path / "gunicorn-1.log") as base:
        for _ in range(3):
            assert get(base, "/metrics")[0] == 200
        found = samples(get(base, "/metrics")[2])
        assert value(found, "jailadmin_http_requests_total", **SCRAPE) == 3
    first_run_files = {path.name for path in metrics_dir.glob("*.db")}
    assert first_run_files  # the workers' value files, named by their pids
    # The master ran child_exit for both workers as it stopped them, without an error.
    assert "Traceback" not in (tmp_path / "gunicorn-1.log").read_text()

    with gunicorn_site(env, tmp_path / "gunicorn-2.log") as base:
        found = samples(get(base, "/metrics")[2])
        # The master's on_starting hook emptied the directory: the old workers' files are gone.
        assert value(found, "jailadmin_http_requests_total", **SCRAPE) is None
        assert not first_run_files & {path.name for path in metrics_dir.glob("*.db")}
