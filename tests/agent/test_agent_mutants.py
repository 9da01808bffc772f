"""What mutation testing (`make mutation`) found unpinned in jails/agent, pinned down.

Each test asserts behaviour a caller relies on: which typed error, with which message,
reaches the caller; the bounds on either side of each limit; the exact shape of what
crosses the wire; what a damaged fail2ban database reads as. In-process (no agent): these
are the functions the agent and DirectLink share (README, "Mutation testing"); the last
part asks a real agent (`python -m jails.agent`) and parses its command line.
"""

from __future__ import annotations

import grp
import math
import os
import pickle
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from jails.agent import operations
from jails.agent.__main__ import main, parser_build
from jails.agent.client import AgentLink, _ban_row
from jails.agent.link import MAX_UNIX_PATH, agent_address_check
from jails.agent.operations import HostConfig
from jails.agent.protocol import (
    HEADER,
    FrameTooLarge,
    error_decode,
    error_encode,
    frame_encode,
    wire_value,
)
from jails.agent.regex import RegexDraft, RegexRequest
from jails.agent.server import OPERATIONS, Agent, dispatch, handshake
from jails.fail2ban import (
    AgentRefused,
    DatabaseUnavailable,
    Fail2banError,
    Fail2banUnreachable,
    InvalidArgument,
    ProtocolError,
    ReloadFailed,
    ReplyTooLarge,
    UnknownJail,
)
from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create
from jails.fail2ban.protocol import END
from tests.agent.test_agent_attacks import _greeted_connection
from tests.agent.test_agent_operations_mutants import _client_script
from tests.conftest import wait_until
from tests.support.agent_process import AgentProcess, RawAgentConnection
from tests.support.fakeserver import FakeFail2ban, hang, reply_raw, reply_value

MAX_NESTING = 33  # containers inside containers that wire_value passes on (_MAX_DEPTH + 1)


# --- protocol: frames and values ------------------------------------------------------------------
def test_frame_too_large_names_the_length_and_the_limit():
    exc = FrameTooLarge(20_000_000, 16_777_216)
    assert str(exc) == "a frame of 20,000,000 bytes is larger than the limit of 16,777,216"
    assert (exc.length, exc.limit) == (20_000_000, 16_777_216)


def _nested(levels, wrap):
    value = 1
    for _ in range(levels):
        value = wrap(value)
    return value


@pytest.mark.parametrize(
    "wrap",
    [
        lambda v: [v],
        lambda v: (v,),
        lambda v: frozenset({v}),
        lambda v: {"k": v},
    ],
    ids=["list", "tuple", "set", "dict"],
)
def test_wire_value_passes_33_levels_of_nesting_and_refuses_34(wrap):
    # Each kind of container counts one level: fail2ban's deepest real reply has four.
    deepest = wire_value(_nested(MAX_NESTING, wrap))
    for _ in range(MAX_NESTING):
        deepest = next(iter(deepest.values())) if isinstance(deepest, dict) else deepest[0]
    assert deepest == 1
    with pytest.raises(ProtocolError) as refused:
        wire_value(_nested(MAX_NESTING + 1, wrap))
    assert str(refused.value) == "fail2ban's reply is nested too deeply to pass on"


def test_wire_value_sorts_sets_in_natural_order_when_it_can():
    assert wire_value({10, 9}) == [9, 10]  # numerically, not as text ("10" < "9")
    assert wire_value(frozenset({"b", "a"})) == ["a", "b"]


def test_wire_value_sorts_a_mixed_set_by_its_json_text():
    # Python iterates {10, (1,)} as [(1,), 10]; by JSON text "10" comes before "[1]".
    assert list({10, (1,)}) == [(1,), 10]
    assert wire_value({10, (1,)}) == [10, [1]]


def test_wire_value_keys_and_leaves():
    assert wire_value({1: (True, None, 2.5)}) == {"1": [True, None, 2.5]}
    assert wire_value([math.nan, math.inf]) == ["nan", "inf"]
    for key in (True, (1, 2), 2.5):
        with pytest.raises(ProtocolError) as refused:
            wire_value({key: 1})
        assert str(refused.value) == "fail2ban's reply has a key that JSON cannot carry"
    with pytest.raises(ProtocolError) as refused:
        wire_value(b"bytes")
    assert str(refused.value) == "fail2ban's reply holds a bytes, not plain data"


# --- protocol: typed errors as data ---------------------------------------------------------------
def test_error_encode_gives_each_type_its_fields():
    unknown = UnknownJail(["status", "nope"], "nope")
    assert error_encode(unknown) == {
        "type": "UnknownJail",
        "message": "unknown jail: nope",
        "command": ["status", "nope"],
        "jail": "nope",
    }
    unreachable = Fail2banUnreachable("/run/f2b.sock", "refused")
    assert error_encode(unreachable) == {
        "type": "Fail2banUnreachable",
        "message": "fail2ban is not reachable at /run/f2b.sock: refused",
        "socket_path": "/run/f2b.sock",
        "reason": "refused",
    }
    too_large = ReplyTooLarge(1000)
    assert error_encode(too_large) == {
        "type": "ReplyTooLarge",
        "message": str(too_large),
        "limit": 1000,
    }
    for exc in (unknown, unreachable, too_large):
        back = error_decode(error_encode(exc))
        assert type(back) is type(exc) and str(back) == str(exc)


def test_error_encode_of_an_error_without_an_encoder_is_a_protocol_error():
    # The base class has no encoder of its own; it must not be looked up as one.
    assert error_encode(Fail2banError("odd")) == {"type": "ProtocolError", "message": "odd"}


@pytest.mark.parametrize(
    "data",
    [
        {"type": "UnknownJail", "message": "m", "command": "status", "jail": "x"},
        {"type": "UnknownJail", "message": "m", "command": ["status", 1], "jail": "x"},
        {"type": "ReplyTooLarge", "message": "m", "limit": True},
        {"type": "ReplyTooLarge", "message": "m", "limit": "5"},
    ],
)
def test_error_decode_refuses_malformed_fields(data):
    exc = error_decode(data)
    assert type(exc) is ProtocolError
    assert str(exc) == f"the agent sent a malformed {data['type']} error"


# --- client: a database row from the agent --------------------------------------------------------
GOOD_ROW = [7, "sshd", "192.0.2.1", 1_700_000_000, 600, 3, '{"failures": 3}']


def test_ban_row_takes_a_well_formed_row_field_for_field():
    assert _ban_row(GOOD_ROW) == (7, "sshd", "192.0.2.1", 1_700_000_000, 600, 3, '{"failures": 3}')
    assert _ban_row([*GOOD_ROW[:6], None])[6] is None


@pytest.mark.parametrize(
    "row",
    [
        tuple(GOOD_ROW),  # not a JSON array
        GOOD_ROW[:6],
        ["7", *GOOD_ROW[1:]],
        [*GOOD_ROW[:1], 5, *GOOD_ROW[2:]],
        [*GOOD_ROW[:2], 5, *GOOD_ROW[3:]],
        [*GOOD_ROW[:3], "1700000000", *GOOD_ROW[4:]],
        [*GOOD_ROW[:3], True, *GOOD_ROW[4:]],
        [*GOOD_ROW[:4], "600", *GOOD_ROW[5:]],
        [*GOOD_ROW[:5], 3.0, GOOD_ROW[6]],
        [*GOOD_ROW[:6], 5],
    ],
)
def test_ban_row_refuses_a_malformed_row(row):
    with pytest.raises(ProtocolError) as refused:
        _ban_row(row)
    assert str(refused.value) == "the agent's database row is malformed"


# --- link: the agent's address ---------------------------------------------------------------
def test_agent_address_path_length_bound_and_nul():
    longest = "/" + "a" * (MAX_UNIX_PATH - 1)
    assert agent_address_check(f"unix:{longest}") == f"unix:{longest}"
    for path in (longest + "a", "/run/agent\x00.sock"):
        with pytest.raises(InvalidArgument) as refused:
            agent_address_check(f"unix:{path}")
        assert str(refused.value) == "the agent's socket path is longer than 107 bytes"
    with pytest.raises(InvalidArgument) as refused:
        agent_address_check("tcp:host")
    assert str(refused.value) == (
        "the agent address must look like unix:/run/jailadmin/agent.sock, not 'tcp:host'"
    )


# --- operations: reading fail2ban's database -------------------------------------------------
@pytest.fixture
def dbfile(tmp_path):
    path = tmp_path / "fail2ban.sqlite3"
    fail2ban_db_create(path, jails=["sshd"])
    fail2ban_db_add(path, [Fail2banBan("sshd", "192.0.2.1", 1_700_000_000)])
    return path


def _loose_database(path: Path, *, version: int | None, rows=(), bans_table=True) -> str:
    """A database shaped like fail2ban's but without its constraints: damaged rows fit."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE fail2banDb(version INTEGER)")
    if version is not None:
        db.execute("INSERT INTO fail2banDb VALUES (?)", (version,))
    if bans_table:
        db.execute("CREATE TABLE bans(jail, ip, timeofban, bantime, bancount, data)")
        db.executemany("INSERT INTO bans VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()
    return str(path)


def test_database_bans_limit_bounds_and_messages(dbfile):
    path = str(dbfile)
    assert len(operations.database_bans(path, after=0, limit=operations.MAX_BATCH_ROWS)) == 1
    for limit in (0, operations.MAX_BATCH_ROWS + 1, True, "10"):
        with pytest.raises(InvalidArgument) as refused:
            operations.database_bans(path, after=0, limit=limit)
        assert str(refused.value) == "limit must be between 1 and 10000"
    for after in (-1, True, "0"):
        with pytest.raises(InvalidArgument) as refused:
            operations.database_bans(path, after=after, limit=10)
        assert str(refused.value) == "after must be a whole number >= 0"


def test_database_ban_refuses_a_rowid_that_is_not_a_whole_number(dbfile):
    for rowid in (True, "1", 1.0):
        with pytest.raises(InvalidArgument) as refused:
            operations.database_ban(str(dbfile), rowid=rowid)
        assert str(refused.value) == "rowid must be a whole number"


def test_database_version_2_is_read_and_1_is_not(tmp_path):
    row = ("sshd", "192.0.2.9", 1_700_000_000, 600, 1, None)
    v2 = _loose_database(tmp_path / "v2.sqlite3", version=2, rows=[row])
    assert operations.database_bans(v2, after=0, limit=10) == [(1, *row)]
    for name, version in (("v1.sqlite3", 1), ("empty.sqlite3", None)):
        path = _loose_database(tmp_path / name, version=version)
        with pytest.raises(DatabaseUnavailable) as refused:
            operations.database_bans(path, after=0, limit=10)
        assert str(refused.value) == f"{path} is not a fail2ban database this version understands"


def test_database_errors_name_the_file_and_the_cause(tmp_path):
    no_bans = _loose_database(tmp_path / "no-bans.sqlite3", version=4, bans_table=False)
    for read in (
        lambda: operations.database_bans(no_bans, after=0, limit=10),
        lambda: operations.database_ban(no_bans, rowid=1),
    ):
        with pytest.raises(DatabaseUnavailable) as refused:
            read()
        # At once, not after the retries meant for a locked database.
        assert (
            str(refused.value) == f"cannot read fail2ban's database {no_bans}: no such table: bans"
        )
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.close()
    with pytest.raises(DatabaseUnavailable) as refused:
        operations.database_bans(str(other), after=0, limit=10)
    assert str(refused.value) == (
        f"cannot read fail2ban's database {other}: no such table: fail2banDb"
    )
    odd_version = _loose_database(tmp_path / "odd-version.sqlite3", version=None)
    db = sqlite3.connect(odd_version)
    db.execute("INSERT INTO fail2banDb VALUES ('four')")
    db.commit()
    db.close()
    with pytest.raises(DatabaseUnavailable) as refused:
        operations.database_bans(odd_version, after=0, limit=10)
    assert str(refused.value) == (
        f"cannot read fail2ban's database {odd_version}: "
        "invalid literal for int() with base 10: 'four'"
    )
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(DatabaseUnavailable) as refused:
        operations.database_bans(str(garbage), after=0, limit=10)
    assert str(refused.value) == (
        f"cannot read fail2ban's database {garbage}: file is not a database"
    )


def test_database_that_does_not_exist_is_not_created(tmp_path):
    missing = tmp_path / "missing.sqlite3"
    with pytest.raises(DatabaseUnavailable) as refused:
        operations.database_bans(str(missing), after=0, limit=10)
    assert str(refused.value).startswith(f"cannot read fail2ban's database {missing}: ")
    # Opened read-only: a reader never creates fail2ban's file.
    assert not missing.exists()


def test_database_locked_throughout_is_retried_then_reported(dbfile):
    # A writer holding its lock for the whole read: each of the 5 reads waits out sqlite's
    # 2 s busy timeout, then the read gives up with the message the history sync shows.
    holder = sqlite3.connect(dbfile, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DatabaseUnavailable) as refused:
            operations.database_bans(str(dbfile), after=0, limit=10)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert str(refused.value) == (
        "fail2ban's database stayed locked; will try again on the next sync"
    )


def test_database_damaged_values_read_as_defaults(tmp_path):
    rows = [
        (None, None, "not a time", "not a duration", "many", None),
        ("sshd", "192.0.2.1", "1700000000", "600", "2", "text data"),
        ("sshd", "192.0.2.2", "not a time", 600, 1, None),
    ]
    path = _loose_database(tmp_path / "damaged.sqlite3", version=4, rows=rows)
    assert operations.database_bans(path, after=0, limit=10) == [
        (1, "", "", 0, 0, 1, None),
        (2, "sshd", "192.0.2.1", 1_700_000_000, 600, 2, "text data"),
        (3, "sshd", "192.0.2.2", 0, 600, 1, None),
    ]
    assert operations.database_ban(path, rowid=2) == ("sshd", "192.0.2.1", 1_700_000_000)
    assert operations.database_ban(path, rowid=3) == ("sshd", "192.0.2.2", 0)


def test_database_data_up_to_the_limit_is_passed_on(tmp_path):
    limit = operations.MAX_DATA_BYTES
    rows = [
        ("sshd", "192.0.2.1", 1, 600, 1, b"x" * limit),
        ("sshd", "192.0.2.2", 1, 600, 1, b"x" * (limit + 1)),
        ("sshd", "192.0.2.3", 1, 600, 1, "y" * limit),
        ("sshd", "192.0.2.4", 1, 600, 1, "y" * (limit + 1)),
        ("sshd", "192.0.2.5", 1, 600, 1, b"caf\xe9 \xff"),  # not UTF-8: replaced, not refused
    ]
    path = _loose_database(tmp_path / "data.sqlite3", version=4, rows=rows)
    data = [row[6] for row in operations.database_bans(path, after=0, limit=10)]
    assert data == ["x" * limit, None, "y" * limit, None, "caf\ufffd \ufffd"]


# --- the agent: operations' arguments, as a real agent answers them -----------------------------
@pytest.fixture
def agent_link(f2b_agent):
    link = AgentLink(f2b_agent.address, timeout=10.0)
    yield link
    link.close()


ROWID_RANGE = "rowid must be a whole number from -9223372036854775808 to 9223372036854775807"


def test_agent_database_ban_takes_any_64_bit_rowid(agent_link):
    # SQLite's rowids are signed 64-bit: the whole range is asked, nothing past it.
    for rowid in (-(2**63), 2**63 - 1):
        assert agent_link._call("database_ban", {"rowid": rowid}) is None
    for rowid in (-(2**63) - 1, 2**63, "5", 5.0):
        with pytest.raises(InvalidArgument) as refused:
            agent_link._call("database_ban", {"rowid": rowid})
        assert str(refused.value) == ROWID_RANGE


def test_agent_fail2ban_operation_takes_1_to_10000_commands_in_a_list(agent_link):
    count_message = "commands must be a list of 1 to 10000 commands"
    # 10 000 commands are counted as allowed; the last one's refusal then sends none at all.
    with pytest.raises(InvalidArgument) as refused:
        agent_link._call("fail2ban", {"commands": [["ping"]] * 9999 + [["bogus"]]})
    assert str(refused.value) == "command 'bogus' is not allowed"
    for commands in ([["ping"]] * 10001, [], "status", {"ping": 1}):
        with pytest.raises(InvalidArgument) as refused:
            agent_link._call("fail2ban", {"commands": commands})
        assert str(refused.value) == count_message


def test_agent_reload_of_one_jail_leaves_the_others(f2b, agent_link):
    agent_link.send("set", "sshd", "maxretry", "9")
    agent_link.send("set", "postfix", "maxretry", "9")
    agent_link.reload(jail="sshd")
    assert agent_link.send("get", "sshd", "maxretry") == 3  # the configured value is back
    assert agent_link.send("get", "postfix", "maxretry") == 9  # not reloaded
    with pytest.raises(InvalidArgument) as refused:
        agent_link._call("reload", {"jail": 5})
    assert str(refused.value) == "jail must be a jail name or null"


def test_agent_without_a_fail2ban_database_says_so():
    with FakeFail2ban(reply_value(0, None)) as fake, AgentProcess(fake.path) as agent:
        link = AgentLink(agent.address)
        with pytest.raises(DatabaseUnavailable) as refused:
            link.database_bans(after=0, limit=10)
        link.close()
    assert str(refused.value) == "fail2ban keeps no database (dbfile is unset or :memory:)"


# --- the agent's command line -------------------------------------------------------------------
def test_command_line_defaults():
    options = parser_build().parse_args(["--stdio"])
    assert (options.stdio, options.listen, options.group) == (True, None, None)
    assert options.mode == 0o660
    assert options.socket == "/var/run/fail2ban/fail2ban.sock"
    assert (options.timeout, options.reload_timeout) == (5.0, 120.0)
    assert options.config_dir == "/etc/fail2ban"
    assert options.fail2ban_client == "fail2ban-client"
    assert (options.frame_timeout, options.idle_timeout) == (10.0, 300.0)
    assert (options.max_connections, options.workers) == (256, 4)
    assert options.log_level == "WARNING"


@pytest.mark.parametrize(
    ("argv", "value"),
    [
        (["--mode", "0"], 0),
        (["--mode", "777"], 0o777),
        (["--mode", "0640"], 0o640),
        (["--timeout", "0.5"], 0.5),
        (["--listen", "unix:/run/a.sock"], "/run/a.sock"),
    ],
)
def test_command_line_accepts(argv, value):
    way = [] if argv[0] == "--listen" else ["--stdio"]
    options = parser_build().parse_args([*way, *argv])
    assert getattr(options, argv[0][2:]) == value


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mode", "1000"], "argument --mode: not a file mode: 1000"),
        (["--mode", "-1"], "argument --mode: not a file mode: -1"),
        (["--mode", "8"], "argument --mode: not an octal mode: 8"),
        (["--timeout", "0"], "argument --timeout: must be positive: 0"),
        (["--timeout", "-2"], "argument --timeout: must be positive: -2"),
        (["--frame-timeout", "nan"], "argument --frame-timeout: must be positive: nan"),
        (["--listen", "unix:"], "argument --listen: the address must be unix:/path/to/agent.sock"),
        (["--listen", "/run/a"], "argument --listen: the address must be unix:/path/to/agent.sock"),
    ],
)
def test_command_line_refuses(argv, message, capsys):
    way = [] if argv[0] == "--listen" else ["--stdio"]
    with pytest.raises(SystemExit) as exited:
        parser_build().parse_args([*way, *argv])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"error: {message}")


# --- dispatch and handshake, in process: the exact refusal each malformed request gets ------------
@pytest.fixture
def fake_agent():
    """An Agent (the server side, in this process) whose fail2ban is a fake answering 1.0.2."""
    with FakeFail2ban(reply_value(0, "1.0.2")) as fake:
        yield Agent.build(HostConfig(socket=fake.path, timeout=5.0)), fake


def _refusal(request_id, message):
    return {"id": request_id, "ok": False, "error": {"type": "AgentRefused", "message": message}}


def test_dispatch_refusals_name_the_request_and_the_reason_exactly():
    agent = None  # never reached: each request is refused before an operation runs
    assert dispatch(agent, {"op": "health", "args": {}}) == _refusal(  # type: ignore[arg-type]
        None, "a request needs a whole-number id"
    )
    assert dispatch(agent, {"id": 7, "op": "shell", "args": {}}) == _refusal(  # type: ignore[arg-type]
        7, "unknown operation: 'shell'"
    )
    assert dispatch(agent, {"id": 7, "args": {}}) == _refusal(  # type: ignore[arg-type]
        7, "unknown operation: None"
    )
    # An attacker's long name is cut to 80 characters of its repr, quotes included.
    long_name = "x" * 500
    reply = dispatch(agent, {"id": 8, "op": long_name})  # type: ignore[arg-type]
    assert reply == _refusal(8, "unknown operation: " + repr(long_name)[:80])
    assert dispatch(agent, {"id": 9, "op": "health", "args": None}) == _refusal(  # type: ignore[arg-type]
        9, "args must be a JSON object"
    )


def test_dispatch_without_args_runs_the_operation_with_none(fake_agent):
    agent, fake = fake_agent
    reply = dispatch(agent, {"id": 3, "op": "health"})
    assert reply == {
        "id": 3,
        "ok": True,
        "value": {"fail2ban": {"reachable": True, "version": "1.0.2", "reason": None}},
    }
    fake.settle()
    assert fake.decoded_requests() == [["version"]]


def test_dispatch_turns_a_bug_in_an_operation_into_one_refused_request(caplog):
    # No agent at all: the operation fails with an AttributeError, a bug, not a refusal.
    with caplog.at_level("ERROR", logger="jailadmin.agent"):
        reply = dispatch(None, {"id": 4, "op": "health", "args": {}})  # type: ignore[arg-type]
    assert reply == _refusal(4, "the agent failed: AttributeError")
    assert [r.getMessage() for r in caplog.records] == ["operation health failed"]
    assert caplog.records[0].exc_info is not None  # the traceback is logged for the operator


def test_dispatch_passes_a_typed_error_back_with_its_fields(fake_agent):
    agent, _ = fake_agent
    reply = dispatch(agent, {"id": 5, "op": "fail2ban", "args": {"commands": [["ping"]], "x": 1}})
    assert reply == {
        "id": 5,
        "ok": False,
        "error": {"type": "InvalidArgument", "message": "unexpected arguments: x"},
    }
    many = {f"k{i:03}": i for i in range(100)} | {"commands": [["ping"]]}
    reply = dispatch(agent, {"id": 6, "op": "fail2ban", "args": many})
    names = ", ".join(sorted(k for k in many if k != "commands"))
    assert reply["error"]["message"] == f"unexpected arguments: {names[:200]}"


def test_fail2ban_operation_answers_each_command_in_its_place(fake_agent):
    agent, fake = fake_agent
    reply = dispatch(agent, {"id": 1, "op": "fail2ban", "args": {"commands": [["version"]]}})
    assert reply["value"]["results"] == [{"ok": True, "value": "1.0.2"}]
    info = os.stat(fake.path)
    assert reply["value"]["endpoint"] == [info.st_dev, info.st_ino, info.st_ctime_ns]
    reply = dispatch(agent, {"id": 2, "op": "fail2ban", "args": {"commands": [["ping"], "ping"]}})
    assert reply["error"] == {
        "type": "InvalidArgument",
        "message": "a command must be a list of words",
    }


def test_handshake_refusals_and_answer_exactly(fake_agent):
    agent, _ = fake_agent
    reply, go_on = handshake(agent, {"id": 1, "op": "health"})
    assert (reply, go_on) == (_refusal(1, "the first request on a connection must be hello"), False)
    reply, go_on = handshake(agent, {"id": 2, "op": "hello", "protocol": 2})
    assert (reply, go_on) == (
        _refusal(2, "protocol version 2 is not spoken here (this agent speaks 1)"),
        False,
    )
    reply, go_on = handshake(agent, {"id": 3, "op": "hello", "protocol": "9" * 50})
    assert reply["error"]["message"] == (
        f"protocol version {'9' * 20} is not spoken here (this agent speaks 1)"
    )
    reply, go_on = handshake(agent, {"id": 4, "op": "hello", "protocol": 1})
    assert go_on is True
    assert reply["id"] == 4 and reply["ok"] is True
    value = reply["value"]
    assert (value["agent"], value["version"], value["protocol"]) == ("jailadmin-agent", "1.0", 1)
    assert value["fail2ban_version"] == "1.0.2"
    assert value["operations"] == sorted(OPERATIONS)
    assert len(value["endpoint"]) == 3


def test_health_of_an_unreachable_or_garbled_fail2ban_says_why(tmp_path):
    agent = Agent.build(HostConfig(socket=str(tmp_path / "missing.sock"), timeout=1.0))
    assert dispatch(agent, {"id": 1, "op": "health", "args": {}})["value"] == {
        "fail2ban": {"reachable": False, "version": None, "reason": "the socket does not exist"}
    }
    # A reply that is not an (rc, value) pair: another typed error, worded as it is raised.
    with FakeFail2ban(reply_raw(pickle.dumps(["a", "b", "c"]) + END)) as fake:
        agent = Agent.build(HostConfig(socket=fake.path, timeout=5.0))
        health = dispatch(agent, {"id": 2, "op": "health", "args": {}})["value"]["fail2ban"]
    assert health == {
        "reachable": False,
        "version": None,
        "reason": "reply is not an (rc, value) pair",
    }


def test_error_decode_of_a_malformed_or_unknown_error_says_which_exactly():
    for data in ("boom", None, {"message": "no type"}, {"type": 5}):
        error = error_decode(data)
        assert type(error) is ProtocolError
        assert str(error) == "the agent sent a malformed error"
    error = error_decode({"type": "Z" * 200, "message": "m"})
    assert type(error) is ProtocolError
    # The type name is the sender's text: at most 80 characters of it are repeated.
    assert str(error) == f"the agent sent an unknown error type: {'Z' * 80!r}"


def test_frame_carries_text_as_utf8_not_as_json_escapes():
    frame = frame_encode({"log": "Übermäßig ✓"})
    body = '{"log":"Übermäßig ✓"}'.encode()
    assert frame == len(body).to_bytes(4, "big") + body


# --- the command line in process: --version, --help, the choices --------------------------------
HELP = """\
usage: python -m jails.agent [-h] [--version] (--stdio | --listen unix:PATH) [--group GROUP]
                             [--mode MODE] [--socket SOCKET] [--timeout TIMEOUT]
                             [--config-dir CONFIG_DIR] [--fail2ban-client FAIL2BAN_CLIENT]
                             [--reload-timeout RELOAD_TIMEOUT] [--fail2ban-regex FAIL2BAN_REGEX]
                             [--regex-timeout REGEX_TIMEOUT] [--no-config-writes]
                             [--frame-timeout FRAME_TIMEOUT] [--idle-timeout IDLE_TIMEOUT]
                             [--max-connections MAX_CONNECTIONS] [--workers WORKERS]
                             [--log-level {DEBUG,INFO,WARNING}]

The jailadmin host agent: allow-listed fail2ban operations over JSON.

options:
  -h, --help            show this help message and exit
  --version             show program's version number and exit
  --stdio               serve one connection on stdin/stdout
  --listen unix:PATH    listen there
  --group GROUP         the listening socket's group (--listen)
  --mode MODE           its mode (default 0660)
  --socket SOCKET       fail2ban's socket
  --timeout TIMEOUT     fail2ban's timeout (s)
  --config-dir CONFIG_DIR
                        fail2ban's configuration
  --fail2ban-client FAIL2BAN_CLIENT
                        how to run fail2ban-client (for reload), split like a shell would
  --reload-timeout RELOAD_TIMEOUT
  --fail2ban-regex FAIL2BAN_REGEX
                        how to run fail2ban-regex (the filter tester); default: next to fail2ban-
                        client
  --regex-timeout REGEX_TIMEOUT
  --no-config-writes    refuse the configuration editor's writes (reading and testing still work)
  --frame-timeout FRAME_TIMEOUT
                        seconds a started request frame (or a new connection's hello) may take
  --idle-timeout IDLE_TIMEOUT
  --max-connections MAX_CONNECTIONS
  --workers WORKERS
  --log-level {DEBUG,INFO,WARNING}
"""


def test_command_line_help_is_what_the_operator_reads(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps to the terminal's width
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == HELP


def test_command_line_version_exits_cleanly_with_name_and_version(capsys):
    # main()'s own argv, not the interpreter's (pytest's here).
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == "jailadmin-agent 1.0\n"


def test_command_line_defaults_of_the_filter_tester_and_writes():
    options = parser_build().parse_args(["--stdio"])
    assert (options.fail2ban_regex, options.regex_timeout) == ("", 30.0)
    assert options.no_config_writes is False
    options = parser_build().parse_args(
        ["--listen", "unix:/a", "--no-config-writes", "--max-connections", "9", "--workers", "3"]
    )
    assert options.no_config_writes is True
    assert (options.max_connections, options.workers) == (9, 3)
    assert parser_build().parse_args(["--stdio", "--log-level", "DEBUG"]).log_level == "DEBUG"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "one of the arguments --stdio --listen is required"),
        (
            ["--stdio", "--listen", "unix:/a"],
            "argument --listen: not allowed with argument --stdio",
        ),
        (["--stdio", "--log-level", "TRACE"], "argument --log-level: invalid choice: 'TRACE'"),
        (["--stdio", "--workers", "two"], "argument --workers: invalid int value: 'two'"),
        (
            ["--stdio", "--max-connections", "1.5"],
            "argument --max-connections: invalid int value: '1.5'",
        ),
        (["--stdio", "--reload-timeout", "0"], "argument --reload-timeout: must be positive: 0"),
        (["--stdio", "--regex-timeout", "-1"], "argument --regex-timeout: must be positive: -1"),
        (["--stdio", "--idle-timeout", "0"], "argument --idle-timeout: must be positive: 0"),
        (["--stdio", "--timeout", "0.0"], "argument --timeout: must be positive: 0.0"),
        (
            ["--listen", "UNIX:/a"],
            "argument --listen: the address must be unix:/path/to/agent.sock",
        ),
    ],
)
def test_command_line_refuses_without_a_way_in_or_with_a_bad_choice(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_command_line_takes_a_timeout_just_above_zero():
    assert parser_build().parse_args(["--stdio", "--timeout", "0.001"]).timeout == 0.001
    assert parser_build().parse_args(["--stdio", "--mode", "1"]).mode == 1


# --- the agent's options, as a running agent honours them ----------------------------------------
def test_agent_options_reach_fail2ban_the_reload_and_the_socket(tmp_path):
    # fail2ban never answers; fail2ban-client (run through `/bin/sh SCRIPT`: split like a
    # shell would) prints its argv, then outlasts the reload timeout; --workers 0 still
    # leaves one worker for the reload; the socket gets the group and mode asked for.
    (client,) = _client_script(tmp_path, 'printf "%s|" "$@"; exec sleep 60')
    nogroup = grp.getgrnam("nogroup").gr_gid
    options = [
        "--timeout", "0.5",
        "--workers", "0",
        "--reload-timeout", "1",
        "--config-dir", "/etc/f2b-test",
        "--fail2ban-client", f"/bin/sh {client}",
        "--group", "nogroup",
        "--mode", "0640",
        "--no-config-writes",
    ]  # fmt: skip
    with FakeFail2ban(hang()) as fake, AgentProcess(fake.path, options=options) as agent:
        info = agent.path.stat()
        assert (oct(info.st_mode & 0o777), info.st_uid, info.st_gid) == (oct(0o640), 0, nogroup)
        link = AgentLink(agent.address, timeout=10.0)
        try:
            assert link.health() == {
                "reachable": False,
                "version": None,
                "reason": "no answer within 0.5 s",
            }
            with pytest.raises(ReloadFailed) as failed:
                link.reload(jail="sshd")
            with pytest.raises(AgentRefused) as refused:
                link.config_apply(
                    changes=[{"path": "jail.d/x.local", "content": "", "expected_sha256": None}]
                )
        finally:
            link.close()
    assert failed.value.summary == "reload did not finish within 1 s"
    assert failed.value.output == f"-c|/etc/f2b-test|-s|{fake.path}|reload|sshd|"
    assert str(refused.value) == (
        "this agent does not write fail2ban's configuration (--no-config-writes)"
    )


def test_agent_serves_at_least_one_connection_and_closes_idle_ones(tmp_path):
    # --max-connections 0 still serves one; a greeted connection with no request for the idle
    # timeout is closed, although a new one's frame timeout is far longer.
    options = ["--max-connections", "0", "--idle-timeout", "2", "--frame-timeout", "60"]
    with (
        FakeFail2ban(reply_value(0, "1.0.2")) as fake,
        AgentProcess(fake.path, options=options) as agent,
    ):
        held = _greeted_connection(agent)
        try:
            extra = RawAgentConnection.connect(agent.path)
            assert extra.read() == {
                "id": None,
                "ok": False,
                "error": {
                    "type": "AgentRefused",
                    "message": "the agent is serving its limit of 1 connections",
                },
            }
            assert extra.closed()
            extra.close()
            assert held.closed(timeout=30.0)  # idle for 2 s: closed by the agent
        finally:
            held.close()


def test_agent_conversation_takes_hello_again_and_keeps_going_after_refusals(f2b_agent):
    raw = RawAgentConnection.connect(f2b_agent.path)
    try:
        raw.hello()
        raw.send({"op": "hello", "protocol": 1, "id": 5})
        again = raw.read()
        assert (again["id"], again["ok"], again["value"]["agent"]) == (5, True, "jailadmin-agent")
        # A wrong version after the greeting is refused, and the connection stays.
        raw.send({"op": "hello", "protocol": 7, "id": 6})
        assert raw.read() == {
            "id": 6,
            "ok": False,
            "error": {
                "type": "AgentRefused",
                "message": "protocol version 7 is not spoken here (this agent speaks 1)",
            },
        }
        reply = raw.request("fail2ban", {"commands": [["ping"]]})
        assert reply["value"]["results"] == [{"ok": True, "value": "pong"}]
        reply = raw.request("database_path")
        assert (reply["ok"], reply["id"]) == (True, 2)
        raw.send({"id": 3, "op": "health", "args": ["x"]})
        assert raw.read() == {
            "id": 3,
            "ok": False,
            "error": {"type": "AgentRefused", "message": "args must be a JSON object"},
        }
        assert raw.request("health")["ok"] is True
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            HEADER.pack(100 * 1024 * 1024),
            "a frame of 104,857,600 bytes is larger than the limit of 16,777,216",
        ),
        (HEADER.pack(2) + b"\xff\xfe", "the frame is not valid UTF-8"),
        (HEADER.pack(2) + b"[]", "a frame must hold one JSON object"),
    ],
    ids=["too-large", "not-utf8", "not-an-object"],
)
def test_agent_refuses_a_bad_frame_with_the_reason_and_closes(f2b_agent, data, message):
    def failures_logged() -> int:
        return f2b_agent.stderr_path.read_text(errors="replace").count("connection failed")

    logged = failures_logged()
    for greeted in (False, True):
        raw = RawAgentConnection.connect(f2b_agent.path)
        try:
            if greeted:
                raw.hello()
            raw.send_raw(data)
            assert raw.read() == {
                "id": None,
                "ok": False,
                "error": {"type": "AgentRefused", "message": message},
            }
            assert raw.closed()
        finally:
            raw.close()
    # A refusal the agent meant: nothing logged as a failed connection (the agent logs
    # before it closes, so the line would be there by now).
    assert failures_logged() == logged


def test_agent_refuses_a_request_before_hello_with_its_id_and_closes(f2b_agent):
    raw = RawAgentConnection.connect(f2b_agent.path)
    try:
        raw.send({"id": 41, "op": "health", "args": {}})
        assert raw.read() == {
            "id": 41,
            "ok": False,
            "error": {
                "type": "AgentRefused",
                "message": "the first request on a connection must be hello",
            },
        }
        assert raw.closed()
    finally:
        raw.close()


def test_agent_answers_other_connections_while_a_reload_runs(tmp_path):
    # A reload is long work: it runs in a worker thread, never on the loop that reads and
    # answers every connection. The reload here waits until the test lets it finish.
    started, release = tmp_path / "started", tmp_path / "release"
    (client,) = _client_script(
        tmp_path,
        f"touch {started}\n"
        f"i=0; while [ ! -e {release} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\n"
        "echo reloaded",
    )
    options = ["--fail2ban-client", client]
    outcome: dict[str, Any] = {}
    with (
        FakeFail2ban(reply_value(0, "pong")) as fake,
        AgentProcess(fake.path, options=options) as agent,
    ):
        reloading = AgentLink(agent.address, timeout=10.0, reload_timeout=120.0)
        other = AgentLink(agent.address, timeout=10.0)

        def reload() -> None:
            outcome["output"] = reloading.reload(jail=None)

        thread = threading.Thread(target=reload)
        thread.start()
        try:
            wait_until(started.exists, timeout=30.0)
            assert other.send("ping") == "pong"
            assert other.health()["reachable"] is True
            assert other.database_path() == "pong"
        finally:
            release.touch()
            thread.join(timeout=60)
            reloading.close()
            other.close()
    assert outcome == {"output": "reloaded"}


def test_agent_logs_a_failed_connection_as_its_message_and_traceback(f2b_agent):
    # An argument named with a lone surrogate (JSON "\ud800") is named back in the refusal,
    # which UTF-8 cannot carry: that connection ends without an answer, the operator reads
    # why on stderr, and the agent serves on.
    body = b'{"id":1,"op":"health","args":{"\\ud800":1}}'
    raw = RawAgentConnection.connect(f2b_agent.path)
    try:
        raw.hello()
        raw.send_raw(HEADER.pack(len(body)) + body)
        assert raw.read() is None
    finally:
        raw.close()
    lines = wait_until(lambda: "UnicodeEncodeError" in f2b_agent.stderr() and f2b_agent.stderr())
    assert "\nconnection failed\nTraceback (most recent call last):\n" in "\n" + lines
    link = AgentLink(f2b_agent.address, timeout=10.0)
    assert link.send("ping") == "pong"
    link.close()


def test_agent_runs_the_fail2ban_regex_it_was_given():
    options = ["--fail2ban-regex", "/nonexistent/fail2ban-regex"]
    with (
        FakeFail2ban(reply_value(0, "1.0.2")) as fake,
        AgentProcess(fake.path, options=options) as agent,
    ):
        link = AgentLink(agent.address, timeout=10.0)
        try:
            report = link.regex_test(
                RegexRequest(lines="x\n", draft=RegexDraft(failregex="^x <HOST>$"))
            )
        finally:
            link.close()
    assert report.error == "fail2ban-regex cannot be run: /nonexistent/fail2ban-regex"


# --- the socket file: a stale one replaced, anything else left alone; signals ---------------
def test_agent_replaces_a_stale_socket_but_never_another_file(tmp_path):
    with FakeFail2ban(reply_value(0, "1.0.2")) as fake:
        agent = AgentProcess(fake.path)
        try:
            agent.start()
            info = agent.path.stat()  # no --group: the agent's own user and group
            assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())
            agent.kill()  # no clean-up: its socket file stays
            assert agent.path.is_socket()
            agent.start()  # the stale socket is removed and bound afresh
            agent.stop()
            agent.path.write_text("not a socket")
            with pytest.raises(RuntimeError, match="the agent exited"):
                agent.start()
            assert agent.path.read_text() == "not a socket"
        finally:
            agent.cleanup()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_agent_stops_cleanly_on_sigterm_and_sigint(signum):
    with FakeFail2ban(reply_value(0, "1.0.2")) as fake, AgentProcess(fake.path) as agent:
        process = agent.process
        assert process is not None
        process.send_signal(signum)
        assert process.wait(timeout=60) == 0
        assert not agent.path.exists()
        assert "Traceback" not in agent.stderr()


def test_agent_never_loads_the_tls_libraries():
    # asyncio would import ssl (libssl, about 4.5 MB resident of an agent that measures 17 MB
    # idle); the agent speaks no TLS and keeps it out (`python -m jails.agent` only).
    with FakeFail2ban(reply_value(0, "1.0.2")) as fake, AgentProcess(fake.path) as agent:
        maps = Path(f"/proc/{agent.pid}/maps").read_text()
    assert "libssl" not in maps
