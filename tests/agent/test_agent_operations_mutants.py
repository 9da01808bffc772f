"""What mutation testing left unpinned in jails/agent/operations.py, pinned down.

The reload runs fail2ban-client as a subprocess: what it is started with (argv, the
allow-listed environment, no stdin) and what the caller gets back when it fails (the typed
ReloadFailed, its summary and the output's tail). The fail2ban-client here is a shell script
configured exactly as an operator configures the real one (HostConfig.fail2ban_client): it
prints what it was given, so each test reads what the agent really passed. The real client's
reload is tested in test_agent_server.py and tests/services/test_control_service.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jails.agent import operations
from jails.agent.client import AgentLink
from jails.agent.link import OPERATIONS, DirectLink
from jails.agent.operations import HostConfig
from jails.fail2ban import (
    DatabaseUnavailable,
    Fail2banClient,
    Fail2banUnreachable,
    InvalidArgument,
    ReloadFailed,
)
from tests.conftest import wait_until
from tests.support.fakeserver import FakeFail2ban, hang, reply_value

SECRET = "secret-key-that-must-not-leak"
# Long enough for a shell to start and print on a loaded 1-core box; the reload is then
# stopped by the timeout, not by the script (which sleeps far longer, so a reload that lost
# its timeout would return normally and fail the test).
REPLY_TIMEOUT = 3.0


def _client_script(tmp_path: Path, body: str) -> tuple[str, ...]:
    """A fail2ban-client that runs the shell `body` with the argv the agent passes."""
    script = tmp_path / "fail2ban-client"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return (str(script),)


def _config(
    tmp_path: Path, body: str, *, reload_timeout: float = operations.RELOAD_TIMEOUT
) -> HostConfig:
    return HostConfig(
        socket="/run/f2b.sock",
        config_dir="/etc/f2b",
        fail2ban_client=_client_script(tmp_path, body),
        reload_timeout=reload_timeout,
    )


# --- what fail2ban-client is started with ---------------------------------------------------------
PRINT_ARGV_AND_ENVIRONMENT = (
    'printf "%s|" "$@"; echo\n'
    'echo "secret=${JAILADMIN_SECRET_KEY-unset} tz=${TZ-unset} path=${PATH-unset}"'
)


def test_reload_passes_the_argv_and_only_the_allow_listed_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("JAILADMIN_SECRET_KEY", SECRET)
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    config = _config(tmp_path, PRINT_ARGV_AND_ENVIRONMENT)

    output = operations.reload(config, jail="sshd")

    assert output == (
        "-c|/etc/f2b|-s|/run/f2b.sock|reload|sshd|\nsecret=unset tz=Asia/Kolkata path=/usr/bin:/bin"
    )


def test_reload_restarts_only_when_asked(tmp_path):
    config = _config(tmp_path, 'printf "%s|" "$@"')
    assert operations.reload(config, jail=None) == "-c|/etc/f2b|-s|/run/f2b.sock|reload|"
    assert operations.reload(config, jail="sshd", restart=True) == (
        "-c|/etc/f2b|-s|/run/f2b.sock|reload|--restart|sshd|"
    )
    assert operations.reload_argv(config, jail=None, restart=True)[-2:] == ["reload", "--restart"]


def test_reload_environment_always_has_a_path():
    # An agent started without PATH (a bare service manager) still lets fail2ban-client find
    # its interpreter; a PATH we have is kept as it is.
    assert operations.reload_environment({}) == {"PATH": operations.DEFAULT_PATH}
    assert operations.reload_environment({"PATH": "/bin", "LC_ALL": "C", "HOME": "/root"}) == {
        "PATH": "/bin",
        "LC_ALL": "C",
    }


def test_reload_gives_fail2ban_client_no_stdin(tmp_path):
    # Under --stdio the agent's stdin is the protocol stream: a child that read it would
    # swallow the site's next requests. The child's stdin must be empty, not ours.
    config = _config(tmp_path, "cat")
    read_end, write_end = os.pipe()
    os.write(write_end, b"the site's next request")
    os.close(write_end)
    saved = os.dup(0)
    try:
        os.dup2(read_end, 0)
        output = operations.reload(config, jail=None)
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(read_end)
    assert output == ""


# --- how it fails ---------------------------------------------------------------------------------
def test_reload_with_a_missing_client_names_it(tmp_path):
    config = HostConfig(fail2ban_client=(str(tmp_path / "fail2ban-client"), "--extra"))
    with pytest.raises(ReloadFailed) as failed:
        operations.reload(config, jail=None)
    assert str(failed.value) == f"fail2ban-client not found: {tmp_path / 'fail2ban-client'}"


def test_reload_with_a_client_that_cannot_be_run_names_it(tmp_path):
    # Even root cannot execute a file without any execute bit.
    client = tmp_path / "fail2ban-client"
    client.write_text("#!/bin/sh\n")
    client.chmod(0o644)
    config = HostConfig(fail2ban_client=(str(client), "--extra"))
    with pytest.raises(ReloadFailed) as failed:
        operations.reload(config, jail=None)
    assert str(failed.value) == f"fail2ban-client cannot be run (permission denied): {client}"


def test_reload_failure_carries_the_exit_code_and_both_outputs(tmp_path):
    config = _config(tmp_path, "echo 'to stdout'; echo 'ERROR  NOK' >&2; exit 3")
    with pytest.raises(ReloadFailed) as failed:
        operations.reload(config, jail=None)
    assert failed.value.summary == "reload failed (exit code 3)"
    assert failed.value.output == "to stdout\nERROR  NOK"
    assert str(failed.value) == "reload failed (exit code 3)\nto stdout\nERROR  NOK"


@pytest.mark.parametrize(
    ("body", "output"),
    [
        ("printf 'partial stdout'; exec sleep 60", "partial stdout"),
        ("printf 'partial stderr' >&2; exec sleep 60", "partial stderr"),
    ],
)
def test_reload_timeout_says_so_and_keeps_what_was_printed(tmp_path, body, output):
    config = _config(tmp_path, body, reload_timeout=REPLY_TIMEOUT)
    with pytest.raises(ReloadFailed) as failed:
        operations.reload(config, jail=None)
    assert failed.value.summary == f"reload did not finish within {REPLY_TIMEOUT:g} s"
    assert failed.value.output == output


# --- the tail of the output -----------------------------------------------------------------------
def test_output_tail_keeps_up_to_the_limit_and_marks_a_cut():
    limit = operations.MAX_OUTPUT
    assert operations.output_tail(b"  x\n") == "x"
    exact = "a" * (limit - 1) + "z"
    assert operations.output_tail(exact.encode()) == exact
    longer = ("b" + exact).encode()
    assert operations.output_tail(longer) == "…" + exact


def test_output_tail_replaces_bytes_that_are_not_utf8():
    assert operations.output_tail(b"caf\xe9 \xff ok") == "caf\ufffd \ufffd ok"
    assert operations.output_tail("café".encode()) == "café"


# --- where fail2ban's database is -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "path"),
    [
        ("/var/lib/fail2ban/fail2ban.sqlite3", "/var/lib/fail2ban/fail2ban.sqlite3"),
        (" /var/lib/f2b.sqlite3\n", "/var/lib/f2b.sqlite3"),
        # fail2ban's dbfile = :memory: keeps its database in memory: nothing to read.
        (":memory:", None),
        ("", None),
        (None, None),
    ],
)
def test_database_path_is_what_fail2ban_reports_unless_it_keeps_none(answer, path):
    with FakeFail2ban(reply_value(0, answer)) as fake:
        assert operations.database_path(Fail2banClient(fake.path, timeout=5.0)) == path


def test_reload_argv_refuses_an_option_as_jail_name():
    with pytest.raises(InvalidArgument) as refused:
        operations.reload_argv(HostConfig(), jail="--all", restart=True)
    assert "invalid jail name" in str(refused.value)


# --- the agent's bounds on the database cursor ---------------------------------------------------
def test_agent_database_bans_takes_a_cursor_up_to_the_largest_rowid(f2b_agent):
    # SQLite's rowids end at 2**63 - 1: a cursor there reads nothing, one past it is refused
    # with the range, before SQLite could overflow on it.
    link = AgentLink(f2b_agent.address, timeout=10.0)
    try:
        assert link.database_bans(after=2**63 - 1, limit=1) == []
        for after in (2**63, -1):
            with pytest.raises(InvalidArgument) as refused:
                link.database_bans(after=after, limit=1)
            assert (
                str(refused.value) == "after must be a whole number from 0 to 9223372036854775807"
            )
    finally:
        link.close()


# --- DirectLink: the same operations in this process (direct-socket mode) ------------------------
def test_direct_link_answers_as_the_agent_does(f2b, f2b_agent):
    # The services see the same answers in both modes: the database path, its rows (after a
    # cursor, one by row id) and the handshake's fail2ban version.
    direct = DirectLink(HostConfig(socket=str(f2b.socket_path), timeout=10.0))
    agent = AgentLink(f2b_agent.address, timeout=10.0)
    try:
        direct.send("set", "sshd", "banip", "192.0.2.60", "192.0.2.61")
        # fail2ban writes a ban's row from another thread, after `banip` has answered.
        wait_until(lambda: len(direct.database_bans(after=0, limit=100)) >= 2)
        assert direct.database_path() == agent.database_path() == str(f2b.dbfile)
        rows = direct.database_bans(after=0, limit=100)
        assert sorted(row[2] for row in rows) == ["192.0.2.60", "192.0.2.61"]
        assert rows == agent.database_bans(after=0, limit=100)
        assert direct.database_bans(after=rows[0][0], limit=1) == rows[1:2]
        assert direct.database_ban(rowid=rows[1][0]) == rows[1][1:4]
        assert direct.database_ban(rowid=rows[1][0]) == agent.database_ban(rowid=rows[1][0])
        info = direct.hello()
        assert info.agent_version is None  # this process answers, no agent
        assert info.fail2ban_version == agent.hello().fail2ban_version
        assert info.operations == OPERATIONS
    finally:
        agent.close()


def test_direct_link_without_a_fail2ban_database_says_so():
    # A fail2ban (fake: the real one's dbfile cannot be changed) answering None to everything.
    with FakeFail2ban(reply_value(0, None)) as fake:
        direct = DirectLink(HostConfig(socket=fake.path, timeout=5.0))
        assert direct.database_path() is None
        # No version reported is no version, not the text "None".
        assert direct.hello().fail2ban_version is None
        for read in (
            lambda: direct.database_bans(after=0, limit=10),
            lambda: direct.database_ban(rowid=1),
        ):
            with pytest.raises(DatabaseUnavailable) as refused:
                read()
            assert str(refused.value) == "fail2ban keeps no database (dbfile is :memory: or unset)"


def test_direct_link_reload_runs_the_configured_client(tmp_path):
    direct = DirectLink(_config(tmp_path, 'printf "%s|" "$@"'))
    assert direct.reload(jail="sshd") == "-c|/etc/f2b|-s|/run/f2b.sock|reload|sshd|"
    assert direct.location == "/run/f2b.sock"


def test_direct_link_waits_as_long_as_configured():
    # A fail2ban that never answers: the configured timeout, not the client's default, is
    # what the caller is told was waited for.
    with FakeFail2ban(hang()) as fake:
        direct = DirectLink(HostConfig(socket=fake.path, timeout=0.5))
        with pytest.raises(Fail2banUnreachable) as unreachable:
            direct.send("ping")
    assert str(unreachable.value).endswith("no answer within 0.5 s")
