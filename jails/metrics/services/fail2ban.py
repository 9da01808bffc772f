"""fail2ban's counters for a scrape: one overview round per host, shared by every worker
for a while.

Prometheus (or several of them, or an impatient operator's curl) may scrape any worker at
any moment, and fail2ban is single-threaded: every scrape that asked it directly would
delay the site's own requests. So the overview the /jails/ page uses is fetched once per
JAILADMIN_METRICS_CACHE_SECONDS and kept in the site's shared cache (the session storage:
the database table or Redis every worker uses; the Django default cache is per process), and
a lock in that cache makes concurrent scrapes wait for the one round in progress instead
of each starting their own.

With several hosts (jails.hosts) a round asks them all at once, each within the per-host
deadline (JAILADMIN_HOST_DEADLINE): a dead or hung host is sampled as down (its
`jailadmin_fail2ban_up` is 0) and never delays the others' counters.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache.backends.base import BaseCache

from jails.hosts.models import LOCAL_HOST
from jails.hosts.services import fleet
from jails.services import jails as jail_service
from jails.services.jails import Overview
from jails.session_storage import SessionStorageUnavailable
from jails.state import RuntimeState

logger = logging.getLogger(__name__)

# The value is a list of per-host samples (a new key: a worker still running the one-host
# code reads its own key and never meets this shape).
CACHE_KEY = "jailadmin:metrics:fail2ban:hosts"
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
    """One host's part of a round: its fail2ban up (version, jails) or down."""

    up: bool
    version: str
    jails: tuple[JailSample, ...]
    fetched_at: float  # Unix time of the round
    host: str = LOCAL_HOST

    def to_cache(self) -> dict[str, Any]:
        """Plain data: what another worker (perhaps running newer code) reads back."""
        return {
            "host": self.host,
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
                host=str(value["host"]),
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


def samples_to_cache(samples: Sequence[Fail2banSample]) -> list[dict[str, Any]]:
    """A round (every host's sample) as plain data for the shared cache."""
    return [sample.to_cache() for sample in samples]


def samples_from_cache(value: object) -> tuple[Fail2banSample, ...] | None:
    """The round another worker stored; None if absent or not readable as a whole."""
    if not isinstance(value, list):
        return None
    samples = tuple(Fail2banSample.from_cache(item) for item in value)
    if any(sample is None for sample in samples):
        return None
    return tuple(sample for sample in samples if sample is not None)


def _sample(host: str, overview: Overview | None, *, fetched_at: float) -> Fail2banSample:
    if overview is None:
        return Fail2banSample(up=False, version="", jails=(), fetched_at=fetched_at, host=host)
    return Fail2banSample(
        up=True,
        version=overview.version,
        fetched_at=fetched_at,
        host=host,
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


def fail2ban_samples_fetch(
    state: RuntimeState, *, clock: Callable[[], float] = time.time
) -> tuple[Fail2banSample, ...]:
    """One overview round now (the /jails/ page's) on every enabled host at once, each within
    the per-host deadline: a host that does not answer is sampled as down."""
    fleet.local_host()  # the local host's row exists (a flushed or hand-edited table)
    scopes = fleet.scopes_list(state)
    outcomes = fleet.fleet_map(
        scopes, jail_service.overview_get, deadline=state.settings.host_deadline
    )
    fetched_at = clock()
    samples = []
    for outcome in outcomes:
        if not outcome.ok:
            logger.info("metrics: host %s did not answer: %s", outcome.name, outcome.error)
        samples.append(_sample(outcome.name, outcome.value, fetched_at=fetched_at))
    return tuple(samples)


def fail2ban_samples_get(
    state: RuntimeState,
    *,
    max_age: int,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Fail2banSample, ...]:
    """Every host's counters at most `max_age` seconds old: from the shared cache, or from one
    round made by whichever scrape takes the lock while the others wait for it."""
    session_cache = state.session_cache
    cache = session_cache.backend
    try:
        with session_cache.translate_errors():
            return _cached_or_fetched(state, cache, max_age=max_age, clock=clock, sleep=sleep)
    except SessionStorageUnavailable as exc:
        # The shared cache is down (Redis stopped...): the scrape still answers, uncached.
        logger.warning("metrics: shared cache unavailable, asking fail2ban directly: %s", exc)
        return fail2ban_samples_fetch(state, clock=clock)


def _cached_or_fetched(
    state: RuntimeState,
    cache: BaseCache,
    *,
    max_age: int,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> tuple[Fail2banSample, ...]:
    cached = samples_from_cache(cache.get(CACHE_KEY))
    if cached is not None:
        return cached
    # Held at most as long as a round can take (one host's requests may each wait out the
    # timeout; several hosts are asked at once, each cut off at the deadline); a worker
    # killed while holding it only delays the others until it expires.
    settings = state.settings
    lock_seconds = math.ceil(max(3 * settings.fail2ban_timeout, settings.host_deadline)) + 1
    owner = uuid.uuid4().hex
    # Counted, not timed against a clock: each wait is one POLL_SECONDS sleep, so waiting
    # ends after about as long as the lock can be held.
    for _ in range(math.ceil(lock_seconds / POLL_SECONDS) + 1):
        if cache.add(LOCK_KEY, owner, timeout=lock_seconds):
            try:
                # Another scrape may have stored a round between our read and the lock.
                cached = samples_from_cache(cache.get(CACHE_KEY))
                if cached is not None:
                    return cached
                samples = fail2ban_samples_fetch(state, clock=clock)
                cache.set(CACHE_KEY, samples_to_cache(samples), timeout=max_age)
                return samples
            finally:
                if cache.get(LOCK_KEY) == owner:
                    cache.delete(LOCK_KEY)
        sleep(POLL_SECONDS)
        cached = samples_from_cache(cache.get(CACHE_KEY))
        if cached is not None:
            return cached
    # The holder never stored a round (stuck, or its lock outlived it): answer this scrape.
    return fail2ban_samples_fetch(state, clock=clock)
