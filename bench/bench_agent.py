"""The host agent's cost: the same pages and the same bulk ban, direct and through the agent.

    .venv/bin/python bench/bench_agent.py [--repeat 30] [--bulk 100000] [--bulk-repeat 3]

One private fail2ban (50 jails × 200 bans, no-op actions) and one `python -m jails.agent
--listen` in front of it; two runtime states of the same site, one with the socket in
process (direct, today's default) and one with `fail2ban_agent` set (the production
shape: the web process unprivileged). Direct and agent runs alternate, so both see the
same load on a shared machine, and each mode's figure is its own floor's partner:

1. `GET /jails/` with 50 jails: agent ÷ direct (goal ≤ 1.3×), and the jail page (200 bans).
2. A 100 000-address bulk ban through the service layer (jails.services.bans.ips_ban, the
   code behind the page, the admin and `manage.py jails ban`): agent ÷ direct (goal ≤ 1.2×).
3. The agent's resident memory while serving (VmRSS) and its peak (VmHWM): goal ≤ 30 MB.

Runs in a throw-away directory (bench/common.py), never the site's database.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import django_setup, print_table, ratio, site_client  # noqa: E402

JAILS = 50
BANS_PER_JAIL = 200
BULK_JAIL = "bulk"
PAGE_GOAL = 1.3
BULK_GOAL = 1.2
RSS_GOAL_MB = 30.0


def addresses(prefix: int, count: int) -> list[str]:
    return [f"10.{prefix}.{n >> 8 & 255}.{n & 255}" for n in range(1, count + 1)]


def bulk_addresses(count: int) -> list[str]:
    return [f"11.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(1, count + 1)]


def proc_status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def alternate_ms(
    runs: dict[str, Callable[[], object]], *, repeat: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Milliseconds of each run, taken in turn (a, b, a, b, ...) so drifting load hits both."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            samples[name].append((time.perf_counter() - started) * 1000)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--bulk", type=int, default=100_000)
    parser.add_argument("--bulk-repeat", type=int, default=3)
    args = parser.parse_args()

    django_setup()
    from django.apps import apps

    from jails.fail2ban.server import JailSpec, PrivateServer
    from jails.services.audit import Actor
    from jails.services.bans import ips_ban
    from jails.state import RuntimeState, build_runtime_state
    from tests.support.agent_process import AgentProcess

    base = Path(tempfile.mkdtemp(prefix="jb-", dir="/tmp"))
    jails = [JailSpec(f"jail{i:02d}") for i in range(JAILS)] + [JailSpec(BULK_JAIL, bantime="1h")]
    server = PrivateServer(base, jails, record_actions=False)
    server.start()
    agent: AgentProcess | None = None
    config = apps.get_app_config("jails")
    try:
        admin = server.client(timeout=120)
        with admin.connection() as conn:
            for i in range(JAILS):
                conn.send("set", f"jail{i:02d}", "banip", *addresses(i, BANS_PER_JAIL))
        agent = AgentProcess(str(server.socket_path), options=["--timeout", "120"])
        agent.start()

        seed = replace(
            config.state.settings,
            fail2ban_socket=str(server.socket_path),
            fail2ban_timeout=120.0,
            page_size=50,
        )
        states: dict[str, RuntimeState] = {
            "direct": build_runtime_state(seed),
            "agent": build_runtime_state(replace(seed, fail2ban_agent=agent.address)),
        }
        web = site_client(str(server.socket_path))

        def page(mode: str, path: str) -> Callable[[], object]:
            def get() -> object:
                config.state = states[mode]
                response = web.get(path)
                assert response.status_code == 200, (mode, path, response.status_code)
                return response

            return get

        rows: list[tuple[str, str]] = []
        within = True
        for label, path in (
            (f"GET /jails/ ({JAILS} jails)", "/jails/"),
            ("GET /jails/jail07/ (200 bans)", "/jails/jail07/"),
        ):
            samples = alternate_ms(
                {"direct": page("direct", path), "agent": page("agent", path)},
                repeat=args.repeat,
            )
            direct, through = (statistics.median(samples[m]) for m in ("direct", "agent"))
            goal = PAGE_GOAL if path == "/jails/" else None
            if goal is not None:
                within &= through <= goal * direct
            rows += [
                (label + ", direct", f"{direct:8.1f} ms"),
                (label + ", through the agent", f"{through:8.1f} ms"),
                (
                    "  agent ÷ direct" + (f" (goal ≤ {goal})" if goal else ""),
                    ratio(through, direct),
                ),
            ]
        rss_pages_kb = proc_status_kb(agent.pid, "VmRSS")

        # --- The bulk ban ------------------------------------------------------------------
        def db_bans() -> int:
            with sqlite3.connect(f"file:{server.dbfile}?mode=ro", uri=True) as db:
                return int(
                    db.execute("SELECT COUNT(*) FROM bans WHERE jail = ?", (BULK_JAIL,)).fetchone()[
                        0
                    ]
                )

        def wait_for(predicate: Callable[[], bool], what: str) -> None:
            deadline = time.monotonic() + 600
            while not predicate():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"fail2ban's database did not settle ({what})")
                time.sleep(0.1)

        def settle() -> None:
            # fail2ban writes bans to its database after answering; a run must not pay for
            # the previous run's writes (see bench_bulk_ban.py).
            held = len(admin.send("get", BULK_JAIL, "banip"))
            wait_for(lambda: db_bans() >= held, "ban rows")
            admin.send("unban", "--all")
            wait_for(lambda: db_bans() == 0, "unban")
            with admin.connection() as conn:  # `unban --all` emptied the page jails too
                for i in range(JAILS):
                    conn.send("set", f"jail{i:02d}", "banip", *addresses(i, BANS_PER_JAIL))

        lines = bulk_addresses(args.bulk)
        actor = Actor(name="bench", source="command")
        bulk: dict[str, list[float]] = {"direct": [], "agent": []}
        for _ in range(args.bulk_repeat):
            for mode in ("direct", "agent"):
                settle()
                started = time.perf_counter()
                report = ips_ban(states[mode], jail=BULK_JAIL, lines=lines, actor=actor)
                bulk[mode].append(time.perf_counter() - started)
                assert report.ok and report.changed == len(lines), report.error or report.counts
        direct_s, agent_s = (statistics.median(bulk[m]) for m in ("direct", "agent"))
        pairs = sorted(a / d for a, d in zip(bulk["agent"], bulk["direct"], strict=True))
        within &= agent_s <= BULK_GOAL * direct_s
        rows += [
            (f"bulk ban {args.bulk:,} addresses, direct", f"{direct_s:8.2f} s"),
            (f"bulk ban {args.bulk:,} addresses, through the agent", f"{agent_s:8.2f} s"),
            (
                f"  agent ÷ direct (goal ≤ {BULK_GOAL})",
                ratio(agent_s, direct_s) + f"  (pairs {pairs[0]:.2f}-{pairs[-1]:.2f})",
            ),
        ]

        rss_kb = proc_status_kb(agent.pid, "VmRSS")
        peak_kb = proc_status_kb(agent.pid, "VmHWM")
        within &= peak_kb / 1024 <= RSS_GOAL_MB
        rows += [
            ("agent memory after the pages (VmRSS)", f"{rss_pages_kb / 1024:8.1f} MB"),
            ("agent memory after the bulk bans (VmRSS)", f"{rss_kb / 1024:8.1f} MB"),
            (f"agent peak memory (VmHWM, goal ≤ {RSS_GOAL_MB:g} MB)", f"{peak_kb / 1024:8.1f} MB"),
        ]
        print_table(
            f"Host agent against direct, medians (pages: {args.repeat} each, alternating;"
            f" bulk: {args.bulk_repeat} each)",
            rows,
        )
        print("agent within its goals" if within else "AGENT GOAL MISSED")
        return 0
    finally:
        if agent is not None:
            agent.cleanup()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
