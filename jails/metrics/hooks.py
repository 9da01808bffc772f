"""gunicorn hooks for the metrics' multiprocess files (prometheus_client's multiprocess mode).

Each worker writes its request counters to files named by its pid in JAILADMIN_METRICS_DIR,
and a scrape sums all of them, those of workers that have exited too (a counter must not go
back when gunicorn replaces a worker). So the directory is emptied once, when the master
starts, and never by a worker. Use from gunicorn.conf.py:

    from jails.metrics.hooks import metrics_child_exit, metrics_on_starting

    def on_starting(server):
        metrics_on_starting(server)

    def child_exit(server, worker):
        metrics_child_exit(server, worker)

or run gunicorn with `-c python:jails.metrics.hooks` (this module is a gunicorn config too).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def metrics_directory() -> Path:
    """JAILADMIN_METRICS_DIR, from the site's settings (loaded here if gunicorn has not)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jailadmin.settings")
    from django.conf import settings

    return Path(settings.JAILADMIN_METRICS_DIR)


def metrics_directory_reset(directory: Path) -> None:
    """Remove every value file a previous run left, so counters start from zero."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


def metrics_on_starting(server: Any) -> None:
    """gunicorn's on_starting (master, before any worker): a clean directory."""
    metrics_directory_reset(metrics_directory())


def metrics_child_exit(server: Any, worker: Any) -> None:
    """gunicorn's child_exit (master): the library's bookkeeping for a dead worker."""
    directory = metrics_directory()
    # Imported only now, after the settings have set PROMETHEUS_MULTIPROC_DIR: the library
    # picks its value class on import, and workers forked later inherit the choice.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, path=str(directory))


# The names gunicorn looks for when this module is its configuration (`-c python:...`).
on_starting = metrics_on_starting
child_exit = metrics_child_exit
