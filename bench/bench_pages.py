"""Jail pages against 50 jails × 200 bans: server time vs the socket floor and vs
one `fail2ban-client` process per command (the approach most peers take).

    .venv/bin/python bench/bench_pages.py
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import django_setup, median_ms, print_table  # noqa: E402

JAILS = 50
BANS_PER_JAIL = 200
REPEAT = 30


def main() -> None:
    django_setup()
    from dataclasses import replace

    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.test import Client

    from jails.fail2ban.protocol import END, encode_request, restricted_loads
    from jails.fail2ban.server import JailSpec, PrivateServer
    from jails.models import SiteSettings
    from jails.state import build_runtime_state

    base = Path(tempfile.mkdtemp(prefix="jb-", dir="/tmp"))
    server = PrivateServer(base, [JailSpec(f"jail{i:02d}") for i in range(JAILS)])
    server.start()
    try:
        client = server.client()
        with client.connection() as conn:
            for i in range(JAILS):
                ips = [f"10.{i}.{n // 250}.{n % 250 + 1}" for n in range(BANS_PER_JAIL)]
                conn.send("set", f"jail{i:02d}", "banip", *ips)

        config = apps.get_app_config("jails")
        config.state = build_runtime_state(
            replace(config.state.settings, fail2ban_socket=str(server.socket_path), page_size=50)
        )
        SiteSettings.objects.update_or_create(
            singleton=1,
            defaults={"setup_complete": True, "fail2ban_socket": str(server.socket_path)},
        )
        user = get_user_model().objects.create_superuser("bench", password="bench-password-123")
        web = Client(HTTP_HOST="127.0.0.1")
        web.force_login(user)
        assert web.get("/jails/").status_code == 200

        def floor() -> None:
            # The same commands the page needs, back to back on one raw connection.
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(server.socket_path))
                for command in [["status"]] + [["status", f"jail{i:02d}"] for i in range(JAILS)]:
                    sock.sendall(encode_request(command))
                    data = b""
                    while not data.endswith(END):
                        data += sock.recv(65536)
                    restricted_loads(data[: -len(END)])

        def one_process_per_command() -> None:
            argv = server.configure_command()
            subprocess.run([*argv, "status"], check=True, capture_output=True)
            for i in range(JAILS):
                subprocess.run([*argv, "status", f"jail{i:02d}"], check=True, capture_output=True)

        list_ms = median_ms(lambda: web.get("/jails/"), repeat=REPEAT)
        detail_ms = median_ms(lambda: web.get("/jails/jail07/"), repeat=REPEAT)
        floor_ms = median_ms(floor, repeat=REPEAT)

        def detail_floor() -> None:
            with client.connection() as conn:
                conn.send("status", "jail07")
                conn.send("get", "jail07", "banip", "--with-time")

        detail_floor_ms = median_ms(detail_floor, repeat=REPEAT)
        process_ms = median_ms(one_process_per_command, repeat=3, warmup=1)
        print_table(
            f"Jail pages: {JAILS} jails × {BANS_PER_JAIL} bans, median of {REPEAT} (server side)",
            [
                ("GET /jails/", f"{list_ms:8.1f} ms"),
                ("floor: status + status J ×50, one socket", f"{floor_ms:8.1f} ms"),
                ("one fail2ban-client process per command", f"{process_ms:8.1f} ms"),
                ("/jails/ ÷ floor (target ≤ 2)", f"{list_ms / floor_ms:8.2f} ×"),
                ("processes ÷ /jails/ (target ≥ 50)", f"{process_ms / list_ms:8.1f} ×"),
                ("GET /jails/jail07/ (200 bans)", f"{detail_ms:8.1f} ms"),
                ("floor: status J + get J banip --with-time", f"{detail_floor_ms:8.1f} ms"),
            ],
        )
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
