"""JAILADMIN_EMAIL_URL: the SMTP server for notifications, as one URL.

``smtp://host:25`` (plain), ``smtp+tls://user:pass@host:587`` (STARTTLS),
``smtps://user:pass@host:465`` (TLS from the start); user and password percent-encoded.
A bad value raises ImproperlyConfigured at startup instead of failing at the first message.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_SCHEMES = {"smtp": (False, False, 25), "smtp+tls": (True, False, 587), "smtps": (False, True, 465)}


def email_settings(name: str, value: str) -> dict[str, object]:
    """Django's EMAIL_* settings for `value` (empty: email not configured, nothing set)."""
    if not value:
        return {}
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name} is not a valid URL") from None
    if parts.scheme not in _SCHEMES:
        raise ImproperlyConfigured(f"{name} must start with smtp://, smtp+tls:// or smtps://")
    if not parts.hostname:
        raise ImproperlyConfigured(f"{name} names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ImproperlyConfigured(f"{name} must be scheme://[user:password@]host[:port]")
    use_tls, use_ssl, default_port = _SCHEMES[parts.scheme]
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": port or default_port,
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
    }
