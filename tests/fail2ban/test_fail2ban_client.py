"""Fail2banClient against a fake fail2ban: framing, errors, fault injection."""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import sys
import tempfile
import threading
import time

import pytest

from jails.fail2ban import client as client_module
from jails.fail2ban.client import Fail2banClient
from jails.fail2ban.errors import (
    CommandRejected,
    Fail2banError,
    Fail2banUnreachable,
    InvalidArgument,
    ProtocolError,
    UnknownJail,
    UnsupportedCommand,
)
from jails.fail2ban.protocol import CLOSE, END
from tests.support.fakeserver import (
    FakeFail2ban,
    disconnect_mid_reply,
    fake_fail2ban_exceptions,
    hang,
    pickled_reply,
    reply_chunked,
    reply_for_each,
    reply_garbage,
    reply_malicious,
    reply_raw,
    reply_value,
)

TIMEOUT = 0.3
GENEROUS = 5.0  # upper bound on wall-clock assertions; never assert anything tighter


def make_client(fake, **kwargs):
    # A timeout sized for a loaded one-core box by default (0.3 s was missed there by a fake
    # server answering at once); tests about a deadline pass timeout=TIMEOUT themselves.
    kwargs.setdefault("timeout", GENEROUS)
    return Fail2banClient(fake.path, **kwargs)


@pytest.fixture
def fail2ban_exceptions(monkeypatch):
    """``fail2ban.exceptions`` stand-in, importable while the test pickles its classes."""
    package, module = fake_fail2ban_exceptions()
    monkeypatch.setitem(sys.modules, "fail2ban", package)
    monkeypatch.setitem(sys.modules, "fail2ban.exceptions", module)
    return module


@pytest.fixture
def short_dir():
    # pytest's tmp_path can be longer than AF_UNIX allows; keep socket paths short.
    path = tempfile.mkdtemp(prefix="f2bt", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# The fake server itself -------------------------------------------------------------------
def test_fakeserver_cleans_up_socket_and_threads():
    with FakeFail2ban(hang()) as fake:
        path = fake.path
        assert os.path.exists(path)
        with pytest.raises(Fail2banUnreachable):
            make_client(fake, timeout=TIMEOUT).send("ping")
    assert not os.path.exists(path)
    assert not os.path.exists(os.path.dirname(path))
    assert fake.alive_threads() == []


def test_fakeserver_path_fits_af_unix():
    with FakeFail2ban() as fake:
        assert len(fake.path.encode()) <= 107


# Normal traffic ---------------------------------------------------------------------------
def test_send_returns_value_and_sends_pickled_list():
    with FakeFail2ban(reply_value(0, "pong")) as fake:
        assert make_client(fake).send("ping") == "pong"
        fake.settle()
        assert fake.decoded_requests() == [["ping"]]
        assert bytes(fake.raw) == pickle.dumps(["ping"], protocol=4) + END + CLOSE + END
        assert fake.closes == 1


def test_send_returns_structured_value():
    status = [("Number of jail", 1), ("Jail list", "sshd")]
    with FakeFail2ban(reply_value(0, status)) as fake:
        assert make_client(fake).send("status") == status


def test_send_returns_sets_and_dicts():
    value = [{"sshd": ["192.0.2.1"]}, {"nginx": []}, {"x"}]
    with FakeFail2ban(reply_value(0, value)) as fake:
        assert make_client(fake).send("banned") == value


def test_connection_sends_several_commands_in_order():
    def answer(command):
        return pickled_reply(0, "|".join(command))

    with FakeFail2ban(reply_for_each(answer)) as fake:
        with make_client(fake).connection() as conn:
            assert conn.send("ping") == "ping"
            assert conn.send("status", "sshd") == "status|sshd"
            assert conn.send("get", "sshd", "bantime") == "get|sshd|bantime"
            assert conn.send("set", "sshd", "banip", "192.0.2.1") == "set|sshd|banip|192.0.2.1"
        fake.settle()
        assert fake.connections == 1
        assert fake.closes == 1
        assert fake.decoded_requests() == [
            ["ping"],
            ["status", "sshd"],
            ["get", "sshd", "bantime"],
            ["set", "sshd", "banip", "192.0.2.1"],
        ]


def test_connection_keeps_working_after_command_rejected(fail2ban_exceptions):
    behaviours = [
        reply_value(1, fail2ban_exceptions.UnknownJailException("nope")),
        reply_value(0, "pong"),
    ]
    with FakeFail2ban(behaviours) as fake, make_client(fake).connection() as conn:
        with pytest.raises(UnknownJail):
            conn.send("status", "nope")
        assert conn.send("ping") == "pong"


def test_connection_keeps_working_after_invalid_argument():
    with FakeFail2ban(reply_value(0, "pong")) as fake:
        with make_client(fake).connection() as conn:
            with pytest.raises(InvalidArgument):
                conn.send("reload")
            assert conn.send("ping") == "pong"
        assert fake.decoded_requests() == [["ping"]]


def test_send_decodes_reply_in_one_byte_chunks():
    value = [("Currently banned", 2), ("Banned IP list", ["192.0.2.1", "2001:db8::1"])]
    with FakeFail2ban(reply_chunked(pickled_reply(0, value), chunk_size=1)) as fake:
        assert make_client(fake, timeout=GENEROUS).send("status", "sshd") == value


def test_send_decodes_reply_with_marker_split_across_reads():
    data = pickled_reply(0, "pong")
    cut = len(data) - len(END) // 2  # half of the marker in each piece

    def split(conn, payload):
        conn.sendall(data[:cut])
        time.sleep(0.05)
        conn.sendall(data[cut:])

    with FakeFail2ban(split) as fake:
        assert make_client(fake).send("ping") == "pong"


def test_send_handles_marker_alone_in_last_read():
    data = pickled_reply(0, "pong")

    def split(conn, payload):
        conn.sendall(data[: -len(END)])
        time.sleep(0.05)
        conn.sendall(END)

    with FakeFail2ban(split) as fake:
        assert make_client(fake).send("ping") == "pong"


def test_send_large_reply():
    value = [f"198.51.{i // 256}.{i % 256} \t2024-01-01 00:00:00 + 600 = x" for i in range(20000)]
    with FakeFail2ban(reply_value(0, value)) as fake:
        assert make_client(fake, timeout=GENEROUS).send("get", "sshd", "banip", "--with-time") == (
            value
        )


# Error replies ----------------------------------------------------------------------------
def test_send_unknown_jail_exception_raises_unknown_jail(fail2ban_exceptions):
    exc = fail2ban_exceptions.UnknownJailException("nope")
    with FakeFail2ban(reply_value(1, exc)) as fake, pytest.raises(UnknownJail) as info:
        make_client(fake).send("get", "nope", "bantime")
    assert info.value.jail == "nope"
    assert info.value.command == ["get", "nope", "bantime"]


def test_send_invalid_command_raises_unsupported_command():
    exc = Exception("Invalid command (no get action or not yet implemented)")
    with FakeFail2ban(reply_value(1, exc)) as fake, pytest.raises(UnsupportedCommand):
        make_client(fake).send("get", "sshd", "backend")


def test_send_other_exception_raises_command_rejected():
    with (
        FakeFail2ban(reply_value(1, ValueError("bad"))) as fake,
        pytest.raises(CommandRejected) as info,
    ):
        make_client(fake).send("set", "sshd", "maxretry", "3")
    assert type(info.value) is CommandRejected
    assert info.value.remote_type == "ValueError"


def test_send_bare_error_string_raises_protocol_error():
    reply = pickle.dumps("ERROR: pickle data was truncated", protocol=4) + END
    with (
        FakeFail2ban(reply_raw(reply)) as fake,
        pytest.raises(ProtocolError, match="could not read the request"),
    ):
        make_client(fake).send("ping")


# Fault injection --------------------------------------------------------------------------
def test_send_garbage_reply_raises_protocol_error():
    with FakeFail2ban(reply_garbage()) as fake, pytest.raises(ProtocolError):
        make_client(fake).send("ping")


def test_send_empty_reply_raises_protocol_error():
    with FakeFail2ban(reply_raw(END)) as fake, pytest.raises(ProtocolError):
        make_client(fake).send("ping")


def test_send_non_pair_reply_raises_protocol_error():
    with FakeFail2ban(reply_raw(pickle.dumps("pong") + END)) as fake, pytest.raises(ProtocolError):
        make_client(fake).send("ping")


@pytest.mark.parametrize("kind", ["os.system", "posix.system", "builtins.eval", "subprocess.Popen"])
def test_send_malicious_reply_raises_protocol_error_and_runs_nothing(tmp_path, kind):
    sentinel = tmp_path / "pwned"
    with FakeFail2ban(reply_malicious(sentinel, via=kind)) as fake, pytest.raises(ProtocolError):
        make_client(fake).send("ping")
    time.sleep(0.05)  # a spawned process would have had time to create it
    assert not sentinel.exists()


def test_send_malicious_bare_reply_raises_protocol_error_and_runs_nothing(tmp_path):
    sentinel = tmp_path / "pwned"
    with (
        FakeFail2ban(reply_malicious(sentinel, as_reply=False)) as fake,
        pytest.raises(ProtocolError),
    ):
        make_client(fake).send("ping")
    assert not sentinel.exists()


def test_send_hang_raises_unreachable_within_timeout():
    with FakeFail2ban(hang()) as fake:
        started = time.monotonic()
        with pytest.raises(Fail2banUnreachable, match="no answer within"):
            make_client(fake, timeout=TIMEOUT).send("ping")
        elapsed = time.monotonic() - started
        assert fake.decoded_requests() == [["ping"]]
    assert elapsed < GENEROUS


def test_send_slow_trickle_still_times_out():
    # A server that keeps sending a byte now and then must not extend the deadline.
    data = pickled_reply(0, "x" * 200)
    with FakeFail2ban(reply_chunked(data, chunk_size=1, pause=0.05)) as fake:
        started = time.monotonic()
        with pytest.raises(Fail2banUnreachable):
            make_client(fake, timeout=TIMEOUT).send("ping")
        assert time.monotonic() - started < GENEROUS


def test_send_disconnect_mid_reply_raises_protocol_error():
    with (
        FakeFail2ban(disconnect_mid_reply()) as fake,
        pytest.raises(ProtocolError, match="closed the connection"),
    ):
        # A timeout sized for a loaded box: this is about the hang-up, not the deadline.
        make_client(fake, timeout=GENEROUS).send("ping")


def test_send_disconnect_without_reply_raises_protocol_error():
    with FakeFail2ban(lambda conn, payload: False) as fake, pytest.raises(ProtocolError):
        make_client(fake, timeout=GENEROUS).send("ping")


def test_connection_refuses_further_commands_after_timeout():
    # The late answer to the first command must never be taken for the second one's.
    def late(conn, payload):
        time.sleep(TIMEOUT * 2)
        conn.sendall(pickled_reply(0, "answer to the first command"))

    with FakeFail2ban([late, reply_value(0, "answer to the second command")]) as fake:
        with make_client(fake, timeout=TIMEOUT).connection() as conn:
            with pytest.raises(Fail2banUnreachable):
                conn.send("get", "sshd", "bantime")
            time.sleep(TIMEOUT * 2)
            with pytest.raises(Fail2banUnreachable, match="earlier error"):
                conn.send("get", "sshd", "maxretry")
        assert fake.decoded_requests() == [["get", "sshd", "bantime"]]


def test_connection_refuses_further_commands_after_garbled_reply():
    # A marker inside a value, cut by the reads right after it: the client stops early,
    # cannot decode, and must not read the rest as the next command's answer.
    data = pickled_reply(0, "before" + END.decode() + "after")
    cut = data.index(END) + len(END)

    def split(conn, payload):
        conn.sendall(data[:cut])
        time.sleep(0.1)
        conn.sendall(data[cut:])

    with (
        FakeFail2ban([split, reply_value(0, "pong")]) as fake,
        make_client(fake).connection() as conn,
    ):
        with pytest.raises(ProtocolError):
            conn.send("ping")
        with pytest.raises(Fail2banUnreachable, match="earlier error"):
            conn.send("ping")


def test_new_connection_works_after_broken_one():
    with FakeFail2ban([reply_garbage(), reply_value(0, "pong")]) as fake:
        client = make_client(fake)
        with pytest.raises(ProtocolError):
            client.send("ping")
        assert client.send("ping") == "pong"


# Connecting -------------------------------------------------------------------------------
def test_connect_missing_socket_raises_unreachable(short_dir):
    path = os.path.join(short_dir, "missing.sock")
    started = time.monotonic()
    with pytest.raises(Fail2banUnreachable, match="does not exist") as info:
        Fail2banClient(path, timeout=TIMEOUT).send("ping")
    assert info.value.socket_path == path
    assert time.monotonic() - started < GENEROUS


def test_connect_regular_file_raises_unreachable(short_dir):
    path = os.path.join(short_dir, "file.sock")
    with open(path, "w") as handle:
        handle.write("not a socket")
    with pytest.raises(Fail2banUnreachable):
        Fail2banClient(path, timeout=TIMEOUT).send("ping")


def test_connect_directory_raises_unreachable(short_dir):
    with pytest.raises(Fail2banUnreachable):
        Fail2banClient(short_dir, timeout=TIMEOUT).send("ping")


def test_connect_refused_raises_unreachable_after_retries(short_dir, monkeypatch):
    path = os.path.join(short_dir, "stale.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: ECONNREFUSED
    assert os.path.exists(path)

    sleeps = []
    real_sleep = time.sleep

    def recording_sleep(seconds):
        sleeps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(client_module.time, "sleep", recording_sleep)
    backoff = (0.001, 0.002, 0.004)
    with pytest.raises(Fail2banUnreachable, match="refused"):
        Fail2banClient(path, timeout=GENEROUS, retry_backoff=backoff).send("ping")
    assert sleeps == list(backoff)


def test_connect_refused_stops_retrying_at_deadline(short_dir):
    path = os.path.join(short_dir, "stale.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    started = time.monotonic()
    with pytest.raises(Fail2banUnreachable):
        Fail2banClient(path, timeout=0.05, retry_backoff=(0.02,) * 100).send("ping")
    assert time.monotonic() - started < GENEROUS


def test_connect_retry_succeeds_when_server_appears(short_dir):
    path = os.path.join(short_dir, "late.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def come_up():
        time.sleep(0.05)
        os.unlink(path)
        listener.bind(path)
        listener.listen(1)
        conn, _ = listener.accept()
        with conn:
            data = b""
            while not data.endswith(END):
                data += conn.recv(4096)
            conn.sendall(pickled_reply(0, "pong"))
            conn.recv(4096)

    thread = threading.Thread(target=come_up, daemon=True)
    thread.start()
    try:
        client = Fail2banClient(path, timeout=GENEROUS, retry_backoff=(0.02,) * 50)
        assert client.send("ping") == "pong"
    finally:
        thread.join(timeout=GENEROUS)
        listener.close()


# Nothing is sent for refused commands -----------------------------------------------------
@pytest.mark.parametrize("marker", [END.decode(), CLOSE.decode()])
@pytest.mark.parametrize(
    "command",
    [
        ["set", "sshd", "banip", "192.0.2.1{m}cos\nsystem\n(Vtouch /tmp/x\ntR."],
        ["set", "sshd{m}", "banip", "192.0.2.1"],
        ["get", "sshd", "bantime{m}"],
        ["ping{m}"],
        ["status", "sshd", "short{m}"],
    ],
)
def test_send_marker_in_argument_raises_before_sending(marker, command):
    words = [word.replace("{m}", marker) for word in command]
    with FakeFail2ban(reply_value(0, "pong")) as fake, pytest.raises(InvalidArgument):
        make_client(fake).send(*words)
        with pytest.raises(InvalidArgument), make_client(fake).connection() as conn:
            conn.send(*words)
        fake.settle()
        assert fake.requests == []
        # Only the connection's own goodbye went over the wire.
        assert bytes(fake.raw) == (CLOSE + END) * 2


@pytest.mark.parametrize(
    "command",
    [
        ["set", "sshd", "banip", "example.com"],
        ["set", "sshd", "banip", "2001:DB8::1"],
        ["set", "sshd", "banip", "--all"],
        ["set", "sshd", "banip", ""],
        ["set", "a b", "banip", "192.0.2.1"],
        ["set", "sshd", "action", "x", "actionban", "touch /tmp/pwned"],
        ["set", "sshd", "logpath", "/etc/shadow"],
        ["reload"],
        ["stop"],
        ["get", "sshd", "action", "x", "actionban"],
    ],
)
def test_send_refused_command_sends_nothing(command):
    with FakeFail2ban(reply_value(0, "pong")) as fake, pytest.raises(InvalidArgument):
        make_client(fake).send(*command)
        fake.settle()
        assert fake.requests == []


def test_send_server_stop_only_with_flag():
    with FakeFail2ban(reply_value(0, None)) as fake, pytest.raises(InvalidArgument):
        make_client(fake).send("stop")
        assert make_client(fake, allow_server_stop=True).send("stop") is None
        assert fake.decoded_requests() == [["stop"]]


def test_errors_share_a_base_class():
    for error in (InvalidArgument, Fail2banUnreachable, ProtocolError, CommandRejected):
        assert issubclass(error, Fail2banError)
    assert issubclass(UnknownJail, CommandRejected)
    assert issubclass(UnsupportedCommand, CommandRejected)


# Batches ---------------------------------------------------------------------------------
def test_send_batch_answers_in_order_over_one_write():
    def answer(command):
        return pickled_reply(0, "|".join(command))

    with FakeFail2ban(reply_for_each(answer)) as fake:
        with make_client(fake).connection() as conn:
            values = conn.send_batch([["ping"], ["status", "sshd"], ["get", "sshd", "bantime"]])
            assert values == ["ping", "status|sshd", "get|sshd|bantime"]
            assert conn.send("ping") == "ping"  # still in step afterwards
        fake.settle()
        assert fake.decoded_requests() == [
            ["ping"],
            ["status", "sshd"],
            ["get", "sshd", "bantime"],
            ["ping"],
        ]


def test_send_batch_splits_replies_that_arrive_in_one_chunk():
    # All three answers written at once by the first behaviour: the client must split them.
    three = pickled_reply(0, "a") + pickled_reply(0, "b") + pickled_reply(0, "c")
    behaviours = [reply_raw(three), reply_raw(b""), reply_raw(b"")]
    with FakeFail2ban(behaviours) as fake, make_client(fake).connection() as conn:
        assert conn.send_batch([["ping"], ["ping"], ["ping"]]) == ["a", "b", "c"]


def test_send_batch_reads_every_reply_then_raises_the_first_refusal(fail2ban_exceptions):
    behaviours = [
        reply_value(0, "first"),
        reply_value(1, fail2ban_exceptions.UnknownJailException("gone")),
        reply_value(0, "third"),
        reply_value(0, "after"),
    ]
    with FakeFail2ban(behaviours) as fake, make_client(fake).connection() as conn:
        with pytest.raises(UnknownJail) as raised:
            conn.send_batch([["ping"], ["status", "gone"], ["ping"]])
        assert raised.value.jail == "gone"
        assert conn.send("ping") == "after"  # every reply was consumed


def test_send_batch_validates_every_command_before_sending_any():
    with FakeFail2ban(reply_value(0, "x")) as fake:
        with make_client(fake).connection() as conn, pytest.raises(InvalidArgument):
            conn.send_batch([["ping"], ["set", "sshd", "banip", "not-an-ip"]])
        fake.settle()
        assert fake.decoded_requests() == []


def test_send_batch_extra_reply_is_a_protocol_error():
    extra = pickled_reply(0, "a") + pickled_reply(0, "surplus")
    with (
        FakeFail2ban(reply_raw(extra)) as fake,
        make_client(fake).connection() as conn,
        pytest.raises(ProtocolError),
    ):
        conn.send_batch([["ping"]])


def test_send_batch_against_real_server(runtime, f2b):
    with runtime.jail_service.client.connection() as conn:
        values = conn.send_batch(
            [["get", "sshd", "maxretry"], ["get", "postfix", "maxretry"], ["ping"]]
        )
    assert values == [3, 5, "pong"]
