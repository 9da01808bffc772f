"""The runtime state follows the stored settings: loaded at process start, then watched.

JailsConfig.ready() builds the state from the JAILADMIN_* seeds without any I/O. The one
SiteSettings row is read explicitly where a process starts, never by the accessor
(jails.state.runtime_state only returns the state):
- jailadmin/wsgi.py calls runtime_start(watch=True): gunicorn, and `manage.py runserver`,
  which loads the WSGI_APPLICATION from that module;
- management commands that use the state subclass jails.management.base.RuntimeCommand,
  whose execute() calls runtime_load() before the checks and handle(); run_jobs also
  watches, as web workers do;
- system checks, which also run before either of those (`manage.py check`, runserver's
  own checks), read the row for themselves with runtime_snapshot_stored(), which does not
  install it;
- Django's test client goes through none of these: tests install the state they want
  (tests/conftest.py) and apply a row with runtime_apply().

A change saved in one process (on /settings/, in the admin, by the wizard) bumps the row's
version. Every web process runs one SettingsWatcher thread that reads the version about
once a second and, when it moved, builds a new RuntimeSnapshot (keeping the parts whose
inputs did not change) and installs it with one assignment: a request that read the
snapshot sees all of the old one or all of the new one, never a mix.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from dataclasses import replace

from django.db import DatabaseError, close_old_connections, connection

from jails.models import SiteSettings
from jails.state import RuntimeSettings, RuntimeSnapshot, RuntimeState, runtime_snapshot_build

logger = logging.getLogger(__name__)

WATCH_INTERVAL_SECONDS = 1.0


def site_settings_row() -> SiteSettings | None:
    """The stored runtime settings, or None before the first-run setup."""
    return SiteSettings.objects.filter(singleton=1).first()


def runtime_settings_from_row(base: RuntimeSettings, row: SiteSettings) -> RuntimeSettings:
    """`base` (seeds and values the database does not hold) with the stored values."""
    return replace(
        base,
        fail2ban_socket=row.fail2ban_socket,
        fail2ban_agent=row.fail2ban_agent,
        display_time_zone=row.display_time_zone,
        session_lifetime_seconds=row.session_lifetime_seconds,
        session_cache=row.session_cache,
        redis_url=row.redis_url,
        history_retention_days=row.history_retention_days,
    )


def runtime_snapshot_from_row(state: RuntimeState, row: SiteSettings) -> RuntimeSnapshot:
    """The snapshot `state` would hold with `row` applied (built, not installed; no I/O)."""
    current = state.snapshot
    return runtime_snapshot_build(
        runtime_settings_from_row(current.settings, row),
        memory_sessions=state.memory_sessions,
        version=row.version,
        previous=current,
    )


def runtime_apply(state: RuntimeState, row: SiteSettings) -> None:
    """Make `state` follow `row`: one new snapshot, installed by one assignment."""
    if not row.setup_complete:
        return  # the seeds stay in use until the wizard has saved a complete set
    with state.lock:  # writers only (the watcher, runtime_load): readers never wait
        old = state.snapshot
        new = runtime_snapshot_from_row(state, row)
        state.snapshot = new
        state.setup_pending = False
    if new.session_cache is not old.session_cache:
        logger.info("session storage is now %s", new.session_cache.kind)
    if new.jail_service is not old.jail_service:
        # An agent link's idle connections end now, not whenever the old snapshot is freed.
        old.jail_service.client.close()


def runtime_load(state: RuntimeState) -> None:
    """Read the stored settings once, at process start (ready() built the state from seeds).

    Called explicitly where a process starts (see the module docstring); a second call,
    or a call on a state that was not built by ready(), does nothing.
    """
    with state.lock:
        if not state.load_pending:
            return
        state.load_pending = False
    try:
        row = site_settings_row()
    except DatabaseError as exc:
        # Before `migrate` (or with the database down) the seeds are all there is; the
        # watcher, where one runs, picks the settings up once the table answers.
        logger.warning("runtime settings not loaded, using the JAILADMIN_* seeds: %s", exc)
        return
    if row is not None:
        runtime_apply(state, row)


def runtime_snapshot_stored(state: RuntimeState) -> RuntimeSnapshot:
    """The snapshot this process runs with once loaded, for system checks.

    Checks also run before any process start loads the settings (`manage.py check`,
    runserver's checks), so a state still on its seeds reads the row here, explicitly,
    and leaves the state alone: checking changes nothing.
    """
    if not state.load_pending:
        return state.snapshot
    try:
        row = site_settings_row()
    except DatabaseError:
        return state.snapshot  # before `migrate`: the seeds are what would run
    if row is None or not row.setup_complete:
        return state.snapshot
    return runtime_snapshot_from_row(state, row)


def runtime_refresh(state: RuntimeState) -> bool:
    """Apply the stored settings if their version moved; True when something was applied."""
    version = SiteSettings.objects.filter(singleton=1).values_list("version", flat=True).first()
    if version is None or version == state.snapshot.version:
        return False
    row = site_settings_row()
    if row is None or not row.setup_complete:
        return False
    runtime_apply(state, row)
    return True


class SettingsWatcher:
    """One daemon thread per process that keeps the state in step with the database.

    The thread has its own database connection (Django's are per thread) and closes it
    when it ends. Around a fork the thread is stopped, so no connection of it is open
    for the child to inherit, and started again on both sides: a server that imports the
    app before forking its workers (gunicorn --preload) must not hand every worker the
    same PostgreSQL connection, whose protocol state they would then share and corrupt.
    """

    def __init__(self, state: RuntimeState, *, interval: float = WATCH_INTERVAL_SECONDS) -> None:
        self.state = state
        self.interval = interval
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self._resume_after_fork = False

    def start(self) -> None:
        self.stopped.clear()
        self.thread = threading.Thread(
            target=self._run, name="jailadmin-settings-watcher", daemon=True
        )
        self.thread.start()

    def stop(self, *, timeout: float = 5.0) -> None:
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive() and not self.stopped.is_set()

    def fork_prepare(self) -> None:
        """os.fork() is about to run: stop the thread, which closes its connection."""
        self._resume_after_fork = self.running()
        if self._resume_after_fork:
            self.stop()

    def fork_done(self) -> None:
        """After os.fork(), in the parent and in the child: carry on watching."""
        if self._resume_after_fork:
            self._resume_after_fork = False
            self.start()

    def fork_hooks_register(self) -> None:
        """Stop and restart around every fork of this process (see the class docstring)."""
        # Fork hooks cannot be removed: a weak reference lets a discarded watcher (a test's
        # state) be freed, after which its hooks do nothing.
        ref = weakref.ref(self)

        def prepare() -> None:
            watcher = ref()
            if watcher is not None:
                watcher.fork_prepare()

        def done() -> None:
            watcher = ref()
            if watcher is not None:
                watcher.fork_done()

        os.register_at_fork(before=prepare, after_in_parent=done, after_in_child=done)

    def _run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    runtime_refresh(self.state)
                except Exception:  # a hiccup (database locked, restarting) must not end it
                    logger.exception("could not refresh the runtime settings")
                    connection.close()
                finally:
                    close_old_connections()
        finally:
            connection.close()  # this thread's own connection: nothing left open behind it


def runtime_start(state: RuntimeState, *, watch: bool) -> RuntimeState:
    """At process start: load the stored settings, and (web processes) start the watcher."""
    runtime_load(state)
    if watch and state.watcher is None:
        state.watcher = SettingsWatcher(state)
        state.watcher.start()
        # Threads do not survive fork(): a server that imports the app before forking
        # (gunicorn --preload) gets the watcher restarted in each child.
        state.watcher.fork_hooks_register()
    return state
