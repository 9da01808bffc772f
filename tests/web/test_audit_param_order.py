"""The audit page shows a record's parameters in one order whatever the database keeps."""

from __future__ import annotations

import pytest

from jails.models import AuditEntry
from jails.services.audit import Actor, audit_record

pytestmark = pytest.mark.django_db


def test_audit_page_shows_from_before_to_and_other_keys_sorted(role_client):
    # Written "to" first, as PostgreSQL's jsonb would hand it back: the page must not care.
    audit_record(
        actor=Actor(name="root", source=AuditEntry.Source.WEB),
        action="settings_change",
        parameters={"zone": {"to": "UTC", "from": "CET"}, "page_size": {"to": 20, "from": 50}},
    )
    body = role_client("viewer").get("/audit/").content.decode()
    assert body.index("page_size=") < body.index("zone=")
    assert (
        "<code>zone={&#x27;from&#x27;: &#x27;CET&#x27;, &#x27;to&#x27;: &#x27;UTC&#x27;}</code>"
        in body
    )
    assert "<code>page_size={&#x27;from&#x27;: 50, &#x27;to&#x27;: 20}</code>" in body
