"""scripts/postgres.sh: the private PostgreSQL cluster of `make test-postgres` and the benchmarks.

Each test runs its own cluster in a fresh /tmp directory (JAILADMIN_PG_DIR), never the
checkout's var/postgres that a `make test-postgres` may be using right now.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dj_database_url
import pytest
from django.db import connection

from tests.support.postgres import SCRIPT, PostgresCluster, postgres_installed

needs_postgres = pytest.mark.skipif(
    not postgres_installed(), reason="Debian's postgresql is not installed (make install adds it)"
)


@pytest.fixture
def private_dir() -> Iterator[Path]:
    # mkdtemp makes it 0700 and root's: the script must grant its user the way in.
    directory = Path(tempfile.mkdtemp(prefix="ja-pg-", dir="/tmp"))
    cluster = PostgresCluster(directory / "pg")
    try:
        yield directory
    finally:
        if cluster.running():
            cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _script(directory: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAILADMIN_PG_DIR": str(directory)}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300
    )


def _postmaster_uid(data: Path) -> int:
    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    return Path(f"/proc/{pid}").stat().st_uid


@pytest.mark.slow
@needs_postgres
def test_postgres_script_runs_an_unprivileged_cluster_on_a_private_socket_only(private_dir):
    cluster = PostgresCluster(private_dir / "pg")
    assert cluster.start() is True
    assert cluster.start() is False  # idempotent: it runs already
    data = private_dir / "pg" / "data"
    run = private_dir / "pg" / "run"
    owner = data.stat().st_uid
    assert owner != 0 and _postmaster_uid(data) == owner
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((run / ".s.PGSQL.5432").stat().st_mode) == 0o700
    # The 0700 temp dir now lets others traverse it, but not list it.
    mode = stat.S_IMODE(private_dir.stat().st_mode)
    assert mode & stat.S_IXOTH and not mode & stat.S_IROTH
    with cluster.connect() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        assert conn.execute("SHOW unix_socket_directories").fetchone() == (str(run),)
    settings = dj_database_url.parse(cluster.url("jailadmin"))
    assert settings["ENGINE"] == "django.db.backends.postgresql"
    assert (settings["HOST"], settings["NAME"], settings["USER"]) == (
        str(run),
        "jailadmin",
        "jailadmin",
    )
    cluster.stop()
    assert not cluster.running()
    cluster.stop()  # idempotent too
    assert cluster.start() is True  # a second start reuses the initialised data directory


@pytest.mark.slow
@needs_postgres
def test_postgres_script_databases_are_created_copied_and_dropped(private_dir):
    cluster = PostgresCluster(private_dir / "pg")
    cluster.start()
    cluster.database_create("bench_a")
    with cluster.connect("bench_a") as conn:
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t VALUES (7)")
    cluster.database_create("bench_b", template="bench_a")
    with cluster.connect("bench_b") as conn:
        assert conn.execute("SELECT n FROM t").fetchall() == [(7,)]
    cluster.database_drop("bench_a")
    assert not cluster.database_exists("bench_a") and cluster.database_exists("bench_b")
    with pytest.raises(ValueError):
        cluster.database_create('x"; DROP DATABASE bench_b; --')


@pytest.mark.slow
@needs_postgres
def test_postgres_script_run_stops_only_a_cluster_it_started(private_dir):
    pg = private_dir / "pg"
    result = _script(
        pg, "run", "bash", "-c", 'test -S "$0"/.s.PGSQL.5432 && exit 3', str(pg / "run")
    )
    assert result.returncode == 3  # the command ran against a running cluster, its status kept
    assert not PostgresCluster(pg).running()  # and it was stopped again
    PostgresCluster(pg).start()
    assert _script(pg, "run", "true").returncode == 0
    assert PostgresCluster(pg).running()  # found running: left running


def test_postgres_each_xdist_worker_has_its_own_test_database(db):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if connection.vendor != "postgresql" or worker is None:
        pytest.skip("only under `make test-postgres` (PostgreSQL and pytest-xdist)")
    assert connection.settings_dict["NAME"].endswith(f"_{worker}")
    assert connection.settings_dict["NAME"].startswith("test_")
