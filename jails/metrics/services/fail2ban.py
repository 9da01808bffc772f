"""fail2ban's counters for a scrape: one overview round, shared by every worker for a while.

Prometheus (or several of them, or an impatient operator's curl) may scrape any worker at
any moment, and fail2ban is single-threaded: every scrape that asked it directly would
delay the site's own requests. So the overview the /jails/ page uses is fetched once per
JAILADMIN_METRICS_CACHE_SECONDS and kept in the site's shared cache (the session storage:
the database table or Redis every worker uses; the Django default cache is per process), and
a lock in that cache makes concurrent scrapes wait for the one round in progress instead
of each starting their own.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.cache.backends.base import BaseCache

from jails.fail2ban import Fail2banError
from jails.services import jails as jail_service
from jails.session_storage import SessionStorageUnavailable
from jails.state import RuntimeState

logger = logging.getLogger(__name__)

CACHE_KEY = "jailadmin:metrics:fail2ban"
LOCK_KEY = "jailadmin:metrics:fail2ban:lock"
POLL_SECONDS = 0.05  # how often a waiting scrape looks for the round in progress


@dataclass(frozen=True)
class JailSample:
    """One jail's counters, as `status J` reports them."""

    name: str
    currently_failed: int
    total_failed: int
    currently_banned: int
    total_banned: int


@dataclass(frozen=True)
class Fail2banSample:
    """One overview round's result: fail2ban up (version, jails) or down."""

    up: bool
    version: str
    jails: tuple[JailSample, ...]
    fetched_at: float  # Unix time of the round

    def to_cache(self) -> dict[str, Any]:
        """Plain data: what another worker (perhaps running newer code) reads back."""
        return {
            "up": self.up,
            "version": self.version,
            "fetched_at": self.fetched_at,
            "jails": [
                [j.name, j.currently_failed, j.total_failed, j.currently_banned, j.total_banned]
                for j in self.jails
            ],
        }

    @classmethod
    def from_cache(cls, value: object) -> Fail2banSample | None:
        """The sample another worker stored; None for anything else (absent, older shape)."""
        if not isinstance(value, Mapping):
            return None
        try:
            return cls(
                up=bool(value["up"]),
                version=str(value["version"]),
                fetched_at=float(value["fetched_at"]),
                jails=tuple(
                    JailSample(str(name), int(cf), int(tf), int(cb), int(tb))
                    for name, cf, tf, cb, tb in value["jails"]
                ),
            )
        except (KeyError, TypeError, ValueError):
            return None


def fail2ban_sample_fetch(
    state: RuntimeState, *, clock: Callable[[], float] = time.time
) -> Fail2banSample:
    """One overview round now (the /jails/ page's), or a sample saying fail2ban is down."""
    try:
        overview = jail_service.overview_get(state)
    except Fail2banError as exc:
        logger.info("metrics: fail2ban did not answer: %s", type(exc).__name__)
        return Fail2banSample(up=False, version="", jails=(), fetched_at=clock())
    return Fail2banSample(
        up=True,
        version=overview.version,
        fetched_at=clock(),
        jails=tuple(
            JailSample(
                name=j.name,
                currently_failed=j.currently_failed,
                total_failed=j.total_failed,
                currently_banned=j.currently_banned,
                total_banned=j.total_banned,
            )
            for j in overview.jails
        ),
    )


def fail2ban_sample_get(
    state: RuntimeState,
    *,
    max_age: int,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Fail2banSample:
    """fail2ban's counters at most `max_age` seconds old: from the shared cache, or from one
    round made by whichever scrape takes the lock while the others wait for it."""
    session_cache = state.session_cache
    cache = session_cache.backend
    try:
        with session_cache.translate_errors():
            return _cached_or_fetched(state, cache, max_age=max_age, clock=clock, sleep=sleep)
    except SessionStorageUnavailable as exc:
        # The shared cache is down (Redis stopped...): the scrape still answers, uncached.
        logger.warning("metrics: shared cache unavailable, asking fail2ban directly: %s", exc)
        return fail2ban_sample_fetch(state, clock=clock)


def _cached_or_fetched(
    state: RuntimeState,
    cache: BaseCache,
    *,
    max_age: int,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> Fail2banSample:
    cached = Fail2banSample.from_cache(cache.get(CACHE_KEY))
    if cached is not None:
        return cached
    # Held at most as long as a round can take (each request may wait out the timeout);
    # a worker killed while holding it only delays the others until it expires.
    lock_seconds = math.ceil(3 * state.settings.fail2ban_timeout) + 1
    owner = uuid.uuid4().hex
    # Counted, not timed against a clock: each wait is one POLL_SECONDS sleep, so waiting
    # ends after about as long as the lock can be held.
    for _ in range(math.ceil(lock_seconds / POLL_SECONDS) + 1):
        if cache.add(LOCK_KEY, owner, timeout=lock_seconds):
            try:
                # Another scrape may have stored a round between our read and the lock.
                cached = Fail2banSample.from_cache(cache.get(CACHE_KEY))
                if cached is not None:
                    return cached
                sample = fail2ban_sample_fetch(state, clock=clock)
                cache.set(CACHE_KEY, sample.to_cache(), timeout=max_age)
                return sample
            finally:
                if cache.get(LOCK_KEY) == owner:
                    cache.delete(LOCK_KEY)
        sleep(POLL_SECONDS)
        cached = Fail2banSample.from_cache(cache.get(CACHE_KEY))
        if cached is not None:
            return cached
    # The holder never stored a round (stuck, or its lock outlived it): answer this scrape.
    return fail2ban_sample_fetch(state, clock=clock)
