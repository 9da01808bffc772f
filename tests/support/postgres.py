"""The private PostgreSQL cluster of scripts/postgres.sh, from Python (tests and benchmarks).

The script does the work (an unprivileged user's cluster under var/postgres, a Unix socket
only); this wraps it and adds throw-away databases: a benchmark creates its own, copies one
(`CREATE DATABASE … TEMPLATE`, PostgreSQL's file-level copy) and drops them when done.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "postgres.sh"
MAINTENANCE_DB = "postgres"  # initdb's own database: where CREATE/DROP DATABASE are sent from
# Only names the code made up itself reach SQL: they cannot be passed as parameters.
NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
START_TIMEOUT = 300.0  # initdb plus a start on a loaded 1-core box


def postgres_installed() -> bool:
    return any(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


@dataclass(frozen=True)
class PostgresCluster:
    """One cluster; `directory` None is the script's default, the checkout's var/postgres."""

    directory: Path | None = None

    def _script(self, *args: str, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "JAILADMIN_PG_DIR"}
        if self.directory is not None:
            env["JAILADMIN_PG_DIR"] = str(self.directory)
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def running(self) -> bool:
        return self._script("status", timeout=60).returncode == 0

    def start(self) -> bool:
        """Start it unless it runs; True if this call started it (so the caller stops it)."""
        if self.running():
            return False
        result = self._script("start")
        if result.returncode != 0:
            raise RuntimeError(f"scripts/postgres.sh start failed: {result.stderr.strip()}")
        return True

    def stop(self) -> None:
        result = self._script("stop")
        if result.returncode != 0:
            raise RuntimeError(f"scripts/postgres.sh stop failed: {result.stderr.strip()}")

    def url(self, database: str) -> str:
        """The JAILADMIN_DATABASE_URL of `database` in this cluster."""
        result = self._script("url", _checked(database), timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"scripts/postgres.sh url failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def socket_dir(self) -> Path:
        return Path(unquote(urlsplit(self.url(MAINTENANCE_DB)).hostname or ""))

    def connect(self, database: str = MAINTENANCE_DB):  # -> psycopg.Connection
        import psycopg

        parts = urlsplit(self.url(database))
        return psycopg.connect(
            host=unquote(parts.hostname or ""),
            user=parts.username,
            dbname=database,
            autocommit=True,  # CREATE/DROP DATABASE refuse to run inside a transaction
        )

    def database_create(self, name: str, *, template: str | None = None) -> str:
        """A fresh (or copied) database; returns its URL."""
        sql = f'CREATE DATABASE "{_checked(name)}"'
        if template is not None:
            sql += f' TEMPLATE "{_checked(template)}"'
        with self.connect() as conn:
            conn.execute(sql)
        return self.url(name)

    def database_drop(self, name: str) -> None:
        with self.connect() as conn:
            # FORCE: a benchmark's gunicorn may still hold a connection while it winds down.
            conn.execute(f'DROP DATABASE IF EXISTS "{_checked(name)}" WITH (FORCE)')

    def database_exists(self, name: str) -> bool:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (_checked(name),)
            ).fetchone()
        return row is not None


def _checked(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(f"not a database name made here: {name!r}")
    return name
