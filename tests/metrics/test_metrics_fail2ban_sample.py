"""The shared fail2ban sample: a waiting scrape reads the round another one stored, a stuck
lock does not stop scrapes forever, and a scrape still answers when the shared cache is down."""

from __future__ import annotations

import pytest

from jails.metrics.services.fail2ban import (
    CACHE_KEY,
    LOCK_KEY,
    Fail2banSample,
    JailSample,
    fail2ban_samples_get,
    samples_from_cache,
    samples_to_cache,
)
from jails.state import session_cache_build
from tests.conftest import point_state_at

pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]

OTHER_WORKERS_ROUND = (
    Fail2banSample(
        up=True,
        version="stored-by-another-worker",
        jails=(JailSample("sshd", 1, 2, 3, 4),),
        fetched_at=1.0,
    ),
)


def test_sample_waits_for_the_round_in_progress_instead_of_asking(runtime):
    cache = runtime.session_cache.backend
    assert cache.add(LOCK_KEY, "another-worker", timeout=300)  # a round is in progress
    # fail2ban unreachable: if this scrape asked it, the sample would say "down".
    state = point_state_at("/nonexistent/jailadmin-metrics.sock", timeout=0.5)
    waits = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:  # the other worker's round ends while this one waits
            cache.set(CACHE_KEY, samples_to_cache(OTHER_WORKERS_ROUND), timeout=60)

    samples = fail2ban_samples_get(state, max_age=60, sleep=sleep)

    assert samples == OTHER_WORKERS_ROUND
    assert len(waits) == 3


def test_sample_answers_itself_when_the_lock_is_never_released(runtime, f2b):
    cache = runtime.session_cache.backend
    assert cache.add(LOCK_KEY, "a-stuck-worker", timeout=300)
    waits = []

    [sample] = fail2ban_samples_get(runtime, max_age=60, sleep=waits.append)

    assert sample.up and sample.host == "local"
    assert {j.name for j in sample.jails} == {"sshd", "nginx-http-auth", "postfix"}
    # It waited about as long as a lock may be held (3 × the fail2ban timeout, plus 1 s).
    assert sum(waits) >= 3 * runtime.settings.fail2ban_timeout
    assert cache.get(LOCK_KEY) == "a-stuck-worker"  # never removes a lock it does not own


def test_sample_releases_its_lock_and_stores_the_round(runtime, f2b):
    cache = runtime.session_cache.backend
    samples = fail2ban_samples_get(runtime, max_age=60)
    assert cache.get(LOCK_KEY) is None
    assert samples_from_cache(cache.get(CACHE_KEY)) == samples


def test_sample_answers_uncached_when_the_shared_cache_is_down(runtime, f2b):
    # Redis on a port nothing listens on: every cache call fails.
    dead = session_cache_build(runtime, kind="redis", redis_url="redis://127.0.0.1:9/0")
    runtime.snapshot_replace(session_cache=dead)
    f2b.client().send("set", "postfix", "banip", "203.0.113.88")

    [sample] = fail2ban_samples_get(runtime, max_age=60)

    assert sample.up
    postfix = next(j for j in sample.jails if j.name == "postfix")
    assert postfix.currently_banned == 1


@pytest.mark.parametrize(
    "stored",
    [None, "garbage", {"up": True}, {"up": 1, "version": "x", "fetched_at": "t", "jails": []}],
)
def test_sample_from_cache_ignores_what_it_cannot_read(stored):
    assert Fail2banSample.from_cache(stored) is None
    assert samples_from_cache(stored) is None
    assert samples_from_cache([samples_to_cache(OTHER_WORKERS_ROUND)[0], stored]) is None
