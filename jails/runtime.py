"""The runtime state follows the stored settings: loaded at process start, then watched.

JailsConfig.ready() builds the state from the JAILADMIN_* seeds without any I/O. Before the
state is first used, runtime_load() reads the one SiteSettings row and applies it:
jailadmin/wsgi.py calls runtime_start() when a web process starts, and the accessor
(jails.apps.runtime_state) does it for management commands.

A change saved in one process (on /settings/, in the admin, by the wizard) bumps the row's
version. Every web process runs one SettingsWatcher thread that reads the version about
once a second and, when it moved, rebuilds what depends on the settings: the fail2ban
client when the socket changed, the session cache when the storage changed. Each is
replaced by plain attribute assignment of a new object, so a request sees either the old
or the new one, never a half-built one.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from dataclasses import replace
from zoneinfo import ZoneInfo

from django.db import DatabaseError, close_old_connections, connection

from jails.fail2ban import Fail2banClient
from jails.models import SiteSettings
from jails.sessions import build_session_cache
from jails.state import JailServiceState, RuntimeSettings, RuntimeState

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
        display_time_zone=row.display_time_zone,
        session_lifetime_seconds=row.session_lifetime_seconds,
        session_cache=row.session_cache,
        redis_url=row.redis_url,
        history_retention_days=row.history_retention_days,
    )


def runtime_apply(state: RuntimeState, row: SiteSettings) -> None:
    """Make `state` follow `row`: swap whatever depends on a changed value."""
    if not row.setup_complete:
        return  # the seeds stay in use until the wizard has saved a complete set
    with state.lock:
        old = state.settings
        new = runtime_settings_from_row(old, row)
        if (new.fail2ban_socket, new.fail2ban_timeout) != (
            old.fail2ban_socket,
            old.fail2ban_timeout,
        ):
            state.jail_service = JailServiceState(
                client=Fail2banClient(new.fail2ban_socket, timeout=new.fail2ban_timeout),
                server_time_zone=ZoneInfo(new.fail2ban_time_zone),
            )
        if (new.session_cache, new.redis_url) != (old.session_cache, old.redis_url):
            state.session_cache = build_session_cache(new.session_cache, new.redis_url)
            logger.info("session storage is now %s", state.session_cache.kind)
        state.settings = new
        state.settings_version = row.version
        state.setup_pending = False


def runtime_load(state: RuntimeState) -> None:
    """Read the stored settings once (the state built by ready() holds only the seeds)."""
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


def runtime_refresh(state: RuntimeState) -> bool:
    """Apply the stored settings if their version moved; True when something was applied."""
    version = SiteSettings.objects.filter(singleton=1).values_list("version", flat=True).first()
    if version is None or version == state.settings_version:
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
