"""The explicit per-process state: built once by JailsConfig.ready(), passed down to services.

No module in the project keeps mutable state at module level; everything a process
remembers between requests lives in one RuntimeState, so tests can build a fresh one
per test and nothing leaks between them.

Whatever depends on the runtime settings (the settings themselves, the link to fail2ban
(jails.agent.link) with its capability cache, the session storage) is one frozen
RuntimeSnapshot, replaced by a single assignment when the stored settings change
(jails.runtime). Code that needs two of its parts in one operation reads `state.snapshot`
once and uses that snapshot, so it can never pair one server's client with another
server's capabilities.

This module imports nothing else of jails' Django side (no models, apps or jails.sessions),
so everything may import it: see README, "How it is built".
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from queue import SimpleQueue
from typing import Any
from zoneinfo import ZoneInfo

from django.apps import apps as django_apps

from jails.agent.link import HostLink, link_build
from jails.agent.operations import HostConfig
from jails.history.charts import WorldMap, load_world_map
from jails.history.figures_cache import FiguresCache
from jails.history.geo import GeoLocator
from jails.page_cache import PageCache
from jails.session_storage import MemorySessions, SessionCache, build_session_cache


@dataclass(frozen=True)
class RuntimeSettings:
    """The settings a RuntimeState was built from (a snapshot, never mutated)."""

    fail2ban_socket: str
    # "" talks to fail2ban's socket in this process; "unix:/run/jailadmin/agent.sock" goes
    # through the host agent (the web process then needs no access to fail2ban at all).
    fail2ban_agent: str = ""
    fail2ban_timeout: float = 5.0
    fail2ban_time_zone: str = "UTC"
    fail2ban_config_dir: str = "/etc/fail2ban"
    fail2ban_client: str = "fail2ban-client"
    display_time_zone: str = "UTC"
    session_cache: str = "database"
    redis_url: str = ""
    geoip_db: str = ""
    page_size: int = 50
    poll_seconds: int = 10
    session_lifetime_seconds: int = 8 * 3600
    history_retention_days: int = 365
    web_workers: int = 1  # gunicorn workers this site runs with (JAILADMIN_WORKERS)
    # A ban of a network shorter than these prefixes asks first (JAILADMIN_BAN_MIN_PREFIX_*).
    ban_min_prefix_v4: int = 16
    ban_min_prefix_v6: int = 48
    # A page that asks several hosts waits this long for each (JAILADMIN_HOST_DEADLINE);
    # a host that misses it is shown as unreachable and the page renders the rest.
    host_deadline: float = 4.0
    # After a host failed or missed that deadline, pages skip it for this long (it is shown
    # unreachable at once) before asking it again (JAILADMIN_HOST_RETRY; 0: always ask).
    host_retry: float = 30.0
    # The site's var dir (JAILADMIN_VAR_DIR), shared by all its processes: the version
    # stamps of per-process caches live there (jails.stamps). "": nothing is cached on one.
    var_dir: str = ""

    @classmethod
    def from_django_settings(cls, settings: Any) -> RuntimeSettings:
        """Seed values from the JAILADMIN_* settings (read only here and in apps.py)."""
        return cls(
            fail2ban_socket=settings.JAILADMIN_FAIL2BAN_SOCKET,
            fail2ban_agent=settings.JAILADMIN_FAIL2BAN_AGENT,
            fail2ban_timeout=settings.JAILADMIN_FAIL2BAN_TIMEOUT,
            fail2ban_time_zone=settings.JAILADMIN_FAIL2BAN_TIME_ZONE,
            fail2ban_config_dir=settings.JAILADMIN_FAIL2BAN_CONFIG_DIR,
            fail2ban_client=settings.JAILADMIN_FAIL2BAN_CLIENT,
            display_time_zone=settings.TIME_ZONE,
            session_cache=settings.JAILADMIN_SESSION_CACHE,
            redis_url=settings.JAILADMIN_REDIS_URL,
            geoip_db=settings.JAILADMIN_GEOIP_DB,
            page_size=settings.JAILADMIN_PAGE_SIZE,
            poll_seconds=settings.JAILADMIN_POLL_SECONDS,
            session_lifetime_seconds=settings.JAILADMIN_SESSION_LIFETIME,
            history_retention_days=settings.JAILADMIN_HISTORY_RETENTION_DAYS,
            web_workers=settings.JAILADMIN_WORKERS,
            ban_min_prefix_v4=settings.JAILADMIN_BAN_MIN_PREFIX_V4,
            ban_min_prefix_v6=settings.JAILADMIN_BAN_MIN_PREFIX_V6,
            host_deadline=settings.JAILADMIN_HOST_DEADLINE,
            host_retry=settings.JAILADMIN_HOST_RETRY,
            var_dir=str(settings.VAR_DIR),
        )


@dataclass(frozen=True)
class Capabilities:
    """What the connected fail2ban supports, probed once per process."""

    version: str
    get_backend: bool
    get_idle: bool
    stats: bool
    status_all: bool


@dataclass
class JailServiceState:
    """The jails service's per-process state: the link to fail2ban and the capability cache."""

    client: HostLink
    server_time_zone: ZoneInfo
    capabilities: Capabilities | None = None
    # Which server the cached capabilities came from: the socket file's identity (a
    # restarted or upgraded fail2ban creates a new socket), known without a round trip.
    capabilities_endpoint: Hashable | None = None
    # Views are synchronous under gunicorn's threads: one probe at a time.
    probe_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    probes_run: int = 0


@dataclass
class HistoryState:
    """The ban history's per-process things: the geo locator and the world map outlines.

    The locator loads its ~100 MB of data on the first lookup, and only the job runner and
    `manage.py history_sync` look anything up (when archiving); web workers read the stored
    country and AS, so they never load it.
    """

    geo: GeoLocator = field(default_factory=GeoLocator)
    world_map_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    world_map_loaded: WorldMap | None = field(default=None, repr=False)
    # The dashboard's and history list's archive figures, valid while the archive's stamp holds.
    figures: FiguresCache = field(default_factory=FiguresCache, repr=False)

    def world_map(self) -> WorldMap:
        """The map outlines, read from disk once per process."""
        if self.world_map_loaded is None:
            with self.world_map_lock:
                if self.world_map_loaded is None:
                    self.world_map_loaded = load_world_map()
        return self.world_map_loaded


@dataclass(frozen=True)
class RuntimeSnapshot:
    """The settings-dependent parts of the state, built together and swapped together.

    Frozen: a snapshot is never changed, only replaced whole (RuntimeState.snapshot).
    The JailServiceState inside keeps its own capability cache, which belongs to that
    snapshot's client alone.
    """

    settings: RuntimeSettings
    jail_service: JailServiceState
    session_cache: SessionCache
    version: int = 0  # the SiteSettings.version it was built from (0: the JAILADMIN_* seeds)
    # The host `jail_service` talks to (jails.hosts): "local" unless a fleet page or command
    # scoped the state to another host (jails.hosts.services.fleet.host_state). Audit
    # records and archived bans take their host from here.
    host: str = "local"


@dataclass
class FleetState:
    """The fleet's per-process part: one JailServiceState (link and capability cache) per
    host other than the local one, built on first use from its Host row and rebuilt when the
    row's connection fields change (jails.hosts.services.fleet)."""

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Host primary key -> (the connection fields it was built from, its service state).
    services: dict[int, tuple[Hashable, JailServiceState]] = field(default_factory=dict)
    # Files the SSH transport needs (keys, known_hosts), private to this process.
    runtime_dir: str = ""
    # Host primary key -> the breaker of a host that failed or missed its deadline: pages do
    # not wait for it again until its cool-down is over (jails.hosts.services.fleet).
    breakers: dict[int, HostBreaker] = field(default_factory=dict)
    # Idle fleet worker threads, each waiting on its own queue for the next host's call
    # (jails.hosts.services.fleet), and the process they belong to (a fork has none).
    idle_workers: list[SimpleQueue[Any]] = field(default_factory=list, repr=False)
    workers_pid: int = 0


@dataclass
class HostBreaker:
    """A host that failed or missed its deadline, as this process last saw it (guarded by
    FleetState.lock). `service` is the link it failed on: a rebuilt link starts afresh."""

    service: JailServiceState
    error: str
    timed_out: bool
    retry_at: float  # time.monotonic() after which a caller may ask the host again
    # A call to the host is still running (the one that missed the deadline, or the one
    # trying again): no other caller starts one, so a hung host never piles up threads.
    busy: bool = False


@dataclass
class RuntimeState:
    """Everything one process keeps between requests."""

    snapshot: RuntimeSnapshot
    history: HistoryState = field(default_factory=HistoryState)
    # The process's memory session store, whichever snapshot is current: a rebuilt snapshot
    # (or a switch away from memory and back) finds the same store.
    memory_sessions: MemorySessions = field(default_factory=MemorySessions, repr=False)
    fleet: FleetState = field(default_factory=FleetState, repr=False)
    # What every full page reuses between requests: URLs, the host rows while their stamp
    # holds, the status bar's alerts for a poll interval (jails.page_cache says the rules).
    pages: PageCache = field(default_factory=PageCache, repr=False)
    # Only the state JailsConfig.ready() builds starts with these set: its settings are the
    # JAILADMIN_* seeds until runtime_load() reads the database (no I/O in ready()).
    load_pending: bool = False
    setup_pending: bool = False  # latched to False once setup is known to be complete
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # writers only
    watcher: Any = field(default=None, repr=False)  # jails.runtime.SettingsWatcher

    # Reads of one part of the current snapshot. Code that uses two parts in one operation
    # reads `snapshot` once instead: two of these reads may straddle a swap.
    @property
    def settings(self) -> RuntimeSettings:
        return self.snapshot.settings

    @property
    def jail_service(self) -> JailServiceState:
        return self.snapshot.jail_service

    @property
    def session_cache(self) -> SessionCache:
        return self.snapshot.session_cache

    @property
    def settings_version(self) -> int:
        return self.snapshot.version

    def snapshot_replace(self, **changes: Any) -> RuntimeSnapshot:
        """Install a copy of the snapshot with `changes` (tests and benchmarks set parts)."""
        with self.lock:
            self.snapshot = replace(self.snapshot, **changes)
            return self.snapshot


def host_config(settings: RuntimeSettings) -> HostConfig:
    """Where fail2ban is and how to run its client, as the settings say (direct mode)."""
    return HostConfig(
        socket=settings.fail2ban_socket,
        timeout=settings.fail2ban_timeout,
        config_dir=settings.fail2ban_config_dir,
        fail2ban_client=tuple(shlex.split(settings.fail2ban_client)),
    )


# What the jail service state is built from: a snapshot rebuild keeps its link (and the probed
# capabilities, and an agent link's open connections) while none of these changed.
JAIL_SERVICE_SETTINGS = (
    "fail2ban_socket",
    "fail2ban_agent",
    "fail2ban_timeout",
    "fail2ban_time_zone",
    "fail2ban_config_dir",
    "fail2ban_client",
)


def jail_service_build(
    settings: RuntimeSettings, *, client: HostLink | None = None, time_zone: str = ""
) -> JailServiceState:
    """The jails service's state: a link, an empty capability cache. No I/O.

    The link the settings describe (the local host), or `client` (another host of the fleet,
    jails.hosts) whose fail2ban reports in `time_zone` (default: the settings' zone).
    """
    if client is None:
        client = link_build(agent=settings.fail2ban_agent, config=host_config(settings))
    return JailServiceState(
        client=client, server_time_zone=ZoneInfo(time_zone or settings.fail2ban_time_zone)
    )


def runtime_snapshot_build(
    settings: RuntimeSettings,
    *,
    memory_sessions: MemorySessions,
    version: int = 0,
    previous: RuntimeSnapshot | None = None,
) -> RuntimeSnapshot:
    """The snapshot for `settings`; parts of `previous` whose inputs did not change are kept
    (a probed capability cache, a session backend's connection pool). Does no I/O."""
    old = previous.settings if previous is not None else None

    def same(*names: str) -> bool:
        return old is not None and all(
            getattr(old, name) == getattr(settings, name) for name in names
        )

    if previous is not None and same(*JAIL_SERVICE_SETTINGS):
        jail_service = previous.jail_service
    else:
        jail_service = jail_service_build(settings)
    if previous is not None and same("session_cache", "redis_url"):
        session_cache = previous.session_cache
    else:
        session_cache = build_session_cache(
            settings.session_cache, settings.redis_url, memory=memory_sessions
        )
    return RuntimeSnapshot(
        settings=settings, jail_service=jail_service, session_cache=session_cache, version=version
    )


def session_cache_build(state: RuntimeState, *, kind: str, redis_url: str = "") -> SessionCache:
    """A session storage of `kind` for this process (memory: the state's own store)."""
    return build_session_cache(kind, redis_url, memory=state.memory_sessions)


def build_runtime_state(settings: RuntimeSettings) -> RuntimeState:
    """Build a fresh state from a settings snapshot. Does no I/O."""
    memory_sessions = MemorySessions()
    return RuntimeState(
        snapshot=runtime_snapshot_build(settings, memory_sessions=memory_sessions),
        history=HistoryState(geo=GeoLocator(mmdb_path=settings.geoip_db or None)),
        memory_sessions=memory_sessions,
    )


def runtime_state() -> RuntimeState:
    """The one accessor views, commands and admin actions use to get the state.

    Only returns it: no I/O. Until runtime_load() has run in this process (jailadmin/wsgi.py,
    RuntimeCommand, run_jobs) it is the seed state JailsConfig.ready() built.
    """
    # The registry, not an import of jails.apps: this module stays below every other.
    state = getattr(django_apps.get_app_config("jails"), "state", None)
    assert isinstance(state, RuntimeState), "JailsConfig.ready() has not run"
    return state
