"""Audit records keep typed text PostgreSQL cannot store (NUL) in a form both engines accept."""

from __future__ import annotations

import pytest

from jails.models import AuditEntry
from jails.services.audit import Actor, audit_finish, audit_start

pytestmark = pytest.mark.django_db


def test_audit_start_and_finish_store_nul_characters_as_replacement_characters():
    actor = Actor(name="op\x00erator", source=AuditEntry.Source.WEB)
    entry = audit_start(
        actor=actor,
        action="ban",
        jail="ss\x00hd",
        ips=["203.0.113.7\x00"],
        parameters={"bantime\x00": ["1\x00h"]},
    )
    started = AuditEntry.objects.get(pk=entry.pk)
    assert (started.ips, started.parameters) == (
        ["203.0.113.7\ufffd"],
        {"bantime\ufffd": ["1\ufffdh"]},
    )
    assert audit_finish(
        entry,
        ips=["203.0.113.7\x00"],
        parameters={"maxretry": "3\x00"},
        ok=False,
        error="bad\x00value",
    )
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert (stored.actor, stored.jail, stored.ips) == (
        "op\ufffderator",
        "ss\ufffdhd",
        ["203.0.113.7\ufffd"],
    )
    assert stored.parameters == {"maxretry": "3\ufffd"}
    assert (stored.ok, stored.error) == (False, "bad\ufffdvalue")
