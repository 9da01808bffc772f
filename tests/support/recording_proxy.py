"""A transparent recording proxy in front of the real private fail2ban socket.

Every byte goes through unchanged to the real server and back, so the code under test talks
to real fail2ban; on the way, each framed request is decoded (with the restricted unpickler:
plain data only) and recorded, so a test can assert exactly what reached the socket.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
from typing import Any

from jails.fail2ban.protocol import CLOSE, END, restricted_loads


class RecordingProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self._dir = tempfile.mkdtemp(prefix="rp", dir="/tmp")
        self.path = os.path.join(self._dir, "p.sock")
        self.commands: list[Any] = []
        self.raw_requests: list[bytes] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None

    def __enter__(self) -> RecordingProxy:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        listener.settimeout(0.05)
        self._listener = listener
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def clear(self) -> None:
        with self._lock:
            self.commands.clear()
            self.raw_requests.clear()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            self._spawn(self._client_to_server, client, upstream)
            self._spawn(self._pipe, upstream, client)

    def _client_to_server(self, client: socket.socket, upstream: socket.socket) -> None:
        buffer = b""
        client.settimeout(0.05)
        try:
            while not self._stop.is_set():
                try:
                    chunk = client.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                buffer += chunk
                while END in buffer:
                    payload, buffer = buffer.split(END, 1)
                    if payload != CLOSE:
                        self._record(payload)
                upstream.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (upstream, client):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            client.close()

    def _record(self, payload: bytes) -> None:
        try:
            command = restricted_loads(payload)
        except Exception:  # noqa: BLE001 - an undecodable request is recorded as raw bytes
            command = None
        with self._lock:
            self.raw_requests.append(payload)
            self.commands.append(command)

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            source.close()
