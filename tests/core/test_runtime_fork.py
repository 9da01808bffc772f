"""`gunicorn --preload`: no database connection is open when the master forks a worker.

Issue 8, item 4. The WSGI module runs in the master under --preload; loading the runtime
settings opened a connection there (and the settings watcher keeps its own), and every
worker inherited it. With PostgreSQL, processes sharing one connection's socket corrupt
each other's queries. The check runs in a separate process that imports the WSGI module
and forks, as gunicorn does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import gc, json, os, sys, time

    from django.conf import settings

    # PostgreSQL connections are kept between uses (CONN_MAX_AGE); this SQLite site closes
    # them. Keep them as PostgreSQL does, so the probe sees what a fork would inherit.
    settings.DATABASES["default"]["CONN_MAX_AGE"] = None


    def open_wrappers():
        from django.db.backends.base.base import BaseDatabaseWrapper

        return [
            o for o in gc.get_objects()
            if isinstance(o, BaseDatabaseWrapper) and o.connection is not None
        ]


    at_fork = []
    # Registered first, so it runs last among the before-fork hooks: it sees what the
    # child is about to inherit.
    os.register_at_fork(before=lambda: at_fork.append(len(open_wrappers())))

    import jailadmin.wsgi  # noqa: E402  (what gunicorn --preload imports in the master)
    from django.db import connection, connections  # noqa: E402
    from jails.apps import runtime_state  # noqa: E402

    main_open_after_load = connection.connection is not None
    main = connections["default"]
    # Let the settings watcher make its first poll, keeping its connection open.
    deadline = time.monotonic() + 60
    while not any(w is not main for w in open_wrappers()):
        assert time.monotonic() < deadline, "the watcher never polled"
        time.sleep(0.05)

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        watcher = runtime_state().watcher
        os.write(write_end, b"1" if watcher.thread.is_alive() else b"0")
        os._exit(0)
    os.close(write_end)
    child_watching = os.read(read_end, 1) == b"1"
    os.waitpid(pid, 0)
    print(json.dumps({
        "main_open_after_load": main_open_after_load,
        "open_at_fork": at_fork[0],
        "child_watching": child_watching,
        "parent_watching": runtime_state().watcher.thread.is_alive(),
    }))
    """
)


def test_wsgi_preload_leaves_no_database_connection_to_the_forked_workers(tmp_path):
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="jailadmin.settings",
        JAILADMIN_DEBUG="false",
        JAILADMIN_SECRET_KEY="test-only-" + "x" * 50,
        JAILADMIN_VAR_DIR=str(tmp_path),
        JAILADMIN_DATABASE_URL=f"sqlite:///{tmp_path / 'site.sqlite3'}",
        JAILADMIN_LOG_LEVEL="WARNING",
    )
    python = [sys.executable]
    subprocess.run(
        [*python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300
    )
    result = subprocess.run(
        [*python, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "main_open_after_load": False,  # closed after the runtime load, before any fork
        "open_at_fork": 0,  # the watcher's connection too
        "child_watching": True,  # the worker follows settings changes
        "parent_watching": True,
    }
