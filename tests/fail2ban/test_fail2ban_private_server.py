"""The client against a real private fail2ban server (1.0.2 or 1.1.0, no root needed)."""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import pytest

from jails.fail2ban.commands import PROBE_JAIL
from jails.fail2ban.errors import InvalidArgument, UnknownJail, UnsupportedCommand
from jails.fail2ban.server import JailSpec, PrivateServer, find_fail2ban
from jails.fail2ban.validation import normalise_ip
from tests.conftest import wait_until

JAILS = (
    JailSpec("sshd", maxretry=3, findtime="10m", bantime="10m"),
    JailSpec("web-auth", maxretry=2, findtime="5m", bantime="1h"),
)
# `get J banip --with-time`: "IP \tSTART + SECONDS = END" in the server's local time.
WITH_TIME_RE = re.compile(
    r"^(?P<ip>\S+) \t(?P<start>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \+ (?P<seconds>-?\d+)"
    r" = (?P<end>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$"
)
STAMP = "%Y-%m-%d %H:%M:%S"


@pytest.fixture(scope="module")
def private_server():
    try:
        find_fail2ban()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    base = Path(tempfile.mkdtemp(prefix="f2bp", dir="/tmp"))
    server = PrivateServer(base, JAILS, record_actions=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def server(private_server):
    private_server.reset()
    return private_server


@pytest.fixture
def client(server):
    return server.client()


def test_private_server_answers_basic_commands(client):
    assert client.send("ping") == "pong"
    assert str(client.send("version")).startswith(("0.", "1."))
    status = dict(client.send("status"))
    assert {name.strip() for name in status["Jail list"].split(",")} == {"sshd", "web-auth"}


def test_private_server_failure_lines_make_it_ban(server, client):
    server.append_failures("sshd", ["203.0.113.7", "2001:db8::7"], count=3)
    server.append_failures("sshd", ["203.0.113.8"], count=1)  # below maxretry

    banned = wait_until(
        lambda: {"203.0.113.7", "2001:db8::7"} <= set(client.send("get", "sshd", "banip"))
    )
    assert banned
    assert "203.0.113.8" not in client.send("get", "sshd", "banip")
    assert client.send("get", "web-auth", "banip") == []
    # The action ran for each ban (it appends the address to a file).
    logged = wait_until(lambda: server.actions_log.exists() and server.actions_log.read_text())
    assert "203.0.113.7" in logged.split()


def test_private_server_set_banip_bans_several_in_one_call(client):
    ips = ["198.51.100.1", "198.51.100.2", "2001:db8::1:2"]
    assert client.send("set", "sshd", "banip", *ips) == 3
    assert set(client.send("get", "sshd", "banip")) == set(ips)
    # The answer counts newly banned addresses only.
    assert client.send("set", "sshd", "banip", "198.51.100.1", "198.51.100.3") == 1
    assert client.send("get", "sshd", "banned", "198.51.100.1", "192.0.2.99") == [1, 0]
    assert client.send("set", "sshd", "unbanip", *ips) == 3
    assert client.send("get", "sshd", "banip") == ["198.51.100.3"]


def test_private_server_banip_with_time_parses(client):
    client.send("set", "sshd", "banip", "198.51.100.10", "2001:db8::10")
    lines = client.send("get", "sshd", "banip", "--with-time")
    assert len(lines) == 2
    parsed = {}
    for line in lines:
        match = WITH_TIME_RE.fullmatch(line)
        assert match, line
        parsed[match["ip"]] = match
    assert set(parsed) == {"198.51.100.10", "2001:db8::10"}
    for match in parsed.values():
        assert int(match["seconds"]) == 600
        start = datetime.strptime(match["start"], STAMP)
        end = datetime.strptime(match["end"], STAMP)
        assert (end - start).total_seconds() == 600
        # Server-local time without a zone; the server runs in our zone here.
        assert abs((datetime.now() - start).total_seconds()) < 120


def test_private_server_banip_with_time_permanent(client):
    client.send("set", "web-auth", "bantime", "-1")
    client.send("set", "web-auth", "banip", "198.51.100.20")
    (line,) = client.send("get", "web-auth", "banip", "--with-time")
    match = WITH_TIME_RE.fullmatch(line)
    assert match, line
    assert match["seconds"] == "-1"
    assert match["end"] == "9999-12-31 23:59:59"


def test_private_server_unknown_jail_raises_unknown_jail(client):
    with pytest.raises(UnknownJail) as info:
        client.send("get", "nope", "bantime")
    assert info.value.jail == "nope"
    with pytest.raises(UnknownJail):
        client.send("status", "nope")
    with pytest.raises(UnknownJail):
        client.send("get", PROBE_JAIL, "bantime")


def test_private_server_get_backend_and_idle_unsupported_on_both_versions(client):
    with pytest.raises(UnsupportedCommand, match="Invalid command"):
        client.send("get", "sshd", "backend")
    with pytest.raises(UnsupportedCommand):
        client.send("get", "sshd", "idle")
    # The command is checked before the jail: the probe jail tells the two apart.
    with pytest.raises(UnsupportedCommand):
        client.send("get", PROBE_JAIL, "backend")


def test_private_server_one_reply_commands_only_on_1_1(client):
    if str(client.send("version")).startswith("1.0."):
        with pytest.raises(UnsupportedCommand):
            client.send("stats")
        # 1.0.2 reads `status --all short` as a jail named "--all".
        with pytest.raises(UnknownJail):
            client.send("status", "--all", "short")
        return
    client.send("set", "sshd", "banip", "203.0.113.9")
    # The restricted unpickler decodes both replies (dicts, tuples, str(...) reduces).
    stats = client.send("stats")
    assert set(stats) == {"sshd", "web-auth"}
    backend, failed, banned = stats["sshd"]
    assert backend == "polling" and isinstance(failed, tuple) and banned[0] == 1
    reply = client.send("status", "--all", "short")
    assert reply[:2] == [("Number of jail", 2), ("Jail list", "sshd, web-auth")]
    assert dict(dict(reply[2]["sshd"])["Actions"])["Currently banned"] == 1


def test_private_server_connection_survives_rejections(client):
    with client.connection() as conn:
        assert conn.send("ping") == "pong"
        with pytest.raises(UnknownJail):
            conn.send("get", "nope", "bantime")
        with pytest.raises(InvalidArgument):
            conn.send("set", "sshd", "banip", "2001:DB8::1")
        assert conn.send("get", "sshd", "maxretry") == 3
        assert conn.send("get", "web-auth", "maxretry") == 2


def test_private_server_ipv4_mapped_address_is_listed_as_ipv4(client):
    # fail2ban stores ::ffff:1.2.3.4 as 1.2.3.4, so that is the canonical form we send;
    # the mapped spelling is refused before it reaches the socket.
    assert normalise_ip("::ffff:1.2.3.4") == "1.2.3.4"
    with pytest.raises(InvalidArgument):
        client.send("set", "sshd", "banip", "::ffff:102:304")
    assert client.send("set", "sshd", "banip", normalise_ip("::ffff:1.2.3.4")) == 1
    assert client.send("get", "sshd", "banip") == ["1.2.3.4"]


def test_private_server_reset_clears_bans_and_settings(server, client):
    client.send("set", "sshd", "banip", "198.51.100.30", "198.51.100.31")
    client.send("set", "web-auth", "banip", "198.51.100.32")
    client.send("set", "sshd", "bantime", "1234")
    client.send("set", "sshd", "addignoreip", "192.0.2.0/24")
    client.send("set", "sshd", "idle", "on")
    server.reset()
    assert client.send("get", "sshd", "banip") == []
    assert client.send("get", "web-auth", "banip") == []
    assert client.send("get", "sshd", "bantime") == 600
    assert client.send("get", "sshd", "ignoreip") == []
    actions = dict(dict(client.send("status", "sshd"))["Actions"])
    assert actions["Currently banned"] == 0
