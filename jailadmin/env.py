"""Reading JAILADMIN_* environment variables; a bad value fails loudly at startup."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str, environ: Mapping[str, str] = os.environ) -> str:
    """A string variable, or the default when unset."""
    return environ.get(name, default)


def env_bool(name: str, default: bool, environ: Mapping[str, str] = os.environ) -> bool:
    """A boolean variable: 1/true/yes/on or 0/false/no/off."""
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_list(name: str, default: list[str], environ: Mapping[str, str] = os.environ) -> list[str]:
    """A comma-separated list variable."""
    raw = environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(
    name: str, default: list[str], environ: Mapping[str, str] = os.environ
) -> list[str]:
    """A comma-separated list of IP addresses or networks, each checked."""
    values = env_list(name, default, environ)
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {value!r} is not an IP address or network"
            ) from None
    return values


def env_float(
    name: str, default: float, *, minimum: float, environ: Mapping[str, str] = os.environ
) -> float:
    """A number variable that must be at least `minimum`."""
    raw = environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {raw!r}")
    return value


def env_int(
    name: str,
    default: int,
    *,
    minimum: int,
    maximum: int | None = None,
    environ: Mapping[str, str] = os.environ,
) -> int:
    """A whole-number variable that must be at least `minimum` (and at most `maximum`)."""
    raw = environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {raw!r}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, not {raw!r}")
    return value


def env_choice(
    name: str, default: str, choices: tuple[str, ...], environ: Mapping[str, str] = os.environ
) -> str:
    """A variable that must be one of `choices`."""
    value = environ.get(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def host_time_zone(environ: Mapping[str, str] = os.environ) -> str:
    """The host's own time zone name (fail2ban reports ban times in it, without a zone).

    Read before Django sets TZ for itself, from TZ, /etc/timezone or /etc/localtime.
    """
    if environ.get("TZ"):
        return environ["TZ"].lstrip(":")
    try:
        with open("/etc/timezone") as handle:
            name = handle.read().strip()
            if name:
                return name
    except OSError:
        pass
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        return "UTC"
    marker = "/zoneinfo/"
    if marker in target:
        return target.split(marker, 1)[1]
    return "UTC"


# A URL path prefix is put into every link, redirect and cookie path, so only plain path
# characters are accepted: nothing that would need quoting or could end the path.
_URL_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


def env_url_prefix(name: str, environ: Mapping[str, str] = os.environ) -> str:
    """A URL path prefix such as `/fail2ban` ("" when unset); the trailing slash is dropped."""
    raw = environ.get(name, "").strip()
    value = raw.rstrip("/")
    if not value:
        return ""
    segments = value.split("/")
    if segments[0] != "" or not all(
        _URL_PREFIX_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments[1:]
    ):
        raise ImproperlyConfigured(
            f"{name} must be a path such as /fail2ban (letters, digits, . _ ~ -), not {raw!r}"
        )
    return value
