"""The audit log: every change anyone makes is recorded here, ok, failed, or started.

An action on fail2ban is recorded in two steps (jails.services.operations.audited): its
intent before anything is sent (`audit_start`, result unknown), and its result after
(`audit_finish`). A worker killed in the middle, or a database that fails when the result
is written, still leaves the record of what was attempted, marked "started".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, transaction

from jails.models import AuditEntry

logger = logging.getLogger(__name__)

MAX_STORED_IPS = 1000  # a bulk ban of 100 000 stores the first 1000 and the count
MAX_ERROR_LENGTH = 4000


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


def _ip_fields(ips: Iterable[str]) -> dict[str, Any]:
    ip_list = [storable(ip) for ip in ips]
    return {"ips": ip_list[:MAX_STORED_IPS], "ip_count": len(ip_list)}


def storable(value: Any) -> Any:
    """`value` with every NUL character replaced by U+FFFD, in strings, lists and dicts.

    The log records what was asked, and that includes typed text (a jail name, an address,
    a duration). PostgreSQL stores no NUL in text or jsonb and refuses the whole record,
    which would stop the action from running (SQLite keeps it): one rule for both engines.
    """
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value


def audit_record(
    *,
    actor: Actor,
    action: str,
    jail: str = "",
    ips: Iterable[str] = (),
    parameters: dict[str, Any] | None = None,
    ok: bool | None = True,
    error: str = "",
    host: str = "",
) -> AuditEntry:
    """Store one audit record (`ok=None`: started, no result yet; `host`: the fail2ban host
    the action went to, `state.snapshot.host`; blank when it concerns none)."""
    return AuditEntry.objects.create(
        user_id=actor.user_id,
        actor=storable(actor.name),
        source=actor.source,
        address=actor.address,
        action=action,
        host=storable(host[:63]),
        jail=storable(jail),
        parameters=storable(parameters or {}),
        ok=ok,
        error=storable(error[:MAX_ERROR_LENGTH]),
        **_ip_fields(ips),
    )


def audit_start(
    *,
    actor: Actor,
    action: str,
    jail: str = "",
    ips: Iterable[str] = (),
    parameters: dict[str, Any] | None = None,
    host: str = "",
) -> AuditEntry:
    """Store the intent of an action before it runs; raises if the database refuses.

    Raising here is deliberate: an action whose intent cannot be recorded does not run.
    """
    return audit_record(
        actor=actor, action=action, jail=jail, ips=ips, parameters=parameters, ok=None, host=host
    )


def audit_finish(
    entry: AuditEntry,
    *,
    ips: Iterable[str] = (),
    parameters: dict[str, Any] | None = None,
    ok: bool | None,
    error: str = "",
) -> bool:
    """Store the result in the record `audit_start` made; False if the database refused.

    `ok` None: the result is not known (a host that did not answer in time), `error` says so.

    Never raises: the action has already happened, and its real outcome (a result or a
    fail2ban error) must reach the caller, not a database error about its record. The
    record then stays "started", which is the truth as far as the log can tell.
    """
    fields = {
        "parameters": storable(parameters or {}),
        "ok": ok,
        "error": storable(error[:MAX_ERROR_LENGTH]),
        **_ip_fields(ips),
    }
    try:
        # A savepoint when called inside a transaction: a failed write must not break the
        # caller's transaction on PostgreSQL.
        with transaction.atomic():
            AuditEntry.objects.filter(pk=entry.pk).update(**fields)
    except DatabaseError:
        logger.exception(
            "audit record %s (%s by %s) left as started: its result could not be stored "
            "(ok=%s, error=%r)",
            entry.pk,
            entry.action,
            entry.actor,
            ok,
            fields["error"],
        )
        return False
    for name, value in fields.items():
        setattr(entry, name, value)
    return True
