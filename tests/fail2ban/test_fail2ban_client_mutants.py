"""What mutation testing (`make mutation`) found unpinned in the fail2ban client, pinned down.

The allow-list has its own file (test_fail2ban_allowlist_mutants.py); this one covers what
carries a command there and its answer back: the restricted unpickler's reader and its
refusals (the message the caller sees), the typed errors' texts, and the client's framing of
a batch of replies (every way the end marker can be cut by the reads, the size limit, a
server that hangs up or goes quiet mid-batch). Every test talks to a fake fail2ban socket
server (tests/support/fakeserver.py) through the real client, or calls the function the
client calls, and asserts what a caller gets: the value, the typed error and its message.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import socket
import sqlite3
import sys
import tempfile
import time

import pytest

from jails.fail2ban.client import Connection, Fail2banClient, _describe_connect_error
from jails.fail2ban.dbfile import (
    Fail2banBan,
    fail2ban_db_add,
    fail2ban_db_create,
    fail2ban_db_delete,
)
from jails.fail2ban.errors import (
    CommandRejected,
    Fail2banUnreachable,
    ProtocolError,
    ReloadFailed,
    ReplyTooLarge,
    UnknownJail,
    UnsupportedCommand,
)
from jails.fail2ban.protocol import END, ForbiddenPickle, restricted_loads
from tests.support.fakeserver import (
    FakeFail2ban,
    disconnect_mid_reply,
    fake_fail2ban_exceptions,
    hang,
    pickled_reply,
    reply_chunked,
    reply_raw,
    reply_value,
)

GENEROUS = 5.0  # a timeout only a broken client reaches; never asserted on
SHORT = 0.3  # for the tests about a deadline: the fake stays silent, the client gives up


def _client(fake: FakeFail2ban, **kwargs: object) -> Fail2banClient:
    kwargs.setdefault("timeout", GENEROUS)
    return Fail2banClient(fake.path, **kwargs)  # type: ignore[arg-type]


# --- the restricted unpickler ---------------------------------------------------------------------
def test_persistent_id_in_a_reply_reaches_the_caller_as_a_protocol_error_saying_so():
    with pytest.raises(ForbiddenPickle) as raised:
        restricted_loads(b"Pfoo\n.")
    assert str(raised.value) == "persistent ids are not allowed in a reply"
    with FakeFail2ban(reply_raw(b"Pfoo\n." + END)) as fake, pytest.raises(ProtocolError) as caught:
        _client(fake).send("ping")
    assert str(caught.value) == (
        "undecodable reply from fail2ban: persistent ids are not allowed in a reply"
    )


# The client reads a reply into a bytearray and unpickles it in place (_BufferReader), which
# the C unpickler reads with read(), readline() (protocols 0 and 1: text lines) and
# readinto() (large binary values): each must give exactly what the stock reader gives.
REPLY_VALUES = [
    "pong",
    ["203.0.113.7", "2001:db8::1"],
    {"sshd": ["polling", [1, 7], [2, 9]]},
    [("Currently banned", 2), ("Banned IP list", ["198.51.100.1\n", "line\nbreak"])],
    -1,
    3.5,
]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("value", REPLY_VALUES)
def test_reply_read_into_a_buffer_decodes_as_the_same_bytes_do(protocol, value):
    data = pickle.dumps((0, value), protocol=protocol)
    assert restricted_loads(bytearray(data)) == restricted_loads(data) == (0, value)
    with FakeFail2ban(reply_chunked(data + END, chunk_size=7, pause=0)) as fake:
        assert _client(fake).send("ping") == value


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_large_binary_value_read_into_a_buffer_decodes_whole(protocol):
    # Large bytes values are read with readinto(), straight into the new object.
    value = [b"\x00\x01" * 150_000, b"tail", "text"]
    data = pickle.dumps((0, value), protocol=protocol)
    assert restricted_loads(bytearray(data)) == (0, value)
    with FakeFail2ban(reply_raw(data + END)) as fake:
        assert _client(fake).send("ping") == value


def test_buffer_cut_short_is_a_protocol_error_not_a_partial_value():
    data = pickle.dumps((0, ["a" * 1000, b"\x01" * 100_000]), protocol=4)
    for cut in (len(data) // 2, len(data) - 2):
        with pytest.raises((pickle.UnpicklingError, EOFError)):
            restricted_loads(bytearray(data[:cut]))
    text = pickle.dumps((0, ["a", "b"]), protocol=0)
    with pytest.raises((pickle.UnpicklingError, EOFError, ValueError)):
        restricted_loads(bytearray(text[: text.index(b"\n") + 1]))


# --- typed errors' texts ------------------------------------------------------------------------
def test_reload_failed_without_output_is_its_message_alone():
    exc = ReloadFailed("reload failed (exit code 255)")
    assert str(exc) == "reload failed (exit code 255)"
    assert (exc.summary, exc.output) == ("reload failed (exit code 255)", "")


def test_reload_failed_with_output_shows_it_on_the_next_line():
    exc = ReloadFailed("reload failed (exit code 255)", "ERROR  No file(s) found")
    assert str(exc) == "reload failed (exit code 255)\nERROR  No file(s) found"
    assert (exc.summary, exc.output) == ("reload failed (exit code 255)", "ERROR  No file(s) found")


# --- batches: framing of several replies ----------------------------------------------------------
def _replies(*values: object) -> bytes:
    return b"".join(pickled_reply(0, value) for value in values)


@pytest.mark.parametrize("chunk_size", [1, 3, len(END) - 1, len(END), len(END) + 1])
def test_batch_replies_cut_anywhere_are_split_on_each_marker(chunk_size):
    # Every way of cutting the end marker across two reads happens for one of these sizes.
    values = ["first", ["203.0.113.7"], {"a": 1}]
    data = _replies(*values)
    behaviours = [reply_chunked(data, chunk_size=chunk_size, pause=0), reply_raw(b"")]
    with FakeFail2ban(behaviours) as fake, _client(fake).connection() as conn:
        assert conn.send_batch([["ping"], ["ping"], ["ping"]]) == values


def test_batch_reply_whose_marker_arrives_one_byte_late_is_still_found():
    # All of a reply but the last byte of its marker, then that byte: the search must look
    # back over the bytes already read, not only at the new ones.
    data = _replies("one", "two")
    cut = len(pickled_reply(0, "one")) - 1

    def split(conn, payload):
        conn.sendall(data[:cut])
        time.sleep(0.05)
        conn.sendall(data[cut:])

    with FakeFail2ban([split, reply_raw(b"")]) as fake, _client(fake).connection() as conn:
        assert conn.send_batch([["ping"], ["ping"]]) == ["one", "two"]


def test_batch_empty_reply_after_a_split_marker_is_a_protocol_error_not_a_hang():
    # An empty reply (the marker alone) whose first byte comes with the reply before it:
    # the marker then starts what is left of the buffer, and must be found there.
    first = pickled_reply(0, "one") + END[:1]

    def split(conn, payload):
        conn.sendall(first)
        time.sleep(0.1)
        conn.sendall(END[1:])

    behaviours = [split, reply_raw(b"")]
    with (
        FakeFail2ban(behaviours) as fake,
        _client(fake).connection() as conn,
        pytest.raises(ProtocolError) as raised,
    ):
        conn.send_batch([["ping"], ["ping"]])
    assert str(raised.value).startswith("undecodable reply from fail2ban: ")


def test_batch_reply_over_the_limit_is_refused_before_it_is_read_whole():
    # No marker in sight and more than the limit already read: give up with the typed error.
    endless = b"x" * 40_000
    with (
        FakeFail2ban(reply_chunked(endless, chunk_size=4096, pause=0)) as fake,
        _client(fake, max_reply_bytes=10_000).connection() as conn,
        pytest.raises(ReplyTooLarge) as raised,
    ):
        conn.send_batch([["ping"], ["ping"]])
    assert raised.value.limit == 10_000
    assert "larger than 10,000 bytes" in str(raised.value)


def test_batch_replies_each_under_the_limit_are_read_even_when_together_they_are_over():
    values = ["a" * 6_000, "b" * 6_000, "c" * 6_000]
    with (
        FakeFail2ban([reply_raw(_replies(*values)), reply_raw(b"")]) as fake,
        _client(fake, max_reply_bytes=10_000).connection() as conn,
    ):
        assert conn.send_batch([["ping"], ["ping"], ["ping"]]) == values


def test_batch_server_hanging_up_mid_batch_is_a_protocol_error_saying_so():
    data = pickled_reply(0, "one") + pickled_reply(0, "two")[:5]

    def half(conn, payload):
        conn.sendall(data)
        return False  # hang up

    with (
        FakeFail2ban(half) as fake,
        _client(fake).connection() as conn,
        pytest.raises(ProtocolError) as raised,
    ):
        conn.send_batch([["ping"], ["ping"]])
    assert str(raised.value) == "fail2ban closed the connection in the middle of a reply"


def test_batch_server_going_quiet_mid_batch_is_unreachable_after_the_timeout():
    with (
        FakeFail2ban([reply_raw(pickled_reply(0, "one")), hang()]) as fake,
        _client(fake, timeout=SHORT).connection() as conn,
    ):
        with pytest.raises(Fail2banUnreachable) as raised:
            conn.send_batch([["ping"], ["ping"]])
        assert (
            str(raised.value) == f"fail2ban is not reachable at {fake.path}: no answer within 0.3 s"
        )
        assert (raised.value.socket_path, raised.value.reason) == (
            fake.path,
            "no answer within 0.3 s",
        )
        # Out of step now: the next command is refused rather than misread.
        with pytest.raises(Fail2banUnreachable) as unusable:
            conn.send("ping")
        assert str(unusable.value) == (
            f"fail2ban is not reachable at {fake.path}:"
            " the connection is unusable after an earlier error"
        )


def test_a_server_gone_before_the_request_is_unreachable_with_the_systems_words():
    # fail2ban died with the connection open: the request meets a closed socket (EPIPE).
    ours, theirs = socket.socketpair()
    theirs.close()
    conn = Connection(ours, "/run/f2b.sock", GENEROUS, allow_server_stop=False)
    try:
        with pytest.raises(Fail2banUnreachable) as raised:
            conn.send("ping")
    finally:
        conn.close()
    assert str(raised.value) == "fail2ban is not reachable at /run/f2b.sock: Broken pipe"
    assert (raised.value.socket_path, raised.value.reason) == ("/run/f2b.sock", "Broken pipe")


def test_one_reply_of_exactly_the_limit_is_read_and_one_byte_more_is_refused():
    payload = pickled_reply(0, "x" * 200)
    limit = len(payload) - len(END)
    with FakeFail2ban(reply_raw(payload)) as fake:
        assert _client(fake, max_reply_bytes=limit).send("ping") == "x" * 200
        with pytest.raises(ReplyTooLarge) as raised:
            _client(fake, max_reply_bytes=limit - 1).send("ping")
    assert raised.value.limit == limit - 1
    assert str(raised.value).startswith(f"fail2ban's reply is larger than {limit - 1:,} bytes")


def test_one_reply_cut_off_by_a_hang_up_says_so():
    with FakeFail2ban(disconnect_mid_reply()) as fake, pytest.raises(ProtocolError) as raised:
        _client(fake).send("ping")
    assert str(raised.value) == "fail2ban closed the connection in the middle of a reply"


def test_client_defaults_and_the_sockets_identity(tmp_path):
    client = Fail2banClient()
    assert (client.socket_path, client.timeout, client.allow_server_stop) == (
        "/var/run/fail2ban/fail2ban.sock",
        5.0,
        False,
    )
    with FakeFail2ban() as fake:
        info = os.stat(fake.path)
        assert _client(fake).endpoint_identity() == (info.st_dev, info.st_ino, info.st_ctime_ns)
    assert Fail2banClient(str(tmp_path / "gone.sock")).endpoint_identity() is None


# --- dbfile: what the tests' fake fail2ban database does on unban --------------------------------
def _bips_add(path, *rows):
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO bips(ip, jail, timeofban, bantime, bancount, data)"
            " VALUES (?, ?, ?, 600, 1, '{}')",
            rows,
        )
    db.close()


def _rows(path, table):
    with sqlite3.connect(path) as db:
        rows = sorted(db.execute(f"SELECT ip, jail FROM {table}").fetchall())
    db.close()
    return rows


@pytest.fixture
def fail2ban_db(tmp_path):
    path = tmp_path / "fail2ban.sqlite3"
    fail2ban_db_create(path, jails=["sshd"])
    fail2ban_db_add(
        path,
        [
            Fail2banBan("sshd", "203.0.113.7", 1_700_000_000),
            Fail2banBan("sshd", "203.0.113.7", 1_700_000_600),
            Fail2banBan("postfix", "203.0.113.7", 1_700_000_100),
            Fail2banBan("sshd", "198.51.100.1", 1_700_000_200),
        ],
    )
    _bips_add(
        path,
        ("203.0.113.7", "sshd", 1_700_000_600),
        ("203.0.113.7", "postfix", 1_700_000_100),
        ("198.51.100.1", "sshd", 1_700_000_200),
    )
    return path


def test_db_delete_of_one_address_drops_its_rows_from_both_tables_only(fail2ban_db):
    assert fail2ban_db_delete(fail2ban_db, ip="203.0.113.7") == 3
    assert _rows(fail2ban_db, "bans") == [("198.51.100.1", "sshd")]
    assert _rows(fail2ban_db, "bips") == [("198.51.100.1", "sshd")]
    assert fail2ban_db_delete(fail2ban_db, ip="203.0.113.7") == 0


def test_db_delete_of_everything_empties_both_tables(fail2ban_db):
    assert fail2ban_db_delete(fail2ban_db) == 4
    assert _rows(fail2ban_db, "bans") == []
    assert _rows(fail2ban_db, "bips") == []


# --- what a refusal carries back to the caller ----------------------------------------------------
@pytest.fixture
def fail2ban_exceptions(monkeypatch):
    """``fail2ban.exceptions`` stand-in, importable while the test pickles its classes."""
    package, module = fake_fail2ban_exceptions()
    monkeypatch.setitem(sys.modules, "fail2ban", package)
    monkeypatch.setitem(sys.modules, "fail2ban.exceptions", module)
    return module


def _refusal(reply_exception, *command):
    with (
        FakeFail2ban(reply_value(1, reply_exception)) as fake,
        pytest.raises(CommandRejected) as raised,
    ):
        _client(fake).send(*command)
    return raised.value


def test_refusal_with_a_plain_value_carries_the_command_and_the_value_as_text():
    exc = _refusal(["not", "an", "exception"], "set", "sshd", "maxretry", "3")
    assert type(exc) is CommandRejected
    assert (exc.command, exc.remote_type) == (["set", "sshd", "maxretry", "3"], "unknown")
    assert exc.message == str(exc) == "['not', 'an', 'exception']"


def test_refusal_of_an_unknown_jail_without_its_name_says_so(fail2ban_exceptions):
    exc = _refusal(fail2ban_exceptions.UnknownJailException(), "status", "gone")
    assert isinstance(exc, UnknownJail)
    assert (exc.jail, exc.command, str(exc)) == ("?", ["status", "gone"], "unknown jail: ?")


def test_refusal_of_another_kind_carries_the_command_and_the_remote_message(fail2ban_exceptions):
    exc = _refusal(fail2ban_exceptions.DuplicateJailException("sshd", "twice"), "start", "sshd")
    assert type(exc) is CommandRejected
    assert (exc.command, exc.remote_type) == (["start", "sshd"], "DuplicateJailException")
    assert exc.message == str(exc) == "sshd twice"


# --- why a connection failed, in words -----------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (errno.ENOENT, "the socket does not exist"),
        (errno.EACCES, "permission denied on the socket"),
        (errno.EPERM, "permission denied on the socket"),
        (errno.ECONNREFUSED, "connection refused (is fail2ban running?)"),
        (errno.ENOTSOCK, "the path is not a socket"),
        (errno.EIO, os.strerror(errno.EIO)),
    ],
)
def test_connect_error_is_worded_for_people(error, reason):
    # Root is never refused by a socket's mode, so EACCES cannot be provoked here for real.
    assert _describe_connect_error(OSError(error, os.strerror(error))) == reason


def test_connect_error_without_an_errno_is_worded_as_raised():
    assert _describe_connect_error(OSError("AF_UNIX path too long")) == "AF_UNIX path too long"


def test_connect_to_a_socket_nobody_listens_on_is_refused_in_words():
    path = tempfile.mkdtemp(prefix="f2bm", dir="/tmp") + "/dead.sock"
    bound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        bound.bind(path)  # bound, never listening: connect() gets ECONNREFUSED
        client = Fail2banClient(path, timeout=GENEROUS, retry_backoff=())
        with pytest.raises(Fail2banUnreachable) as raised:
            client.send("ping")
    finally:
        bound.close()
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    assert raised.value.reason == "connection refused (is fail2ban running?)"


# --- replies that are not answers ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (pickle.dumps(["a", "b", "c"]), "reply is not an (rc, value) pair"),
        (pickle.dumps((2, "x")), "reply is not an (rc, value) pair"),
        (pickle.dumps("pong"), "reply is not an (rc, value) pair"),
        (
            pickle.dumps("ERROR: pickle data was truncated "),
            "fail2ban could not read the request: pickle data was truncated",
        ),
        (pickle.dumps("ERROR:no space"), "fail2ban could not read the request: no space"),
    ],
)
def test_reply_that_is_no_answer_is_a_protocol_error_saying_why(reply, message):
    with FakeFail2ban(reply_raw(reply + END)) as fake, pytest.raises(ProtocolError) as raised:
        _client(fake).send("ping")
    assert str(raised.value) == message


def test_success_reply_carrying_an_exception_is_a_protocol_error_saying_so(fail2ban_exceptions):
    reply = reply_value(0, fail2ban_exceptions.UnknownJailException("sshd"))
    with FakeFail2ban(reply) as fake, pytest.raises(ProtocolError) as raised:
        _client(fake).send("ping")
    assert str(raised.value) == "success reply carries an exception"


def test_refusal_as_not_implemented_carries_the_command():
    exc = _refusal(Exception("Invalid command (no get action)"), "get", "sshd", "backend")
    assert isinstance(exc, UnsupportedCommand)
    assert (exc.command, exc.remote_type) == (["get", "sshd", "backend"], "Exception")
    assert exc.message == str(exc) == "Invalid command (no get action)"


def test_batch_empty_reply_in_the_same_read_as_the_one_before_is_found_at_once():
    # The marker of an empty reply starts the rest of the buffer: found there, never waited on.
    data = pickled_reply(0, "one") + END
    with (
        FakeFail2ban([reply_raw(data), reply_raw(b"")]) as fake,
        _client(fake).connection() as conn,
        pytest.raises(ProtocolError) as raised,
    ):
        conn.send_batch([["ping"], ["ping"]])
    assert str(raised.value).startswith("undecodable reply from fail2ban: ")


def test_batch_more_replies_than_requests_is_a_protocol_error_saying_so():
    with (
        FakeFail2ban(reply_raw(_replies("a", "surplus"))) as fake,
        _client(fake).connection() as conn,
        pytest.raises(ProtocolError) as raised,
    ):
        conn.send_batch([["ping"]])
    assert str(raised.value) == "fail2ban sent more replies than requests"


def test_batch_reply_of_exactly_the_limit_is_read_though_its_marker_comes_later():
    payload = pickle.dumps((0, "x" * 5_000), protocol=4)

    def late_marker(conn, request):
        conn.sendall(payload)
        time.sleep(0.1)
        conn.sendall(END)

    with (
        FakeFail2ban([late_marker]) as fake,
        _client(fake, max_reply_bytes=len(payload)).connection() as conn,
    ):
        assert conn.send_batch([["ping"]]) == ["x" * 5_000]
