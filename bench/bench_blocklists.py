"""Blocklist import benchmark: a 100 000-line list, first import, unchanged, 1 % changed.

    .venv/bin/python bench/bench_blocklists.py [--lines 100000] [--repeat 3]

Runs a private fail2ban 1.0.2 with a `blocklist` jail (no-op actions) and a local HTTP
server (stdlib, in a thread) serving the list with an ETag, in a throw-away directory with
its own database (bench/common.py), never the site's. Each figure is one
`source_import` end to end — fetch over HTTP, parse, validate, dedupe, collapse, ban in
batches through ips_ban, record what the source holds, the run and the audit:

- first import into an empty jail;
- re-import of the unchanged list: the server answers 304 to the ETag (one request, no
  work), and again from a server that ignores ETags (same SHA-256: no parse, no fail2ban);
- re-import with 1 % of the lines replaced (1 000 bans and 1 000 unbans).

Targets (issue 13): ≤ 10 s, ≤ 0.5 s, ≤ 2 s. Machines differ, so each is also divided by
a floor measured in the same run, alternating with it: the first import by the same
addresses sent through ips_ban directly (the bulk-ban service, no HTTP, parse or
bookkeeping); the 1 % change by the same 1 000 bans and 1 000 unbans through ips_ban /
ips_unban directly.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import django_setup, print_table  # noqa: E402

JAIL = "blocklist"
TARGETS = {"first": 10.0, "unchanged": 0.5, "changed": 2.0}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def addresses(count: int, *, offset: int = 0) -> list[str]:
    """`count` public IPv4 addresses in 11.0.0.0/8, every other one (so nothing collapses)."""
    return [
        f"11.{v >> 16 & 255}.{v >> 8 & 255}.{v & 255}"
        for v in (2 * (i + offset) + 1 for i in range(count))
    ]


class ListServer:
    """Serves one list at /list.txt; with `etags` on, answers a matching If-None-Match with 304."""

    def __init__(self) -> None:
        self.body = b""
        self.etag = ""
        self.etags = True
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                outer.requests += 1
                if outer.etags and self.headers.get("If-None-Match") == outer.etag:
                    self.send_response(304)
                    self.send_header("ETag", outer.etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                if outer.etags:
                    self.send_header("ETag", outer.etag)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/list.txt"

    def serve(self, lines: list[str], tag: str) -> None:
        self.body = ("# benchmark list\n" + "\n".join(lines) + "\n").encode()
        self.etag = f'"{tag}"'


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the last first import and 1 %% change (top functions by own time)",
    )
    args = parser.parse_args()

    django_setup()
    from django.conf import settings

    from jails.blocklists.models import BlocklistSource, ImportRun
    from jails.blocklists.services.fetch import FetchPolicy
    from jails.blocklists.services.imports import source_import
    from jails.fail2ban.server import JailSpec, PrivateServer
    from jails.models import AuditEntry
    from jails.services.audit import Actor
    from jails.services.bans import ips_ban, ips_unban
    from jails.state import RuntimeSettings, build_runtime_state

    base = Path(tempfile.mkdtemp(prefix="jbb-", dir="/tmp"))
    server = PrivateServer(base, [JailSpec(JAIL, bantime="1d")], record_actions=False)
    server.start()
    lists = ListServer()
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
        policy = FetchPolicy(allow_private=True, read_timeout=120)

        def db_bans() -> int:
            with sqlite3.connect(f"file:{server.dbfile}?mode=ro", uri=True) as db:
                return int(db.execute("SELECT COUNT(*) FROM bans").fetchone()[0])

        def wait_for(predicate: object, what: str) -> None:
            deadline = time.monotonic() + 600
            while not predicate():  # type: ignore[operator]
                if time.monotonic() > deadline:
                    raise RuntimeError(f"fail2ban's database did not settle ({what})")
                time.sleep(0.1)

        def settle(*, empty: bool) -> None:
            """fail2ban's database caught up (and, with `empty`, the jail emptied): no run
            pays for the previous run's background writes (see bench_bulk_ban.py)."""
            held = len(admin.send("get", JAIL, "banip"))
            wait_for(lambda: db_bans() >= held, "ban rows")
            if empty:
                admin.send("unban", "--all")
                wait_for(lambda: db_bans() == 0, "unban")

        def fresh_source() -> BlocklistSource:
            BlocklistSource.objects.all().delete()
            return BlocklistSource.objects.create(
                name="bench", url=lists.url, jail=JAIL, allow_private=True, confirmed=True
            )

        assert server.process is not None
        server_pid = server.process.pid
        # (our CPU seconds, fail2ban's CPU seconds) of each timed run, by kind: on a shared
        # machine other work stretches wall time, CPU time still says where the work went.
        cpu: dict[str, list[tuple[float, float]]] = {}

        def timed(kind: str, run: Callable[[], object]) -> None:
            ours, theirs = time.process_time(), cpu_seconds(server_pid)
            started = time.perf_counter()
            run()
            figures[kind].append(time.perf_counter() - started)
            cpu.setdefault(kind, []).append(
                (time.process_time() - ours, cpu_seconds(server_pid) - theirs)
            )

        def import_run(source: BlocklistSource, expect: str) -> Callable[[], None]:
            def go() -> None:
                source.refresh_from_db()
                [run] = source_import(  # one run: the bench's site has the local host alone
                    state,
                    source=source,
                    actor=actor,
                    trigger="command",
                    owner="bench",
                    policy=policy,
                )
                assert run.status == expect, (run.status, run.errors)

            return go

        base_lines = addresses(args.lines)
        changed_count = max(args.lines // 100, 1)
        # 1 %: the first `changed_count` lines replaced by as many new addresses.
        changed_lines = addresses(changed_count, offset=args.lines) + base_lines[changed_count:]
        figures: dict[str, list[float]] = {
            k: []
            for k in (
                "first",
                "floor_first",
                "unchanged_304",
                "unchanged_hash",
                "changed",
                "floor_changed",
            )
        }
        for _ in range(args.repeat):
            # First import, then its floor (the same addresses through ips_ban), alternating.
            settle(empty=True)
            source = fresh_source()
            lists.etags = True
            lists.serve(base_lines, "v1")
            if args.profile and _ == args.repeat - 1:
                profiler = cProfile.Profile()
                profiler.enable()
            timed("first", import_run(source, ImportRun.Status.OK))
            if args.profile and _ == args.repeat - 1:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            assert len(admin.send("get", JAIL, "banip")) == args.lines
            settle(empty=False)
            requests = lists.requests
            timed("unchanged_304", import_run(source, ImportRun.Status.UNCHANGED))
            assert lists.requests == requests + 1
            lists.etags = False
            timed("unchanged_hash", import_run(source, ImportRun.Status.UNCHANGED))
            lists.etags = True
            lists.serve(changed_lines, "v2")
            audits = AuditEntry.objects.count()
            if args.profile and _ == args.repeat - 1:
                profiler = cProfile.Profile()
                profiler.enable()
            timed("changed", import_run(source, ImportRun.Status.OK))
            if args.profile and _ == args.repeat - 1:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
            run = ImportRun.objects.order_by("-id").first()
            assert run is not None and (run.banned, run.unbanned) == (changed_count,) * 2
            assert AuditEntry.objects.count() - audits == 2  # one ban, one unban record

            settle(empty=True)

            def floor_first() -> None:
                report = ips_ban(state, jail=JAIL, lines=base_lines, actor=actor, confirmed=True)
                assert report.changed == args.lines

            timed("floor_first", floor_first)
            settle(empty=False)

            def floor_changed() -> None:
                new = changed_lines[:changed_count]
                ips_ban(state, jail=JAIL, lines=new, actor=actor, confirmed=True)
                ips_unban(state, jail=JAIL, lines=base_lines[:changed_count], actor=actor)

            timed("floor_changed", floor_changed)

        def cell(key: str, floor: str | None = None, target: float | None = None) -> str:
            values = figures[key]
            median = statistics.median(values)
            text = f"{median:7.3f} s (runs: {', '.join(f'{v:.3f}' for v in values)})"
            if floor is not None:
                floor_median = statistics.median(figures[floor])
                pairs = [v / f for v, f in zip(values, figures[floor], strict=True)]
                text += (
                    f" | floor {floor_median:.3f} s, ratio {median / floor_median:.2f} x"
                    f" (pairs {min(pairs):.2f}-{max(pairs):.2f})"
                )
            if target is not None:
                text += f" | target <= {target:g} s: {'met' if median <= target else 'NOT met'}"
            ours = statistics.median(o for o, _ in cpu[key])
            theirs = statistics.median(f for _, f in cpu[key])
            text += f"\n{'':44}CPU: ours {ours:.3f} s, fail2ban {theirs:.3f} s"
            if floor is not None:
                floor_ours = statistics.median(o for o, _ in cpu[floor])
                floor_theirs = statistics.median(f for _, f in cpu[floor])
                text += (
                    f" | floor: ours {floor_ours:.3f} s, fail2ban {floor_theirs:.3f} s,"
                    f" CPU ratio {(ours + theirs) / (floor_ours + floor_theirs):.2f} x"
                )
            return text

        print_table(
            f"Blocklist import, {args.lines} lines, {args.repeat} runs (medians)",
            [
                (
                    "first import (fetch, parse, ban, record)",
                    cell("first", "floor_first", TARGETS["first"]),
                ),
                ("unchanged, 304 to the ETag", cell("unchanged_304", None, TARGETS["unchanged"])),
                (
                    "unchanged, no ETag (same hash)",
                    cell("unchanged_hash", None, TARGETS["unchanged"]),
                ),
                (
                    f"1 % changed ({changed_count} bans + {changed_count} unbans)",
                    cell("changed", "floor_changed", TARGETS["changed"]),
                ),
            ],
        )
    finally:
        lists.httpd.shutdown()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
