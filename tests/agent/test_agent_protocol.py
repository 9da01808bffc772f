"""The agent's wire protocol: framing, limits, value conversion, typed errors as data (pure)."""

from __future__ import annotations

import json

import pytest

from jails.agent.protocol import (
    HEADER,
    MAX_REPLY_BYTES,
    MAX_REQUEST_BYTES,
    FrameError,
    FrameTooLarge,
    error_decode,
    error_encode,
    frame_encode,
    frame_length,
    message_decode,
    wire_value,
)
from jails.agent.server import OPERATIONS, dispatch, handshake
from jails.fail2ban import (
    AgentRefused,
    CommandRejected,
    DatabaseUnavailable,
    Fail2banUnreachable,
    InvalidArgument,
    ProtocolError,
    ReloadFailed,
    ReplyTooLarge,
    UnknownJail,
    UnsupportedCommand,
)
from jails.fail2ban.protocol import RemoteException


# Framing ----------------------------------------------------------------------------------------
def test_frame_is_a_big_endian_length_then_utf8_json():
    frame = frame_encode({"op": "ping", "word": "ünïcode"})
    (length,) = HEADER.unpack(frame[:4])
    assert frame[:4] == length.to_bytes(4, "big")
    assert length == len(frame) - 4
    assert message_decode(frame[4:]) == {"op": "ping", "word": "ünïcode"}


def test_frame_length_refuses_more_than_the_limit_from_the_header_alone():
    assert (
        frame_length(HEADER.pack(MAX_REQUEST_BYTES), limit=MAX_REQUEST_BYTES) == MAX_REQUEST_BYTES
    )
    with pytest.raises(FrameTooLarge) as refused:
        frame_length(HEADER.pack(100 * 1024 * 1024), limit=MAX_REQUEST_BYTES)
    assert refused.value.length == 100 * 1024 * 1024
    assert refused.value.limit == MAX_REQUEST_BYTES == 16 * 1024 * 1024
    assert MAX_REPLY_BYTES == 64 * 1024 * 1024


def test_frame_encode_refuses_values_json_cannot_carry():
    with pytest.raises(ValueError):
        frame_encode({"value": float("nan")})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"op": "\xff\xfe"}', "not valid UTF-8"),
        (b"\xed\xa0\x80", "not valid UTF-8"),  # an encoded surrogate
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"op": "ping"} trailing', "not valid JSON"),
        (b"[1, 2]", "one JSON object"),
        (b'"hello"', "one JSON object"),
        (b"[" * 200_000, "nested too deeply"),
    ],
)
def test_message_decode_refuses_what_is_not_one_json_object(body, reason):
    with pytest.raises(FrameError, match=reason):
        message_decode(body)


def test_message_decode_unescapes_json_strings_as_json_does():
    # An escaped end marker arrives as the marker itself: the allow-list must see it.
    decoded = message_decode(b'{"w": "\\u003cF2B_END_COMMAND\\u003e"}')
    assert decoded == {"w": "<F2B_END_COMMAND>"}


# Values -----------------------------------------------------------------------------------------
def test_wire_value_turns_tuples_into_lists_and_sets_into_sorted_lists():
    reply = [("Currently failed", 0), ("Banned IP list", {"203.0.113.9", "192.0.2.1"})]
    assert wire_value(reply) == [
        ["Currently failed", 0],
        ["Banned IP list", ["192.0.2.1", "203.0.113.9"]],
    ]
    assert wire_value(frozenset({3, 1, 2})) == [1, 2, 3]
    assert wire_value({"sshd": ("polling", (1, 5), (0, 2))}) == {
        "sshd": ["polling", [1, 5], [0, 2]]
    }


def test_wire_value_orders_a_mixed_set_deterministically():
    first = wire_value({1, "a", (2, 3)})
    assert sorted(map(json.dumps, first)) == sorted(json.dumps(v) for v in [1, "a", [2, 3]])
    assert first == wire_value({(2, 3), "a", 1})


def test_wire_value_keeps_plain_scalars_and_makes_odd_floats_text():
    assert wire_value([None, True, 7, "x", 1.5]) == [None, True, 7, "x", 1.5]
    assert wire_value(float("inf")) == "inf"
    assert wire_value({1: "one"}) == {"1": "one"}


@pytest.mark.parametrize(
    "value",
    [RemoteException("ValueError", ("x",)), b"bytes", object(), {(1, 2): "tuple key"}],
)
def test_wire_value_refuses_anything_but_plain_data(value):
    with pytest.raises(ProtocolError):
        wire_value(value)


def test_wire_value_refuses_runaway_nesting():
    value: list = []
    for _ in range(100):
        value = [value]
    with pytest.raises(ProtocolError, match="nested too deeply"):
        wire_value(value)


# Errors -----------------------------------------------------------------------------------------
ERRORS = [
    UnknownJail(["status", "nope"], "nope"),
    UnsupportedCommand(["get", "sshd", "idle"], "Exception", "Invalid command (no get action)"),
    CommandRejected(["set", "sshd", "banip", "1.2.3.4"], "ValueError", "boom"),
    InvalidArgument("not an IP address: 'x'"),
    Fail2banUnreachable("/run/fail2ban/fail2ban.sock", "connection refused"),
    ReplyTooLarge(32 * 1024 * 1024),
    ProtocolError("undecodable reply from fail2ban: x"),
    DatabaseUnavailable("fail2ban keeps no database"),
    ReloadFailed("reload failed (exit code 255)", "ERROR  NOK: ('sshd',)"),
    AgentRefused("unknown operation: 'shell'"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_cross_the_wire_as_the_same_type_with_the_same_fields(error):
    data = json.loads(json.dumps(error_encode(error)))  # JSON-clean
    again = error_decode(data)
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert vars(again) == vars(error)


def test_error_decode_of_unknown_or_malformed_errors_is_a_protocol_error():
    assert isinstance(error_decode({"type": "SystemExit", "message": "x"}), ProtocolError)
    assert isinstance(error_decode({"type": "UnknownJail", "jail": 3}), ProtocolError)
    assert isinstance(error_decode({"type": "ReplyTooLarge", "limit": True}), ProtocolError)
    assert isinstance(error_decode("UnknownJail"), ProtocolError)
    assert isinstance(error_decode(None), ProtocolError)


# Dispatch without a server (the operations that need none) -------------------------------------
def test_dispatch_refuses_unknown_operations_and_malformed_requests():
    agent = None  # never reached: each request is refused before an operation runs
    for request, reason in [
        ({"id": 1, "op": "shell", "args": {}}, "unknown operation"),
        ({"id": 1, "op": "__class__"}, "unknown operation"),
        ({"id": 1, "op": ["fail2ban"]}, "unknown operation"),
        ({"id": 1, "op": "fail2ban", "args": []}, "args must be a JSON object"),
        ({"id": "1", "op": "fail2ban", "args": {}}, "whole-number id"),
        ({"id": True, "op": "fail2ban", "args": {}}, "whole-number id"),
    ]:
        reply = dispatch(agent, request)  # type: ignore[arg-type]
        assert reply["ok"] is False
        assert reply["error"]["type"] == "AgentRefused"
        assert reason in reply["error"]["message"]


def test_handshake_must_come_first_and_speak_version_1():
    reply, go_on = handshake(None, {"id": 1, "op": "fail2ban", "args": {}})  # type: ignore[arg-type]
    assert not go_on and "must be hello" in reply["error"]["message"]
    reply, go_on = handshake(None, {"op": "hello", "protocol": "1"})  # type: ignore[arg-type]
    assert not go_on and "protocol version" in reply["error"]["message"]


def test_operations_are_a_closed_allow_list():
    assert sorted(OPERATIONS) == [
        # the configuration editor (jails/agent/configfiles.py)
        "config_apply",
        "config_definition",
        "config_file",
        "config_read",
        "database_ban",
        "database_bans",
        "database_path",
        "fail2ban",
        "health",
        "log_tail",  # the log viewer (jails/agent/logview.py)
        "regex_test",  # the filter tester (jails/agent/regex.py)
        "reload",
    ]
    with pytest.raises(TypeError):
        OPERATIONS["shell"] = lambda agent, args: None  # type: ignore[index]


def test_command_line_defaults_are_the_server_limits():
    from jails.agent import __main__ as cli
    from jails.agent.server import ServerLimits

    limits = ServerLimits()
    assert limits.frame_timeout == cli.DEFAULT_FRAME_TIMEOUT
    assert limits.idle_timeout == cli.DEFAULT_IDLE_TIMEOUT
    assert limits.max_connections == cli.DEFAULT_MAX_CONNECTIONS
    assert limits.workers == cli.DEFAULT_WORKERS
