"""The README's pipx install: the wheel installed by `pipx install --include-deps` into a
throw-away PIPX_HOME and PIPX_BIN_DIR, then `jailadmin check` and `jailadmin migrate` on a
throw-away database, from a directory outside the checkout.

pipx is the one from the dev extra (PyPI); it makes its own virtual environment from this
Python and takes the dependencies from the package index, as it does on a user's machine.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.deploy.test_wheel import COMMAND_TIMEOUT, PIP_TIMEOUT, run, wheel_build

pytestmark = pytest.mark.slow
PIPX = Path(sys.executable).parent / "pipx"


def test_pipx_installed_jailadmin_checks_and_migrates(tmp_path, f2b):
    wheel = wheel_build(tmp_path / "build")
    home, bin_dir = tmp_path / "pipx-home", tmp_path / "pipx-bin"
    # The package index settings (PIP_*) stay; nothing of the checkout or the test run does.
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JAILADMIN_", "PYTEST", "DJANGO_", "VIRTUAL_ENV", "PYTHON"))
    }
    pipx_env = base | {
        "PIPX_HOME": str(home),
        "PIPX_BIN_DIR": str(bin_dir),
        "PIPX_MAN_DIR": str(tmp_path / "pipx-man"),
        "PIPX_DEFAULT_PYTHON": sys.executable,
    }
    run(
        [str(PIPX), "install", "--include-deps", str(wheel)],
        cwd=tmp_path,
        env=pipx_env,
        timeout=PIP_TIMEOUT,
    )
    jailadmin = bin_dir / "jailadmin"
    assert jailadmin.exists()
    # --include-deps: the README's next step, gunicorn, is on the PATH too.
    assert (bin_dir / "gunicorn").exists()

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    var = tmp_path / "var"
    var.mkdir()  # as the README's install does (the site does not create it)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "JAILADMIN_SECRET_KEY": "pipx-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "JAILADMIN_VAR_DIR": str(var),
        "JAILADMIN_FAIL2BAN_SOCKET": str(f2b.socket_path),
        "JAILADMIN_FAIL2BAN_TIME_ZONE": f2b.tz or "UTC",
    }
    where = run(
        ["jailadmin", "shell", "-c", "import jails; print(jails.__file__)"],
        cwd=outside,
        env=env,
        timeout=COMMAND_TIMEOUT,
    )
    # pipx's own virtual environment, not the checkout.
    assert where.strip().splitlines()[-1].startswith(str(home / "venvs" / "jailadmin")), where

    assert "no issues" in run(
        ["jailadmin", "check", "--fail-level", "WARNING"],
        cwd=outside,
        env=env,
        timeout=COMMAND_TIMEOUT,
    )
    run(["jailadmin", "migrate", "--noinput", "-v0"], cwd=outside, env=env, timeout=COMMAND_TIMEOUT)
    (database,) = var.glob("*.sqlite3")
    with sqlite3.connect(database) as conn:
        applied = {row[0] for row in conn.execute("SELECT app FROM django_migrations")}
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"jails", "history", "notifications", "auth", "sessions"} <= applied, applied
    assert "notifications_notification" in tables
    # Migrated: nothing left to apply.
    plan = run(["jailadmin", "migrate", "--plan"], cwd=outside, env=env, timeout=COMMAND_TIMEOUT)
    assert "No planned migration operations." in plan
