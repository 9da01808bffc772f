"""The agent as a real process (`--listen` and `--stdio`) in front of the real private fail2ban,
driven by AgentLink: what the web side sees in agent mode."""

from __future__ import annotations

import os
import threading

import pytest

from jails.agent import AGENT_VERSION, PROTOCOL_VERSION
from jails.agent.client import AgentLink
from jails.fail2ban import (
    AgentRefused,
    AgentUnreachable,
    DatabaseUnavailable,
    Fail2banUnreachable,
    InvalidArgument,
    ProtocolError,
    UnknownJail,
    UnsupportedCommand,
)
from jails.fail2ban.errors import ReloadFailed
from tests.conftest import FAIL2BAN_VERSION, wait_until
from tests.support.agent_process import (
    AgentProcess,
    RawAgentConnection,
    server_options,
    stdio_agent,
    stdio_agent_end,
)
from tests.support.fakeserver import FakeFail2ban, reply_garbage, reply_value

ALL_OPERATIONS = (
    "config_apply",
    "config_definition",
    "config_file",
    "config_read",
    "database_ban",
    "database_bans",
    "database_path",
    "fail2ban",
    "health",
    "log_tail",
    "regex_test",
    "reload",
)


@pytest.fixture
def link(f2b_agent):
    link = AgentLink(f2b_agent.address, timeout=10.0)
    yield link
    link.close()


def banned(f2b, jail: str) -> list[str]:
    return list(f2b.client().send("get", jail, "banip"))


# Handshake, health ------------------------------------------------------------------------------
def test_agent_hello_names_agent_fail2ban_and_operations(link):
    info = link.hello()
    assert info.agent_version == AGENT_VERSION
    assert info.fail2ban_version == FAIL2BAN_VERSION
    assert tuple(sorted(info.operations)) == ALL_OPERATIONS


def test_agent_raw_handshake_carries_protocol_and_endpoint(f2b, f2b_agent):
    raw = RawAgentConnection.connect(f2b_agent.path)
    try:
        value = raw.hello()
    finally:
        raw.close()
    assert value["agent"] == "jailadmin-agent"
    assert value["protocol"] == PROTOCOL_VERSION
    assert tuple(value["endpoint"]) == f2b.client().endpoint_identity()


def test_agent_health_reports_fail2ban_reachable(link):
    assert link.health() == {"reachable": True, "version": FAIL2BAN_VERSION, "reason": None}


def test_agent_version_option_prints_name_and_version():
    import subprocess
    import sys

    from tests.support.agent_process import REPO_ROOT, agent_environment

    result = subprocess.run(
        [sys.executable, "-m", "jails.agent", "--version"],
        cwd=REPO_ROOT,
        env=agent_environment(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.decode().strip() == f"jailadmin-agent {AGENT_VERSION}"


# fail2ban commands ----------------------------------------------------------------------------
def test_agent_status_answers_as_fail2ban_does(f2b, link):
    direct = f2b.client().send("status")
    assert link.send("status") == [list(pair) for pair in direct]
    assert dict(link.send("status"))["Jail list"] == dict(direct)["Jail list"]


def test_agent_banip_and_unbanip_change_fail2ban_for_real(f2b, link):
    assert link.send("set", "sshd", "banip", "203.0.113.7", "2001:db8::7") == 2
    assert sorted(banned(f2b, "sshd")) == ["2001:db8::7", "203.0.113.7"]
    link.send("set", "sshd", "unbanip", "203.0.113.7")
    assert banned(f2b, "sshd") == ["2001:db8::7"]


def test_agent_send_batch_answers_every_command_in_order(f2b, link):
    with link.connection() as channel:
        values = channel.send_batch(
            [
                ("set", "postfix", "banip", "198.51.100.1"),
                ("get", "postfix", "maxretry"),
                ("get", "postfix", "banip"),
            ]
        )
        assert channel.send("ping") == "pong"
    assert values == [1, 5, ["198.51.100.1"]]


def test_agent_send_batch_runs_all_then_raises_the_first_refusal(f2b, link):
    with link.connection() as channel, pytest.raises(UnknownJail) as refused:
        channel.send_batch([("status", "no-such-jail"), ("set", "sshd", "banip", "198.51.100.2")])
    assert refused.value.jail == "no-such-jail"
    assert refused.value.command == ["status", "no-such-jail"]
    assert banned(f2b, "sshd") == ["198.51.100.2"]  # the later command ran


def test_agent_send_batch_of_nothing_needs_no_round_trip(f2b_agent):
    link = AgentLink(f2b_agent.address)
    with link.connection() as channel:
        assert channel.send_batch([]) == []
    assert link.connections_opened == 1  # just the handshake of the held connection


def test_agent_unknown_jail_is_recreated_with_its_fields(link):
    with pytest.raises(UnknownJail) as refused:
        link.send("get", "nosuchjail", "bantime")
    assert refused.value.jail == "nosuchjail"
    assert refused.value.remote_type == "UnknownJailException"


def test_agent_unsupported_command_is_recreated(link):
    # `get J idle` is refused by 1.0.2 and 1.1.0 alike (DESIGN.md, 3).
    with pytest.raises(UnsupportedCommand) as refused:
        link.send("get", "sshd", "idle")
    assert refused.value.command == ["get", "sshd", "idle"]
    assert refused.value.message.startswith("Invalid command")


def test_agent_refuses_an_invalid_address_with_invalid_argument(f2b, link):
    with pytest.raises(InvalidArgument, match="not an IP address"):
        link.send("set", "sshd", "banip", "example.com")
    assert banned(f2b, "sshd") == []


def test_agent_endpoint_identity_follows_the_fail2ban_replies(f2b, f2b_agent):
    link = AgentLink(f2b_agent.address)
    assert link.endpoint_identity() is None  # nothing asked yet: no round trip for this
    link.send("ping")
    assert link.endpoint_identity() == f2b.client().endpoint_identity()


def test_agent_reports_fail2ban_unreachable_not_agent_unreachable(tmp_path):
    with AgentProcess(str(tmp_path / "missing.sock")) as agent:
        link = AgentLink(agent.address)
        with pytest.raises(Fail2banUnreachable) as unreachable:
            link.send("ping")
        assert not isinstance(unreachable.value, AgentUnreachable)
        assert unreachable.value.socket_path == str(tmp_path / "missing.sock")
        assert unreachable.value.reason == "the socket does not exist"
        assert link.hello().fail2ban_version is None
        assert link.health()["reachable"] is False


# The pool --------------------------------------------------------------------------------------
def test_agent_link_reuses_one_connection_for_many_calls(link):
    for _ in range(20):
        assert link.send("ping") == "pong"
    link.hello()
    link.health()
    assert link.connections_opened == 1


def test_agent_link_pool_is_shared_by_threads_and_bounded(f2b_agent):
    link = AgentLink(f2b_agent.address, pool_size=4)
    barrier = threading.Barrier(8)
    answers: list[str] = []
    failures: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=60)
            for _ in range(25):
                answers.append(link.send("ping"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert answers == ["pong"] * 200
    # Never more connections than threads asking at once; at most pool_size kept idle.
    assert 1 <= link.connections_opened <= 8
    assert len(link._pool.idle) <= 4
    link.close()


def test_agent_link_reconnects_after_the_agent_restarts(f2b, f2b_agent):
    link = AgentLink(f2b_agent.address)
    assert link.send("ping") == "pong"
    f2b_agent.stop()
    f2b_agent.start()
    # The pooled connection is dead; the request is sent again on a fresh one.
    assert link.send("ping") == "pong"
    assert link.connections_opened == 2


def test_agent_link_held_connection_recovers_after_the_agent_restarts(f2b, f2b_agent):
    link = AgentLink(f2b_agent.address)
    with link.connection() as channel:
        assert channel.send("ping") == "pong"
        f2b_agent.stop()
        f2b_agent.start()
        assert channel.send_batch([("ping",), ("ping",)]) == ["pong", "pong"]
        assert channel.send("ping") == "pong"
    assert link.connections_opened == 2


def test_agent_gone_is_agent_unreachable(f2b_agent):
    link = AgentLink(f2b_agent.address, timeout=2.0)
    link.send("ping")
    f2b_agent.stop()
    with pytest.raises(AgentUnreachable) as unreachable:
        link.send("ping")
    assert isinstance(unreachable.value, Fail2banUnreachable)  # pages that handle it still work
    assert str(unreachable.value).startswith(
        f"the jailadmin agent is not reachable at {f2b_agent.address}: "
    )
    with pytest.raises(AgentUnreachable, match="does not exist"):
        AgentLink(f2b_agent.address).hello()


def test_agent_link_discards_connections_inherited_across_fork(f2b_agent):
    link = AgentLink(f2b_agent.address)
    assert link.send("ping") == "pong"
    (parent_conn,) = link._pool.idle
    pid = os.fork()
    if pid == 0:  # the child: must open its own connection, never read the parent's
        code = 1
        try:
            if link.send("ping") == "pong" and link.connections_opened == 1:
                code = 0 if link._pool.idle[0] is not parent_conn else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert link.send("ping") == "pong"  # the parent's connection is untouched
    assert link._pool.idle == [parent_conn]
    assert link.connections_opened == 1


# Database and reload -------------------------------------------------------------------------
def test_agent_database_path_is_fail2bans_own(f2b, link):
    assert link.database_path() == str(f2b.dbfile)


def test_agent_database_bans_after_a_cursor(f2b, link):
    link.send("set", "nginx-http-auth", "banip", "192.0.2.10", "192.0.2.11")
    # fail2ban writes a ban's row from another thread, after `banip` has answered.
    wait_until(lambda: len(link.database_bans(after=0, limit=100)) >= 2)
    rows = link.database_bans(after=0, limit=100)
    assert sorted((row[1], row[2]) for row in rows) == [
        ("nginx-http-auth", "192.0.2.10"),
        ("nginx-http-auth", "192.0.2.11"),
    ]
    first = rows[0]
    assert link.database_bans(after=first[0], limit=100) == rows[1:]
    assert link.database_bans(after=0, limit=1) == rows[:1]
    assert link.database_ban(rowid=first[0]) == (first[1], first[2], first[3])
    assert link.database_ban(rowid=first[0] + 1_000_000) is None


def test_agent_database_bans_validates_its_arguments(link):
    with pytest.raises(InvalidArgument, match="limit"):
        link.database_bans(after=0, limit=10001)
    with pytest.raises(InvalidArgument, match="after"):
        link.database_bans(after=-1, limit=10)


def test_agent_database_unavailable_is_recreated(tmp_path):
    # A fail2ban (fake: the real one's dbfile cannot be changed) whose database file is not
    # a database, then one that keeps none: the agent reads only the path fail2ban reports.
    not_a_database = tmp_path / "f2b.sqlite3"
    not_a_database.write_text("not a database")
    with (
        FakeFail2ban(reply_value(0, str(not_a_database))) as fake,
        AgentProcess(fake.path) as agent,
    ):
        link = AgentLink(agent.address)
        assert link.database_path() == str(not_a_database)
        with pytest.raises(DatabaseUnavailable, match="cannot read fail2ban's database"):
            link.database_bans(after=0, limit=10)
    with FakeFail2ban(reply_value(0, None)) as fake, AgentProcess(fake.path) as agent:
        link = AgentLink(agent.address)
        assert link.database_path() is None
        with pytest.raises(DatabaseUnavailable, match="keeps no database"):
            link.database_ban(rowid=1)


def test_agent_passes_a_garbled_fail2ban_reply_on_as_protocol_error():
    with (
        FakeFail2ban(reply_garbage()) as fake,
        AgentProcess(fake.path) as agent,
        pytest.raises(ProtocolError, match="undecodable reply from fail2ban"),
    ):
        AgentLink(agent.address).send("ping")


def test_agent_database_ban_validates_its_argument(link):
    with pytest.raises(InvalidArgument, match="rowid"):
        link._call("database_ban", {"rowid": True})  # a bool is no row id
    with pytest.raises(InvalidArgument, match="unexpected arguments: path"):
        link._call("database_bans", {"after": 0, "limit": 1, "path": "/etc/shadow"})


def test_agent_reload_runs_fail2ban_client(f2b, link):
    link.send("set", "sshd", "maxretry", "9")
    output = link.reload(jail="sshd")
    assert isinstance(output, str)
    assert link.send("get", "sshd", "maxretry") == 3  # the configured value is back


def test_agent_reload_refuses_a_bad_jail_name(f2b, link):
    with pytest.raises(InvalidArgument, match="invalid jail name"):
        link.reload(jail="--all")


def test_agent_reload_failure_carries_the_output(f2b):
    options = ["--config-dir", str(f2b.conf_dir), "--fail2ban-client", "/bin/false"]
    with (
        AgentProcess(str(f2b.socket_path), options=options) as agent,
        pytest.raises(ReloadFailed, match="exit code 1") as failed,
    ):
        AgentLink(agent.address).reload(jail=None)
    assert failed.value.output == ""


# --stdio and the system interpreter --------------------------------------------------------
def test_agent_stdio_serves_one_connection(f2b):
    process = stdio_agent(str(f2b.socket_path), options=server_options(f2b))
    try:
        raw = RawAgentConnection.over_pipes(process)
        assert raw.hello()["fail2ban_version"] == FAIL2BAN_VERSION
        reply = raw.request("fail2ban", {"commands": [["set", "sshd", "banip", "192.0.2.50"]]})
        assert reply == {
            "id": 1,
            "ok": True,
            "value": {
                "results": [{"ok": True, "value": 1}],
                "endpoint": reply["value"]["endpoint"],
            },
        }
        assert banned(f2b, "sshd") == ["192.0.2.50"]
        reply = raw.request("shell", {"argv": ["id"]})
        assert reply["ok"] is False and reply["error"]["type"] == "AgentRefused"
    finally:
        stdio_agent_end(process)


def test_agent_stdio_refuses_a_request_before_hello(f2b):
    process = stdio_agent(str(f2b.socket_path))
    try:
        raw = RawAgentConnection.over_pipes(process)
        reply = raw.request("fail2ban", {"commands": [["ping"]]})
        assert reply is not None and reply["error"]["type"] == "AgentRefused"
        assert "hello" in reply["error"]["message"]
        assert raw.closed()
    finally:
        stdio_agent_end(process)


def test_agent_runs_on_the_system_python_with_the_standard_library_only(f2b):
    # /usr/bin/python3 -s: no venv, no user site: only the stdlib and the checkout's
    # jails.agent + jails.fail2ban (what the zipapp carries).
    with AgentProcess(str(f2b.socket_path), python=["/usr/bin/python3", "-s"]) as agent:
        link = AgentLink(agent.address)
        assert link.hello().fail2ban_version == FAIL2BAN_VERSION
        assert link.send("ping") == "pong"


def test_agent_resident_memory_while_serving_stays_under_30_mb(f2b, f2b_agent):
    # The budget. Measured: about 18 MB idle, 25-28 MB after 20 000-ban replies.
    link = AgentLink(f2b_agent.address)
    # Few bans: the session's server runs a recording action per ban (slow on purpose).
    link.send("set", "sshd", "banip", *[f"10.9.0.{i}" for i in range(1, 201)])
    with link.connection() as channel:
        channel.send_batch([("status", "sshd"), ("get", "sshd", "banip", "--with-time")] * 3)
    crowd = [RawAgentConnection.connect(f2b_agent.path) for _ in range(200)]
    try:
        for raw in crowd:
            raw.hello()
        rss_kb = f2b_agent.rss_kb()
    finally:
        for raw in crowd:
            raw.close()
    print(f"agent resident memory while serving: {rss_kb / 1024:.1f} MB")
    assert rss_kb <= 30 * 1024


def test_agent_listen_socket_mode_and_cleanup(f2b):
    with AgentProcess(str(f2b.socket_path), options=["--mode", "0600"]) as agent:
        assert oct(agent.path.stat().st_mode & 0o777) == oct(0o600)
        agent.stop()
        assert not agent.path.exists()  # SIGTERM removes the socket


def test_agent_refuses_a_wrong_protocol_version(f2b_agent):
    raw = RawAgentConnection.connect(f2b_agent.path)
    try:
        raw.send({"op": "hello", "protocol": 2, "id": 0})
        reply = raw.read()
        assert reply is not None and reply["error"]["type"] == "AgentRefused"
        assert "protocol version 2" in reply["error"]["message"]
        assert raw.closed()
    finally:
        raw.close()
    with pytest.raises(AgentRefused):
        raise_for(reply)


def raise_for(reply):
    from jails.agent.protocol import error_decode

    raise error_decode(reply["error"])
