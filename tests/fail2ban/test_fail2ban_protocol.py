"""The wire format and the restricted unpickler (jails.fail2ban.protocol)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from jails.fail2ban.client import _decode_reply
from jails.fail2ban.errors import CommandRejected, ProtocolError, UnknownJail, UnsupportedCommand
from jails.fail2ban.protocol import (
    CLOSE,
    END,
    ForbiddenPickle,
    RemoteException,
    encode_request,
    restricted_loads,
)
from tests.support.fakeserver import fake_fail2ban_exceptions, malicious_pickle

MALICIOUS_KINDS = ["os.system", "posix.system", "builtins.eval", "subprocess.Popen"]


@pytest.fixture
def fail2ban_exceptions(monkeypatch):
    """``fail2ban.exceptions`` stand-in, importable while the test pickles its classes."""
    package, module = fake_fail2ban_exceptions()
    monkeypatch.setitem(sys.modules, "fail2ban", package)
    monkeypatch.setitem(sys.modules, "fail2ban.exceptions", module)
    return module


def server_reply(rc, value):
    """What fail2ban's server pickles (it uses the highest protocol), marker stripped."""
    return pickle.dumps((rc, value), protocol=pickle.HIGHEST_PROTOCOL)


# Markers and requests ---------------------------------------------------------------------
def test_markers_are_fail2bans():
    assert END == b"<F2B_END_COMMAND>"
    assert CLOSE == b"<F2B_CLOSE_COMMAND>"


def test_encode_request_is_pickled_list_plus_marker():
    data = encode_request(["set", "sshd", "banip", "192.0.2.1"])
    assert data.endswith(END)
    assert data.count(END) == 1
    assert pickle.loads(data[: -len(END)]) == ["set", "sshd", "banip", "192.0.2.1"]


def test_encode_request_turns_tuple_into_list():
    data = encode_request(("ping",))
    assert pickle.loads(data[: -len(END)]) == ["ping"]


# The malicious pickles really are malicious (controls for the tests below) ----------------
@pytest.mark.parametrize("kind", MALICIOUS_KINDS)
def test_stock_unpickler_runs_malicious_pickle(tmp_path, kind):
    sentinel = tmp_path / "pwned"
    result = pickle.loads(malicious_pickle(sentinel, via=kind))
    if isinstance(result, subprocess.Popen):
        result.wait(timeout=10)
    assert sentinel.exists()


# The restricted unpickler refuses them ----------------------------------------------------
@pytest.mark.parametrize("kind", MALICIOUS_KINDS)
def test_restricted_loads_refuses_malicious_pickle(tmp_path, kind):
    sentinel = tmp_path / "pwned"
    with pytest.raises(ForbiddenPickle):
        restricted_loads(malicious_pickle(sentinel, via=kind))
    assert not sentinel.exists()


@pytest.mark.parametrize("kind", MALICIOUS_KINDS)
def test_restricted_loads_refuses_malicious_pickle_inside_reply(tmp_path, kind):
    sentinel = tmp_path / "pwned"
    evil = malicious_pickle(sentinel, via=kind)
    wrapped = b"(I0\n" + evil[:-1] + b"t."
    with pytest.raises(ForbiddenPickle):
        restricted_loads(wrapped)
    assert not sentinel.exists()


@pytest.mark.parametrize("kind", MALICIOUS_KINDS)
def test_decode_reply_maps_malicious_pickle_to_protocol_error(tmp_path, kind):
    sentinel = tmp_path / "pwned"
    with pytest.raises(ProtocolError):
        _decode_reply(["ping"], malicious_pickle(sentinel, via=kind))
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("builtins", "open"),
        ("subprocess", "Popen"),
        ("subprocess", "check_output"),
        ("copyreg", "_reconstructor"),
        ("copyreg", "__newobj__"),
        ("fail2ban.server.action", "CommandAction"),
        ("fail2ban.exceptions", "system"),
    ],
)
def test_restricted_loads_refuses_dangerous_global(module, name):
    data = b"c%s\n%s\n." % (module.encode(), name.encode())
    with pytest.raises(ForbiddenPickle):
        restricted_loads(data)


def test_restricted_loads_refuses_persistent_id():
    with pytest.raises(ForbiddenPickle):
        restricted_loads(b"Pfoo\n.")


def test_restricted_loads_refuses_exception_named_global_via_newobj():
    # NEWOBJ calls cls.__new__: the factory is not a class, so this fails; it never runs code.
    data = b"cbuiltins\nValueError\n)\x81."
    with pytest.raises(pickle.UnpicklingError):
        restricted_loads(data)


# Plain data -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -1,
        2**70,
        1.5,
        "",
        "sshd",
        "ünïcode ☃",
        b"bytes".decode(),
        [],
        [1, "two", 3.0],
        (),
        ("a", ("nested", ("tuple",))),
        {"Jail list": "sshd", "n": 1},
        {"sshd": ["192.0.2.1", "2001:db8::1"]},
        {"192.0.2.1", "192.0.2.2"},
        frozenset({"a", "b"}),
        [("Filter", [("Currently failed", 0)]), ("Actions", [("Banned IP list", [])])],
    ],
)
@pytest.mark.parametrize("protocol", [4, pickle.HIGHEST_PROTOCOL])
def test_restricted_loads_builds_plain_data(value, protocol):
    # fail2ban's server pickles with HIGHEST_PROTOCOL (5 on Python 3.8+).
    assert restricted_loads(pickle.dumps(value, protocol=protocol)) == value


@pytest.mark.parametrize(
    "value", [None, 1, "sshd", ["a", ("b", 2)], {"k": [1.5]}, (0, [("Jail list", "sshd")])]
)
@pytest.mark.parametrize("protocol", [0, 2])
def test_restricted_loads_builds_plain_data_from_old_protocols(value, protocol):
    assert restricted_loads(pickle.dumps(value, protocol=protocol)) == value


@pytest.mark.parametrize("value", [{"a"}, frozenset({"a"})])
def test_restricted_loads_refuses_old_protocol_sets(value):
    # Protocols < 3 name sets as __builtin__.set; only builtins.* is allowed. A real
    # fail2ban (Python 3, HIGHEST_PROTOCOL) uses the set opcodes instead, so this is a
    # fail-safe refusal, not a lost answer.
    with pytest.raises(ForbiddenPickle):
        restricted_loads(pickle.dumps(value, protocol=2))


def test_restricted_loads_keeps_types_of_containers():
    value = ({"a": [1, (2, 3)]}, {4}, frozenset({5}))
    loaded = restricted_loads(pickle.dumps(value, protocol=4))
    assert type(loaded) is tuple
    assert type(loaded[0]["a"][1]) is tuple
    assert type(loaded[1]) is set
    assert type(loaded[2]) is frozenset


def test_restricted_loads_accepts_server_reply_pair():
    assert restricted_loads(server_reply(0, ["sshd"])) == (0, ["sshd"])


def test_restricted_loads_accepts_str_subclass_pickled_as_str_reduce():
    # fail2ban's IPAddr reduces to str(...) in some versions: GLOBAL builtins.str + REDUCE.
    data = b"cbuiltins\nstr\n(V192.0.2.1\ntR."
    assert restricted_loads(data) == "192.0.2.1"


def test_restricted_loads_refuses_truncated_pickle():
    data = pickle.dumps((0, "some answer"), protocol=4)
    with pytest.raises((pickle.UnpicklingError, EOFError)):
        restricted_loads(data[: len(data) // 2])


# fail2ban's exception replies -------------------------------------------------------------
def test_restricted_loads_maps_unknown_jail_exception_to_data(fail2ban_exceptions):
    exc = fail2ban_exceptions.UnknownJailException("nope")
    data = server_reply(1, exc)
    assert b"fail2ban.exceptions" in data
    rc, value = restricted_loads(data)
    assert rc == 1
    assert isinstance(value, RemoteException)
    assert value.type_name == "UnknownJailException"
    assert value.args == ("nope",)


def test_restricted_loads_keeps_exception_state_as_data(fail2ban_exceptions):
    exc = fail2ban_exceptions.DuplicateJailException("sshd")
    exc.detail = "already there"
    rc, value = restricted_loads(server_reply(1, exc))
    assert rc == 1
    assert value.type_name == "DuplicateJailException"
    assert value.state == {"detail": "already there"}


def test_decode_reply_unknown_jail_exception_raises_unknown_jail(fail2ban_exceptions):
    data = server_reply(1, fail2ban_exceptions.UnknownJailException("nope"))
    with pytest.raises(UnknownJail) as info:
        _decode_reply(["status", "nope"], data)
    assert info.value.jail == "nope"
    assert info.value.command == ["status", "nope"]
    assert isinstance(info.value, CommandRejected)


def test_decode_reply_invalid_command_raises_unsupported_command():
    exc = Exception("Invalid command (no get action or not yet implemented)")
    with pytest.raises(UnsupportedCommand) as info:
        _decode_reply(["get", "sshd", "backend"], server_reply(1, exc))
    assert info.value.remote_type == "Exception"
    assert info.value.message.startswith("Invalid command")


def test_decode_reply_other_exception_raises_command_rejected():
    with pytest.raises(CommandRejected) as info:
        _decode_reply(["set", "sshd", "bantime", "1"], server_reply(1, ValueError("bad value")))
    assert type(info.value) is CommandRejected
    assert info.value.remote_type == "ValueError"
    assert info.value.message == "bad value"


def test_decode_reply_rc_1_with_plain_value_raises_command_rejected():
    with pytest.raises(CommandRejected) as info:
        _decode_reply(["ping"], server_reply(1, "went wrong"))
    assert info.value.remote_type == "unknown"


def test_restricted_loads_maps_old_protocol_exception_to_data():
    # Protocol 2 names builtin exceptions as exceptions.ValueError.
    data = pickle.dumps((1, ValueError("bad value")), protocol=2)
    assert b"exceptions" in data
    rc, value = restricted_loads(data)
    assert rc == 1
    assert value == RemoteException("ValueError", ("bad value",))


def test_decode_reply_success_returns_value():
    assert _decode_reply(["ping"], server_reply(0, "pong")) == "pong"


def test_decode_reply_success_carrying_exception_is_protocol_error():
    with pytest.raises(ProtocolError):
        _decode_reply(["ping"], server_reply(0, ValueError("x")))


def test_decode_reply_bare_error_string_is_protocol_error():
    data = pickle.dumps("ERROR: cannot unpickle command", protocol=4)
    with pytest.raises(ProtocolError, match="could not read the request"):
        _decode_reply(["ping"], data)


@pytest.mark.parametrize(
    "value",
    ["pong", 0, (0,), (0, 1, 2), (2, "x"), ("0", "x"), [], None, {"rc": 0}],
)
def test_decode_reply_not_a_pair_is_protocol_error(value):
    with pytest.raises(ProtocolError):
        _decode_reply(["ping"], pickle.dumps(value, protocol=4))


@pytest.mark.parametrize("garbage", [b"", b"garbage", b"\x80\x05", b"\x00\xff\xfe", b"(I0\n"])
def test_decode_reply_garbage_is_protocol_error(garbage):
    with pytest.raises(ProtocolError):
        _decode_reply(["ping"], garbage)
