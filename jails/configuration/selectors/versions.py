"""The versions the site keeps of each configuration file."""

from __future__ import annotations

from jails.configuration.models import ConfigVersion

MAX_LISTED = 500


def versions_for(*, host: str, path: str) -> list[ConfigVersion]:
    """One host's file's versions, newest first."""
    return list(ConfigVersion.objects.filter(host=host, path=path)[:MAX_LISTED])


def version_get(*, host: str, pk: int) -> ConfigVersion | None:
    """One version of one of `host`'s files; None if there is none (or it is another host's)."""
    return ConfigVersion.objects.filter(host=host, pk=pk).first()


def version_pair(*, host: str, a: int, b: int) -> tuple[ConfigVersion, ConfigVersion] | None:
    """Two versions of the same file of `host`, older first; None unless both exist and match."""
    found = {v.pk: v for v in ConfigVersion.objects.filter(host=host, pk__in=(a, b))}
    if a not in found or b not in found or found[a].path != found[b].path:
        return None
    first, second = sorted((found[a], found[b]), key=lambda v: (v.created_at, v.pk))
    return first, second
