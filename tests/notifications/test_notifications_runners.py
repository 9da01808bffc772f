"""Two real `manage.py run_jobs` processes against one database: a rule fires exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import wait_until

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]

SEED = """
import time
from jails.history.models import BanEvent
from jails.notifications.models import Channel, Rule
channel = Channel.objects.create(name="hook", kind="webhook", target={url!r}, secret="k3y")
rule = Rule.objects.create(name="burst", kind="burst", params={{"threshold": 100, "minutes": 10}})
rule.channels.add(channel)
now = int(time.time())
BanEvent.objects.bulk_create(
    BanEvent(jail="sshd", ip=f"10.1.{{n // 250}}.{{n % 250 + 1}}", network="10.1.0.0/16",
             timeofban=now - 30, bantime=600)
    for n in range(1000)
)
"""


def test_two_job_runners_deliver_a_firing_rule_exactly_once(f2b, tmp_path, http_receiver):
    http_receiver.behaviour.secret = "k3y"
    db = tmp_path / "jobs.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        JAILADMIN_DATABASE_URL=f"sqlite:///{db}",
        JAILADMIN_FAIL2BAN_SOCKET=str(f2b.socket_path),
        JAILADMIN_DEBUG="false",
        JAILADMIN_SECRET_KEY="test-key-for-two-runners-0123456789abcdef",
        JAILADMIN_NOTIFY_TIMEOUT="5",
        PYTHONUNBUFFERED="1",
    )
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=REPO, timeout=180)
    subprocess.run(
        [*manage, "shell", "-c", SEED.format(url=http_receiver.url)],
        env=env,
        check=True,
        cwd=REPO,
        timeout=120,
    )
    only = ["--only", "notify-evaluate", "--only", "notify-deliver"]
    runners = [
        subprocess.Popen(
            [*manage, "run_jobs", "-v2", *only],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs: list[list[str]] = [[] for _ in runners]

    def read(i: int) -> None:
        for line in runners[i].stdout:
            outputs[i].append(line)

    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(2)]
    for reader in readers:
        reader.start()
    try:
        wait_until(lambda: http_receiver.requests, timeout=120)
        # Both runners go round again (the delivery job is due every 5 s): nothing more is sent.
        counts = [sum("pass complete" in line for line in out) for out in outputs]
        wait_until(
            lambda: all(
                sum("pass complete" in line for line in out) >= n + 2
                for out, n in zip(outputs, counts, strict=True)
            ),
            timeout=120,
        )
    finally:
        for proc in runners:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=60) for proc in runners]
        for reader in readers:
            reader.join(timeout=5)
    assert codes == [0, 0], outputs
    assert len(http_receiver.requests) == 1, outputs
    assert http_receiver.behaviour.bad_signatures == 0
    assert http_receiver.requests[0].json()["count"] == 1000
    evaluated = [
        out for out in outputs if any(line.startswith("notify-evaluate ok") for line in out)
    ]
    assert len(evaluated) == 1, outputs
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status, attempts FROM notifications_notification").fetchall()
        claimed = conn.execute(
            "SELECT COUNT(*) FROM notifications_notification WHERE claimed_by != ''"
        ).fetchone()[0]
    assert rows == [("sent", 1)]
    assert claimed == 0
