"""Bans in the Django admin: the live bans page and the unban actions (real fail2ban)."""

from __future__ import annotations

import pytest
from django.contrib.messages.storage.fallback import FallbackStorage
from django.test import RequestFactory

from jails.admin_bans import unban_ban_events
from jails.models import AuditEntry

pytestmark = pytest.mark.django_db
# The service layer behind these runs the same in both connection modes (issue 10).
RUNTIME_MODES = ("direct", "agent")

URL = "/admin/jails/liveban/"


@pytest.fixture
def staff_operator(role_client):
    """Who the live bans page is for (README): staff with the operator role, no more."""
    return role_client("operator", staff=True)


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


def unbans() -> list[tuple[str, str, str, list[str]]]:
    return [
        (e.action, e.jail, e.source, e.ips)
        for e in AuditEntry.objects.filter(action__startswith="unban").order_by("id")
    ]


def test_admin_index_links_live_bans(runtime, f2b, staff_operator):
    body = staff_operator.get("/admin/").content.decode()
    assert 'href="/admin/jails/liveban/"' in body and "Live bans" in body


def test_live_bans_page_lists_bans_of_every_jail_with_filters(runtime, f2b, staff_operator):
    f2b.client().send("set", "sshd", "banip", "203.0.113.1")
    f2b.client().send("set", "postfix", "banip", "198.51.100.2")
    body = staff_operator.get(URL).content.decode()
    assert 'value="sshd|203.0.113.1"' in body and 'value="postfix|198.51.100.2"' in body
    body = staff_operator.get(URL, {"jail": "postfix"}).content.decode()
    assert "203.0.113.1" not in body and "198.51.100.2" in body
    body = staff_operator.get(URL, {"q": "203.0"}).content.decode()
    assert "203.0.113.1" in body and "198.51.100.2" not in body


def test_live_bans_unban_action_unbans_in_fail2ban_and_audits_as_admin(
    runtime, f2b, staff_operator
):
    f2b.client().send("set", "sshd", "banip", "203.0.113.1", "203.0.113.2")
    f2b.client().send("set", "postfix", "banip", "203.0.113.1")
    response = staff_operator.post(
        URL,
        {"action": "unban", "_selected_action": ["sshd|203.0.113.1", "postfix|203.0.113.1"]},
        follow=True,
    )
    body = response.content.decode()
    assert "Unbanned 1 address from sshd." in body and "Unbanned 1 address from postfix." in body
    assert banned(f2b, "sshd") == {"203.0.113.2"} and banned(f2b, "postfix") == set()
    assert sorted(unbans()) == [
        ("unban", "postfix", "admin", ["203.0.113.1"]),
        ("unban", "sshd", "admin", ["203.0.113.1"]),
    ]


def test_live_bans_unban_everywhere_action(runtime, f2b, staff_operator):
    for jail in ("sshd", "nginx-http-auth"):
        f2b.client().send("set", jail, "banip", "198.51.100.9")
    staff_operator.post(
        URL, {"action": "unban_everywhere", "_selected_action": ["sshd|198.51.100.9"]}
    )
    assert banned(f2b, "sshd") == set() and banned(f2b, "nginx-http-auth") == set()
    assert unbans() == [("unban_everywhere", "", "admin", ["198.51.100.9"])]


def test_live_bans_forged_selection_is_validated(runtime, f2b, staff_operator):
    f2b.client().send("set", "sshd", "banip", "203.0.113.1")
    body = staff_operator.post(
        URL, {"action": "unban", "_selected_action": ["--all|203.0.113.1"]}, follow=True
    ).content.decode()
    assert "failed: invalid jail name" in body
    assert banned(f2b, "sshd") == {"203.0.113.1"}


def test_live_bans_staff_viewer_can_look_but_not_unban(runtime, f2b, role_client):
    f2b.client().send("set", "sshd", "banip", "203.0.113.1")
    viewer = role_client("viewer", staff=True)
    body = viewer.get(URL).content.decode()
    assert "203.0.113.1" in body and "_selected_action" not in body
    response = viewer.post(URL, {"action": "unban", "_selected_action": ["sshd|203.0.113.1"]})
    assert response.status_code == 403
    assert banned(f2b, "sshd") == {"203.0.113.1"}


def test_live_bans_needs_staff(runtime, f2b, role_client):
    operator = role_client("operator")  # not staff: the admin is not for them
    response = operator.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_unban_ban_events_action_unbans_archived_pairs(runtime, f2b, role_client):
    from jails.history.models import BanEvent

    f2b.client().send("set", "sshd", "banip", "203.0.113.5")
    f2b.client().send("set", "postfix", "banip", "203.0.113.6")
    for jail, ip, when in (
        ("sshd", "203.0.113.5", 1),
        ("sshd", "203.0.113.5", 2),
        ("postfix", "203.0.113.6", 3),
    ):
        BanEvent.objects.create(
            jail=jail, ip=ip, network="203.0.113.0/24", timeofban=when, bantime=600
        )
    operator = role_client("operator", staff=True)
    request = RequestFactory().post("/admin/history/banevent/")
    request.user = operator.user
    request.session = {}
    request._messages = FallbackStorage(request)
    unban_ban_events(None, request, BanEvent.objects.all())
    assert banned(f2b, "sshd") == set() and banned(f2b, "postfix") == set()
    assert sorted(unbans()) == [
        ("unban", "postfix", "admin", ["203.0.113.6"]),
        ("unban", "sshd", "admin", ["203.0.113.5"]),
    ]


def test_unban_ban_events_action_refuses_viewers(runtime, f2b, role_client):
    from django.core.exceptions import PermissionDenied

    from jails.history.models import BanEvent

    viewer = role_client("viewer", staff=True)
    request = RequestFactory().post("/admin/history/banevent/")
    request.user = viewer.user
    with pytest.raises(PermissionDenied):
        unban_ban_events(None, request, BanEvent.objects.all())


def test_live_bans_page_when_fail2ban_is_down_is_503_not_500(staff_operator):
    from tests.conftest import point_state_at

    point_state_at("/tmp/jailadmin-no-such.sock")
    response = staff_operator.get(URL)
    assert response.status_code == 503
    assert "fail2ban is not reachable" in response.content.decode()
