"""The versions the site keeps of each configuration file."""

from __future__ import annotations

from jails.configuration.models import ConfigVersion

MAX_LISTED = 500


def versions_for(*, path: str) -> list[ConfigVersion]:
    """One file's versions, newest first."""
    return list(ConfigVersion.objects.filter(path=path)[:MAX_LISTED])


def version_pair(*, a: int, b: int) -> tuple[ConfigVersion, ConfigVersion] | None:
    """Two versions of the same file, older first; None unless both exist and match."""
    found = {v.pk: v for v in ConfigVersion.objects.filter(pk__in=(a, b))}
    if a not in found or b not in found or found[a].path != found[b].path:
        return None
    first, second = sorted((found[a], found[b]), key=lambda v: (v.created_at, v.pk))
    return first, second
