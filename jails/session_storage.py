"""The session storages (DESIGN §2): the backend objects, built without I/O, and their errors.

Kept apart from jails.sessions (Django's SESSION_ENGINE: the store and the middleware, which
read the runtime state) so that jails.state can hold a SessionCache without importing the
module that reads the state: the import graph stays a tree (see README, "How it is built").

- ``database``: a DatabaseCache on the ``jailadmin_session_cache`` table (created by a
  migration). All workers share it and sessions survive restarts.
- ``redis``: django-redis. Shared by all workers and hosts; fast; needs a Redis server.
- ``memory``: a LocMemCache whose dictionaries belong to the runtime state (MemorySessions),
  not to Django's module-level registry. Process-local: only valid with a single worker
  (jails.E010).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.cache import KEY_PREFIX
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache

logger = logging.getLogger(__name__)

DATABASE = "database"
REDIS = "redis"
MEMORY = "memory"
KINDS = (DATABASE, REDIS, MEMORY)

SESSION_TABLE = "jailadmin_session_cache"
# Django's cache backends cull (silently drop) entries beyond MAX_ENTRIES (default 300):
# for sessions that would log people out, so the limit is set far beyond any real use.
MAX_ENTRIES = 1_000_000
REDIS_TIMEOUT_SECONDS = 1.0


def _params() -> dict[str, Any]:
    return {"TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": MAX_ENTRIES}}


class MemorySessions(LocMemCache):
    """LocMemCache with its own dictionaries and lock instead of Django's module registry.

    Django's LocMemCache keeps every store in module-level dicts keyed by name, so two
    runtime states (two tests, or a state rebuilt in one process) would share sessions.
    This instance owns its store; the RuntimeState holds the one instance its process uses,
    so a switch away from and back to memory, or a rebuilt snapshot, finds the same store.
    All the cache methods are LocMemCache's own, working on these attributes.
    """

    def __init__(self) -> None:
        BaseCache.__init__(self, _params())
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._expire_info: dict[str, float | None] = {}
        self._lock = threading.Lock()


class SessionStorageUnavailable(Exception):
    """The session storage did not answer (Redis stopped, database locked...)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"session storage ({kind}) unavailable: {reason}")
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class SessionCache:
    """The session storage in use: which kind, where, the backend object, its failures."""

    kind: str
    location: str  # shown to administrators; a Redis password is masked
    backend: BaseCache
    unavailable_errors: tuple[type[BaseException], ...] = ()

    @contextlib.contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Turn the backend's connection errors into SessionStorageUnavailable."""
        try:
            yield
        except self.unavailable_errors as exc:
            raise SessionStorageUnavailable(self.kind, str(exc) or type(exc).__name__) from exc

    def check(self) -> None:
        """One real round trip to the storage; raises SessionStorageUnavailable."""
        with self.translate_errors():
            self.backend.get("jailadmin:healthz")


def mask_url_password(url: str) -> str:
    """redis://:secret@host/0 → redis://:***@host/0 (for audit records and pages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:***"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def build_session_cache(
    kind: str, redis_url: str = "", *, memory: MemorySessions | None = None
) -> SessionCache:
    """Build the session storage for `kind`. Does no I/O (connections are made on use).

    `memory` is the process's memory store (RuntimeState.memory_sessions; use
    jails.state.session_cache_build): required for ``memory``, because a store of its own
    would silently hold sessions no other part of the process sees.
    """
    if kind == DATABASE:
        from django.core.cache.backends.db import DatabaseCache
        from django.db import OperationalError

        return SessionCache(
            kind=DATABASE,
            location=f"table {SESSION_TABLE}",
            backend=DatabaseCache(SESSION_TABLE, _params()),
            unavailable_errors=(OperationalError,),
        )
    if kind == REDIS:
        from django_redis.cache import RedisCache
        from django_redis.exceptions import ConnectionInterrupted
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError
        from redis.retry import Retry

        params = _params()
        params["OPTIONS"] = {
            # Short timeouts: a stopped Redis must give a quick 503 page, not a hung worker.
            "SOCKET_CONNECT_TIMEOUT": REDIS_TIMEOUT_SECONDS,
            "SOCKET_TIMEOUT": REDIS_TIMEOUT_SECONDS,
            # One immediate retry on a fresh connection: after a Redis restart the pooled
            # connections are dead, and the first command on each must not fail a page.
            "CONNECTION_POOL_KWARGS": {"retry": Retry(NoBackoff(), 1)},
            "IGNORE_EXCEPTIONS": False,
        }
        return SessionCache(
            kind=REDIS,
            location=mask_url_password(redis_url),
            backend=RedisCache(redis_url, params),
            unavailable_errors=(RedisError, ConnectionInterrupted, OSError, ValueError),
        )
    if kind == MEMORY:
        if memory is None:
            raise ValueError("the memory session storage is the runtime state's own: pass it")
        return SessionCache(kind=MEMORY, location="this process's memory", backend=memory)
    raise ValueError(f"unknown session storage {kind!r} (use one of {', '.join(KINDS)})")


def session_copy(session: SessionBase, target: SessionCache) -> bool:
    """Copy one session (same key, same data) into another storage; False if it has none.

    Used when the storage is switched: the administrator who switched stays logged in.
    """
    key = session.session_key
    if not key:
        return False
    with target.translate_errors():
        target.backend.set(KEY_PREFIX + key, dict(session.items()), session.get_expiry_age())
    return True


def session_storage_clear(storage: SessionCache) -> None:
    """Delete every session held in `storage`, and nothing else kept there."""
    with storage.translate_errors():
        if storage.kind == REDIS:
            # The Redis database may be shared with other programs: only our keys go.
            storage.backend.delete_pattern(KEY_PREFIX + "*")  # type: ignore[attr-defined]
        else:
            # The table and the memory store are ours alone and hold nothing but sessions.
            storage.backend.clear()


def session_storage_switch(session: SessionBase, *, old: SessionCache, new: SessionCache) -> bool:
    """Switch the session storage: every session is dropped but `session`, copied to `new`.

    Sessions left in a storage must not come back to life when the site switches back
    to it later (a stolen or logged-out session would work again), so both storages are
    emptied. `new` is emptied too because other workers keep writing to the old storage
    until their watcher swaps (about a second), and an earlier switch away from `new` may
    have left sessions there. The copy comes last, so it survives even when `old` and
    `new` turn out to be the same place (two URLs for one Redis database).
    Emptying `old` is best effort (a stopped Redis is a reason to switch away from it);
    emptying `new` or copying into it raises SessionStorageUnavailable.
    """
    try:
        session_storage_clear(old)
    except SessionStorageUnavailable as exc:
        logger.warning("sessions left in the old storage (cleared when it is next used): %s", exc)
    session_storage_clear(new)
    return session_copy(session, new)
