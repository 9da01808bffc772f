"""The settings' Redis check against a real private redis-server."""

import pytest

from jails.services.settings import SettingsInvalid, redis_url_check


def test_redis_check_passes_on_a_working_server(private_redis):
    redis_url_check(url=private_redis.url)


def test_redis_check_accepts_a_url_that_asks_for_decoded_replies(private_redis):
    # The client then answers str, not bytes: the check compared by calling .decode() on it
    # and failed with an AttributeError (a 500 on the settings page) instead of passing.
    redis_url_check(url=f"{private_redis.url}?decode_responses=true")


def test_redis_check_reports_an_unreachable_server(private_redis):
    private_redis.stop()
    try:
        with pytest.raises(SettingsInvalid, match="Could not reach Redis"):
            redis_url_check(url=private_redis.url, timeout=0.5)
    finally:
        private_redis.start()
