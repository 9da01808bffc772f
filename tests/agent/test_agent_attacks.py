"""Attacks on a running agent (issue 10): each is refused or cut off, nothing reaches fail2ban,
the agent stays up and a well-behaved client is served meanwhile.

A RecordingProxy sits between the agent and the real private fail2ban: it records every
request that reaches fail2ban's socket, so "nothing reached fail2ban" is a fact, not a guess.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from jails.agent.client import AgentLink
from jails.agent.protocol import HEADER, frame_encode
from jails.fail2ban import AgentRefused
from tests.conftest import wait_until
from tests.support.agent_process import AgentProcess, RawAgentConnection
from tests.support.recording_proxy import RecordingProxy

# Short, so the slow-loris tests end quickly; every other wait is generous (a slow box).
FRAME_TIMEOUT = "1.0"


@pytest.fixture
def guarded(f2b) -> Iterator[tuple[AgentProcess, RecordingProxy]]:
    """An agent whose fail2ban socket is a recording proxy in front of the real server."""
    with (
        RecordingProxy(str(f2b.socket_path)) as proxy,
        AgentProcess(proxy.path, options=["--frame-timeout", FRAME_TIMEOUT]) as agent,
    ):
        yield agent, proxy


@pytest.fixture
def attacker(guarded) -> Iterator[RawAgentConnection]:
    """A raw connection that has said hello; the proxy's record starts empty after it."""
    agent, proxy = guarded
    raw = RawAgentConnection.connect(agent.path)
    raw.hello()  # asks fail2ban its version: recorded, then forgotten
    proxy.clear()
    yield raw
    raw.close()


def served(agent: AgentProcess, proxy: RecordingProxy) -> None:
    """The agent is up and serves a well-behaved client (whose ping is then forgotten)."""
    assert agent.is_running(), agent.stderr()
    link = AgentLink(agent.address, timeout=10.0)
    assert link.send("ping") == "pong"
    link.close()


def refused(reply, error_type: str, *, match: str = "") -> None:
    assert reply is not None, "the agent closed the connection without an answer"
    assert reply["ok"] is False, reply
    assert reply["error"]["type"] == error_type, reply
    assert match in reply["error"]["message"]


# Commands outside the allow-list -------------------------------------------------------------
DANGEROUS_COMMANDS = [
    pytest.param(
        ["set", "sshd", "action", "iptables", "actionban", "touch /tmp/pwned"], id="action"
    ),
    pytest.param(["set", "sshd", "addaction", "pwn"], id="addaction"),
    pytest.param(["set", "loglevel", "DEBUG"], id="loglevel"),
    pytest.param(["stop"], id="stop-server"),
    pytest.param(["set", "sshd", "addlogpath", "/etc/shadow"], id="addlogpath"),
    pytest.param(["set", "sshd", "addfailregex", ".*"], id="addfailregex"),
    pytest.param(["echo", "hi"], id="echo"),
    pytest.param([], id="empty"),
]


@pytest.mark.parametrize("command", DANGEROUS_COMMANDS)
def test_attack_command_outside_the_allow_list_never_reaches_fail2ban(guarded, attacker, command):
    agent, proxy = guarded
    reply = attacker.request("fail2ban", {"commands": [command]})
    refused(reply, "InvalidArgument")
    assert proxy.commands == []
    # Still a usable connection (the frame was fine, only its content refused).
    assert attacker.request("fail2ban", {"commands": [["ping"]]})["ok"] is True
    served(agent, proxy)


def test_attack_one_bad_command_in_a_batch_sends_none_of_it(guarded, attacker):
    agent, proxy = guarded
    reply = attacker.request(
        "fail2ban",
        {"commands": [["set", "sshd", "banip", "192.0.2.1"], ["set", "sshd", "addaction", "x"]]},
    )
    refused(reply, "InvalidArgument")
    assert proxy.commands == []
    served(agent, proxy)


@pytest.mark.parametrize(
    "word",
    [
        pytest.param("1.2.3.4<F2B_END_COMMAND>", id="marker"),
        pytest.param("sshd<F2B_END_COMMAND>\x80\x04\x95", id="marker-and-pickle"),
        pytest.param("1.2.3.4<F2B_CLOSE_COMMAND>", id="close-marker"),
        pytest.param("1.2.3.4\n", id="newline"),
    ],
)
def test_attack_end_marker_inside_a_json_string_is_refused(guarded, attacker, word):
    agent, proxy = guarded
    reply = attacker.request("fail2ban", {"commands": [["set", "sshd", "banip", word]]})
    refused(reply, "InvalidArgument")
    assert proxy.commands == []
    served(agent, proxy)


def test_attack_escaped_end_marker_is_refused_after_json_decoding(guarded, attacker):
    agent, proxy = guarded
    body = (
        b'{"id": 7, "op": "fail2ban", "args": {"commands": '
        b'[["set", "sshd", "banip", "1.2.3.4\\u003cF2B_END_COMMAND\\u003e"]]}}'
    )
    attacker.send_raw(HEADER.pack(len(body)) + body)
    refused(attacker.read(), "InvalidArgument", match="marker")
    assert proxy.commands == []
    served(agent, proxy)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["set", "sshd", "banip", "999.1.1.1"], id="bad-ipv4"),
        pytest.param(["set", "sshd", "banip", "example.com"], id="hostname"),
        pytest.param(["set", "sshd", "banip", "--all"], id="option"),
        pytest.param(["set", "sshd", "banip", ""], id="empty-ip"),
        pytest.param(["set", "sshd", "banip", "0.0.0.0/0"], id="everything"),
        pytest.param(["set", "../etc", "banip", "192.0.2.1"], id="path-jail"),
        pytest.param(["set", "-sshd", "banip", "192.0.2.1"], id="dash-jail"),
        pytest.param(["status", "a b"], id="space-jail"),
        pytest.param(["set", "sshd", "banip", 12], id="not-a-string"),
        pytest.param(["set", "sshd", "bantime", "1e9"], id="not-a-number"),
    ],
)
def test_attack_invalid_address_or_jail_name_is_refused(guarded, attacker, command):
    agent, proxy = guarded
    refused(attacker.request("fail2ban", {"commands": [command]}), "InvalidArgument")
    assert proxy.commands == []
    served(agent, proxy)


def test_attack_reload_with_an_injected_jail_name_is_refused(guarded, attacker):
    agent, proxy = guarded
    refused(attacker.request("reload", {"jail": "sshd; rm -rf /"}), "InvalidArgument")
    refused(attacker.request("reload", {"jail": ["sshd"]}), "InvalidArgument")
    refused(attacker.request("reload", {"jail": None, "argv": ["x"]}), "InvalidArgument")
    assert proxy.commands == []
    served(agent, proxy)


# Unknown operations, requests out of order ----------------------------------------------------
@pytest.mark.parametrize(
    "op", ["shell", "exec", "run", "fail2ban_raw", "config_write", "", "hello "]
)
def test_attack_unknown_operation_is_refused(guarded, attacker, op):
    agent, proxy = guarded
    refused(attacker.request(op, {"argv": ["id"]}), "AgentRefused", match="unknown operation")
    assert proxy.commands == []
    assert attacker.request("fail2ban", {"commands": [["ping"]]})["ok"] is True
    served(agent, proxy)


def test_attack_request_before_hello_is_refused_and_the_connection_closed(guarded):
    agent, proxy = guarded
    proxy.clear()
    raw = RawAgentConnection.connect(agent.path)
    try:
        refused(raw.request("fail2ban", {"commands": [["ping"]]}), "AgentRefused", match="hello")
        assert raw.closed()
    finally:
        raw.close()
    assert proxy.commands == []
    served(agent, proxy)


# Malformed frames ----------------------------------------------------------------------------
def test_attack_100_mb_length_prefix_is_refused_without_reading_the_body(guarded, attacker):
    agent, proxy = guarded
    # Only the header is sent: the refusal arrives although no body ever does, so the agent
    # judged the frame by its length alone and read (and buffered) nothing of it.
    attacker.send_raw(HEADER.pack(100 * 1024 * 1024))
    refused(attacker.read(), "AgentRefused", match="larger than the limit")
    assert attacker.closed()
    assert proxy.commands == []
    served(agent, proxy)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"id": 1, "op": "fail2ban", "args": {', id="invalid-json"),
        pytest.param(b'{"id": 1, "op": "fail\xff2ban"}', id="invalid-utf8"),
        pytest.param(b"\x80\x04\x95pickle", id="pickle"),
        pytest.param(b"[" * 100_000, id="deep-nesting"),
        pytest.param(b'["fail2ban"]', id="not-an-object"),
    ],
)
def test_attack_malformed_frame_is_refused_and_the_connection_closed(guarded, attacker, body):
    agent, proxy = guarded
    attacker.send_raw(HEADER.pack(len(body)) + body)
    refused(attacker.read(), "AgentRefused")
    assert attacker.closed()
    assert proxy.commands == []
    served(agent, proxy)


def test_attack_malformed_hello_is_refused(guarded):
    agent, proxy = guarded
    raw = RawAgentConnection.connect(agent.path)
    try:
        raw.send_raw(HEADER.pack(3) + b"\xff\xfe\xfd")
        refused(raw.read(), "AgentRefused", match="UTF-8")
        assert raw.closed()
    finally:
        raw.close()
    served(agent, proxy)


# Slow loris and floods -----------------------------------------------------------------------
def test_attack_slow_loris_is_dropped_after_the_frame_deadline(guarded, attacker):
    agent, proxy = guarded
    attacker.send_raw(HEADER.pack(200)[:2])  # half a header, then nothing
    stalled_body = RawAgentConnection.connect(agent.path)
    stalled_body.hello()
    stalled_body.send_raw(HEADER.pack(200) + b'{"id": 1')  # a header and part of the body
    silent = RawAgentConnection.connect(agent.path)  # never even says hello
    try:
        served(agent, proxy)  # meanwhile
        assert attacker.closed()
        assert stalled_body.closed()
        assert silent.closed()
    finally:
        stalled_body.close()
        silent.close()
    served(agent, proxy)


def test_attack_200_connections_at_once(guarded):
    agent, proxy = guarded
    connections = [RawAgentConnection.connect(agent.path) for _ in range(200)]
    try:
        # All greet at once, then all ask at once; the good client is served in the middle.
        for raw in connections:
            raw.send({"op": "hello", "protocol": 1, "id": 0})
        served(agent, proxy)
        for raw in connections:
            assert raw.read()["ok"] is True
        for raw in connections:
            raw.send({"id": 1, "op": "fail2ban", "args": {"commands": [["ping"]]}})
        for raw in connections:
            assert raw.read()["value"]["results"] == [{"ok": True, "value": "pong"}]
        served(agent, proxy)
    finally:
        for raw in connections:
            raw.close()
    served(agent, proxy)


def test_attack_connections_over_the_limit_are_refused_and_the_agent_recovers(f2b):
    with AgentProcess(str(f2b.socket_path), options=["--max-connections", "4"]) as agent:
        # The start-up check's connection may still count for a moment: greet until 4 hold.
        held = [_greeted_connection(agent) for _ in range(4)]
        try:
            extra = RawAgentConnection.connect(agent.path)
            refused(extra.read(), "AgentRefused", match="limit of 4 connections")
            assert extra.closed()
            extra.close()
        finally:
            for raw in held:
                raw.close()
        link = AgentLink(agent.address)
        # The held connections are closed; the agent notices and serves the next one.
        _retry_until_served(link)


def _greeted_connection(agent: AgentProcess) -> RawAgentConnection:
    def attempt() -> RawAgentConnection | None:
        raw = RawAgentConnection.connect(agent.path)
        try:
            raw.hello()
        except (AssertionError, OSError):
            raw.close()
            return None
        return raw

    return wait_until(attempt, timeout=30.0)


def _retry_until_served(link: AgentLink) -> None:
    def attempt() -> bool:
        try:
            return link.send("ping") == "pong"
        except AgentRefused:
            return False

    wait_until(attempt, timeout=30.0)


def test_attack_many_threads_flooding_requests_while_a_good_client_works(guarded):
    agent, proxy = guarded
    stop = threading.Event()
    errors: list[BaseException] = []

    def flood() -> None:
        try:
            while not stop.is_set():
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(30)
                sock.connect(str(agent.path))
                sock.sendall(frame_encode({"id": 1, "op": "shell"}))  # before hello
                sock.recv(4096)
                sock.close()
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(20):
            served(agent, proxy)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    assert all(command == ["version"] or command == ["ping"] for command in proxy.commands)
