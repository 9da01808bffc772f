"""The fleet (issue 12): /jails/ over N hosts vs one, a hung host, the history sync over N hosts.

    .venv/bin/python bench/bench_fleet.py [--hosts 10] [--repeat 15] [--deadline 2]
                                          [--rows 10000] [--skip-history]
                                          [--history-only] [--engine sqlite|postgres]
                                          [--profile FILE] [--cpu-repeat 40]
                                          [--profile-page FILE]

Every host is reached exactly as a remote one: a real sshd on 127.0.0.1 (tests/support/sshd.py)
whose authorized_keys force the agent of this checkout (`--stdio`) in front of one private
fail2ban server per host. Three figures, each next to the floor it is compared with:

1. GET /jails/ with N hosts ÷ the same page with one of them (target ≤ 2×: the hosts are asked
   in parallel, so N hosts should cost about one host plus rendering N times the rows).
   Next to it, the CPU of one page split by process (--cpu-repeat pages, 1 host → N hosts):
   the web process (its request thread and the per-host threads), the ssh clients, and the
   far side — sshd, the agents, the fail2ban servers — which on a real fleet runs on the
   hosts but here shares this machine's cores. --profile-page FILE: cProfile (CPU time, every
   thread) of the N-host page, for `python -m pstats FILE`.
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


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float | None:
    """utime + stime of `pid` (all its threads, live and ended) in seconds; None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": utime and stime are fields 14 and 15, counted from 1.
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# The process groups a page's CPU is split into: on a real fleet all but the first two run
# on the hosts, not next to the site.
GROUPS = ("web process", "ssh clients", "sshd", "agents", "fail2ban servers")
WEB_THREADS = ("  request thread", "  other threads (the hosts')")


def process_groups(sshd_pid: int, server_pids: list[int]) -> dict[str, list[int]]:
    """The pids of each group now (the web process is this one: see page_cpu)."""
    from tests.support.processes import descendants

    servers = set(server_pids)
    below_sshd = descendants(sshd_pid)
    return {
        "ssh clients": [
            pid
            for pid in descendants(os.getpid())
            if pid not in servers and process_name(pid) == "ssh"
        ],
        "sshd": [sshd_pid] + [pid for pid in below_sshd if process_name(pid) == "sshd"],
        # The forced command (env → python -m jails.agent) and a shell sshd may run it with.
        "agents": [pid for pid in below_sshd if process_name(pid) != "sshd"],
        "fail2ban servers": server_pids,
    }


def page_cpu(
    get: Callable[[], object], groups: dict[str, list[int]], *, repeat: int
) -> tuple[dict[str, float], float]:
    """CPU seconds per page of each group over `repeat` pages, and the wall seconds per page.

    The web process is this one (the test client renders the page in-process; the fleet
    threads are its threads): time.process_time(), which is not tick-rounded as /proc is.
    """
    get()  # warm: every host's connection open and its capabilities known
    before = {pid: process_cpu(pid) for pids in groups.values() for pid in pids}
    web, own, wall = time.process_time(), time.thread_time(), time.perf_counter()
    for _ in range(repeat):
        get()
    web, own = time.process_time() - web, time.thread_time() - own
    wall = time.perf_counter() - wall
    after = {pid: process_cpu(pid) for pid in before}
    gone = [pid for pid, value in after.items() if value is None]
    if gone:
        # A process that ended took its CPU with it: the split would be short, so say so.
        raise SystemExit(f"processes ended while measuring the CPU split: {gone}")
    cpu = {"web process": web / repeat, "  request thread": own / repeat}
    cpu["  other threads (the hosts')"] = cpu["web process"] - cpu["  request thread"]
    for name, pids in groups.items():
        cpu[name] = sum(after[pid] - before[pid] for pid in pids) / repeat  # type: ignore[operator]
    return cpu, wall / repeat


def cpu_rows(
    one: tuple[dict[str, float], float],
    many: tuple[dict[str, float], float],
    hosts: int,
    repeat: int,
) -> list[tuple[str, str]]:
    """The CPU split, 1 host next to N hosts, per page (ms) and as a ratio to 1 host."""
    (one_cpu, one_wall), (many_cpu, many_wall) = one, many

    def line(label: str, a: float, b: float) -> tuple[str, str]:
        # One host asks on the request thread: its "other threads" are none (no ratio).
        shown = ratio(b, a) if a >= 0.0001 else "       — "
        return (label, f"{a * 1000:7.1f} → {b * 1000:7.1f} ms  {shown}")

    far = GROUPS[2:]
    rows = [(f"CPU per page over {repeat} pages, 1 host → {hosts} hosts", "")]
    rows += [
        line(f"  {name}", one_cpu[name], many_cpu[name])
        for name in (GROUPS[0], *WEB_THREADS, *GROUPS[1:])
    ]
    rows += [
        line(
            "  far side (sshd + agents + fail2ban)",
            sum(one_cpu[name] for name in far),
            sum(many_cpu[name] for name in far),
        ),
        line(
            "  all processes",
            sum(one_cpu[name] for name in GROUPS),
            sum(many_cpu[name] for name in GROUPS),
        ),
        line("  wall clock per page", one_wall, many_wall),
    ]
    return rows


def profile_pages(get: Callable[[], object], *, repeat: int, path: Path) -> None:
    """cProfile `repeat` pages into `path`: this thread and every thread started meanwhile
    (the fleet's per-host threads), each with a profiler of its own, merged at the end.

    The timer is each thread's CPU time: with a wall clock, the time a thread waits for the
    GIL or for a host's reply would show as the cost of whatever it was calling then."""
    import pstats
    import threading

    started: list[cProfile.Profile] = []

    def thread_hook(*_: object) -> None:
        # The thread's first event: from here on its own profiler replaces this hook.
        profiler = cProfile.Profile(time.thread_time)
        started.append(profiler)
        profiler.enable()

    get()  # warm
    main = cProfile.Profile(time.thread_time)
    threading.setprofile(thread_hook)
    main.enable()
    try:
        for _ in range(repeat):
            get()
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
    stats = pstats.Stats(main)
    for profiler in started:
        stats.add(profiler)
    stats.dump_stats(path)
    print(f"profile of {repeat} pages ({len(started)} threads) in {path}")


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
    parser.add_argument(
        "--cpu-repeat", type=int, default=40, help="pages the CPU split is measured over"
    )
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
    parser.add_argument(
        "--profile-page", type=Path, help="cProfile --cpu-repeat N-host pages into FILE"
    )
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
            server_pids = [server.read_pid() or 0 for server in servers]
            assert sshd.process is not None
            enable({hosts[0].name})
            one = statistics.median(samples_ms(jail_list, repeat=args.repeat))
            # One host's processes only (the others' idle servers are not that site's cost).
            one_cpu = page_cpu(
                jail_list, process_groups(sshd.process.pid, server_pids[:1]), repeat=args.cpu_repeat
            )
            enable({host.name for host in hosts})
            many = statistics.median(samples_ms(jail_list, repeat=args.repeat))
            many_cpu = page_cpu(
                jail_list, process_groups(sshd.process.pid, server_pids), repeat=args.cpu_repeat
            )
            if args.profile_page:
                profile_pages(jail_list, repeat=args.cpu_repeat, path=args.profile_page)
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
            rows += cpu_rows(one_cpu, many_cpu, args.hosts, args.cpu_repeat)

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
