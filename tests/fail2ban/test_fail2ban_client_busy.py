"""A busy fail2ban is not a dead one: a full listen backlog is waited out until the deadline.

fail2ban listens with a backlog of 1, and a Unix socket with a full backlog refuses a
(non-blocking) connect with EAGAIN at once. Under 50 connections on a starved CPU that lasted
longer than the client's backoff list, and /healthz said "fail2ban unreachable" (issue 15).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from jails.fail2ban import client as client_module
from jails.fail2ban.client import RETRY_BACKOFF, Fail2banClient
from jails.fail2ban.errors import Fail2banUnreachable
from jails.fail2ban.protocol import END
from jails.fail2ban.server import PrivateServer
from tests.support.fakeserver import pickled_reply

GENEROUS = 30.0  # a deadline no healthy run comes near; nothing asserts on elapsed time


@pytest.fixture
def short_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="busy-", dir="/tmp")  # a socket path must stay short
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_full_backlog_is_waited_out_beyond_the_backoff_list(short_dir, monkeypatch):
    """The server frees its backlog only after more pauses than RETRY_BACKOFF has."""
    path = os.path.join(short_dir, "busy.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    # Fill the backlog: connections the "server" has not accepted yet.
    held = []
    while True:
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        filler.setblocking(False)
        try:
            filler.connect(path)
        except BlockingIOError:
            filler.close()
            break
        held.append(filler)
    assert held, "the backlog never filled"

    pauses: list[float] = []
    free = threading.Event()
    real_sleep = client_module.time.sleep

    def counting_sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == len(RETRY_BACKOFF) + 3:
            free.set()  # the backlog frees only once the backoff list is used up
        real_sleep(seconds)

    def serve() -> None:
        free.wait(GENEROUS)
        for _ in held:  # accept and drop the fillers, then answer the client
            conn, _ = listener.accept()
            conn.close()
        conn, _ = listener.accept()
        with conn:
            data = b""
            while not data.endswith(END):
                data += conn.recv(4096)
            conn.sendall(pickled_reply(0, "pong"))

    monkeypatch.setattr(client_module.time, "sleep", counting_sleep)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert Fail2banClient(path, timeout=GENEROUS).send("ping") == "pong"
    finally:
        free.set()
        thread.join(timeout=GENEROUS)
        listener.close()
        for filler in held:
            filler.close()
    assert len(pauses) > len(RETRY_BACKOFF)
    # Past the list it keeps the last pace, it does not speed up or grow without bound.
    assert pauses[len(RETRY_BACKOFF) :] == [RETRY_BACKOFF[-1]] * (len(pauses) - len(RETRY_BACKOFF))


def test_full_backlog_still_fails_at_the_deadline(short_dir):
    """Waiting out EAGAIN is bounded by the client's timeout: a stuck server is reported."""
    path = os.path.join(short_dir, "stuck.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    held = []
    try:
        while True:
            filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            filler.setblocking(False)
            try:
                filler.connect(path)
            except BlockingIOError:
                filler.close()
                break
            held.append(filler)
        with pytest.raises(Fail2banUnreachable):
            Fail2banClient(path, timeout=0.5, retry_backoff=(0.01, 0.05)).send("ping")
    finally:
        listener.close()
        for filler in held:
            filler.close()


def test_fifty_concurrent_pings_to_a_real_fail2ban_all_answer(f2b: PrivateServer):
    """What /healthz does under 50 connections: every ping gets through, none is "down"."""
    client = Fail2banClient(str(f2b.socket_path), timeout=GENEROUS)
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: client.send("ping"), range(500)))
    assert answers == ["pong"] * 500
