"""Real receivers for the notification tests: an SMTP server (aiosmtpd) and an HTTP server.

The HTTP server plays a webhook receiver that checks the HMAC signature, an ntfy-style
endpoint for Apprise, and the faults: refusing (a status code), slow (a delay longer than the
sender's timeout). Everything binds to 127.0.0.1 on a free port and is stopped by the fixture.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _MailHandler:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1:<free port>, collecting every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = _MailHandler()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpBehaviour:
    status: int = 200
    delay: float = 0.0
    secret: str = ""  # when set, a request whose signature does not match gets 401
    requests: list[Received] = field(default_factory=list)
    bad_signatures: int = 0


class HttpReceiver:
    """A threading HTTP server recording POSTs; `behaviour` sets its answer for each test."""

    def __init__(self) -> None:
        self.behaviour = HttpBehaviour()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                b = receiver.behaviour
                if b.delay:
                    time.sleep(b.delay)
                status = b.status
                if b.secret:
                    stamp = self.headers.get("X-Jailadmin-Timestamp", "")
                    expected = (
                        "sha256="
                        + hmac.new(
                            b.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256
                        ).hexdigest()
                    )
                    if not hmac.compare_digest(
                        expected, self.headers.get("X-Jailadmin-Signature", "")
                    ):
                        b.bad_signatures += 1
                        status = 401
                if status < 400:
                    b.requests.append(Received(self.path, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                with contextlib.suppress(OSError):  # the sender gave up (timeout test)
                    self.wfile.write(b'{"id": "x"}' if status < 400 else b'{"error": "no"}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def requests(self) -> list[Received]:
        return self.behaviour.requests

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
