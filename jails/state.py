"""The explicit per-process state: built once by JailsConfig.ready(), passed down to services.

No module in the project keeps mutable state at module level; everything a process
remembers between requests lives in one RuntimeState, so tests can build a fresh one
per test and nothing leaks between them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from jails.charts import WorldMap, load_world_map
from jails.fail2ban import Fail2banClient
from jails.geo import GeoLocator
from jails.sessions import SessionCache, build_session_cache


@dataclass(frozen=True)
class RuntimeSettings:
    """The settings a RuntimeState was built from (a snapshot, never mutated)."""

    fail2ban_socket: str
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

    @classmethod
    def from_django_settings(cls, settings: Any) -> RuntimeSettings:
        """Seed values from the JAILADMIN_* settings (read only here and in apps.py)."""
        return cls(
            fail2ban_socket=settings.JAILADMIN_FAIL2BAN_SOCKET,
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
    """The jails service's per-process state: the client and the capability cache."""

    client: Fail2banClient
    server_time_zone: ZoneInfo
    capabilities: Capabilities | None = None
    # Which server the cached capabilities came from: the socket file's identity (a
    # restarted or upgraded fail2ban creates a new socket), read without a round trip.
    capabilities_endpoint: tuple[int, int, int] | None = None
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

    def world_map(self) -> WorldMap:
        """The map outlines, read from disk once per process."""
        if self.world_map_loaded is None:
            with self.world_map_lock:
                if self.world_map_loaded is None:
                    self.world_map_loaded = load_world_map()
        return self.world_map_loaded


@dataclass
class RuntimeState:
    """Everything one process keeps between requests."""

    settings: RuntimeSettings
    jail_service: JailServiceState
    history: HistoryState = field(default_factory=HistoryState)
    # Sessions and runtime settings (jails.sessions, jails.runtime). The session cache is
    # built from `settings` when not given, and later only replaced whole (never mutated)
    # by jails.runtime when the stored settings change; requests just read it.
    session_cache: SessionCache = field(default=None)  # type: ignore[assignment]
    settings_version: int = 0  # SiteSettings.version these settings come from
    # Only the state JailsConfig.ready() builds starts with these set: its settings are the
    # JAILADMIN_* seeds until jails.runtime reads the database (no I/O in ready()).
    load_pending: bool = False
    setup_pending: bool = False  # latched to False once setup is known to be complete
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    watcher: Any = field(default=None, repr=False)  # jails.runtime.SettingsWatcher

    def __post_init__(self) -> None:
        if self.session_cache is None:
            self.session_cache = build_session_cache(
                self.settings.session_cache, self.settings.redis_url
            )


def build_runtime_state(settings: RuntimeSettings) -> RuntimeState:
    """Build a fresh state from a settings snapshot. Does no I/O."""
    client = Fail2banClient(settings.fail2ban_socket, timeout=settings.fail2ban_timeout)
    return RuntimeState(
        settings=settings,
        jail_service=JailServiceState(
            client=client, server_time_zone=ZoneInfo(settings.fail2ban_time_zone)
        ),
        history=HistoryState(geo=GeoLocator(mmdb_path=settings.geoip_db or None)),
    )
