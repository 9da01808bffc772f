"""The fleet (issue 12): /jails/ over N hosts vs one, a hung host, the history sync over N hosts.

    .venv/bin/python bench/bench_fleet.py [--hosts 10] [--repeat 15] [--deadline 2]
                                          [--rows 10000] [--skip-history]
                                          [--history-only] [--engine sqlite|postgres]
                                          [--profile FILE]

Every host is reached exactly as a remote one: a real sshd on 127.0.0.1 (tests/support/sshd.py)
whose authorized_keys force the agent of this checkout (`--stdio`) in front of one private
fail2ban server per host. Three figures, each next to the floor it is compared with:

1. GET /jails/ with N hosts ÷ the same page with one of them (target ≤ 2×: the hosts are asked
   in parallel, so N hosts should cost about one host plus rendering N times the rows).
2. The same page with one more host whose forced command hangs (`sleep`: sshd accepts, the
   agent never answers): the page must answer within the per-host deadline + 20 %.
3. The history sync of N hosts × --rows new bans each (target ≤ 15 s on the 2-core machine),
   next to the floor of reading the same rows from the N fail2ban databases with plain SQL.

Runs in a throw-away directory (bench/common.py): never var/, the site's database or settings.
"""

from __future__ import annotations

import argparse
import cProfile
import ipaddress
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import django_setup, print_table, ratio, site_client  # noqa: E402

JAILS = ("sshd", "web", "mail")
BANS_PER_JAIL = 20  # rows on the /jails/ page come from the counters, not the ban lists
LINK_TIMEOUT = 60.0  # the agent's cold start over ssh on a loaded box; the deadline bounds pages


def addresses(host: int, count: int, *, offset: int = 0) -> list[str]:
    """`count` distinct documentation-free public addresses for host number `host`."""
    base = int(ipaddress.IPv4Address(f"{100 + host}.0.0.0"))
    return [str(ipaddress.IPv4Address(base + i)) for i in range(offset + 1, offset + count + 1)]


def parallel(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(fn, items))


def samples_ms(get: Callable[[], object], *, repeat: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        get()
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        get()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--deadline", type=float, default=2.0, help="per-host deadline (s)")
    parser.add_argument("--rows", type=int, default=10000, help="new bans per host to archive")
    parser.add_argument("--skip-history", action="store_true")
    parser.add_argument("--history-only", action="store_true", help="only figure 3")
    parser.add_argument(
        "--engine",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the archive's database (postgres: a throw-away bench_ one in the private cluster)",
    )
    parser.add_argument("--profile", type=Path, help="cProfile the history sync into FILE")
    args = parser.parse_args()

    from tests.support.postgres import PostgresCluster

    cluster = PostgresCluster()
    database = f"bench_fleet_{os.getpid()}"
    started_cluster = url = None
    if args.engine == "postgres":
        started_cluster = cluster.start()
        url = cluster.database_create(database)
    work = django_setup(database_url=url)

    from django.apps import apps

    from jails.agent.ssh import key_pair_generate
    from jails.fail2ban.server import JailSpec, PrivateServer
    from jails.hosts.models import Host
    from jails.state import build_runtime_state
    from tests.support.sshd import PrivateSshd, agent_command

    base = Path(tempfile.mkdtemp(prefix="jf-", dir="/tmp"))
    sshd = PrivateSshd(base / "sshd")
    servers = [
        PrivateServer(
            base / f"h{i}", [JailSpec(name, bantime="1d") for name in JAILS], record_actions=False
        )
        for i in range(args.hosts)
    ]
    config = apps.get_app_config("jails")
    try:
        parallel(lambda server: server.start(), servers)
        sshd.start()
        host_key = sshd.host_key_line()

        def seed(index: int) -> None:
            client = servers[index].client(timeout=120)
            with client.connection() as conn:
                for jail in JAILS:
                    conn.send("set", jail, "banip", *addresses(index, BANS_PER_JAIL))

        parallel(seed, list(range(args.hosts)))

        def host_row(name: str, command: str) -> Host:
            private, public = key_pair_generate(f"bench-{name}")
            sshd.add_key(public, command)
            return Host.objects.create(
                name=name,
                kind=Host.Kind.SSH,
                address=sshd.destination(),
                ssh_private_key=private,
                ssh_public_key=public,
                ssh_host_key=host_key,
            )

        hosts = [
            host_row(f"h{i:02d}", agent_command(server, options=["--timeout", "120"]))
            for i, server in enumerate(servers)
        ]
        hung = host_row("hung", "sleep 3600")
        Host.objects.filter(name="local").update(enabled=False)

        web = site_client(str(base / "no-local-fail2ban.sock"))
        state = build_runtime_state(
            replace(
                config.state.settings,
                fail2ban_timeout=LINK_TIMEOUT,
                host_deadline=args.deadline,
            )
        )
        config.state = state

        def enable(names: set[str]) -> None:
            Host.objects.exclude(name="local").update(enabled=False)
            Host.objects.filter(name__in=names).update(enabled=True)

        def jail_list() -> object:
            response = web.get("/jails/")
            assert response.status_code == 200, response.status_code
            return response

        rows: list[tuple[str, str]] = []
        if not args.history_only:
            enable({hosts[0].name})
            one = statistics.median(samples_ms(jail_list, repeat=args.repeat))
            enable({host.name for host in hosts})
            many = statistics.median(samples_ms(jail_list, repeat=args.repeat))
            page = jail_list()
            content = page.content.decode()  # type: ignore[attr-defined]
            missing = [host.name for host in hosts if host.name not in content]
            rows += [
                ("GET /jails/, 1 host over ssh (floor)", f"{one:9.1f} ms"),
                (
                    f"GET /jails/, {args.hosts} hosts over ssh",
                    f"{many:9.1f} ms  {ratio(many, one)}  (target ≤ 2 ×)",
                ),
            ]
            if missing:
                rows.append(("hosts missing from the page", ", ".join(missing)))

            enable({host.name for host in hosts} | {hung.name})
            hung_samples = samples_ms(jail_list, repeat=max(3, args.repeat // 3), warmup=1)
            worst = max(hung_samples)
            limit = args.deadline * 1000 * 1.2
            verdict = "within" if worst <= limit else "OVER"
            rows += [
                (
                    f"GET /jails/, {args.hosts} hosts + 1 hung (worst of {len(hung_samples)})",
                    f"{worst:9.1f} ms  {ratio(worst, args.deadline * 1000)} of the deadline"
                    f"  ({verdict} deadline + 20 % = {limit:.0f} ms)",
                ),
                (
                    "  shown as unreachable",
                    "yes" if "unreachable" in jail_list().content.decode().lower() else "NO",  # type: ignore[attr-defined]
                ),
            ]
        enable({host.name for host in hosts})

        if not args.skip_history:
            rows += history_rows(args, servers, state)
        print_table(
            f"Fleet: {args.hosts} hosts over a real sshd, deadline {args.deadline:g} s "
            f"(median of {args.repeat})",
            rows,
        )
    finally:
        for link_state in list(config.state.fleet.services.values()):
            link_state[1].client.close()
        sshd.cleanup()
        parallel(lambda server: server.stop(), servers)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        if url is not None:
            from django.db import connections

            connections.close_all()
            cluster.database_drop(database)
            if started_cluster:
                cluster.stop()
    return 0


def history_rows(args: argparse.Namespace, servers: list[Any], state: Any) -> list[tuple[str, str]]:
    """Ban --rows new addresses on every host, then time the sync of all hosts."""
    from jails.history.services.sync import fleet_history_sync

    def ban(index: int) -> None:
        client = servers[index].client(timeout=600)
        fresh = addresses(index, args.rows, offset=BANS_PER_JAIL)
        with client.connection() as conn:
            for start in range(0, len(fresh), 1000):
                conn.send("set", "web", "banip", *fresh[start : start + 1000])

    def dbfile(server: Any) -> str:
        return str(server.client(timeout=60).send("get", "dbfile"))

    def rows_in(path: str) -> int:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM bans").fetchone()[0])

    def settled(server: Any) -> None:
        """fail2ban writes bans to its database on a thread of its own: wait for all."""
        path = dbfile(server)
        expected = BANS_PER_JAIL * len(JAILS) + args.rows
        deadline = time.monotonic() + 600
        while rows_in(path) < expected:
            if time.monotonic() > deadline:
                raise SystemExit(f"{path}: {rows_in(path)} of {expected} bans after 600 s")
            time.sleep(0.2)

    started = time.perf_counter()
    parallel(ban, list(range(len(servers))))
    parallel(settled, servers)
    seeding = time.perf_counter() - started

    # The floor: the same rows read from every host's fail2ban database with plain SQL.
    def read(server: Any) -> int:
        with sqlite3.connect(f"file:{dbfile(server)}?mode=ro", uri=True) as db:
            return len(db.execute("SELECT jail, ip, timeofban, bantime, data FROM bans").fetchall())

    started = time.perf_counter()
    read_rows = sum(parallel(read, servers))
    floor = time.perf_counter() - started

    profiler = cProfile.Profile() if args.profile else None
    started, cpu_started = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()  # the writer: this thread (the hosts are read on threads of their own)
    result = fleet_history_sync(state)
    seconds = time.perf_counter() - started
    # This process's CPU (the writer and the reading threads; not the agents, sshd or the
    # fail2ban servers): a figure a busy machine inflates far less than the wall clock.
    cpu = time.process_time() - cpu_started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    archived = sum(item.archived for item in result.hosts if item.ok)
    failed = [f"{item.host} ({item.error})" for item in result.hosts if not item.ok]
    rows = [
        (f"seeding {len(servers)} × {args.rows} bans (fail2ban's own work)", f"{seeding:9.1f} s"),
        (f"plain SQL read of the {read_rows} rows (floor)", f"{floor:9.2f} s"),
        (
            f"history sync, {len(servers)} hosts × {args.rows} new rows",
            f"{seconds:9.2f} s  {ratio(seconds, floor)}  (target ≤ 15 s); {archived} archived"
            f" into {args.engine}",
        ),
        ("  CPU of this process during the sync", f"{cpu:9.2f} s"),
    ]
    if failed:
        rows.append(("hosts that failed", ", ".join(failed)))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
