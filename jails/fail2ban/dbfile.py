"""Write a fail2ban database (schema version 4, as fail2ban 1.0 creates it).

For tests and benchmarks of the ban history: a file with fail2ban's own tables that the
archive reads exactly as it reads the live server's. Nothing Django in here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# fail2ban 1.0.2's CREATE statements (fail2ban/server/database.py), verbatim in substance.
SCHEMA_V4 = (
    "CREATE TABLE IF NOT EXISTS fail2banDb(version INTEGER)",
    "CREATE TABLE IF NOT EXISTS jails(name TEXT NOT NULL UNIQUE, "
    "enabled INTEGER NOT NULL DEFAULT 1)",
    "CREATE INDEX IF NOT EXISTS jails_name ON jails(name)",
    "CREATE TABLE IF NOT EXISTS logs(jail TEXT NOT NULL, path TEXT, firstlinemd5 TEXT, "
    "lastfilepos INTEGER DEFAULT 0, FOREIGN KEY(jail) REFERENCES jails(name) ON DELETE CASCADE, "
    "UNIQUE(jail, path), UNIQUE(jail, path, firstlinemd5))",
    "CREATE TABLE IF NOT EXISTS bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL, "
    "bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON, "
    "FOREIGN KEY(jail) REFERENCES jails(name) )",
    "CREATE INDEX IF NOT EXISTS bans_jail_timeofban_ip ON bans(jail, timeofban)",
    "CREATE INDEX IF NOT EXISTS bans_jail_ip ON bans(jail, ip)",
    "CREATE INDEX IF NOT EXISTS bans_ip ON bans(ip)",
    "CREATE TABLE IF NOT EXISTS bips(ip TEXT NOT NULL, jail TEXT NOT NULL, "
    "timeofban INTEGER NOT NULL, bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, "
    "data JSON, PRIMARY KEY(ip, jail), FOREIGN KEY(jail) REFERENCES jails(name) )",
    "CREATE INDEX IF NOT EXISTS bips_timeofban ON bips(timeofban)",
    "CREATE INDEX IF NOT EXISTS bips_ip ON bips(ip)",
)


@dataclass(frozen=True)
class Fail2banBan:
    """One row of fail2ban's `bans` table."""

    jail: str
    ip: str
    timeofban: int
    bantime: int = 600
    bancount: int = 1
    matches: Sequence[str] = field(default_factory=tuple)
    failures: int | None = None

    def data(self) -> bytes:
        failures = len(self.matches) if self.failures is None else self.failures
        return json.dumps({"matches": list(self.matches), "failures": failures}).encode()


def fail2ban_db_create(path: Path | str, *, jails: Iterable[str] = ()) -> None:
    """Create an empty fail2ban database (schema v4) with the given jails."""
    with sqlite3.connect(path) as db:
        for statement in SCHEMA_V4:
            db.execute(statement)
        if db.execute("SELECT COUNT(*) FROM fail2banDb").fetchone()[0] == 0:
            db.execute("INSERT INTO fail2banDb(version) VALUES (4)")
        db.executemany(
            "INSERT OR IGNORE INTO jails(name, enabled) VALUES (?, 1)", [(j,) for j in jails]
        )
    db.close()


def fail2ban_db_add(path: Path | str, bans: Iterable[Fail2banBan]) -> int:
    """Append ban rows (as fail2ban does on each ban); returns how many were written."""
    rows = [(b.jail, b.ip, b.timeofban, b.bantime, b.bancount, b.data()) for b in bans]
    with sqlite3.connect(path) as db:
        db.executemany("INSERT OR IGNORE INTO jails(name) VALUES (?)", {(r[0],) for r in rows})
        db.executemany(
            "INSERT INTO bans(jail, ip, timeofban, bantime, bancount, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    db.close()
    return len(rows)


def fail2ban_db_delete(path: Path | str, *, ip: str | None = None) -> int:
    """Delete rows as fail2ban's unban (one address) or `unban --all` (ip None) does."""
    with sqlite3.connect(path) as db:
        if ip is None:
            count = db.execute("DELETE FROM bans").rowcount
            db.execute("DELETE FROM bips")
        else:
            count = db.execute("DELETE FROM bans WHERE ip = ?", (ip,)).rowcount
            db.execute("DELETE FROM bips WHERE ip = ?", (ip,))
    db.close()
    return count
