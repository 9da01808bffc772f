"""Login, `next`, logout, brute-force lockout, and the audit records they leave."""

from __future__ import annotations

import io

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Group
from django.core.management import call_command
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


def test_lockout_after_repeated_failures_for_a_username_from_one_address(viewer, settings):
    limit = settings.AXES_FAILURE_LIMIT
    attacker = Client(REMOTE_ADDR="198.51.100.1")
    statuses = [login(attacker, "vera", "guess").status_code for _ in range(limit)]
    assert statuses == [200] * (limit - 1) + [429]  # the limit-th failure locks
    # The right password from that address is refused now: the pair is locked.
    response = login(attacker, "vera", PASSWORD)
    assert response.status_code == 429
    body = response.content.decode()
    assert "Too many failed logins" in body
    assert f"After {limit} failed attempts for one username from this address" in body
    assert "for 15m" in body
    assert AccessAttempt.objects.filter(username="vera", ip_address="198.51.100.1").exists()


def test_lockout_of_a_username_elsewhere_does_not_lock_its_owner_out(viewer, settings):
    """Locking on the username alone let anybody lock the administrator out."""
    for attempt in range(settings.AXES_FAILURE_LIMIT * 2):
        login(Client(REMOTE_ADDR=f"198.51.100.{attempt + 1}"), "vera", "guess")
    assert login(Client(REMOTE_ADDR="198.51.100.1"), "vera", "guess").status_code == 200
    # The owner, from her own address, logs in.
    assert login(Client(REMOTE_ADDR="192.0.2.10"), "vera", PASSWORD).status_code == 302


def test_lockout_after_repeated_failures_from_an_address(viewer, settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.JAILADMIN_LOGIN_ADDRESS_FAILURE_LIMIT = 12
    client = Client(REMOTE_ADDR="203.0.113.99")
    # Two failures per username never reach the per-pair limit; the address limit locks.
    statuses = [
        login(client, f"nobody{attempt // 2}", "guess").status_code for attempt in range(12)
    ]
    assert statuses == [200] * 11 + [429]
    response = login(client, "vera", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    # Somebody else, elsewhere, is not affected.
    assert login(Client(REMOTE_ADDR="192.0.2.7"), "vera", PASSWORD).status_code == 302


def test_address_limit_defaults_to_four_times_the_pair_limit(settings):
    assert settings.JAILADMIN_LOGIN_ADDRESS_FAILURE_LIMIT == 4 * settings.AXES_FAILURE_LIMIT


def test_login_of_another_account_does_not_clear_the_administrators_failures(
    viewer, settings, django_user_model
):
    """The bypass: a success used to delete every failure of its address, the admin's too."""
    settings.AXES_FAILURE_LIMIT = 3
    django_user_model.objects.create_superuser(username="admin", password=PASSWORD + "-admin")
    attacker = Client(REMOTE_ADDR="203.0.113.60")
    statuses = []
    for _ in range(5):
        statuses += [login(attacker, "admin", "guess").status_code for _ in range(2)]
        statuses.append(login(attacker, "vera", PASSWORD).status_code)  # own account
        attacker.post("/logout/")
    # Locked at the third failure for admin, and from then on.
    assert statuses[:4] == [200, 200, 302, 429]
    assert login(attacker, "admin", PASSWORD + "-admin").status_code == 429
    # The administrator, from elsewhere, is not locked out.
    assert login(Client(REMOTE_ADDR="192.0.2.20"), "admin", PASSWORD + "-admin").status_code == 302


def test_login_clears_only_that_usernames_failures_from_that_address(viewer, settings):
    settings.AXES_FAILURE_LIMIT = 3
    login(Client(REMOTE_ADDR="203.0.113.61"), "vera", "guess")
    login(Client(REMOTE_ADDR="203.0.113.61"), "admin", "guess")
    login(Client(REMOTE_ADDR="203.0.113.62"), "vera", "guess")
    assert login(Client(REMOTE_ADDR="203.0.113.61"), "vera", PASSWORD).status_code == 302
    left = set(AccessAttempt.objects.values_list("username", "ip_address"))
    assert left == {("admin", "203.0.113.61"), ("vera", "203.0.113.62")}


def test_lockout_is_audited_once_per_lockout(viewer, settings):
    client = Client(REMOTE_ADDR="203.0.113.50")
    for _ in range(settings.AXES_FAILURE_LIMIT + 3):
        login(client, "vera", "guess")
    entries = AuditEntry.objects.filter(action="login_locked_out")
    assert entries.count() == 1
    entry = entries.get()
    assert (entry.actor, entry.address, entry.ok) == ("vera", "203.0.113.50", False)
    assert "too many failed logins" in entry.error


def test_locked_out_address_rotating_usernames_is_audited_once(viewer, settings):
    """25 requests naming a new username each used to write 26 audit rows."""
    settings.AXES_FAILURE_LIMIT = 3
    settings.JAILADMIN_LOGIN_ADDRESS_FAILURE_LIMIT = 3
    client = Client(REMOTE_ADDR="203.0.113.52")
    statuses = [login(client, f"user{n}", "guess").status_code for n in range(28)]
    assert statuses[2:] == [429] * 26
    entries = AuditEntry.objects.filter(action="login_locked_out")
    assert list(entries.values_list("actor", "address")) == [("user2", "203.0.113.52")]
    # Another address's lockout is its own record.
    other = Client(REMOTE_ADDR="203.0.113.53")
    for n in range(4):
        login(other, f"user{n}", "guess")
    assert entries.count() == 2


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
    assert login(Client(REMOTE_ADDR="198.51.100.77"), "vera", PASSWORD).status_code == 429
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
    assert login(Client(REMOTE_ADDR="198.51.100.77"), "vera", PASSWORD).status_code == 302


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


def test_break_glass_commands_lift_a_lockout(viewer, settings):
    settings.AXES_FAILURE_LIMIT = 2
    client = Client(REMOTE_ADDR="203.0.113.70")
    for _ in range(2):
        login(client, "vera", "guess")
    assert login(client, "vera", PASSWORD).status_code == 429
    call_command("axes_reset_ip_username", "203.0.113.70", "vera", stdout=io.StringIO())
    assert login(client, "vera", PASSWORD).status_code == 302
    client.post("/logout/")
    for _ in range(2):
        login(client, "vera", "guess")
    assert login(client, "vera", PASSWORD).status_code == 429
    call_command("axes_reset_ip", "203.0.113.70", stdout=io.StringIO())
    assert login(client, "vera", PASSWORD).status_code == 302
