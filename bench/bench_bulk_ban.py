"""Bulk-ban benchmark: 10 000 and 100 000 addresses, batched vs one command per address.

    .venv/bin/python bench/bench_bulk_ban.py [--repeat 3] [--sample 5000]

Runs a private fail2ban 1.0.2 (no-op actions, so fail2ban spawns no shell per ban) and
bans through the same service the web, the admin and `manage.py jails ban` use
(jails.services.bans.ips_ban: parse, validate, snapshot, classify, send, audit), once with
batches (BATCH_SIZE addresses per `set J banip`) and once with one `set J banip IP` per
address. Every run starts from an empty jail (`unban --all`, not timed). 100 000 one by
one is extrapolated from a measured sample (--sample addresses); the output says so.
Also: the 100 000 through the bulk-ban page (upload, Django test client), a batch-size
sweep, and one `fail2ban-client` process per address (what shell-based tools do; sample).

Targets (issue #4): batched at least 10x faster than one per address; 100 000 addresses
in under 15 s end to end. Machines differ 2-3x, so the batched run is also divided by its
floor measured in the same run (issue 8): the same batches sent raw over one socket, no
parsing, validation, snapshot or audit (goal ≤ 1.2×). Runs in a throw-away directory
(bench/common.py), never the site's database.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import django_setup, print_table  # noqa: E402

RAW_GOAL = 1.2
JAIL = "bench"
SPEEDUP_TARGET = 10.0
END_TO_END_TARGET_S = 15.0


def addresses(count: int) -> list[str]:
    """`count` distinct IPv4 addresses in 10.0.0.0/8 as lines of text."""
    return [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(1, count + 1)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sample", type=int, default=5000)
    args = parser.parse_args()

    django_setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    from jails.fail2ban.protocol import END, encode_request, restricted_loads
    from jails.fail2ban.server import JailSpec, PrivateServer
    from jails.services.audit import Actor
    from jails.services.bans import BATCH_SIZE, ips_ban
    from jails.state import RuntimeSettings, build_runtime_state

    base = Path(tempfile.mkdtemp(prefix="jb-", dir="/tmp"))
    server = PrivateServer(base, [JailSpec(JAIL, bantime="1h")], record_actions=False)
    server.start()
    try:
        state = build_runtime_state(
            replace(
                RuntimeSettings.from_django_settings(settings),
                fail2ban_socket=str(server.socket_path),
                fail2ban_timeout=120.0,
            )
        )
        actor = Actor(name="bench", source="command")
        admin = server.client(timeout=120)

        def db_bans() -> int:
            with sqlite3.connect(f"file:{server.dbfile}?mode=ro", uri=True) as db:
                return db.execute("SELECT COUNT(*) FROM bans").fetchone()[0]

        def wait_for(predicate: object, what: str) -> None:
            deadline = time.monotonic() + 300
            while not predicate():  # type: ignore[operator]
                if time.monotonic() > deadline:
                    raise RuntimeError(f"fail2ban's database did not settle ({what})")
                time.sleep(0.1)

        def settle() -> None:
            """Empty the jail, with fail2ban's database caught up before and after.

            fail2ban writes each ban to its SQLite database in a background thread after it
            has answered. A run must not pay for the previous run's writes; and an unban
            that overtakes a pending write leaves a stale row behind (fail2ban 1.0.2), so
            the writes are waited for first.
            """
            held = len(admin.send("get", JAIL, "banip"))
            wait_for(lambda: db_bans() >= held, "ban rows")
            admin.send("unban", "--all")
            wait_for(lambda: db_bans() == 0, "unban")

        def ban_seconds(lines: list[str], batch_size: int) -> float:
            settle()
            started = time.perf_counter()
            report = ips_ban(state, jail=JAIL, lines=lines, actor=actor, batch_size=batch_size)
            elapsed = time.perf_counter() - started
            assert report.ok and report.changed == len(lines), report.error or report.counts
            return elapsed

        def median(values: list[float]) -> float:
            return statistics.median(values)

        def raw_seconds(lines: list[str], batch_size: int) -> float:
            """The floor: the same `set J banip` batches, framed by hand on one socket."""
            settle()
            started = time.perf_counter()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(server.socket_path))
                for start in range(0, len(lines), batch_size):
                    sock.sendall(
                        encode_request(["set", JAIL, "banip", *lines[start : start + batch_size]])
                    )
                    data = b""
                    while not data.endswith(END):
                        data += sock.recv(65536)
                    restricted_loads(data[: -len(END)])
            return time.perf_counter() - started

        results: dict[str, object] = {"batch_size": BATCH_SIZE}
        rows: list[tuple[str, str]] = []
        for count in (10_000, 100_000):
            lines = addresses(count)
            batched = median([ban_seconds(lines, BATCH_SIZE) for _ in range(args.repeat)])
            raw = median([raw_seconds(lines, BATCH_SIZE) for _ in range(args.repeat)])
            if count <= 10_000:
                single = median([ban_seconds(lines, 1) for _ in range(args.repeat)])
                how = "measured"
            else:
                sample = addresses(args.sample)
                per_ip = median([ban_seconds(sample, 1) for _ in range(args.repeat)]) / len(sample)
                single = per_ip * count
                how = f"extrapolated from {args.sample:,} measured"
            speedup = single / batched
            results[str(count)] = {
                "batched_s": batched,
                "raw_floor_s": raw,
                "ratio_to_floor": batched / raw,
                "one_per_ip_s": single,
                "one_per_ip": how,
                "speedup": speedup,
            }
            rows.append(
                (
                    f"{count:>7,} addresses",
                    f"batched {batched:7.2f} s | one per address {single:7.2f} s ({how})"
                    f" | {speedup:5.1f}x",
                )
            )
            rows.append(
                (
                    "  floor: same batches raw, one socket",
                    f"{raw:7.2f} s | batched ÷ floor {batched / raw:5.2f} x (goal ≤ {RAW_GOAL})",
                )
            )

        # End to end through the bulk-ban page: upload, parse, validate, ban, report page.
        # A throw-away database (bench/common.py): no password, force_login below.
        user = get_user_model().objects.create_superuser("bench", password=None)
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        from django.apps import apps

        apps.get_app_config("jails").state = state  # the page uses the benchmark's server
        lines = addresses(100_000)
        payload = "\n".join(lines).encode()
        page_runs = []
        for _ in range(args.repeat):
            settle()
            upload = SimpleUploadedFile("list.txt", payload, "text/plain")
            started = time.perf_counter()
            response = client.post(f"/jails/{JAIL}/bulk-ban/", {"upload": upload})
            page_runs.append(time.perf_counter() - started)
            assert response.status_code == 200 and b"fail2ban banned 100000 new" in response.content
        page = median(page_runs)
        results["page_100000_s"] = page
        rows.append(("100 000 via bulk-ban page", f"{page:7.2f} s (upload to rendered report)"))

        sweep = []
        ten_k = addresses(10_000)
        for size in (250, 1000, 2000, 5000, 10_000):
            seconds = median([ban_seconds(ten_k, size) for _ in range(args.repeat)])
            sweep.append((size, seconds))
        results["batch_sweep_10000"] = dict(sweep)
        rows.append(
            ("batch-size sweep, 10 000", " | ".join(f"{size}: {s:.2f} s" for size, s in sweep))
        )

        # A naive loop over Fail2banClient.send(): a new connection per address (sample).
        settle()
        client = state.jail_service.client
        naive = addresses(2000)
        started = time.perf_counter()
        for ip in naive:
            client.send("set", JAIL, "banip", ip)
        per_connection = (time.perf_counter() - started) / len(naive)
        results["connection_per_ip_s"] = per_connection
        rows.append(
            (
                "new connection per address",
                f"{per_connection * 1000:.2f} ms each: 100 000 would take"
                f" {per_connection * 100_000:.1f} s (2 000 measured)",
            )
        )

        # What tools that shell out pay: one fail2ban-client process per address (sample).
        settle()
        argv = [*server.configure_command(), "set", JAIL, "banip"]
        env = server.install.env()
        started = time.perf_counter()
        for ip in addresses(20):
            subprocess.run([*argv, ip], env=env, capture_output=True, check=True)
        per_process = (time.perf_counter() - started) / 20
        results["fail2ban_client_per_ip_s"] = per_process
        rows.append(
            (
                "fail2ban-client per address",
                f"{per_process * 1000:.0f} ms each: 100 000 would take"
                f" {per_process * 100_000 / 60:.0f} min (20 measured)",
            )
        )

        ten, hundred = results["10000"], results["100000"]
        speedups_ok = all(r["speedup"] >= SPEEDUP_TARGET for r in (ten, hundred))  # type: ignore[index]
        e2e_ok = max(hundred["batched_s"], page) < END_TO_END_TARGET_S  # type: ignore[index]
        rows.append(
            (
                "targets",
                f"batched >= {SPEEDUP_TARGET:.0f}x: {'met' if speedups_ok else 'NOT met'}"
                f" | 100 000 < {END_TO_END_TARGET_S:.0f} s: {'met' if e2e_ok else 'NOT met'}",
            )
        )
        print_table(
            f"Bulk ban through jails.services.bans.ips_ban (medians of {args.repeat};"
            f" batch size {BATCH_SIZE}; fail2ban 1.0.2, no-op action)",
            rows,
        )
        results["machine"] = platform.platform()
        print(f"\nresults: {json.dumps(results)}")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
