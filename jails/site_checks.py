"""System checks for the session storage (`manage.py check`)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from jails.sessions import MEMORY, REDIS, SessionStorageUnavailable


@register(Tags.compatibility)
def session_storage_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """jails.E010 memory with several workers; E011 Redis without URL; W012 unreachable."""
    from jails.apps import runtime_state

    state = runtime_state()
    settings = state.settings
    if settings.session_cache == MEMORY and settings.web_workers > 1:
        return [
            Error(
                f"session storage is process memory, but JAILADMIN_WORKERS is "
                f"{settings.web_workers}: every worker would have its own sessions",
                hint="Use the database or Redis session storage (on /settings/ or "
                "JAILADMIN_SESSION_CACHE before setup), or set JAILADMIN_WORKERS=1.",
                id="jails.E010",
            )
        ]
    if settings.session_cache == REDIS and not settings.redis_url:
        return [
            Error(
                "session storage is Redis, but no Redis URL is set",
                hint="Set JAILADMIN_REDIS_URL (before setup) or the Redis URL on /settings/.",
                id="jails.E011",
            )
        ]
    if settings.session_cache == REDIS:
        try:
            state.session_cache.check()
        except SessionStorageUnavailable as exc:
            return [
                Warning(
                    f"the Redis session storage at {state.session_cache.location} does not "
                    f"answer: {exc.reason}",
                    hint="Pages answer 503 until Redis is reachable again.",
                    id="jails.W012",
                )
            ]
    return []
