"""Reading the audit log (writing is jails.services.audit.audit_record, and only there)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from django.db.models import QuerySet

from jails.models import AuditEntry


def audit_actions() -> list[str]:
    """Every action name the log holds, for the filter's choices."""
    return sorted(AuditEntry.objects.order_by().values_list("action", flat=True).distinct())


def audit_hosts() -> list[str]:
    """Every host named in the log, for the filter's choices."""
    return sorted(
        AuditEntry.objects.exclude(host="").order_by().values_list("host", flat=True).distinct()
    )


def audit_entries_filter(
    *,
    user: str = "",
    action: str = "",
    jail: str = "",
    ip: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    result: str = "",
    host: str = "",
    hosts: Iterable[str] | None = None,
) -> QuerySet[AuditEntry]:
    """The log, newest first, narrowed by each filter that is given (`ip`: canonical form).

    ``hosts``: the hosts the reader may view (None: every host); records that concern no
    host (logins, settings) are shown to every reader, as they were before the fleet.
    """
    entries = AuditEntry.objects.select_related("user").order_by("-created_at", "-id")
    if hosts is not None:
        entries = entries.filter(host__in=["", *hosts])
    if host:
        entries = entries.filter(host=host)
    if user:
        entries = entries.filter(actor__iexact=user)
    if action:
        entries = entries.filter(action=action)
    if jail:
        entries = entries.filter(jail=jail)
    if ip:
        # `ips` is a JSON list of canonical addresses; searching for the quoted string in
        # its text finds exact members only (203.0.113.7 does not match 203.0.113.70) and
        # works on SQLite and PostgreSQL alike.
        entries = entries.filter(ips__icontains=json.dumps(ip))
    if since:
        entries = entries.filter(created_at__gte=since)
    if until:
        entries = entries.filter(created_at__lte=until)
    if result == "ok":
        entries = entries.filter(ok=True)
    elif result == "failed":
        entries = entries.filter(ok=False)
    elif result == "started":
        entries = entries.filter(ok__isnull=True)
    return entries
