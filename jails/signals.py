"""Audit records for logins, logouts and lockouts (the admin's changes: jails.admin)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from jails.models import AuditEntry
from jails.services.audit import Actor, audit_record


def _source(request: HttpRequest | None) -> str:
    # path_info: the path below JAILADMIN_URL_PREFIX, where the admin is always /admin/.
    path = getattr(request, "path_info", "") or ""
    return AuditEntry.Source.ADMIN if path.startswith("/admin/") else AuditEntry.Source.WEB


def _address(request: HttpRequest | None) -> str | None:
    return (request.META.get("REMOTE_ADDR") if request is not None else None) or None


def _user_actor(request: HttpRequest | None, user: Any) -> Actor:
    return Actor(
        name=user.get_username(),
        source=_source(request),
        user_id=user.pk,
        address=_address(request),
    )


@receiver(user_logged_in, dispatch_uid="jails-audit-login")
def audit_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit_record(actor=_user_actor(request, user), action="login")


@receiver(user_logged_out, dispatch_uid="jails-audit-logout")
def audit_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:
        return  # an anonymous "logout" changes nothing
    audit_record(actor=_user_actor(request, user), action="logout")


@receiver(user_locked_out, dispatch_uid="jails-audit-lockout")
def audit_lockout(
    sender: Any,
    request: HttpRequest | None,
    username: str | None,
    ip_address: str | None,
    **kwargs: Any,
) -> None:
    # django-axes signals again on every attempt during a lockout, whatever username each
    # one names: one record per lockout — per address and cool-off time, not per username,
    # or an attacker rotating usernames writes a row per request. The attempts themselves
    # are kept by axes (admin: Access failures).
    name = (username or "")[:150] or "(no username)"
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    earlier = AuditEntry.objects.filter(action="login_locked_out", created_at__gte=since)
    # Without an address (no REMOTE_ADDR) the username is all there is to tell lockouts apart.
    earlier = earlier.filter(address=ip_address) if ip_address else earlier.filter(actor=name)
    if earlier.exists():
        return
    audit_record(
        actor=Actor(name=name, source=_source(request), user_id=None, address=ip_address),
        action="login_locked_out",
        parameters={
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "address_failure_limit": settings.JAILADMIN_LOGIN_ADDRESS_FAILURE_LIMIT,
            "cooloff_minutes": int(settings.AXES_COOLOFF_TIME / timedelta(minutes=1)),
        },
        ok=False,
        error="too many failed logins: further attempts refused for the cool-off time",
    )
