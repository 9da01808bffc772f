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

from jails.agent.client import REPLY_MARGIN, AgentLink
from jails.agent.link import link_build
from jails.agent.operations import HostConfig
from jails.agent.protocol import HEADER, frame_encode, message_decode
from jails.fail2ban import AgentUnreachable, ProtocolError
from tests.support.agent_process import AgentProcess

# What the scripted agent does with one request: a reply's value, CLOSE to hang up instead
# of answering. `nth` counts the requests on that connection after the hello, from 1.
CLOSE = object()
Answer = Callable[[dict[str, Any], int], Any]
# Between the pieces of a greeting: long enough for the client to read the first piece alone.
GREETING_PAUSE = 0.3
LINGER_LIMIT = 30.0
HELLO = {"version": "0-scripted", "fail2ban_version": "1.0.2", "operations": [], "endpoint": None}


class ScriptedAgent:
    """A threaded Unix-socket server that greets like the agent, then answers via `answer`.

    `greeting`, when given, answers the hello instead (several pieces: sent a moment apart),
    then the connection is closed, or with `linger` left open, silent, until the client
    closes it (as an SSH server waits after its banner)."""

    def __init__(
        self,
        answer: Answer | None = None,
        *,
        greeting: bytes | Sequence[bytes] | None = None,
        linger: bool = False,
    ) -> None:
        self._answer = answer
        self._greeting = [greeting] if isinstance(greeting, bytes) else greeting
        self._linger = linger
        self._dir = tempfile.mkdtemp(prefix="sagent", dir="/tmp")
        self.path = str(Path(self._dir) / "a.sock")
        self.address = f"unix:{self.path}"
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
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
            while (header := self._read(conn, HEADER.size)) is not None:
                body = self._read(conn, HEADER.unpack(header)[0])
                if body is None:
                    return
                request = message_decode(body)
                if request.get("op") == "hello":
                    conn.sendall(frame_encode({"id": request["id"], "ok": True, "value": HELLO}))
                    continue
                nth += 1
                self.requests.append(request)
                assert self._answer is not None
                value = self._answer(request, nth)
                if value is CLOSE:
                    return
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
    assert lost.value.reason == f"no answer within {0.5 + REPLY_MARGIN:g} s"
