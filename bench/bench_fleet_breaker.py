"""A dead host costs little (issue 12, item 3): pages and "ban everywhere" with a hung host.

    .venv/bin/python bench/bench_fleet_breaker.py [--hosts 5] [--repeat 15] [--deadline 2]

N private fail2ban servers are hosts of kind "socket" (the local host is disabled); one more
host is a fake fail2ban that accepts and never answers (tests/support/fakeserver.py). Figures,
each next to the floor measured in the same run (the same request with the N healthy hosts):

1. GET /jails/, the first request after the host hangs: bounded by the per-host deadline.
2. The next requests within JAILADMIN_HOST_RETRY: the hung host is not asked (breaker), so
   the page costs about the floor (target ≤ 1.5 × the floor).
3. Ban everywhere (POST /ip/<address>/ban/, confirmed) after the cool-down, the hung host
   asked again: bounded by the deadline (target ≤ deadline + 20 %), every healthy host banned.
4. Ban everywhere over the N healthy hosts alone ÷ the same ban on one host: parallel (≤ 2 ×).

Runs in a throw-away directory (bench/common.py): never var/, the site's database or settings.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import django_setup, print_table, ratio, site_client  # noqa: E402

LINK_TIMEOUT = 60.0  # far beyond the deadline: only the deadline can end a wait for the hung host


def parallel(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(fn, items))


def timed_ms(get: Callable[[], object]) -> float:
    start = time.perf_counter()
    get()
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--deadline", type=float, default=2.0, help="per-host deadline (s)")
    args = parser.parse_args()
    work = django_setup()

    from django.apps import apps
    from django.urls import reverse

    from jails.fail2ban.server import JailSpec, PrivateServer
    from jails.hosts.models import Host
    from jails.state import build_runtime_state
    from tests.support.fakeserver import FakeFail2ban, hang

    base = Path(tempfile.mkdtemp(prefix="jfb-", dir="/tmp"))
    servers = [
        PrivateServer(base / f"h{i}", [JailSpec("sshd", bantime="1d")], record_actions=False)
        for i in range(args.hosts)
    ]
    config = apps.get_app_config("jails")
    stack = ExitStack()
    try:
        hung = stack.enter_context(FakeFail2ban(hang()))
        parallel(lambda server: server.start(), servers)
        for index, server in enumerate(servers):
            Host.objects.create(
                name=f"h{index}", kind=Host.Kind.SOCKET, address=str(server.socket_path)
            )
        Host.objects.filter(name="local").update(enabled=False)
        web = site_client(str(base / "no-local-fail2ban.sock"))
        retry = 3 * args.deadline  # long enough to measure within, short enough to wait out

        def fresh_state() -> None:
            config.state = build_runtime_state(
                replace(
                    config.state.settings,
                    fail2ban_timeout=LINK_TIMEOUT,
                    host_deadline=args.deadline,
                    host_retry=retry,
                )
            )

        def jail_list() -> str:
            response = web.get(reverse("jails:jail-list"))
            assert response.status_code == 200, response.status_code
            return str(response.content.decode())

        def ban_everywhere(address: str) -> str:
            response = web.post(
                reverse("jails:ip-ban", args=[address]),
                {"jail": "sshd", "everywhere": "1", "confirm": "yes"},
                HTTP_HX_REQUEST="true",
            )
            assert response.status_code == 200, response.status_code
            return str(response.content.decode())

        fresh_state()
        for _ in range(2):
            jail_list()  # warm up: links built, capabilities probed
        floor = statistics.median(timed_ms(jail_list) for _ in range(args.repeat))

        stuck = Host.objects.create(name="stuck", kind=Host.Kind.SOCKET, address=hung.path)
        first = timed_ms(jail_list)
        asked = hung.connections
        within = [timed_ms(jail_list) for _ in range(args.repeat)]
        skipped = "next try" in jail_list() and hung.connections == asked
        cool = statistics.median(within)

        time.sleep(retry)  # the cool-down is over: the next change asks the hung host again
        # ...but its first call (figure 1's) still runs until the link's timeout, so ask a
        # fresh process state, as a new worker would: the hung host is asked for real.
        fresh_state()
        ban_ms = timed_ms(lambda: ban_everywhere("203.0.113.1"))
        page = ban_everywhere("203.0.113.1")  # already banned on the others: fast, stuck skipped
        banned = sum(
            "203.0.113.1" in {str(ip) for ip in s.client().send("get", "sshd", "banip")}
            for s in servers
        )
        limit = args.deadline * 1000 * 1.2

        stuck.delete()
        fresh_state()
        ban_everywhere("198.51.100.250")  # warm up the links
        Host.objects.exclude(name="h0").update(enabled=False)
        one = statistics.median(
            timed_ms(lambda n=n: ban_everywhere(f"198.51.100.{n}")) for n in range(args.repeat)
        )
        Host.objects.filter(name__startswith="h").update(enabled=True)
        many = statistics.median(
            timed_ms(lambda n=n: ban_everywhere(f"198.51.101.{n}")) for n in range(args.repeat)
        )

        deadline_ms = args.deadline * 1000
        rows = [
            (f"GET /jails/, {args.hosts} healthy hosts (floor)", f"{floor:9.1f} ms"),
            (
                "  + 1 hung host, first request",
                f"{first:9.1f} ms  {ratio(first, deadline_ms)} of the deadline"
                f"  ({'within' if first <= limit else 'OVER'} deadline + 20 %)",
            ),
            (
                f"  + 1 hung host, next {args.repeat} within the cool-down",
                f"{cool:9.1f} ms  {ratio(cool, floor)}  (target ≤ 1.5 ×);"
                f" hung host not asked: {'yes' if skipped else 'NO'}",
            ),
            (
                "ban everywhere, + 1 hung host asked again",
                f"{ban_ms:9.1f} ms  {ratio(ban_ms, deadline_ms)} of the deadline"
                f"  ({'within' if ban_ms <= limit else 'OVER'} deadline + 20 %);"
                f" banned on {banned} of {args.hosts}"
                f"; reported: {'yes' if 'stuck' in page else 'NO'}",
            ),
            ("ban everywhere, 1 host (floor)", f"{one:9.1f} ms"),
            (
                f"ban everywhere, {args.hosts} hosts",
                f"{many:9.1f} ms  {ratio(many, one)}  (target ≤ 2 ×)",
            ),
        ]
        print_table(
            f"Fleet breaker: {args.hosts} socket hosts + 1 hung, deadline {args.deadline:g} s,"
            f" cool-down {retry:g} s (median of {args.repeat})",
            rows,
        )
    finally:
        stack.close()
        parallel(lambda server: server.stop(), servers)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
