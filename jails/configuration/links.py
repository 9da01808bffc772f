"""Links between the configuration pages that stay on the host a page is about.

The pages are served twice (jails/urls.py): under `/config/` for the local host, as always,
and under `/hosts/<host>/config/` (namespace `jails:host-configuration`) for any host. A
page reached one way links the same way, so every link and form on it stays on its host.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.http import urlencode


def config_reverse(
    name: str, host: str | None, *args: Any, query: dict[str, Any] | None = None
) -> str:
    """The URL of configuration page `name` on `host` (None: the local host's `/config/`)."""
    if host is None:
        url = reverse(f"jails:configuration:{name}", args=args)
    else:
        # The host is the first captured parameter of every route under hosts/<host>/config/.
        url = reverse(f"jails:host-configuration:{name}", args=(host, *args))
    return url + "?" + urlencode(query) if query else url
