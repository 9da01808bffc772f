"""jails.agent.operations in-process: the reads and checks both DirectLink and the agent use."""

from __future__ import annotations

import json
import sqlite3

import pytest

from jails.agent import operations
from jails.agent.link import agent_address_check
from jails.fail2ban import DatabaseUnavailable, InvalidArgument
from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add, fail2ban_db_create


@pytest.fixture
def dbfile(tmp_path):
    path = tmp_path / "fail2ban.sqlite3"
    fail2ban_db_create(path, jails=["sshd"])
    fail2ban_db_add(
        path,
        [
            Fail2banBan("sshd", "192.0.2.1", 1_700_000_000, matches=["line one"]),
            Fail2banBan("sshd", "192.0.2.2", 1_700_000_100, bantime=-1, bancount=3),
        ],
    )
    return path


def test_database_bans_reads_after_the_cursor_in_order(dbfile):
    rows = operations.database_bans(str(dbfile), after=0, limit=10)
    assert [row[:6] for row in rows] == [
        (1, "sshd", "192.0.2.1", 1_700_000_000, 600, 1),
        (2, "sshd", "192.0.2.2", 1_700_000_100, -1, 3),
    ]
    assert json.loads(rows[0][6]) == {"matches": ["line one"], "failures": 1}
    assert operations.database_bans(str(dbfile), after=1, limit=10)[0][0] == 2
    assert operations.database_bans(str(dbfile), after=0, limit=1) == rows[:1]
    assert operations.database_ban(str(dbfile), rowid=2) == ("sshd", "192.0.2.2", 1_700_000_100)
    assert operations.database_ban(str(dbfile), rowid=99) is None


def test_database_bans_pass_on_damaged_rows_without_failing(dbfile):
    with sqlite3.connect(dbfile) as db:
        db.execute(
            "INSERT INTO bans(jail, ip, timeofban, bantime, bancount, data) VALUES (?,?,?,?,?,?)",
            ("sshd", None, "not a time", 600, "many", b"x" * (operations.MAX_DATA_BYTES + 1)),
        )
    db.close()
    [row] = operations.database_bans(str(dbfile), after=2, limit=10)
    # The history parses and counts it as unusable; an oversized blob is not passed on.
    assert row == (3, "sshd", "", 0, 600, 1, None)


@pytest.mark.parametrize(
    ("after", "limit"), [(-1, 10), (0, 0), (0, operations.MAX_BATCH_ROWS + 1), (True, 10)]
)
def test_database_bans_refuses_bad_arguments(dbfile, after, limit):
    with pytest.raises(InvalidArgument):
        operations.database_bans(str(dbfile), after=after, limit=limit)


def test_database_not_fail2bans_or_missing_is_database_unavailable(tmp_path):
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t(x)")
    db.close()
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not sqlite at all" * 100)
    for path in (other, garbage, tmp_path / "missing.sqlite3"):
        with pytest.raises(DatabaseUnavailable, match="fail2ban's database|not a fail2ban"):
            operations.database_bans(str(path), after=0, limit=10)


def test_database_is_opened_read_only(dbfile):
    operations.database_bans(str(dbfile), after=0, limit=10)
    # No journal, no WAL file: nothing was written next to fail2ban's database.
    assert sorted(p.name for p in dbfile.parent.iterdir()) == [dbfile.name]


def test_reload_argv_validates_the_jail_name():
    config = operations.HostConfig(socket="/run/f2b.sock", fail2ban_client=("f2b", "--x"))
    assert operations.reload_argv(config, jail="sshd") == [
        "f2b",
        "--x",
        "-c",
        "/etc/fail2ban",
        "-s",
        "/run/f2b.sock",
        "reload",
        "sshd",
    ]
    with pytest.raises(InvalidArgument):
        operations.reload_argv(config, jail="--all")


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("", True),
        ("unix:/run/jailadmin/agent.sock", True),
        ("/run/jailadmin/agent.sock", False),
        ("unix:relative.sock", False),
        ("tcp://127.0.0.1:9", False),
        ("unix:/" + "x" * 107, False),
    ],
)
def test_agent_address_check(address, ok):
    if ok:
        assert agent_address_check(f" {address} ") == address
    else:
        with pytest.raises(InvalidArgument):
            agent_address_check(address)
