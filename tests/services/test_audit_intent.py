"""Every action is audited before it runs: intent first, result after (issue 8, item 4).

Against the real private fail2ban: the record exists while fail2ban is being asked, an
action stopped part-way says so, a database failure when the result is stored does not
hide what fail2ban did, and a worker killed mid-action leaves its "started" record.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import OperationalError, connection

from jails.fail2ban import Fail2banUnreachable, UnknownJail
from jails.fail2ban.client import Connection
from jails.models import AuditEntry
from jails.services import bans as ban_service
from jails.services import control as control_service
from jails.services.audit import Actor
from tests.conftest import wait_until
from tests.support.fakeserver import FakeFail2ban, hang

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
ACTOR = Actor(name="alice", source="web", address="192.0.2.200")


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


def is_ban(command: tuple[str, ...]) -> bool:
    return command[:1] == ("set",) and command[2:3] == ("banip",)


def audit_rows(action: str) -> list[tuple[bool | None, str, str]]:
    return list(AuditEntry.objects.filter(action=action).values_list("ok", "actor", "error"))


@pytest.fixture
def on_send(monkeypatch):
    """on_send(hook): call hook(command) just before each command goes to fail2ban."""

    def install(hook) -> None:
        original = Connection.send

        def send(self, *command: str):
            hook(command)
            return original(self, *command)

        monkeypatch.setattr(Connection, "send", send)

    return install


@contextlib.contextmanager
def audit_writes_fail(when) -> Iterator[None]:
    """Every INSERT/UPDATE of an audit row fails (as a database outage would) once when()."""

    def wrapper(execute, sql, params, many, context):
        if (
            when()
            and "jails_auditentry" in sql
            and sql.lstrip().upper().startswith(("INSERT", "UPDATE"))
        ):
            raise OperationalError("database is locked (injected)")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield


def test_audit_record_exists_while_fail2ban_is_asked(runtime, f2b, on_send):
    seen: list[list[tuple[bool | None, str, str]]] = []
    on_send(lambda command: seen.append(audit_rows("ban")) if is_ban(command) else None)

    report = ban_service.ips_ban(runtime, jail="sshd", lines=["203.0.113.7"], actor=ACTOR)

    assert report.ok and banned(f2b, "sshd") == {"203.0.113.7"}
    assert seen == [[(None, "alice", "")]]  # "started" before the ban reached fail2ban
    [entry] = AuditEntry.objects.filter(action="ban")
    assert (entry.ok, entry.ips, entry.ip_count) == (True, ["203.0.113.7"], 1)


def test_audit_record_of_an_action_cut_off_midway_says_failed(runtime, f2b, on_send):
    def drop_on_ban(command: tuple[str, ...]) -> None:
        if is_ban(command):
            assert audit_rows("ban") == [(None, "alice", "")]
            raise Fail2banUnreachable(str(f2b.socket_path), "connection reset (injected)")

    on_send(drop_on_ban)
    report = ban_service.ips_ban(runtime, jail="sshd", lines=["203.0.113.8"], actor=ACTOR)

    assert not report.ok and "connection reset" in report.error
    assert banned(f2b, "sshd") == set()
    [(ok, actor, error)] = audit_rows("ban")
    assert (ok, actor) == (False, "alice") and "connection reset (injected)" in error


def test_audit_record_of_an_interrupted_action_is_not_ok(runtime, f2b, on_send):
    # gunicorn ends a timed-out worker with SystemExit: the old code stored such an
    # interrupted action as a success.
    def interrupt(command: tuple[str, ...]) -> None:
        if command[:1] == ("unban",):
            raise SystemExit(1)

    on_send(interrupt)
    with pytest.raises(SystemExit):
        ban_service.everything_unban(runtime, actor=ACTOR)
    assert audit_rows("unban_all") == [(False, "alice", "interrupted: SystemExit")]


def test_audit_unreachable_fail2ban_is_recorded_as_failed(runtime, f2b):
    from tests.conftest import point_state_at

    state = point_state_at("/tmp/ja-no-such-dir/f2b.sock")
    with pytest.raises(Fail2banUnreachable):
        control_service.jail_idle_set(state, jail="sshd", idle=True, actor=ACTOR)
    [(ok, actor, error)] = audit_rows("idle")
    assert (ok, actor) == (False, "alice") and "does not exist" in error


def test_audit_result_write_failure_does_not_mask_a_done_ban(runtime, f2b, on_send, caplog):
    sent: list[tuple[str, ...]] = []
    on_send(lambda command: sent.append(command) if is_ban(command) else None)

    with caplog.at_level(logging.ERROR), audit_writes_fail(lambda: bool(sent)):
        report = ban_service.ips_ban(runtime, jail="sshd", lines=["203.0.113.9"], actor=ACTOR)

    # The caller learns what fail2ban did, not a database error about the record.
    assert report.ok and report.changed == 1
    assert banned(f2b, "sshd") == {"203.0.113.9"}
    # The record of the attempt is there; its result could not be written.
    assert audit_rows("ban") == [(None, "alice", "")]
    assert "left as started" in caplog.text


def test_audit_result_write_failure_does_not_mask_a_fail2ban_error(runtime, f2b, on_send):
    sent: list[tuple[str, ...]] = []
    on_send(sent.append)
    with audit_writes_fail(lambda: bool(sent)), pytest.raises(UnknownJail):
        control_service.jail_idle_set(runtime, jail="nosuchjail", idle=True, actor=ACTOR)
    assert audit_rows("idle") == [(None, "alice", "")]


def test_audit_intent_write_failure_stops_the_action(runtime, f2b, on_send):
    sent: list[tuple[str, ...]] = []
    on_send(sent.append)
    with audit_writes_fail(lambda: True), pytest.raises(OperationalError):
        ban_service.ips_ban(runtime, jail="sshd", lines=["203.0.113.10"], actor=ACTOR)
    assert sent == []  # nothing reached fail2ban: an action is never unaudited
    assert banned(f2b, "sshd") == set()


def test_audit_page_shows_and_filters_started_records(runtime, role_client):
    from jails.services.audit import audit_start

    audit_start(actor=ACTOR, action="ban", jail="sshd")
    client = role_client("viewer")
    body = client.get("/audit/?result=started").content.decode()
    assert '<span class="pill started">started</span>' in body
    assert "no result recorded" in body
    assert "<code>login</code>" not in body  # the viewer's own login is a finished record
    assert "pill started" not in client.get("/audit/?result=failed").content.decode()


def test_audit_killed_worker_leaves_the_started_record(tmp_path, f2b):
    """SIGKILL while fail2ban is being asked: the record of the attempt is in the database."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="jailadmin.settings",
        JAILADMIN_DEBUG="false",
        JAILADMIN_SECRET_KEY="test-only-" + "x" * 50,
        JAILADMIN_VAR_DIR=str(tmp_path),
        JAILADMIN_DATABASE_URL=f"sqlite:///{tmp_path / 'site.sqlite3'}",
        JAILADMIN_FAIL2BAN_TIMEOUT="600",  # the process is killed long before this
        JAILADMIN_LOG_LEVEL="WARNING",
    )
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    with FakeFail2ban(hang()) as fake:
        env["JAILADMIN_FAIL2BAN_SOCKET"] = fake.path
        process = subprocess.Popen(
            [*manage, "jails", "unban", "--all"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: ["unban", "--all"] in fake.decoded_requests(), timeout=120)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
    with contextlib.closing(sqlite3.connect(tmp_path / "site.sqlite3")) as db:
        rows = db.execute("SELECT action, actor, source, ok FROM jails_auditentry").fetchall()
    assert rows == [("unban_all", "system", "command", None)]
