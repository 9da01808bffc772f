"""The audit log page (/audit/) and its read-only admin."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from django.test import Client

from jails.models import AuditEntry
from jails.services.audit import Actor, audit_record

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]


def record(name: str = "oper", **kwargs) -> AuditEntry:
    actor = Actor(
        name=name, source=kwargs.pop("source", "web"), address=kwargs.pop("address", "192.0.2.1")
    )
    return audit_record(actor=actor, **kwargs)


def at(entry: AuditEntry, when: datetime) -> None:
    AuditEntry.objects.filter(pk=entry.pk).update(created_at=when)


@pytest.fixture
def entries(runtime):
    ban = record(action="ban", jail="sshd", ips=["203.0.113.7", "2001:db8::7"])
    at(ban, datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    unban = record("ann", action="unban", jail="postfix", ips=["203.0.113.70"])
    at(unban, datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    failed = record(
        "ann", action="ban", jail="sshd", ips=["198.51.100.1"], ok=False, error="fail2ban down"
    )
    at(failed, datetime(2026, 3, 3, 12, 0, tzinfo=UTC))
    change = record("root", action="settings_change", parameters={"x": {"from": 1, "to": 2}})
    at(change, datetime(2026, 3, 4, 12, 0, tzinfo=UTC))
    return {"ban": ban, "unban": unban, "failed": failed, "change": change}


DAYS = {"ban": 1, "unban": 2, "failed": 3, "change": 4}  # the day of March each one was made


def rows(response) -> int:
    return response.content.decode().count("<tr>") - 1  # minus the header row


def test_audit_page_lists_everything_newest_first(entries, role_client):
    response = role_client("viewer").get("/audit/")
    assert response.status_code == 200
    body = response.content.decode()
    assert rows(response) == 5  # the four above and the viewer's own login
    assert "<code>login</code>" in body
    assert body.index("settings_change") < body.index("fail2ban down") < body.index("postfix")
    assert "<code>203.0.113.7</code>, <code>2001:db8::7</code>" in body
    assert "192.0.2.1" in body
    assert (
        '<span class="pill bad">failed</span> <span class="error-text">fail2ban down</span>' in body
    )
    assert "<code>x={&#x27;from&#x27;: 1, &#x27;to&#x27;: 2}</code>" in body
    assert "2026-03-04 12:00:00 UTC" in body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("user=ann", {"unban", "failed"}),
        ("user=ANN", {"unban", "failed"}),
        ("action=ban", {"ban", "failed"}),
        ("jail=sshd", {"ban", "failed"}),
        ("ip=203.0.113.7", {"ban"}),
        ("ip=2001:0db8::7", {"ban"}),  # compared in canonical form
        ("since=2026-03-02T00:00&until=2026-03-03T23:59", {"unban", "failed"}),
        ("result=failed", {"failed"}),
        ("result=ok&user=ann", {"unban"}),
    ],
)
def test_audit_page_filters(entries, role_client, query, expected):
    body = role_client("viewer").get(f"/audit/?{query}").content.decode()
    shown = {name for name, day in DAYS.items() if f"2026-03-0{day} 12:00:00 UTC" in body}
    assert shown == expected


def test_audit_page_time_filters_use_the_display_time_zone(entries, runtime, role_client):
    runtime.snapshot_replace(settings=replace(runtime.settings, display_time_zone="Asia/Tokyo"))
    body = role_client("viewer").get("/audit/?since=2026-03-04T20:00").content.decode()
    assert "2026-03-04 21:00:00 JST" in body  # 12:00 UTC, shown in Tokyo time
    assert "2026-03-03" not in body


def test_audit_page_refuses_a_bad_ip_filter(entries, role_client):
    response = role_client("viewer").get("/audit/?ip=not-an-ip")
    assert response.status_code == 200
    assert "Not an IP address." in response.content.decode()


def test_audit_page_paginates_and_keeps_the_filters(runtime, role_client):
    runtime.snapshot_replace(settings=replace(runtime.settings, page_size=5))
    for number in range(12):
        record(action="ban", jail="sshd", ips=[f"203.0.113.{number}"])
    record(action="unban", jail="sshd")
    body = role_client("viewer").get("/audit/?action=ban").content.decode()
    assert "Page 1 of 3 (12 in all)" in body
    assert 'href="?action=ban&amp;page=2"' in body
    second = role_client("viewer", username="v2").get("/audit/?action=ban&page=3")
    assert "Page 3 of 3" in second.content.decode()
    assert rows(second) == 2


def test_audit_page_htmx_returns_the_table_partial(entries, role_client):
    response = role_client("viewer").get("/audit/?action=ban", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="audit-table">')
    assert "<html" not in body
    assert "HX-Request" in response["Vary"]


def test_audit_page_escapes_attacker_controlled_text(runtime, role_client):
    hostile = '<img src=x onerror="alert(1)">'
    record(
        hostile,
        action="ban",
        jail=hostile[:64],
        ips=[hostile],
        parameters={hostile: hostile},
        ok=False,
        error=hostile,
    )
    body = role_client("viewer").get("/audit/").content.decode()
    assert "<img" not in body
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in body


def test_audit_page_needs_a_role(runtime, django_user_model):
    nobody = django_user_model.objects.create_user(username="nobody", password="x")
    client = Client()
    assert client.get("/audit/")["Location"] == "/login/?next=/audit/"
    client.force_login(nobody)
    assert client.get("/audit/").status_code == 403


# Admin: read-only ------------------------------------------------------------------------------
def test_audit_admin_is_read_only(entries, role_client):
    client = role_client("viewer", staff=True)
    listing = client.get("/admin/jails/auditentry/")
    assert listing.status_code == 200
    assert "settings_change" in listing.content.decode()
    pk = entries["ban"].pk
    page = client.get(f"/admin/jails/auditentry/{pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert (
        client.post(f"/admin/jails/auditentry/{pk}/change/", {"actor": "forged"}).status_code == 403
    )
    assert client.get("/admin/jails/auditentry/add/").status_code == 403
    assert client.post(f"/admin/jails/auditentry/{pk}/delete/", {"post": "yes"}).status_code == 403
    administrator = role_client("administrator", staff=True)
    assert (
        administrator.post(f"/admin/jails/auditentry/{pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert AuditEntry.objects.get(pk=pk).actor == "oper"


def test_audit_admin_needs_staff(entries, role_client):
    assert (
        role_client("viewer")
        .get("/admin/jails/auditentry/")["Location"]
        .startswith("/admin/login/")
    )
