"""Ban history benchmark: pages over a million archived bans, and syncing 100 000 new rows.

    .venv/bin/python bench/bench_history.py [--reseed] [--repeat 15]

1. Seeds var/bench/history.sqlite3 with bench/seed_history.py (1 000 000 bans over a year,
   20 jails, 200 000 addresses) unless it is already there.
2. Times the pages server-side with Django's test client (the whole request: middleware,
   queries, templates; median of --repeat requests after two warm-ups): the dashboard for
   24 h, 7 d, 30 d and 365 d, its HTMX refresh, filtered dashboards, and history pages.
3. Copies the archive and syncs 100 000 new rows from a fail2ban database file (schema v4,
   the last 24 hours, 20 jails, 60 000 addresses of which a third are already archived),
   with geo lookups, origin matching and every summary update included.

Targets (issue #5): dashboard 30 d and 365 d and a filtered history page under 300 ms
median; the 100 000-row sync under 10 s. Results go to var/bench/history-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "var" / "bench"
DB = BENCH_DIR / "history.sqlite3"
RESULTS = BENCH_DIR / "history-results.json"
PAGE_TARGET_MS = 300.0
SYNC_TARGET_S = 10.0

PAGES = [
    ("dashboard 24 h", "/?window=24h", {}),
    ("dashboard 7 d", "/?window=7d", {}),
    ("dashboard 30 d", "/?window=30d", {}),
    ("dashboard 365 d", "/?window=365d", {}),
    (
        "dashboard 30 d, HTMX refresh",
        "/?window=30d",
        {"HX-Request": "true", "HX-Target": "dashboard-panels"},
    ),
    ("dashboard 365 d, country=CN", "/?window=365d&country=CN", {}),
    ("dashboard 30 d, jail=sshd", "/?window=30d&jail=sshd", {}),
    ("dashboard 365 d, jail=postfix", "/?window=365d&jail=postfix", {}),
    ("history, jail=sshd, 30 d", "/history/?window=30d&jail=sshd", {}),
    ("history, country=US, 365 d, by address", "/history/?window=365d&country=US&sort=ip", {}),
    ("history, network search", "/history/?q=185.0.0.0/16", {}),
    ("history, everything, page 50", "/history/?page=50", {}),
]
TARGETS = {
    "dashboard 30 d",
    "dashboard 365 d",
    "history, jail=sshd, 30 d",
    "history, country=US, 365 d, by address",
}


def setup(db: Path) -> None:
    os.environ["JAILADMIN_DATABASE_URL"] = f"sqlite:///{db}"
    os.environ.setdefault("JAILADMIN_SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijkl")
    os.environ["JAILADMIN_DEBUG"] = "false"
    os.environ["JAILADMIN_STATIC_ROOT"] = str(BENCH_DIR / "static")
    # A socket that does not exist: the status bar says "unreachable" at once.
    os.environ["JAILADMIN_FAIL2BAN_SOCKET"] = str(BENCH_DIR / "no-fail2ban.sock")
    os.environ["DJANGO_SETTINGS_MODULE"] = "jailadmin.settings"
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)


def time_pages(repeat: int) -> list[dict[str, object]]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from jails.models import SiteSettings

    SiteSettings.objects.update_or_create(
        singleton=1, defaults={"setup_complete": True, "fail2ban_socket": "/nonexistent.sock"}
    )
    user_model = get_user_model()
    user = user_model.objects.filter(username="bench").first()
    if user is None:
        user = user_model.objects.create_superuser("bench", "bench@example.com", "bench-pass-123")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    results = []
    for name, url, headers in PAGES:
        times = []
        for attempt in range(repeat + 2):
            started = time.perf_counter()
            response = client.get(url, headers=headers)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise SystemExit(f"{url}: HTTP {response.status_code}")
            if attempt >= 2:
                times.append(elapsed * 1000)
        median = statistics.median(times)
        results.append(
            {
                "page": name,
                "url": url,
                "median_ms": round(median, 1),
                "min_ms": round(min(times), 1),
                "max_ms": round(max(times), 1),
                "bytes": len(response.content),
                "target_ms": PAGE_TARGET_MS if name in TARGETS else None,
            }
        )
        print(
            f"  {name:42} median {median:7.1f} ms  (min {min(times):6.1f}, max {max(times):6.1f})"
        )
    return results


def fail2ban_rows(count: int, *, now: int, archived_ips: list[str], seed: int = 11) -> list:
    from bench.seed_history import JAILS, random_ipv6, random_public_ipv4
    from jails.fail2ban.dbfile import Fail2banBan

    rng = random.Random(seed)
    fresh = [
        random_ipv6(rng) if rng.random() < 0.1 else random_public_ipv4(rng) for _ in range(40000)
    ]
    pool = fresh + rng.sample(archived_ips, min(20000, len(archived_ips)))
    rows = []
    for _ in range(count):
        ip = pool[int(len(pool) * rng.random() ** 2)]
        jail = rng.choice(JAILS)
        when = now - rng.randrange(86400)
        lines = [f"2026-01-01 00:00:0{k} {jail}: AUTH FAIL user=root from {ip}" for k in range(3)]
        rows.append(Fail2banBan(jail, ip, when, matches=lines))
    return rows


def time_sync(rows_count: int) -> dict[str, object]:
    from django import db as django_db
    from django.db import connections

    from jails.apps import runtime_state
    from jails.fail2ban.dbfile import fail2ban_db_add, fail2ban_db_create
    from jails.models import BanEvent, IPSummary
    from jails.services import history

    archived_ips = list(IPSummary.objects.order_by("?").values_list("ip", flat=True)[:20000])
    before = BanEvent.objects.count()
    connections.close_all()
    work = Path(tempfile.mkdtemp(prefix="ja-bench-", dir=str(BENCH_DIR)))
    try:
        copy = work / "archive.sqlite3"
        started = time.perf_counter()
        shutil.copyfile(DB, copy)
        print(f"  archive copied in {time.perf_counter() - started:.1f} s")
        f2b_db = work / "fail2ban.sqlite3"
        fail2ban_db_create(f2b_db)
        fail2ban_db_add(
            f2b_db, fail2ban_rows(rows_count, now=int(time.time()), archived_ips=archived_ips)
        )
        django_db.connections["default"].settings_dict["NAME"] = str(copy)
        connections.close_all()
        state = runtime_state()
        started = time.perf_counter()
        state.history.geo.load()
        geo_load = time.perf_counter() - started
        started = time.perf_counter()
        result = history.history_sync(state, dbfile=str(f2b_db))
        elapsed = time.perf_counter() - started
        started = time.perf_counter()
        again = history.history_sync(state, dbfile=str(f2b_db))
        assert again.archived == 0
        second = time.perf_counter() - started
        after = BanEvent.objects.count()
        print(
            f"  sync of {result.read} rows: {elapsed:.2f} s "
            f"({result.archived} archived, {result.already} already there), "
            f"geo data load {geo_load:.2f} s; second sync {second:.2f} s"
        )
        return {
            "rows": result.read,
            "archived": result.archived,
            "already_archived": result.already,
            "archive_before": before,
            "archive_after": after,
            "seconds": round(elapsed, 2),
            "rows_per_second": round(result.read / elapsed),
            "geo_load_seconds": round(geo_load, 2),
            "second_sync_seconds": round(second, 2),
            "target_seconds": SYNC_TARGET_S,
        }
    finally:
        connections.close_all()
        django_db.connections["default"].settings_dict["NAME"] = str(DB)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reseed", action="store_true", help="Seed the archive again.")
    parser.add_argument("--repeat", type=int, default=15, help="Timed requests per page.")
    parser.add_argument("--sync-rows", type=int, default=100_000)
    parser.add_argument("--skip-sync", action="store_true")
    parser.add_argument("--skip-pages", action="store_true")
    args = parser.parse_args()
    if args.reseed or not DB.exists():
        print("seeding the archive (about 2 minutes)…")
        subprocess.run(
            [sys.executable, str(REPO / "bench" / "seed_history.py"), "--db", str(DB)], check=True
        )
    setup(DB)
    from jails.models import BanEvent, IPSummary

    print(
        f"archive: {BanEvent.objects.count()} bans, {IPSummary.objects.count()} addresses, "
        f"{DB.stat().st_size / 2**20:.0f} MiB ({platform.python_version()}, {os.cpu_count()} cores)"
    )
    print("pages (server time):")
    pages = [] if args.skip_pages else time_pages(args.repeat)
    sync = None if args.skip_sync else (print("sync:"), time_sync(args.sync_rows))[1]
    report = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "pages": pages, "sync": sync}
    RESULTS.write_text(json.dumps(report, indent=2))
    failed = [p["page"] for p in pages if p["target_ms"] and p["median_ms"] > PAGE_TARGET_MS]
    if sync and sync["seconds"] > SYNC_TARGET_S:
        failed.append("sync")
    print(f"results: {RESULTS}")
    print("all targets met" if not failed else f"TARGETS MISSED: {', '.join(failed)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
