"""Blocklist fixtures: a private fail2ban with a `blocklist` jail, and a local HTTP server.

The session's shared server (tests/conftest.py) has no `blocklist` jail, and adding one
there would change what every other test sees; this directory runs its own (about 0.2 s).
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jails.fail2ban.server import JailSpec, PrivateServer

BLOCKLIST_JAILS = (
    JailSpec("blocklist", bantime="1d"),
    JailSpec("sshd", maxretry=3, findtime="10m", bantime="10m"),
)


@pytest.fixture(scope="session")
def bl_server() -> Iterator[PrivateServer]:
    base = Path(tempfile.mkdtemp(prefix="jbl-", dir="/tmp"))
    server = PrivateServer(base, BLOCKLIST_JAILS)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def bl_f2b(bl_server: PrivateServer) -> PrivateServer:
    """The blocklist server, reset: no bans, configured settings."""
    if not bl_server.is_running():
        bl_server.start()
    bl_server.reset()
    return bl_server


@pytest.fixture
def bl_state(bl_f2b: PrivateServer):
    """A fresh runtime state pointed at the blocklist server, installed for views and commands."""
    from django.apps import apps

    from jails.state import build_runtime_state

    config = apps.get_app_config("jails")
    settings = replace(config.state.settings, fail2ban_socket=str(bl_f2b.socket_path))
    config.state = build_runtime_state(settings)
    return config.state


def banned(server: PrivateServer, jail: str = "blocklist") -> set[str]:
    return {str(ip) for ip in server.client().send("get", jail, "banip")}


# --- A local HTTP server serving lists --------------------------------------------------------
@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str = ""  # answer 304 to If-None-Match with this
    delay: float = 0.0  # before the headers (a slow server)
    gzip: bool = False  # Content-Encoding: gzip
    stream: int = 0  # send this many bytes, in 1 MB chunks, no Content-Length (the cap test)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


class ListServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests.append(Seen(self.path, dict(self.headers.items())))
                route = server.routes.get(self.path)
                if route is None:
                    self._send(404, b"not found")
                    return
                if route.delay:
                    time.sleep(route.delay)
                if route.etag and self.headers.get("If-None-Match") == route.etag:
                    self.send_response(304)
                    self.send_header("ETag", route.etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route.stream:
                    self.send_response(route.status)
                    self.send_header("Connection", "close")
                    self.end_headers()
                    chunk = b"11.0.0.1\n" * (1024 * 1024 // 9)
                    sent = 0
                    try:
                        while sent < route.stream:
                            self.wfile.write(chunk)
                            sent += len(chunk)
                    except OSError:
                        pass  # the client stopped reading at its cap
                    self.close_connection = True
                    return
                body = route.body
                headers = dict(route.headers)
                if route.gzip:
                    body = gzip.compress(body)
                    headers["Content-Encoding"] = "gzip"
                if route.etag:
                    headers["ETag"] = route.etag
                self._send(route.status, body, headers)

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None):
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, path: str) -> int:
        return sum(1 for seen in self.requests if seen.path == path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def list_server() -> Iterator[ListServer]:
    server = ListServer()
    try:
        yield server
    finally:
        server.close()
