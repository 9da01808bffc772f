"""Sessions in a swappable cache backend (DESIGN §2).

The backend is a Django cache *object* held in the runtime state (``state.session_cache``),
built from the runtime settings when the process starts and replaced whole when the
settings change (jails.runtime). Request handling only reads it: each request's
SessionStore takes the backend that is current when the request starts.

- ``database``: a DatabaseCache on the ``jailadmin_session_cache`` table (created by a
  migration). All workers share it and sessions survive restarts.
- ``redis``: django-redis. Shared by all workers and hosts; fast; needs a Redis server.
- ``memory``: LocMemCache. Process-local: only valid with a single worker (jails.E010).

When the storage cannot be reached, SessionStore raises SessionStorageUnavailable instead
of quietly starting an empty session (Django's cache store would log everybody out), and
SessionMiddleware turns it into a 503 page.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.cache import KEY_PREFIX
from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.core.cache.backends.base import BaseCache
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

DATABASE = "database"
REDIS = "redis"
MEMORY = "memory"
KINDS = (DATABASE, REDIS, MEMORY)

SESSION_TABLE = "jailadmin_session_cache"
# One LocMemCache store per process: rebuilding the state keeps the process's sessions.
MEMORY_STORE_NAME = "jailadmin-sessions"
# Django's cache backends cull (silently drop) entries beyond MAX_ENTRIES (default 300):
# for sessions that would log people out, so the limit is set far beyond any real use.
MAX_ENTRIES = 1_000_000
REDIS_TIMEOUT_SECONDS = 1.0


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


def build_session_cache(kind: str, redis_url: str = "") -> SessionCache:
    """Build the session storage for `kind`. Does no I/O (connections are made on use)."""
    params: dict[str, Any] = {"TIMEOUT": None, "OPTIONS": {"MAX_ENTRIES": MAX_ENTRIES}}
    if kind == DATABASE:
        from django.core.cache.backends.db import DatabaseCache
        from django.db import OperationalError

        return SessionCache(
            kind=DATABASE,
            location=f"table {SESSION_TABLE}",
            backend=DatabaseCache(SESSION_TABLE, params),
            unavailable_errors=(OperationalError,),
        )
    if kind == REDIS:
        from django_redis.cache import RedisCache
        from django_redis.exceptions import ConnectionInterrupted
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError
        from redis.retry import Retry

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
        from django.core.cache.backends.locmem import LocMemCache

        return SessionCache(
            kind=MEMORY,
            location="this process's memory",
            backend=LocMemCache(MEMORY_STORE_NAME, params),
        )
    raise ValueError(f"unknown session storage {kind!r} (use one of {', '.join(KINDS)})")


class SessionStore(CacheSessionStore):
    """Django's cache session store, on the backend held in the runtime state."""

    def __init__(self, session_key: str | None = None) -> None:
        from jails.apps import runtime_state

        state = runtime_state()
        # Taken once per request: a swap during the request does not split its session
        # between two backends (a save to the new one would fail with UpdateError).
        self._storage: SessionCache = state.session_cache
        self._cache = self._storage.backend
        self._lifetime = state.settings.session_lifetime_seconds
        SessionBase.__init__(self, session_key)

    @property
    def storage(self) -> SessionCache:
        return self._storage

    def get_session_cookie_age(self) -> int:
        return self._lifetime

    def load(self) -> dict[str, Any]:
        try:
            with self._storage.translate_errors():
                data = self._cache.get(self.cache_key)
        except SessionStorageUnavailable:
            raise
        except Exception:  # as Django does: an unusable key means a new, empty session
            data = None
        if data is not None:
            return data
        self._session_key = None
        return {}

    def exists(self, session_key: str) -> bool:
        with self._storage.translate_errors():
            return super().exists(session_key)

    def save(self, must_create: bool = False) -> None:
        with self._storage.translate_errors():
            super().save(must_create=must_create)

    def delete(self, session_key: str | None = None) -> None:
        with self._storage.translate_errors():
            super().delete(session_key)

    @classmethod
    def clear_expired(cls) -> None:
        """`manage.py clearsessions`: Redis and memory expire entries themselves; the
        database table keeps an abandoned session's row until it is read, so delete them."""
        from django.utils import timezone

        from jails.apps import runtime_state
        from jails.models import SessionCacheEntry

        if runtime_state().session_cache.kind == DATABASE:
            SessionCacheEntry.objects.filter(expires__lt=timezone.now()).delete()


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
            # The table and the LocMem store are ours alone and hold nothing but sessions.
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


def session_unavailable_response(
    request: HttpRequest, error: SessionStorageUnavailable
) -> HttpResponse:
    """The 503 page: rendered without the request (no context processor touches a session)."""
    logger.warning("session storage unavailable for %s: %s", request.path, error)
    body = render_to_string("jails/session_unavailable.html", {"kind": error.kind})
    response = HttpResponse(body, status=503)
    response["Retry-After"] = "5"
    response["Cache-Control"] = "no-store"
    return response


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's SessionMiddleware with storage failures as a 503 page, never a 500.

    The session is read here (not lazily deep inside another middleware or a template),
    so an unreachable storage is noticed where it can still be answered cleanly; saving
    in process_response and writes from views (login, logout) are caught as well.
    """

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        super().process_request(request)
        if request.session.session_key is None:
            return None
        try:
            request.session.get("_auth_user_id")  # any read loads the whole session
        except SessionStorageUnavailable as exc:
            return session_unavailable_response(request, exc)
        return None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        try:
            return super().process_response(request, response)
        except SessionStorageUnavailable as exc:
            return session_unavailable_response(request, exc)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, SessionStorageUnavailable):
            return session_unavailable_response(request, exception)
        return None
