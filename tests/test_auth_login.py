"""Login, `next`, logout, brute-force lockout, and the audit records they leave."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Group
from django.test import Client

from jails.models import AuditEntry

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

PASSWORD = "a-long-test-password-1"


@pytest.fixture
def viewer(runtime, django_user_model):
    user = django_user_model.objects.create_user(username="vera", password=PASSWORD)
    user.groups.add(Group.objects.get(name="viewer"))
    return user


def login(client: Client, username: str, password: str, **extra):
    return client.post("/login/", {"username": username, "password": password, **extra})


def test_login_lands_on_the_page_that_was_asked_for(viewer, client: Client):
    response = client.get("/jails/sshd/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/jails/sshd/"
    page = client.get(response["Location"])
    assert 'name="next" value="/jails/sshd/"' in page.content.decode()
    response = login(client, "vera", PASSWORD, next="/jails/sshd/")
    assert response["Location"] == "/jails/sshd/"
    assert client.get("/jails/sshd/").status_code == 200


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/jails/", "http://testserver.evil.example/"],
)
def test_login_ignores_a_next_url_on_another_site(viewer, client: Client, target):
    response = login(client, "vera", PASSWORD, next=target)
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_login_with_a_wrong_password_says_so(viewer, client: Client):
    response = login(client, "vera", "wrong-password")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert client.get("/jails/").status_code == 302


def test_logout_is_a_post_and_ends_the_session(viewer, client: Client):
    login(client, "vera", PASSWORD)
    page = client.get("/jails/").content.decode()
    assert '<form class="logout" method="post" action="/logout/">' in page
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response["Location"] == "/login/"
    assert client.get("/jails/")["Location"].startswith("/login/")


def test_login_and_logout_are_audited(viewer):
    client = Client(REMOTE_ADDR="192.0.2.44")
    login(client, "vera", PASSWORD)
    client.post("/logout/")
    records = list(
        AuditEntry.objects.order_by("id").values_list("action", "actor", "source", "address")
    )
    assert records == [
        ("login", "vera", "web", "192.0.2.44"),
        ("logout", "vera", "web", "192.0.2.44"),
    ]


def test_lockout_after_repeated_failures_for_a_username(viewer, settings):
    limit = settings.AXES_FAILURE_LIMIT
    statuses = [
        login(Client(REMOTE_ADDR=f"198.51.100.{attempt + 1}"), "vera", "guess").status_code
        for attempt in range(limit)  # a different address each time
    ]
    assert statuses == [200] * (limit - 1) + [429]  # the limit-th failure locks
    # The right password from yet another address is refused now: the username is locked.
    response = login(Client(REMOTE_ADDR="198.51.100.200"), "vera", PASSWORD)
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many failed logins" in body
    assert f"After {limit} failed attempts" in body
    assert "for 15m" in body
    assert AccessAttempt.objects.filter(username="vera").exists()


def test_lockout_after_repeated_failures_from_an_address(viewer, settings):
    client = Client(REMOTE_ADDR="203.0.113.99")
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        login(client, f"nobody{attempt}", "guess")
    assert login(client, "vera", PASSWORD).status_code == 429
    # Somebody else, elsewhere, is not affected.
    assert login(Client(REMOTE_ADDR="192.0.2.7"), "vera", PASSWORD).status_code == 302


def test_lockout_is_audited_once_per_lockout(viewer, settings):
    client = Client(REMOTE_ADDR="203.0.113.50")
    for _ in range(settings.AXES_FAILURE_LIMIT + 3):
        login(client, "vera", "guess")
    entries = AuditEntry.objects.filter(action="login_locked_out")
    assert entries.count() == 1
    entry = entries.get()
    assert (entry.actor, entry.address, entry.ok) == ("vera", "203.0.113.50", False)
    assert "too many failed logins" in entry.error


def test_lockout_escapes_the_attacker_controlled_username(runtime, settings, role_client):
    hostile = '<script>alert("x")</script>'
    client = Client(REMOTE_ADDR="203.0.113.51")
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        login(client, hostile, "guess")
    page = role_client("viewer").get("/audit/").content.decode()
    assert hostile not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_admin_unlock_is_audited_and_lets_the_user_in_again(viewer, settings, role_client):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(Client(REMOTE_ADDR="198.51.100.77"), "vera", "guess")
    assert login(Client(), "vera", PASSWORD).status_code == 429
    admin = role_client("administrator", staff=True)
    admin.user.is_superuser = True  # axes' records are managed by superusers in the admin
    admin.user.save()
    attempts = list(AccessAttempt.objects.values_list("pk", flat=True))
    response = admin.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": attempts, "post": "yes"},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    deleted = AuditEntry.objects.filter(action="admin_delete", source="admin")
    assert deleted.count() == len(attempts)
    assert {e.parameters["model"] for e in deleted} == {"axes.accessattempt"}
    assert login(Client(), "vera", PASSWORD).status_code == 302


def test_admin_user_management_is_audited(runtime, role_client, django_user_model):
    admin = role_client("administrator", staff=True)
    response = admin.post(
        "/admin/auth/user/add/",
        {
            "username": "newop",
            "password1": "another-long-password-9",
            "password2": "another-long-password-9",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    user = django_user_model.objects.get(username="newop")
    operator_group = Group.objects.get(name="operator")
    response = admin.post(
        f"/admin/auth/user/{user.pk}/change/",
        {
            "username": "newop",
            "is_active": "on",
            "groups": [operator_group.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(user.groups.values_list("name", flat=True)) == ["operator"]
    response = admin.post(f"/admin/auth/user/{user.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    actions = list(
        AuditEntry.objects.filter(parameters__model="auth.user")
        .order_by("id")
        .values_list("action", "actor", "source")
    )
    assert actions == [
        ("admin_add", "administrator-user", "admin"),
        ("admin_change", "administrator-user", "admin"),
        ("admin_delete", "administrator-user", "admin"),
    ]
    change = AuditEntry.objects.get(action="admin_change")
    assert change.parameters["object"] == "newop"
    assert "groups" in str(change.parameters["message"]).lower()


def test_htmx_request_without_login_reloads_the_page_to_login(viewer, client: Client):
    """A polling fragment whose session ran out: the whole page goes to the login form,
    which then returns to the page (not to the fragment's URL)."""
    response = client.get(
        "/status-bar/",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/jails/sshd/?page=2"},
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/login/?next=%2Fjails%2Fsshd%2F%3Fpage%3D2"
    plain = client.get("/status-bar/")
    assert (plain.status_code, plain["Location"]) == (302, "/login/?next=/status-bar/")
