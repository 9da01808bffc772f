"""Shared set-up for the benchmark scripts: a private Django environment and timing helpers.

A benchmark must never touch the site it runs next to. `make` exports
JAILADMIN_VAR_DIR=var, an operator's shell may export JAILADMIN_DATABASE_URL or
JAILADMIN_REDIS_URL: so `isolate_environment` drops every JAILADMIN_* variable and points
everything that names a place (var dir, database, static root, session storage, fail2ban
socket) into a fresh temporary directory, whatever the environment said.
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Variables a benchmark keeps: they choose *which* fail2ban the private servers run
# (`JAILADMIN_TEST_FAIL2BAN=1.0|1.1`) and never point at the site's data.
KEEP = frozenset({"JAILADMIN_TEST_FAIL2BAN"})


def isolate_environment(work_dir: Path | None = None) -> Path:
    """Point every JAILADMIN_* setting into a throw-away dir (made if not given); return it.

    Sets os.environ, so it must run before Django's settings are imported; the child
    processes a benchmark starts (gunicorn, seeders) inherit the same isolation.
    """
    work = work_dir or Path(tempfile.mkdtemp(prefix="jailadmin-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    for key in [k for k in os.environ if k.startswith("JAILADMIN_") and k not in KEEP]:
        del os.environ[key]
    os.environ.update(
        {
            "JAILADMIN_VAR_DIR": str(work),
            "JAILADMIN_DATABASE_URL": f"sqlite:///{work / 'bench.sqlite3'}",
            "JAILADMIN_STATIC_ROOT": str(work / "static"),
            # Sessions in the benchmark's own database, never a configured Redis.
            "JAILADMIN_SESSION_CACHE": "database",
            # Nothing listens here: a page asks the benchmark's own server or none.
            "JAILADMIN_FAIL2BAN_SOCKET": str(work / "no-fail2ban.sock"),
            "JAILADMIN_SECRET_KEY": "benchmark-only-secret-key-0123456789abcdef",
            "JAILADMIN_DEBUG": "false",
            "DJANGO_SETTINGS_MODULE": "jailadmin.settings",
        }
    )
    return work


def django_setup(work_dir: Path | None = None, *, database_url: str | None = None) -> Path:
    """Configure Django on a throw-away SQLite database and migrate it; returns the work dir.

    A directory made here is deleted when the process exits. `database_url` replaces the
    SQLite file with a throw-away PostgreSQL database the benchmark made itself in the
    private cluster (tests/support/postgres.py: named `bench_…`).
    """
    work = isolate_environment(work_dir)
    if work_dir is None:
        atexit.register(remove_work_dir, work)
    if database_url is not None:
        os.environ["JAILADMIN_DATABASE_URL"] = database_url
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    # A last line of defence: if anything above were bypassed, stop before writing.
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        name = str(settings.DATABASES["default"]["NAME"])
        if not name.startswith("bench_"):
            raise SystemExit(f"benchmark refuses to use database {name}: not a bench_ one")
    else:
        database = Path(str(settings.DATABASES["default"]["NAME"])).resolve()
        if not database.is_relative_to(work.resolve()):
            raise SystemExit(f"benchmark refuses to use {database}: not under {work}")
    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    return work


def remove_work_dir(work: Path) -> None:
    """Delete a benchmark's throw-away directory (its database, static files, sockets)."""
    shutil.rmtree(work, ignore_errors=True)


def median_ms(func: Callable[[], object], *, repeat: int, warmup: int = 2) -> float:
    """Median wall time of `func` in milliseconds."""
    for _ in range(warmup):
        func()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def ratio(value: float, floor: float) -> str:
    """`value ÷ floor` for the tables: the figure that holds across machines."""
    return f"{value / floor:8.2f} ×" if floor > 0 else "     n/a"


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    """A two-column table, the benchmarks' common output format."""
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 24))
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


def site_client(fail2ban_socket: str) -> Any:
    """A test client logged in to the benchmark's own site, set up against `fail2ban_socket`.

    The database is the throw-away one django_setup() made, so a fixed user name is fine
    and the password is never used (force_login).
    """
    from django.contrib.auth import get_user_model
    from django.test import Client

    from jails.models import SiteSettings

    SiteSettings.objects.update_or_create(
        singleton=1, defaults={"setup_complete": True, "fail2ban_socket": fail2ban_socket}
    )
    user = get_user_model().objects.create_superuser("bench", password=None)
    web = Client(HTTP_HOST="127.0.0.1")
    web.force_login(user)
    return web
