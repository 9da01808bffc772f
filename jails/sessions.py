"""Sessions in a swappable cache backend (DESIGN §2): Django's SESSION_ENGINE.

The backend is a Django cache *object* held in the runtime state's snapshot
(``state.snapshot.session_cache``, built by jails.session_storage), chosen from the runtime
settings when the process starts and replaced whole when the settings change
(jails.runtime). Request handling only reads it: each request's SessionStore takes the
backend that is current when the request starts.

When the storage cannot be reached, SessionStore raises SessionStorageUnavailable instead
of quietly starting an empty session (Django's cache store would log everybody out), and
SessionMiddleware turns it into a 503 page.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.contrib.sessions.backends.cache import SessionStore as CacheSessionStore
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

# The storage names are part of this module's interface (views, forms and checks import
# them from here); they live in jails.session_storage so that jails.state can use them.
from jails.session_storage import (
    DATABASE,
    KINDS,
    MEMORY,
    REDIS,
    SESSION_TABLE,
    MemorySessions,
    SessionCache,
    SessionStorageUnavailable,
    build_session_cache,
    mask_url_password,
    session_copy,
    session_storage_clear,
    session_storage_switch,
)
from jails.state import runtime_state

__all__ = [
    "DATABASE",
    "KINDS",
    "MEMORY",
    "REDIS",
    "SESSION_TABLE",
    "MemorySessions",
    "SessionCache",
    "SessionMiddleware",
    "SessionStorageUnavailable",
    "SessionStore",
    "build_session_cache",
    "mask_url_password",
    "session_copy",
    "session_storage_clear",
    "session_storage_switch",
    "session_unavailable_response",
]

logger = logging.getLogger(__name__)


class SessionStore(CacheSessionStore):
    """Django's cache session store, on the backend held in the runtime state."""

    def __init__(self, session_key: str | None = None) -> None:
        # One snapshot, read once per request: a swap during the request does not split its
        # session between two backends (a save to the new one would fail with UpdateError),
        # and the lifetime comes from the same settings as the backend.
        snap = runtime_state().snapshot
        self._storage: SessionCache = snap.session_cache
        self._cache = self._storage.backend
        self._lifetime = snap.settings.session_lifetime_seconds
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
        database table keeps an abandoned session's row until it is read, so delete them.

        Whatever the storage in use: the table holds nothing but sessions, an expired row is
        garbage either way, and so this needs no runtime state (Django's clearsessions is
        not a RuntimeCommand and would only see the JAILADMIN_* seeds).
        """
        from django.utils import timezone

        from jails.models import SessionCacheEntry

        SessionCacheEntry.objects.filter(expires__lt=timezone.now()).delete()


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

    # The stubs type Django's hook as returning None, but a process_request hook may answer
    # the request itself (MiddlewareMixin.__call__ returns its response): that is the point.
    def process_request(self, request: HttpRequest) -> HttpResponse | None:  # type: ignore[override]
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
