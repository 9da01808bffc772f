"""The host-side operations: what only the fail2ban host (root, in production) can do.

Used in-process by DirectLink (direct-socket mode: the demo, root installs) and by the agent
server (agent mode: the web process runs unprivileged). Each operation takes exactly what it
needs and validates it here, because in agent mode its caller is not trusted.

Nothing Django in here: standard library and jails.fail2ban only.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jails.fail2ban import (
    DEFAULT_SOCKET,
    DatabaseUnavailable,
    Fail2banClient,
    InvalidArgument,
    ReloadFailed,
)
from jails.fail2ban.validation import validate_jail_name

# (rowid, jail, ip, timeofban, bantime, bancount, data as JSON text or None)
BanRow = tuple[int, str, str, int, int, int, str | None]

MAX_BATCH_ROWS = 10000  # rows per read: each read is one short query
READ_RETRIES = 5  # "database is locked" while fail2ban writes: retry shortly
# A `data` blob larger than this is not passed on (the history would not parse it either):
# it is attacker-controlled text and would make a batch's reply arbitrarily large.
MAX_DATA_BYTES = 4 * 1024 * 1024

RELOAD_TIMEOUT = 120.0
MAX_OUTPUT = 4000
# All fail2ban-client needs: PATH to find its interpreter, the locale for decoding its
# configuration files, TZ for its log times. Everything else in our environment may be a
# secret (secret key, admin password, database and Redis URLs) and stays with us; so do
# our interpreter's PYTHON* variables (a packaged wrapper sets its own PYTHONPATH).
RELOAD_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class HostConfig:
    """Where fail2ban is on this host and how to run its client."""

    socket: str = DEFAULT_SOCKET
    timeout: float = 5.0
    config_dir: str = "/etc/fail2ban"
    fail2ban_client: tuple[str, ...] = ("fail2ban-client",)
    reload_timeout: float = RELOAD_TIMEOUT
    # The filter tester's fail2ban-regex; () runs the one next to fail2ban_client
    # (jails.agent.regex.regex_command), as a package installs them side by side.
    fail2ban_regex: tuple[str, ...] = ()
    regex_timeout: float = 30.0
    # The configuration editor's writes (jails.agent.configfiles.config_apply). Writing
    # fail2ban's configuration is root's code execution by nature (action definitions,
    # `ignorecommand`): an agent started with --no-config-writes only reads and tests it.
    config_writes: bool = True


# --- fail2ban's database --------------------------------------------------------------------------
def database_path(client: Fail2banClient) -> str | None:
    """fail2ban's database path (`get dbfile`), or None when it keeps no database."""
    value = client.send("get", "dbfile")
    if value is None:
        return None
    path = str(value).strip()
    return path if path and path not in (":memory:", "None") else None


def _open_readonly(path: str) -> sqlite3.Connection:
    uri = "file:" + urllib.parse.quote(path) + "?mode=ro"
    try:
        # isolation_level=None: no implicit transaction; every SELECT ends when it is fetched.
        # A reader that holds a read transaction for seconds makes fail2ban lose bans.
        conn = sqlite3.connect(uri, uri=True, timeout=2.0, isolation_level=None)
    except sqlite3.Error as exc:
        raise DatabaseUnavailable(f"cannot read fail2ban's database {path}: {exc}") from None
    try:
        conn.execute("PRAGMA query_only = ON")
        version = _query(conn, "SELECT version FROM fail2banDb", (), path=path)
        if not version or int(version[0][0]) < 2:
            raise DatabaseUnavailable(f"{path} is not a fail2ban database this version understands")
    except (DatabaseUnavailable, sqlite3.Error, TypeError, ValueError) as exc:
        conn.close()
        if isinstance(exc, DatabaseUnavailable):
            raise
        raise DatabaseUnavailable(f"cannot read fail2ban's database {path}: {exc}") from None
    return conn


def _query(conn: sqlite3.Connection, sql: str, params: Sequence[Any], *, path: str) -> list[Any]:
    """One short read; retried a few times while fail2ban holds its write lock."""
    for attempt in range(READ_RETRIES):
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise DatabaseUnavailable(
                    f"cannot read fail2ban's database {path}: {exc}"
                ) from None
            time.sleep(0.05 * (attempt + 1))
        except sqlite3.Error as exc:  # "file is not a database", a missing table
            raise DatabaseUnavailable(f"cannot read fail2ban's database {path}: {exc}") from None
    raise DatabaseUnavailable("fail2ban's database stayed locked; will try again on the next sync")


def _int(value: Any, default: int) -> int:
    # A damaged row must not end the read: the history counts it as unusable instead.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def _data_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) > MAX_DATA_BYTES:
            return None
        return raw.decode("utf-8", errors="replace")
    text = str(value)
    return text if len(text) <= MAX_DATA_BYTES else None


def database_bans(path: str, *, after: int, limit: int) -> list[BanRow]:
    """The rows of fail2ban's `bans` table after rowid `after`, in rowid order, at most `limit`."""
    if isinstance(after, bool) or not isinstance(after, int) or after < 0:
        raise InvalidArgument("after must be a whole number >= 0")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_BATCH_ROWS:
        raise InvalidArgument(f"limit must be between 1 and {MAX_BATCH_ROWS}")
    conn = _open_readonly(path)
    try:
        rows = _query(
            conn,
            "SELECT rowid, jail, ip, timeofban, bantime, bancount, data FROM bans "
            "WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (after, limit),
            path=path,
        )
    finally:
        conn.close()
    return [
        (
            int(rowid),
            "" if jail is None else str(jail),
            "" if ip is None else str(ip),
            _int(timeofban, 0),
            _int(bantime, 0),
            _int(bancount, 1),
            _data_text(data),
        )
        for rowid, jail, ip, timeofban, bantime, bancount, data in rows
    ]


def database_ban(path: str, *, rowid: int) -> tuple[str, str, int] | None:
    """(jail, ip, timeofban) of one row, for the history's cursor check; None if it is gone."""
    if isinstance(rowid, bool) or not isinstance(rowid, int):
        raise InvalidArgument("rowid must be a whole number")
    conn = _open_readonly(path)
    try:
        rows = _query(
            conn, "SELECT jail, ip, timeofban FROM bans WHERE rowid = ?", (rowid,), path=path
        )
    finally:
        conn.close()
    if not rows:
        return None
    jail, ip, timeofban = rows[0]
    return (str(jail), str(ip), _int(timeofban, 0))


# --- Reload ---------------------------------------------------------------------------------------
def reload_argv(config: HostConfig, *, jail: str | None, restart: bool = False) -> list[str]:
    """The argv of `fail2ban-client -c CONF -s SOCK reload [--restart] [JAIL]` (the jail name
    validated). `--restart` stops the jail first: fail2ban (1.0.2 and 1.1.0) drops an action
    added to a running jail at the end of a plain reload."""
    argv = [*config.fail2ban_client, "-c", config.config_dir, "-s", config.socket, "reload"]
    if restart:
        argv.append("--restart")
    if jail is not None:
        argv.append(validate_jail_name(jail))
    return argv


def reload_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment `fail2ban-client reload` runs with: an allow-list, never ours whole."""
    env = {name: environ[name] for name in RELOAD_ENVIRONMENT if name in environ}
    env.setdefault("PATH", DEFAULT_PATH)
    return env


def reload(config: HostConfig, *, jail: str | None, restart: bool = False) -> str:
    """Reload fail2ban's configuration (one jail, or all); returns the tail of its output.

    A subprocess on purpose: a reload over the socket needs the whole configuration stream
    that fail2ban-client builds with fail2ban's own configuration reader.
    """
    argv = reload_argv(config, jail=jail, restart=restart)
    try:
        result = subprocess.run(  # noqa: S603 (fixed argv, validated jail name, no shell)
            argv,
            env=reload_environment(os.environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=config.reload_timeout,
            check=False,
        )
    except FileNotFoundError:
        raise ReloadFailed(f"fail2ban-client not found: {argv[0]}") from None
    except PermissionError:
        raise ReloadFailed(
            f"fail2ban-client cannot be run (permission denied): {argv[0]}"
        ) from None
    except subprocess.TimeoutExpired as exc:
        output = output_tail((exc.stdout or b"") + (exc.stderr or b""))
        raise ReloadFailed(
            f"reload did not finish within {config.reload_timeout:g} s", output
        ) from None
    output = output_tail(result.stdout + result.stderr)
    if result.returncode != 0:
        raise ReloadFailed(f"reload failed (exit code {result.returncode})", output)
    return output


def output_tail(data: bytes) -> str:
    """The end of a subprocess's output, decoded: enough to explain a failure."""
    text = data.decode("utf-8", "replace").strip()
    return text if len(text) <= MAX_OUTPUT else "…" + text[-MAX_OUTPUT:]
