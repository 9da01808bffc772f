"""The jail list (overview_get) on fail2ban 1.0 and 1.1: round trips and time vs the socket floor.

    .venv/bin/python bench/bench_jail_list.py [--jails 50] [--repeat 30] [--version 1.0|1.1]

fail2ban 1.0.2 needs `status` + `status J short` per jail (1 + N round trips); 1.1.0
answers `status --all short` (every jail's counters) and `stats` (every backend) in one
reply each. For each unpacked version (or the one --version / JAILADMIN_TEST_FAIL2BAN
names) it starts a private server with N jails, counts the commands overview_get sends
(through a recording proxy) and times it against the same commands sent raw over one
socket. Runs in a throw-away directory (bench/common.py): never var/ or the site's database.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import django_setup, median_ms, print_table, ratio  # noqa: E402

BANS_PER_JAIL = 20


def raw_round_trips(socket_path: str, commands: list[list[str]]) -> None:
    """The floor: the same commands over one raw socket, replies read but not decoded."""
    from jails.fail2ban.protocol import CLOSE, END, encode_request

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(socket_path)
        for command in commands:
            sock.sendall(encode_request(command))
            reply = b""
            while not reply.endswith(END):
                reply += sock.recv(1 << 20)
        sock.sendall(CLOSE + END)


def measure(version: str, *, jails: int, repeat: int) -> list[tuple[str, str]]:
    from jails.fail2ban.server import JailSpec, PrivateServer, find_fail2ban
    from jails.services import jails as jail_service
    from jails.state import RuntimeSettings, build_runtime_state
    from tests.support.recording_proxy import RecordingProxy

    base = Path(tempfile.mkdtemp(prefix="jl-", dir="/tmp"))
    specs = [JailSpec(f"jail{i:02d}") for i in range(jails)]
    server = PrivateServer(base, specs, install=find_fail2ban(version=version))
    server.start()
    try:
        with server.client().connection() as conn:
            for i, spec in enumerate(specs):
                ips = [f"10.{i}.0.{n}" for n in range(1, BANS_PER_JAIL + 1)]
                conn.send("set", spec.name, "banip", *ips)
        state = build_runtime_state(RuntimeSettings(fail2ban_socket=str(server.socket_path)))
        capabilities = jail_service.capabilities_get(state)
        with RecordingProxy(str(server.socket_path)) as proxy:
            proxied = build_runtime_state(RuntimeSettings(fail2ban_socket=proxy.path))
            proxied.jail_service.capabilities = capabilities
            proxied.jail_service.capabilities_endpoint = (
                proxied.jail_service.client.endpoint_identity()
            )
            overview = jail_service.overview_get(proxied)
            sent = list(proxy.commands)
        assert overview.jail_count == jails and overview.currently_banned == jails * BANS_PER_JAIL
        per_jail = [["status"]] + [["status", s.name, "short"] for s in specs]
        one_reply = [["status", "--all", "short"], ["stats"]]
        path = str(server.socket_path)
        page = median_ms(lambda: jail_service.overview_get(state), repeat=repeat)
        floor_each = median_ms(lambda: raw_round_trips(path, per_jail), repeat=repeat)
        rows = [
            ("fail2ban version", capabilities.version),
            ("overview_get: round trips", f"{len(sent):8d}"),
            ("overview_get", f"{page:8.2f} ms"),
            (f"floor: `status` + `status J short` x{jails} raw", f"{floor_each:8.2f} ms"),
        ]
        if capabilities.status_all:
            floor_all = median_ms(lambda: raw_round_trips(path, one_reply), repeat=repeat)
            rows += [
                ("floor: `status --all short` + `stats` raw", f"{floor_all:8.2f} ms"),
                ("overview_get ÷ its floor (2 round trips)", ratio(page, floor_all)),
                ("1 + N floor ÷ 2-round-trip floor", ratio(floor_each, floor_all)),
            ]
        else:
            rows.append(("overview_get ÷ its floor (1 + N round trips)", ratio(page, floor_each)))
        return rows
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jails", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--version", choices=("1.0", "1.1"), default=None)
    args = parser.parse_args()
    chosen = args.version or os.environ.get("JAILADMIN_TEST_FAIL2BAN")
    django_setup()
    from jails.fail2ban.server import UNPACKED_ROOTS, find_fail2ban

    versions = [chosen] if chosen else list(UNPACKED_ROOTS)
    measured = 0
    for version in versions:
        try:
            find_fail2ban(version=version)
        except FileNotFoundError as exc:
            print(f"fail2ban {version}: skipped ({exc})")
            continue
        rows = measure(version, jails=args.jails, repeat=args.repeat)
        print_table(
            f"Jail list, {args.jails} jails x {BANS_PER_JAIL} bans, fail2ban {version}", rows
        )
        measured += 1
    return 0 if measured else 1


if __name__ == "__main__":
    raise SystemExit(main())
