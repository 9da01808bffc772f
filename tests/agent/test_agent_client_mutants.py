"""What mutation testing left unpinned in jails/agent/client.py (AgentLink), pinned down.

The site trusts nothing the agent sends: an agent of another version, or a compromised one,
gets a ProtocolError with a message naming what was malformed, never an AttributeError or a
wrong value passed on. No real agent sends such replies, so a scripted one does here: it
speaks the agent's framing (jails.agent.protocol) on a Unix socket, greets as an agent does
and answers each request as the test says. How AgentLink copes with a connection that breaks
is tested the same way; the reload's own timeout with a real agent (tests/support/agent_process).
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from jails.agent.client import (
    HANDSHAKE_MAX_BYTES,
    REPLY_MARGIN,
    AgentLink,
    AgentStream,
    UnixTransport,
)
from jails.agent.link import link_build
from jails.agent.operations import HostConfig
from jails.agent.protocol import HEADER, MAX_REPLY_BYTES, frame_encode, message_decode
from jails.fail2ban import (
    AgentRefused,
    AgentUnreachable,
    InvalidArgument,
    ProtocolError,
    ReplyTooLarge,
)
from tests.conftest import wait_until
from tests.support.agent_process import AgentProcess

# What the scripted agent does with one request: a reply's value, CLOSE to hang up instead
# of answering, or Raw bytes sent as they are. `nth` counts the requests on that connection
# after the first hello, from 1 (a later hello is answered by `answer` too).
CLOSE = object()


class Raw:
    """Bytes the scripted agent sends instead of a well-formed reply (then hangs up if `close`)."""

    def __init__(self, data: bytes | Sequence[bytes], *, close: bool = False) -> None:
        self.pieces = [data] if isinstance(data, bytes) else data  # sent a moment apart
        self.close = close


Answer = Callable[[dict[str, Any], int], Any]
# Between the pieces of a greeting: long enough for the client to read the first piece alone.
GREETING_PAUSE = 0.3
LINGER_LIMIT = 30.0
HELLO = {"version": "0-scripted", "fail2ban_version": "1.0.2", "operations": [], "endpoint": None}
# What a health request answers about fail2ban (the replies the scripted agent sends back).
STATE = {"reachable": True, "version": "1.0.2", "reason": None}


class ScriptedAgent:
    """A threaded Unix-socket server that greets like the agent, then answers via `answer`.

    `greeting`, when given, answers the hello instead (several pieces: sent a moment apart),
    then the connection is closed, or with `linger` left open, silent, until the client
    closes it (as an SSH server waits after its banner). `unread` is called with a request's
    `nth` once its header has arrived: True hangs up with the rest of the request unread (it
    may first wait, as an agent that stopped reading does). `closed` counts the connections
    the agent has closed."""

    def __init__(
        self,
        answer: Answer | None = None,
        *,
        greeting: bytes | Sequence[bytes] | None = None,
        linger: bool = False,
        hello: Any = HELLO,
        unread: Callable[[int], bool] | None = None,
    ) -> None:
        self._answer = answer
        self._unread = unread
        self._hello = hello
        self._greeting = [greeting] if isinstance(greeting, bytes) else greeting
        self._linger = linger
        self._dir = tempfile.mkdtemp(prefix="sagent", dir="/tmp")
        self.path = str(Path(self._dir) / "a.sock")
        self.address = f"unix:{self.path}"
        self.requests: list[dict[str, Any]] = []
        self.greetings: list[dict[str, Any]] = []
        self.connections = 0
        self.closed = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def __enter__(self) -> ScriptedAgent:
        self._listener.bind(self.path)
        self._listener.listen(8)
        self._listener.settimeout(0.05)
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._listener.close()
        Path(self.path).unlink(missing_ok=True)
        Path(self._dir).rmdir()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            self._spawn(self._serve, conn)

    def _read(self, conn: socket.socket, count: int) -> bytes | None:
        data = b""
        while len(data) < count:
            try:
                chunk = conn.recv(count - len(data))
            except TimeoutError:
                if self._stop.is_set():
                    return None
                continue
            except ConnectionResetError:  # the client closed with our bytes unread
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._converse(conn)
        finally:
            self.closed += 1

    def _converse(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        with conn:
            if self._greeting is not None:
                # Read the hello first: closing with it unread would reset the connection.
                header = self._read(conn, HEADER.size)
                if header is not None:
                    self._read(conn, HEADER.unpack(header)[0])
                for number, piece in enumerate(self._greeting):
                    if number:
                        time.sleep(GREETING_PAUSE)
                    conn.sendall(piece)
                # Until the client hangs up, but not for ever: a client that waited for
                # ever (a broken preview) must fail its test, not hang it.
                end = time.monotonic() + LINGER_LIMIT
                while self._linger and time.monotonic() < end and not self._stop.is_set():
                    try:
                        if not conn.recv(1):
                            break
                    except TimeoutError:
                        continue
                    except ConnectionResetError:
                        break
                return
            nth = 0
            greeted = False
            while (header := self._read(conn, HEADER.size)) is not None:
                if greeted and self._unread is not None and self._unread(nth + 1):
                    return
                body = self._read(conn, HEADER.unpack(header)[0])
                if body is None:
                    return
                request = message_decode(body)
                if request.get("op") == "hello" and not greeted:
                    greeted = True
                    self.greetings.append(request)
                    reply = {"id": request["id"], "ok": True, "value": self._hello}
                    try:
                        conn.sendall(frame_encode(reply))
                    except (BrokenPipeError, ConnectionResetError):
                        return  # a client that refused the greeting halfway
                    continue
                nth += 1
                self.requests.append(request)
                assert self._answer is not None
                value = self._answer(request, nth)
                if value is CLOSE:
                    return
                if isinstance(value, Raw):
                    for number, piece in enumerate(value.pieces):
                        if number:
                            time.sleep(GREETING_PAUSE)
                        conn.sendall(piece)
                    if value.close:
                        return
                    continue
                conn.sendall(frame_encode({"id": request["id"], "ok": True, "value": value}))


def answering(value: Any) -> Answer:
    return lambda request, nth: value


@pytest.fixture
def scripted() -> Iterator[Callable[[Any], AgentLink]]:
    """A link to a scripted agent that answers every request with the given value."""
    agents: list[ScriptedAgent] = []
    links: list[AgentLink] = []

    def link_to(value: Any) -> AgentLink:
        agent = ScriptedAgent(answering(value)).__enter__()
        agents.append(agent)
        links.append(AgentLink(agent.address, timeout=10.0))
        return links[-1]

    yield link_to
    for link in links:
        link.close()
    for agent in agents:
        agent.__exit__(None, None, None)


# --- malformed replies: which ProtocolError, with which message -----------------------------------
@pytest.mark.parametrize("value", [5, ["/var/lib/f2b.sqlite3"], {"path": "/x"}])
def test_database_path_that_is_not_text_is_malformed(scripted, value):
    with pytest.raises(ProtocolError) as refused:
        scripted(value).database_path()
    assert str(refused.value) == "the agent's database path is malformed"


def test_database_path_passes_text_and_none_on(scripted):
    assert scripted("/var/lib/fail2ban/fail2ban.sqlite3").database_path() == (
        "/var/lib/fail2ban/fail2ban.sqlite3"
    )
    assert scripted(None).database_path() is None


@pytest.mark.parametrize("value", [None, [], [[1, "sshd", "192.0.2.1", 1, 600, 1, None]], {}])
def test_database_bans_without_a_list_of_rows_is_malformed(scripted, value):
    with pytest.raises(ProtocolError) as refused:
        scripted(value).database_bans(after=0, limit=10)
    assert str(refused.value) == "the agent's database rows are malformed"


def test_database_bans_are_the_rows_of_the_reply(scripted):
    row = [7, "sshd", "192.0.2.1", 1_700_000_000, 600, 2, '{"failures": 2}']
    link = scripted({"path": "/ignored", "rows": [row]})
    assert link.database_bans(after=6, limit=10) == [tuple(row)]


@pytest.mark.parametrize(
    "value",
    [
        {"jail": "sshd", "ip": "192.0.2.1", "time": 1},  # three fields, but not a list
        "abc",
        ["sshd", "192.0.2.1", 1, 2],  # one field too many, the first three well-formed
        ["sshd", "192.0.2.1"],
        [5, "192.0.2.1", 1],  # each field of the wrong type, the others right
        ["sshd", 5, 1],
        ["sshd", "192.0.2.1", "1"],
        [None, None, None],
    ],
)
def test_database_ban_of_the_wrong_shape_is_malformed(scripted, value):
    with pytest.raises(ProtocolError) as refused:
        scripted(value).database_ban(rowid=1)
    assert str(refused.value) == "the agent's database row is malformed"


def test_database_ban_passes_a_row_and_none_on(scripted):
    assert scripted(["sshd", "192.0.2.1", 1_700_000_000]).database_ban(rowid=1) == (
        "sshd",
        "192.0.2.1",
        1_700_000_000,
    )
    assert scripted(None).database_ban(rowid=1) is None


@pytest.mark.parametrize("value", [None, "done", ["output"], {"output": 5}, {}])
def test_reload_reply_without_output_text_is_malformed(scripted, value):
    with pytest.raises(ProtocolError) as refused:
        scripted(value).reload(jail="sshd")
    assert str(refused.value) == "the agent's reload reply is malformed"


def test_reload_returns_the_output_and_sends_the_jail(scripted):
    link = scripted({"output": "OK"})
    assert link.reload(jail=None) == "OK"


@pytest.mark.parametrize("value", [None, "ok", [{"reachable": True}], {"fail2ban": "up"}, {}])
def test_health_reply_without_fail2bans_state_is_malformed(scripted, value):
    with pytest.raises(ProtocolError) as refused:
        scripted(value).health()
    assert str(refused.value) == "the agent's health reply is malformed"


def test_health_is_fail2bans_state_as_the_agent_reports_it(scripted):
    state = {"reachable": False, "version": None, "reason": "no socket"}
    assert scripted({"fail2ban": state}).health() == state


# --- a connection that breaks ---------------------------------------------------------------------
def test_agent_hanging_up_on_a_fresh_connection_is_unreachable_with_the_reason():
    with ScriptedAgent(lambda request, nth: CLOSE) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        with pytest.raises(AgentUnreachable) as lost:
            link.health()
        link.close()
    assert lost.value.reason == "the agent closed the connection"
    assert str(lost.value) == (
        f"the jailadmin agent is not reachable at {agent.address}: the agent closed the connection"
    )
    assert agent.connections == 1  # a fresh connection that fails is not tried again


def test_agent_dropping_an_idle_connection_as_a_request_goes_out_costs_no_error():
    # The agent ends an idle connection (its idle timeout) just as the pooled connection is
    # reused: nothing of the reply arrived, so the request goes once more on a fresh one.
    state = {"reachable": True, "version": "1.0.2", "reason": ""}

    def answer(request: dict[str, Any], nth: int) -> Any:
        return CLOSE if nth == 2 else {"fail2ban": state}

    with ScriptedAgent(answer) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        assert link.health() == state
        assert link.health() == state
        link.close()
    assert agent.connections == 2
    assert [request["op"] for request in agent.requests] == ["health", "health", "health"]


def not_an_agent_refusal(
    greeting: bytes | Sequence[bytes], *, linger: bool = False
) -> tuple[str, str]:
    """(address, the ProtocolError's text) of a health request to a far side sending `greeting`."""
    with ScriptedAgent(greeting=greeting, linger=linger) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        with pytest.raises(ProtocolError) as refused:
            link.health()
        link.close()
    return agent.address, str(refused.value)


def test_far_side_that_sends_a_few_bytes_and_hangs_up_is_not_an_agent():
    # Fewer bytes than a frame header, then the end: what it sent is the explanation.
    address, refusal = not_an_agent_refusal(b"no\n")
    assert refusal == (f"{address} does not speak the jailadmin agent's protocol: it sent b'no\\n'")


def test_far_side_that_sends_a_banner_is_not_an_agent_and_the_banner_is_shown():
    # An SSH server (or anything else) on the agent's socket: its first four bytes read as
    # a frame far larger than a handshake, and what it sent is shown, not the frame length.
    banner = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
    address, refusal = not_an_agent_refusal(banner)
    assert refusal == (
        f"{address} does not speak the jailadmin agent's protocol: it sent {banner!r}"
    )


def test_far_side_that_talks_on_shows_the_first_516_bytes():
    # The four bytes read as the frame header, then at most 512 more.
    address, refusal = not_an_agent_refusal(b"HTTP" + b"x" * 4000)
    sent = b"HTTP" + b"x" * 512
    assert refusal == (f"{address} does not speak the jailadmin agent's protocol: it sent {sent!r}")


def test_banner_then_silence_shows_the_banner():
    # An SSH server sends its banner, then waits for the client: the link does not wait
    # for more than the banner and a moment, and shows it.
    banner = b"SSH-2.0-OpenSSH_9.2p1\r\n"
    address, refusal = not_an_agent_refusal(banner, linger=True)
    assert refusal == (
        f"{address} does not speak the jailadmin agent's protocol: it sent {banner!r}"
    )


def test_far_side_that_talks_in_pieces_shows_all_of_them_up_to_516_bytes():
    # Several pieces are joined in order; still four header bytes and at most 512 more.
    pieces = [b"HTTP/1.1 400", b" Bad Request\r\n", b"y" * 2000]
    address, refusal = not_an_agent_refusal(pieces, linger=True)
    sent = b"".join(pieces)[:516]
    assert refusal == (f"{address} does not speak the jailadmin agent's protocol: it sent {sent!r}")


# --- the reload's own, longer timeout (a real agent) ----------------------------------------------
def test_reload_waits_for_the_reload_timeout_not_the_command_timeout(f2b, tmp_path):
    # A reload slower than a command may take (timeout + REPLY_MARGIN) is still answered: the
    # link waits for reload_timeout. The agent's fail2ban-client prints, then takes its time.
    slow = REPLY_MARGIN + 1.5
    client = tmp_path / "fail2ban-client"
    client.write_text(f"#!/bin/sh\nsleep {slow}\necho reloaded\n")
    client.chmod(0o755)
    options = ["--config-dir", str(f2b.conf_dir), "--fail2ban-client", str(client)]
    with AgentProcess(str(f2b.socket_path), options=options) as agent:
        # Built as the site builds it from its settings.
        link = link_build(agent=agent.address, config=HostConfig(timeout=0.5, reload_timeout=120))
        try:
            assert link.reload(jail="sshd") == "reloaded"
        finally:
            link.close()
        # And a reload slower than the configured reload timeout is given up on at that.
        impatient = link_build(agent=agent.address, config=HostConfig(reload_timeout=1.0))
        try:
            with pytest.raises(AgentUnreachable) as lost:
                impatient.reload(jail="sshd")
        finally:
            impatient.close()
    assert lost.value.reason == f"no answer within {1.0 + REPLY_MARGIN:g} s"


def test_link_built_from_the_settings_waits_their_command_timeout():
    release = threading.Event()

    def answer(request: dict[str, Any], nth: int) -> Any:
        release.wait(60)  # an agent that does not answer in time
        return CLOSE

    with ScriptedAgent(answer) as agent:
        link = link_build(agent=agent.address, config=HostConfig(timeout=0.5))
        try:
            with pytest.raises(AgentUnreachable) as lost:
                link.health()
        finally:
            release.set()
            link.close()
    assert str(lost.value) == (
        f"the jailadmin agent is not reachable at {agent.address}: "
        f"no answer within {0.5 + REPLY_MARGIN:g} s"
    )


# --- what goes out: the hello, then each request with its own id ---------------------------------
def test_requests_go_out_as_the_agent_reads_them(scripted):
    with ScriptedAgent(answering({"fail2ban": STATE})) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        link.health()
        link.health()
        link.close()
    assert agent.greetings == [{"op": "hello", "protocol": 1, "id": 1}]
    assert agent.requests == [
        {"id": 2, "op": "health", "args": {}},
        {"id": 3, "op": "health", "args": {}},
    ]


# --- the handshake the site asks for (setup wizard, /settings/) ----------------------------------
def test_hello_is_the_agents_version_fail2bans_and_its_operations(scripted):
    value = {"version": "2.0", "fail2ban_version": None, "operations": ["fail2ban"]}
    with ScriptedAgent(answering(value)) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        info = link.hello()
        link.close()
    assert (info.agent_version, info.fail2ban_version, info.operations) == (
        "2.0",
        None,
        ("fail2ban",),
    )
    # A fresh handshake on the open connection, worded as the first one.
    assert agent.requests == [{"op": "hello", "protocol": 1, "id": 2}]
    info = scripted({"version": "2.0", "fail2ban_version": "1.1.0", "operations": []}).hello()
    assert (info.fail2ban_version, info.operations) == ("1.1.0", ())


@pytest.mark.parametrize(
    "value",
    [
        None,
        ["2.0"],
        {"version": 2, "fail2ban_version": None, "operations": []},
        {"version": "2.0", "fail2ban_version": 1, "operations": []},
        {"version": "2.0", "fail2ban_version": None, "operations": "fail2ban"},
        {"version": "2.0", "fail2ban_version": None, "operations": ["fail2ban", 5]},
        {"fail2ban_version": None, "operations": []},
    ],
)
def test_hello_of_the_wrong_shape_is_malformed(scripted, value):
    with pytest.raises(ProtocolError) as refused:
        scripted(value).hello()
    assert str(refused.value) == "the agent's handshake is malformed"


# --- fail2ban commands through the agent: results, endpoint, chunks -------------------------------
def _results(*values: Any, endpoint: Any = None) -> dict[str, Any]:
    return {"results": [{"ok": True, "value": v} for v in values], "endpoint": endpoint}


def test_endpoint_is_the_last_one_the_agent_reported(scripted):
    endpoints = {1: [1, 2, 3], 2: [4, "5"], 3: "x", 4: None, 5: [6, True]}
    with ScriptedAgent(lambda request, nth: _results("pong", endpoint=endpoints[nth])) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        seen = []
        for _ in endpoints:
            link.send("ping")
            seen.append(link.endpoint_identity())
        link.close()
    # Only a list of whole numbers is an endpoint; None says there is none; anything else
    # leaves the last one (a bool counts as an int, as JSON's true never reaches here).
    assert seen == [(1, 2, 3), (1, 2, 3), (1, 2, 3), None, (6, True)]


def test_a_greeting_without_an_endpoint_leaves_none(scripted):
    # The first handshake is read for the endpoint only; what else it holds is hello()'s.
    for greeting in (["1.0", [1, 2]], {**HELLO, "endpoint": [1, 2]}):
        with ScriptedAgent(answering({"fail2ban": STATE}), hello=greeting) as agent:
            link = AgentLink(agent.address, timeout=10.0)
            assert link.health() == STATE
            endpoint = link.endpoint_identity()
            link.close()
        assert endpoint == (None if isinstance(greeting, list) else (1, 2))


def test_hello_remembers_the_endpoint_too(scripted):
    link = scripted({"version": "2", "fail2ban_version": None, "operations": [], "endpoint": [9]})
    link.hello()
    assert link.endpoint_identity() == (9,)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "the agent's fail2ban reply is malformed"),
        ([{"ok": True, "value": "pong"}], "the agent's fail2ban reply is malformed"),
        ({"results": "pong"}, "the agent's fail2ban reply is malformed"),
        ({"results": ["pong"]}, "the agent's fail2ban reply is malformed"),
        ({"results": []}, "the agent answered a different number of commands"),
        (_results("pong", "pong"), "the agent answered a different number of commands"),
    ],
)
def test_fail2ban_reply_of_the_wrong_shape_is_malformed(scripted, value, message):
    with pytest.raises(ProtocolError) as refused:
        scripted(value).send("ping")
    assert str(refused.value) == message


def test_each_command_gets_its_value_or_its_typed_error_in_its_place(scripted):
    refusal = {"type": "InvalidArgument", "message": "no such thing"}
    link = scripted(
        {
            "results": [
                {"ok": True, "value": "pong"},
                {"ok": False, "error": refusal},
                {"ok": "yes", "value": "pong"},  # only true is success
                {"ok": True, "value": None},
            ]
        }
    )
    commands = [("ping",), ("get", "x"), ("ping",), ("ping",)]
    with link.connection() as channel:
        outcomes = channel.send_batch_outcomes(commands)
        assert outcomes[0] == "pong" and outcomes[3] is None
        assert type(outcomes[1]) is InvalidArgument and str(outcomes[1]) == "no such thing"
        assert type(outcomes[2]) is ProtocolError
        assert str(outcomes[2]) == "the agent sent a malformed error"
        with pytest.raises(InvalidArgument) as refused:
            channel.send_batch(commands)
        assert str(refused.value) == "no such thing"


def test_a_refused_command_is_raised_by_send(scripted):
    refusal = {"type": "InvalidArgument", "message": "command 'x' is not allowed"}
    link = scripted({"results": [{"ok": False, "error": refusal}]})
    with pytest.raises(InvalidArgument) as refused:
        link.send("x")
    assert str(refused.value) == "command 'x' is not allowed"
    with link.connection() as channel, pytest.raises(InvalidArgument) as refused:
        channel.send("x")
    assert str(refused.value) == "command 'x' is not allowed"
    with link.connection() as channel:
        assert channel.send_batch_outcomes([]) == []


def test_more_than_10000_commands_go_in_requests_of_10000():
    def answer(request: dict[str, Any], nth: int) -> Any:
        count = len(request["args"]["commands"])
        return _results(*[f"{nth}.{i}" for i in range(count)])

    with ScriptedAgent(answer) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        commands = [("get", "sshd", "banip", str(i)) for i in range(20001)]
        with link.connection() as channel:
            outcomes = channel.send_batch(commands)
        link.close()
    assert [request["op"] for request in agent.requests] == ["fail2ban"] * 3
    sent = [request["args"]["commands"] for request in agent.requests]
    assert [len(chunk) for chunk in sent] == [10000, 10000, 1]
    assert [word for chunk in sent for word in chunk] == [list(c) for c in commands]
    assert outcomes[0] == "1.0" and outcomes[10000] == "2.0" and outcomes[-1] == "3.0"


# --- replies that do not answer the request ------------------------------------------------------
def _reply(request: dict[str, Any], **fields: Any) -> Raw:
    return Raw(frame_encode({"id": request["id"], **fields}))


def test_a_reply_to_another_request_is_refused():
    with ScriptedAgent(lambda request, nth: _reply(request, id=99, ok=True, value={})) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        with pytest.raises(ProtocolError) as refused:
            link.health()
        link.close()
    assert str(refused.value) == "the agent's reply does not answer the request"


def test_a_refusal_of_the_connection_itself_is_raised_as_sent():
    refusal = {"type": "AgentRefused", "message": "the agent is serving its limit of 1 connections"}
    replies = [
        {"id": None, "ok": False, "error": refusal},
        {"id": None, "ok": True, "value": {}},  # no id and no refusal: not an answer
        {"ok": None, "error": refusal},
        {"id": 99, "ok": False, "error": refusal},  # another request's refusal: not ours
    ]
    errors = []
    for reply in replies:
        with ScriptedAgent(lambda request, nth, reply=reply: Raw(frame_encode(reply))) as agent:
            link = AgentLink(agent.address, timeout=10.0)
            with pytest.raises((AgentRefused, ProtocolError)) as refused:
                link.health()
            errors.append((type(refused.value), str(refused.value)))
            link.close()
    assert errors == [
        (AgentRefused, "the agent is serving its limit of 1 connections"),
        (ProtocolError, "the agent's reply does not answer the request"),
        (ProtocolError, "the agent's reply does not answer the request"),
        (ProtocolError, "the agent's reply does not answer the request"),
    ]


def test_an_unreadable_reply_says_why():
    body = b"not json"
    with ScriptedAgent(lambda request, nth: Raw(HEADER.pack(len(body)) + body)) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        with pytest.raises(ProtocolError) as refused:
            link.health()
        link.close()
    assert str(refused.value) == (
        "unreadable reply from the agent: the frame is not valid JSON: "
        "Expecting value: line 1 column 1 (char 0)"
    )


def test_a_reply_over_64_mib_is_refused_by_its_length():
    header = HEADER.pack(MAX_REPLY_BYTES + 1)
    with ScriptedAgent(lambda request, nth: Raw(header)) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        with pytest.raises(ReplyTooLarge) as refused:
            link.health()
        link.close()
    assert refused.value.limit == MAX_REPLY_BYTES


def test_the_agents_refusal_costs_the_connection_other_errors_do_not():
    # The agent may close after refusing (AgentRefused): the next request starts afresh.
    # A refused argument leaves the connection as it was.

    def answer(request: dict[str, Any], nth: int) -> Any:
        if len(agent.requests) == 1:  # the very first request, on the first connection
            error = {"type": kind, "message": "no"}
            return _reply(request, ok=False, error=error)
        return {"fail2ban": STATE}

    opened = {}
    for kind in ("AgentRefused", "InvalidArgument"):
        with ScriptedAgent(answer) as agent:
            link = AgentLink(agent.address, timeout=10.0)
            with pytest.raises((AgentRefused, InvalidArgument)):
                link.health()
            assert link.health() == STATE
            link.close()
        opened[kind] = agent.connections
    assert opened == {"AgentRefused": 2, "InvalidArgument": 1}


# --- a connection that breaks in the middle of a reply -------------------------------------------
@pytest.mark.parametrize("cut", [2, HEADER.size + 5], ids=["in-the-header", "in-the-body"])
def test_a_reply_cut_off_is_not_sent_again(cut):
    # Part of the reply arrived: the request may have run, so it is not repeated.

    def answer(request: dict[str, Any], nth: int) -> Any:
        if nth == 2:
            frame = frame_encode({"id": request["id"], "ok": True, "value": {"fail2ban": STATE}})
            return Raw(frame[:cut], close=True)
        return {"fail2ban": STATE}

    with ScriptedAgent(answer) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        assert link.health() == STATE
        with pytest.raises(AgentUnreachable) as lost:
            link.health()
        link.close()
    assert lost.value.reason == "the agent closed the connection"
    assert agent.connections == 1
    assert len(agent.requests) == 2


# --- the handshake's size bound ------------------------------------------------------------------
def _padded_hello(size: int) -> dict[str, Any]:
    """HELLO with padding that makes the reply to hello #1 exactly `size` bytes of JSON."""
    bare = len(frame_encode({"id": 1, "ok": True, "value": {**HELLO, "pad": ""}})) - HEADER.size
    return {**HELLO, "pad": "x" * (size - bare)}


def test_a_handshake_of_up_to_1_mib_is_read_and_one_byte_more_is_not_an_agent():
    hello = _padded_hello(HANDSHAKE_MAX_BYTES)
    with ScriptedAgent(answering({"fail2ban": STATE}), hello=hello) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        assert link.health() == STATE
        link.close()
    hello = _padded_hello(HANDSHAKE_MAX_BYTES + 1)
    with ScriptedAgent(answering({"fail2ban": STATE}), hello=hello) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        with pytest.raises(ProtocolError) as refused:
            link.health()
        link.close()
    frame = frame_encode({"id": 1, "ok": True, "value": hello})
    assert len(frame) == HEADER.size + HANDSHAKE_MAX_BYTES + 1
    sent = frame[: HEADER.size + 512]  # the header, then what the preview reads
    assert str(refused.value) == (
        f"{agent.address} does not speak the jailadmin agent's protocol: it sent {sent!r}"
    )


# --- no agent there: why -------------------------------------------------------------------------
def test_why_the_agents_socket_cannot_be_reached(tmp_path):
    stale = tmp_path / "stale.sock"  # a socket file no process listens on
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(stale))
    sock.close()
    cases = {
        tmp_path / "missing.sock": "the socket does not exist (is the agent running?)",
        stale: "connection refused (is the agent running?)",
        Path("/etc/hostname/agent.sock"): "Not a directory",
    }
    for path, reason in cases.items():
        with pytest.raises(AgentUnreachable) as unreachable:
            AgentLink(f"unix:{path}", timeout=2.0).health()
        assert unreachable.value.reason == reason
        assert str(unreachable.value) == (
            f"the jailadmin agent is not reachable at unix:{path}: {reason}"
        )


# --- the link's own settings ----------------------------------------------------------------------
def test_link_address_must_be_a_unix_socket_path():
    for address in ("tcp:127.0.0.1:8000", "unix:", "/run/agent.sock"):
        with pytest.raises(ValueError) as refused:
            AgentLink(address)
        assert str(refused.value) == (
            f"the agent address must be unix:/path/agent.sock, not {address!r}"
        )
    link = AgentLink("unix:/run/j/agent.sock")
    assert (link.address, link.location) == (
        "unix:/run/j/agent.sock",
        "agent at unix:/run/j/agent.sock",
    )
    assert (link.timeout, link.pool_size, link.reload_timeout) == (5.0, 8, 120.0)
    assert link.endpoint_identity() is None and link.connections_opened == 0


def test_pool_keeps_at_most_pool_size_idle_connections():
    with ScriptedAgent(answering({"fail2ban": STATE})) as agent:
        link = AgentLink(agent.address, timeout=10.0, pool_size=2)
        with link.connection(), link.connection(), link.connection():
            pass  # three held at once: three opened
        assert (link.connections_opened, len(link._pool.idle)) == (3, 2)
        for _ in range(3):
            assert link.health() == STATE
        assert link.connections_opened == 3  # the idle ones serve
        link.close()
        assert link._pool.idle == []


# --- the other operations: what is sent, what comes back, how long it may take ---------------
@pytest.mark.parametrize(
    ("call", "op", "args"),
    [
        (
            lambda link: link.config_read(if_changed_from="abc"),
            "config_read",
            {"if_changed_from": "abc"},
        ),
        (lambda link: link.config_file(path="jail.local"), "config_file", {"path": "jail.local"}),
        (
            lambda link: link.config_apply(changes=[{"path": "jail.local"}]),
            "config_apply",
            {"changes": [{"path": "jail.local"}], "dry_run": False},
        ),
        (
            lambda link: link.config_apply(changes=[], dry_run=True),
            "config_apply",
            {"changes": [], "dry_run": True},
        ),
    ],
)
def test_configuration_operations_send_their_arguments_and_pass_an_object_on(call, op, args):
    with ScriptedAgent(answering({"files": {}})) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        assert call(link) == {"files": {}}
        link.close()
    assert agent.requests == [{"id": 2, "op": op, "args": args}]
    for value in (None, ["files"], "ok"):
        with ScriptedAgent(answering(value)) as agent:
            link = AgentLink(agent.address, timeout=10.0)
            with pytest.raises(ProtocolError) as refused:
                call(link)
            link.close()
        assert str(refused.value) == f"the agent's {op} reply is malformed"


def test_log_tail_sends_its_arguments_and_refuses_a_malformed_tail():
    tail = {"source": "/var/log/fail2ban.log", "lines": [["a line", "INFO"]], "cursor": "7"}
    with ScriptedAgent(answering(tail)) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        got = link.log_tail(lines=50, level="INFO", search="ban", cursor="3")
        link.close()
    assert agent.requests[0]["args"] == {
        "lines": 50,
        "level": "INFO",
        "search": "ban",
        "cursor": "3",
    }
    assert (got.source, got.cursor, [line.text for line in got.lines]) == (
        "/var/log/fail2ban.log",
        "7",
        ["a line"],
    )
    for value in (None, {"lines": [["text", 5]]}, {"lines": [["only text"]]}):
        with ScriptedAgent(answering(value)) as agent:
            link = AgentLink(agent.address, timeout=10.0)
            with pytest.raises(ProtocolError) as refused:
                link.log_tail(lines=50, level=None, search=None, cursor=None)
            link.close()
        assert str(refused.value) == "the agent's log_tail reply is malformed"


def test_slow_operations_wait_for_the_reload_timeout_config_apply_twice_that():
    # A command may take 0.1 s (+ REPLY_MARGIN), a reload 4 s (+ margin), config_apply twice
    # that: each answer comes about two seconds after the shorter wait and two before its own,
    # room for a loaded machine's scheduling on either side.
    timeout, reload_timeout = 0.1, 4.0
    command_wait = timeout + REPLY_MARGIN
    reload_wait = reload_timeout + REPLY_MARGIN
    apply_wait = 2 * reload_timeout + REPLY_MARGIN
    between = {
        "config_read": (command_wait + reload_wait) / 2,
        "log_tail": (command_wait + reload_wait) / 2,
        "config_apply": (reload_wait + apply_wait) / 2,
    }
    tail = {"source": "", "lines": []}

    def answer(request: dict[str, Any], nth: int) -> Any:
        time.sleep(between[request["op"]])  # a slow agent
        return tail if request["op"] == "log_tail" else {"ok": True}

    calls = {
        "config_read": lambda link: link.config_read(if_changed_from=None),
        "log_tail": lambda link: link.log_tail(lines=1, level=None, search=None, cursor=None),
        "config_apply": lambda link: link.config_apply(changes=[]),
    }
    results: dict[str, Any] = {}
    with ScriptedAgent(answer) as agent:

        def run(op: str) -> None:
            link = AgentLink(agent.address, timeout=timeout, reload_timeout=reload_timeout)
            try:
                results[op] = calls[op](link)
            except Exception as exc:  # noqa: BLE001 - compared below
                results[op] = exc
            link.close()

        threads = [threading.Thread(target=run, args=(op,)) for op in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert results["config_read"] == {"ok": True}
    assert results["config_apply"] == {"ok": True}
    assert results["log_tail"].lines == ()


# --- connections that break in other ways: reset, refused writes, a full socket ---------------


def test_agent_hanging_up_with_the_request_unread_is_retried_only_on_a_reused_connection():
    # Closing with our request unread resets the connection (ECONNRESET, not an end of file).
    # On a pooled connection nothing of the reply came: sent once more on a fresh one.
    with ScriptedAgent(answering({"fail2ban": STATE}), unread=lambda nth: nth == 2) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        assert link.health() == STATE
        assert link.health() == STATE
        link.close()
    assert agent.connections == 2
    assert agent.requests == [{"id": 2, "op": "health", "args": {}}] * 2
    # On a fresh connection it is the answer: the agent is gone.
    with ScriptedAgent(answering({"fail2ban": STATE}), unread=lambda nth: True) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        with pytest.raises(AgentUnreachable) as lost:
            link.health()
        link.close()
    assert str(lost.value) == (
        f"the jailadmin agent is not reachable at {agent.address}: Connection reset by peer"
    )
    assert agent.connections == 1


def test_a_stale_connection_that_fails_again_on_a_fresh_one_is_unreachable():
    # The pooled connection and then the fresh one are both hung up on: not tried a third time.
    def answer(request: dict[str, Any], nth: int) -> Any:
        return CLOSE if len(agent.requests) in (2, 3) else {"fail2ban": STATE}

    with ScriptedAgent(answer) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        assert link.health() == STATE
        with pytest.raises(AgentUnreachable) as lost:
            link.health()
        link.close()
    assert str(lost.value) == (
        f"the jailadmin agent is not reachable at {agent.address}: the agent closed the connection"
    )
    assert (agent.connections, len(agent.requests)) == (2, 3)


def test_a_request_refused_by_a_connection_the_agent_closed_goes_on_a_fresh_one():
    # The agent closed the idle connection after its reply (and a stray byte or two): writing
    # the next request fails (EPIPE) before any reply, so it is sent on a fresh connection.
    def answer(request: dict[str, Any], nth: int) -> Any:
        reply = {"id": request["id"], "ok": True, "value": {"fail2ban": STATE}}
        return Raw(frame_encode(reply) + b"\n\n", close=True) if nth == 1 else {"fail2ban": STATE}

    with ScriptedAgent(answer) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        assert link.health() == STATE
        wait_until(lambda: agent.closed == 1)
        assert link.health() == STATE
        link.close()
    assert (agent.connections, len(agent.requests)) == (2, 2)


def test_a_held_channel_whose_connection_went_stale_goes_on_with_a_fresh_one():
    with ScriptedAgent(lambda request, nth: CLOSE if nth == 2 else _results("pong")) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        with link.connection() as channel:
            assert channel.send("ping") == "pong"
            assert channel.send("ping") == "pong"
        link.close()
    assert (agent.connections, len(agent.requests)) == (2, 3)


def test_a_connection_whose_reply_was_wrong_is_not_used_again():
    # The reply did not answer the request: what arrives next on that connection cannot be
    # trusted either, so the next request opens a fresh one.
    def answer(request: dict[str, Any], nth: int) -> Any:
        wrong = len(agent.requests) == 1
        return _reply(request, id=99, ok=True, value={}) if wrong else {"fail2ban": STATE}

    with ScriptedAgent(answer) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        with pytest.raises(ProtocolError):
            link.health()
        assert link.health() == STATE
        link.close()
    assert agent.connections == 2


def test_an_agent_that_stops_reading_a_large_request_is_given_up_on_at_the_timeout():
    # The request (about 1 MB) fills the socket; the agent reads no more of it.
    release = threading.Event()

    def stalled(nth: int) -> bool:
        release.wait(60)
        return True

    commands = [("get", "sshd", "x" * 100)] * 10000
    with ScriptedAgent(answering(_results()), unread=stalled) as agent:
        link = AgentLink(agent.address, timeout=0.1)
        try:
            with link.connection() as channel, pytest.raises(AgentUnreachable) as lost:
                channel.send_batch(commands)
        finally:
            release.set()
            link.close()
    assert str(lost.value) == (
        f"the jailadmin agent is not reachable at {agent.address}: "
        f"no answer within {0.1 + REPLY_MARGIN:g} s"
    )


def test_a_greeting_cut_off_in_its_body_is_a_lost_agent_not_a_stranger():
    # A well-formed header (a 100-byte handshake), 10 bytes of it, then the end: the agent
    # went away mid-greeting; only a far side whose first frame is not a frame is a stranger.
    with ScriptedAgent(greeting=HEADER.pack(100) + b"{" * 10) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        with pytest.raises(AgentUnreachable) as lost:
            link.health()
        link.close()
    assert lost.value.reason == "the agent closed the connection"


class _ExplainingStream(AgentStream):
    """As the SSH transport's stream: a failure it is told the far end closed gets its cause
    (there, what ssh said on exiting); any other failure is passed on as it is."""

    def failure(self, error, *, closed):
        if closed and isinstance(error, AgentUnreachable):
            return AgentUnreachable(error.address, f"{error.reason} (the far end exited)")
        return error


class _ExplainingTransport:
    def __init__(self, agent: ScriptedAgent) -> None:
        self._unix = UnixTransport(agent.path)
        self.address = agent.address

    def open(self, timeout: float) -> AgentStream:
        return _ExplainingStream(self._unix.open(timeout).sock)


@pytest.mark.parametrize("closing", [[1], [2, 3]], ids=["fresh", "stale-then-fresh"])
def test_the_transport_is_told_the_far_end_closed_the_connection(closing):
    # Hung up on a fresh connection, or on a stale one and then on the fresh one.
    def answer(request: dict[str, Any], nth: int) -> Any:
        return CLOSE if len(agent.requests) in closing else {"fail2ban": STATE}

    with ScriptedAgent(answer) as agent:
        link = AgentLink(agent.address, transport=_ExplainingTransport(agent), timeout=10.0)
        if closing != [1]:
            assert link.health() == STATE
        with pytest.raises(AgentUnreachable) as lost:
            link.health()
        link.close()
    assert lost.value.reason == "the agent closed the connection (the far end exited)"


def test_a_later_hello_may_be_larger_than_the_first_frames_bound():
    # Only the connection's first frame is held to 1 MiB (a stranger's text read as a length);
    # a hello on a greeted connection is a reply like any other.
    value = {**_padded_hello(2 * HANDSHAKE_MAX_BYTES), "version": "2.0", "operations": ["x"]}
    with ScriptedAgent(answering(value)) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        info = link.hello()
        link.close()
    assert (info.agent_version, info.operations) == ("2.0", ("x",))


def test_a_stale_connection_replaced_by_one_that_refuses_raises_the_refusal():
    # The fresh connection answers with a typed error: raised as it is, and that connection
    # (in good order) serves the next request.
    refusal = {"type": "InvalidArgument", "message": "no such jail"}

    def answer(request: dict[str, Any], nth: int) -> Any:
        if len(agent.requests) == 2:
            return CLOSE
        if len(agent.requests) == 3:
            return _reply(request, ok=False, error=refusal)
        return {"fail2ban": STATE}

    with ScriptedAgent(answer) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        assert link.health() == STATE
        with pytest.raises(InvalidArgument) as refused:
            link.health()
        assert link.health() == STATE
        link.close()
    assert str(refused.value) == "no such jail"
    assert agent.connections == 2
    assert agent.requests[2] == {"id": 2, "op": "health", "args": {}}


def test_a_reply_arriving_in_pieces_is_read_to_its_end_and_no_further():
    # The header split in two, then the rest: each read asks for what is missing only.
    def answer(request: dict[str, Any], nth: int) -> Any:
        frame = frame_encode({"id": request["id"], "ok": True, "value": {"fail2ban": STATE}})
        return Raw([frame[:2], frame[2:9], frame[9:]])

    with ScriptedAgent(answer) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        assert link.health() == STATE
        assert link.health() == STATE
        link.close()
    assert agent.connections == 1


def test_a_reply_that_stops_after_its_header_is_given_up_on_at_the_timeout():
    with ScriptedAgent(lambda request, nth: Raw(HEADER.pack(100))) as agent:
        link = AgentLink(agent.address, timeout=0.1)
        with pytest.raises(AgentUnreachable) as lost:
            link.health()
        link.close()
    assert str(lost.value) == (
        f"the jailadmin agent is not reachable at {agent.address}: "
        f"no answer within {0.1 + REPLY_MARGIN:g} s"
    )
