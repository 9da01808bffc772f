"""The audit log: every change anyone makes is recorded here, ok or failed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jails.models import AuditEntry

MAX_STORED_IPS = 1000  # a bulk ban of 100 000 stores the first 1000 and the count


@dataclass(frozen=True)
class Actor:
    """Who is acting, from where: a user on the web/admin, a command user, or a job."""

    name: str
    source: str  # one of AuditEntry.Source
    user_id: int | None = None
    address: str | None = None

    @classmethod
    def system(cls, name: str = "system", *, source: str = AuditEntry.Source.COMMAND) -> Actor:
        return cls(name=name, source=source)


def audit_record(
    *,
    actor: Actor,
    action: str,
    jail: str = "",
    ips: Iterable[str] = (),
    parameters: dict[str, Any] | None = None,
    ok: bool = True,
    error: str = "",
) -> AuditEntry:
    """Store one audit record."""
    ip_list = list(ips)
    return AuditEntry.objects.create(
        user_id=actor.user_id,
        actor=actor.name,
        source=actor.source,
        address=actor.address,
        action=action,
        jail=jail,
        ips=ip_list[:MAX_STORED_IPS],
        ip_count=len(ip_list),
        parameters=parameters or {},
        ok=ok,
        error=error[:4000],
    )
