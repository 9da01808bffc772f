"""Jail pages: server time against the socket floor measured in the same run.

    .venv/bin/python bench/bench_pages.py [--repeat 30]

1. The jail list with 50 jails × 200 bans, against `status` + `status J` ×50 on one raw
   socket, and against one `fail2ban-client` process per command (what peers do).
2. One jail's page with 200 and with 10 000 bans, against its floor: `status J` +
   `get J banip --with-time` on one connection (the least any page showing the counters
   and the bans must ask). Goal: ≤ 2× the floor.
3. The counters poll (every open jail page, every 10 s): fail2ban commands per poll,
   counted through a recording proxy, and its time.

Runs in a throw-away directory with its own fail2ban servers (bench/common.py):
never the site's database, whatever the environment says.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import django_setup, median_ms, print_table, ratio, site_client  # noqa: E402

JAILS = 50
BANS_PER_JAIL = 200
BIG_JAIL_BANS = 10_000
GOAL = 2.0


def addresses(prefix: int, count: int) -> list[str]:
    return [f"10.{prefix}.{n >> 8 & 255}.{n & 255}" for n in range(1, count + 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    repeat = args.repeat

    django_setup()
    from django.apps import apps

    from jails.fail2ban.protocol import END, encode_request, restricted_loads
    from jails.fail2ban.server import JailSpec, PrivateServer
    from jails.state import build_runtime_state
    from tests.support.recording_proxy import RecordingProxy

    base = Path(tempfile.mkdtemp(prefix="jb-", dir="/tmp"))
    jails = [JailSpec(f"jail{i:02d}") for i in range(JAILS)] + [JailSpec("big"), JailSpec("empty")]
    # No-op actions: a recorded action would spawn a shell per ban while seeding.
    server = PrivateServer(base, jails, record_actions=False)
    server.start()
    config = apps.get_app_config("jails")
    try:
        client = server.client(timeout=120)
        with client.connection() as conn:
            for i in range(JAILS):
                conn.send("set", f"jail{i:02d}", "banip", *addresses(i, BANS_PER_JAIL))
            big = addresses(200, BIG_JAIL_BANS)
            for start in range(0, len(big), 2000):
                conn.send("set", "big", "banip", *big[start : start + 2000])

        def use_socket(path: str) -> None:
            config.state = build_runtime_state(
                replace(config.state.settings, fail2ban_socket=path, page_size=50)
            )

        use_socket(str(server.socket_path))
        web = site_client(str(server.socket_path))
        assert web.get("/jails/").status_code == 200

        def raw(commands: list[list[str]]) -> None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(server.socket_path))
                for command in commands:
                    sock.sendall(encode_request(command))
                    data = b""
                    while not data.endswith(END):
                        data += sock.recv(65536)
                    restricted_loads(data[: -len(END)])

        list_floor = [["status"]] + [["status", f"jail{i:02d}"] for i in range(JAILS)]
        list_ms = median_ms(lambda: web.get("/jails/"), repeat=repeat)
        list_floor_ms = median_ms(lambda: raw(list_floor), repeat=repeat)

        def one_process_per_command() -> None:
            argv = server.configure_command()
            for command in list_floor:
                subprocess.run([*argv, *command], check=True, capture_output=True)

        process_ms = median_ms(one_process_per_command, repeat=3, warmup=1)
        rows = [
            (f"GET /jails/ ({JAILS} jails)", f"{list_ms:8.1f} ms"),
            ("  floor: status + status J ×50, one socket", f"{list_floor_ms:8.1f} ms"),
            ("  /jails/ ÷ floor (goal ≤ 2)", ratio(list_ms, list_floor_ms)),
            ("  one fail2ban-client process per command", f"{process_ms:8.1f} ms"),
            ("  processes ÷ /jails/ (goal ≥ 50)", ratio(process_ms, list_ms)),
        ]

        within_goal = True
        page_times: dict[str, float] = {}
        floor_times: dict[str, float] = {}
        for jail, count in (("jail07", BANS_PER_JAIL), ("big", BIG_JAIL_BANS)):
            page_repeat = repeat if count <= 1000 else max(repeat // 3, 5)
            page_ms = median_ms(lambda j=jail: web.get(f"/jails/{j}/"), repeat=page_repeat)
            floor = [["status", jail], ["get", jail, "banip", "--with-time"]]
            floor_ms = median_ms(lambda f=floor: raw(f), repeat=page_repeat)
            within_goal &= page_ms <= GOAL * floor_ms
            page_times[jail], floor_times[jail] = page_ms, floor_ms
            rows += [
                (f"GET /jails/{jail}/ ({count:,} bans, 50 a page)", f"{page_ms:8.1f} ms"),
                ("  floor: status J + get J banip --with-time", f"{floor_ms:8.1f} ms"),
                ("  page ÷ floor (goal ≤ 2)", ratio(page_ms, floor_ms)),
            ]

        # The page's own fixed cost: the same page with no bans at all. At 200 bans the
        # floor (two commands, ~3 ms) is smaller than rendering the page's forms and
        # settings, so the ratio there measures Django's template engine, not fail2ban.
        empty_ms = median_ms(lambda: web.get("/jails/empty/"), repeat=repeat)
        empty_floor_ms = median_ms(
            lambda: raw([["status", "empty"], ["get", "empty", "banip", "--with-time"]]),
            repeat=repeat,
        )
        rows += [
            ("GET /jails/empty/ (0 bans: the page's fixed cost)", f"{empty_ms:8.1f} ms"),
            ("  floor: status J + get J banip --with-time", f"{empty_floor_ms:8.1f} ms"),
            # What the 200 bans add to the page against what they add to the floor.
            (
                "  200 bans' share: page ÷ floor, each minus its 0-ban figure",
                ratio(
                    page_times["jail07"] - empty_ms,
                    max(floor_times["jail07"] - empty_floor_ms, 0.001),
                ),
            ),
        ]

        poll_headers = {"HX-Request": "true", "HX-Target": "jail-counters"}
        poll_ms = median_ms(lambda: web.get("/jails/big/", headers=poll_headers), repeat=repeat)
        with RecordingProxy(str(server.socket_path)) as proxy:
            use_socket(proxy.path)
            assert web.get("/jails/big/", headers=poll_headers).status_code == 200
            poll_commands = [" ".join(c) for c in proxy.commands]
            proxy.clear()
            assert web.get("/jails/big/").status_code == 200
            page_commands = len(proxy.commands)
        use_socket(str(server.socket_path))
        rows += [
            ("counters poll (10 000 bans): commands", f"{len(poll_commands):8d}   {poll_commands}"),
            ("counters poll: time", f"{poll_ms:8.1f} ms"),
            ("full jail page: commands (status bar included)", f"{page_commands:8d}"),
        ]
        print_table(
            f"Jail pages, median of {repeat} (server side, Django test client)",
            rows,
        )
        print("jail pages within 2× their floor" if within_goal else "JAIL PAGE GOAL MISSED")
        return 0
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
