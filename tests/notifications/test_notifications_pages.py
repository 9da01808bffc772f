"""The pages (/notifications/, the log), the admin, `manage.py notify` and JAILADMIN_EMAIL_URL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.urls import reverse

from jailadmin.email_url import email_settings
from jails.models import AuditEntry, SiteSettings
from jails.notifications.models import Channel, Notification, Rule
from jails.notifications.services.delivery import outbox_deliver
from tests.notifications.receivers import free_port

pytestmark = pytest.mark.django_db
INDEX = "jails:notifications:index"


@pytest.fixture(autouse=True)
def _set_up(db):
    SiteSettings.objects.update_or_create(
        singleton=1, defaults={"setup_complete": True, "fail2ban_socket": "/tmp/none.sock"}
    )


def test_webhook_channel_key_is_shown_once_and_never_again(role_client):
    admin = role_client("administrator", csrf=True)
    admin.get(reverse(INDEX))
    token = admin.cookies["csrftoken"].value
    response = admin.post(
        reverse("jails:notifications:channel-create"),
        {
            "name": "hook",
            "kind": "webhook",
            "target": "https://hooks.example.test/x",
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 200
    channel = Channel.objects.get(name="hook")
    assert len(channel.secret) >= 40
    assert channel.secret in response.content.decode()
    assert "no-cache" in response["Cache-Control"]
    later = admin.get(reverse(INDEX)).content.decode()
    assert channel.secret not in later
    assert ">set<" in later
    entry = AuditEntry.objects.get(action="notify_channel_create")
    assert entry.parameters == {"channel": "hook", "kind": "webhook"}
    assert channel.secret not in json.dumps(entry.parameters)


def test_post_without_csrf_is_refused(role_client):
    admin = role_client("administrator", csrf=True)
    response = admin.post(
        reverse("jails:notifications:channel-create"),
        {"name": "x", "kind": "email", "target": "a@x.test"},
    )
    assert response.status_code == 403
    assert not Channel.objects.exists()


def test_apprise_url_is_never_rendered_back(role_client):
    admin = role_client("administrator", staff=True)
    url = "ntfy://127.0.0.1:9/secret-topic-123"
    admin.post(
        reverse("jails:notifications:channel-create"),
        {"name": "chat", "kind": "apprise", "apprise_url": url},
    )
    assert Channel.objects.get(name="chat").secret == url
    page = admin.get(reverse(INDEX)).content.decode()
    assert "secret-topic-123" not in page
    channel = Channel.objects.get(name="chat")
    for name, args in (("changelist", []), ("change", [channel.pk])):
        response = admin.get(reverse(f"admin:notifications_channel_{name}", args=args))
        assert response.status_code == 200
        assert "secret-topic-123" not in response.content.decode()


def test_bad_channel_values_re_render_the_form(role_client):
    admin = role_client("administrator")
    response = admin.post(
        reverse("jails:notifications:channel-create"),
        {"name": "x", "kind": "apprise", "apprise_url": "nonsense://"},
    )
    assert response.status_code == 400
    assert "Apprise does not recognise this URL." in response.content.decode()
    response = admin.post(
        reverse("jails:notifications:channel-create"),
        {"name": "y", "kind": "webhook", "target": "file:///etc/passwd"},
    )
    assert response.status_code == 400
    assert not Channel.objects.exists()


def test_send_a_test_queues_and_the_status_partial_reports_the_outcome(
    role_client, http_receiver, config
):
    admin = role_client("administrator")
    channel = Channel.objects.create(
        name="hook", kind="webhook", target=http_receiver.url, secret="k"
    )
    response = admin.post(
        reverse("jails:notifications:channel-test", args=[channel.pk]), HTTP_HX_REQUEST="true"
    )
    assert "queued" in response.content.decode()
    assert http_receiver.requests == []  # nothing is sent from a request
    row = Notification.objects.get()
    outbox_deliver(now=datetime.now(UTC), owner="runner", config=config)
    status = admin.get(
        reverse("jails:notifications:status", args=[row.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "sent" in status
    assert len(http_receiver.requests) == 1
    assert AuditEntry.objects.filter(action="notify_channel_test").count() == 1


def test_rule_create_and_an_operator_subscribes_with_their_own_email(role_client):
    admin = role_client("administrator")
    channel = Channel.objects.create(name="ops", kind="email", target="ops@x.test")
    response = admin.post(
        reverse("jails:notifications:rule-create"),
        {
            "name": "burst",
            "kind": "burst",
            "channels": [channel.pk],
            "rate_limit_minutes": 10,
            "threshold": 50,
            "minutes": 5,
        },
    )
    assert response.status_code == 302
    rule = Rule.objects.get(name="burst")
    assert rule.params == {"threshold": 50, "minutes": 5, "per_jail": False}
    operator = role_client("operator")
    operator.user.email = "operator@example.test"
    operator.user.save()
    assert "Email me (operator@example.test)" in operator.get(reverse(INDEX)).content.decode()
    operator.post(reverse("jails:notifications:rule-subscribe", args=[rule.pk]), {"subscribe": "1"})
    assert list(rule.subscribers.all()) == [operator.user]
    operator.post(reverse("jails:notifications:rule-subscribe", args=[rule.pk]), {"subscribe": "0"})
    assert not rule.subscribers.exists()
    assert (
        AuditEntry.objects.filter(action__in=["notify_subscribe", "notify_unsubscribe"]).count()
        == 2
    )
    # Viewers change nothing, their own subscriptions included: no form, and 403.
    viewer = role_client("viewer")
    viewer.user.email = "viewer@example.test"
    viewer.user.save()
    assert "Email me" not in viewer.get(reverse(INDEX)).content.decode()
    url = reverse("jails:notifications:rule-subscribe", args=[rule.pk])
    assert viewer.post(url, {"subscribe": "1"}).status_code == 403
    assert not rule.subscribers.exists()


def test_a_user_without_email_cannot_subscribe(role_client):
    rule = Rule.objects.create(name="r", kind="burst")
    operator = role_client("operator")
    response = operator.post(
        reverse("jails:notifications:rule-subscribe", args=[rule.pk]),
        {"subscribe": "1"},
        follow=True,
    )
    assert "your account has no email address" in response.content.decode()
    assert not rule.subscribers.exists()


def test_viewers_and_operators_cannot_manage_channels_rules_or_the_log(role_client):
    for role in ("viewer", "operator"):
        client = role_client(role, username=role)
        assert client.get(reverse(INDEX)).status_code == 200
        assert "Add a channel" not in client.get(reverse(INDEX)).content.decode()
        assert client.get(reverse("jails:notifications:log")).status_code == 403
        assert (
            client.post(
                reverse("jails:notifications:channel-create"),
                {"name": "x", "kind": "email", "target": "a@x.test"},
            ).status_code
            == 403
        )
        assert client.post(reverse("jails:notifications:rule-create"), {}).status_code == 403
    assert not Channel.objects.exists()


def test_delivery_log_lists_status_and_error_escaped(role_client):
    Notification.objects.create(
        dedupe_key="a",
        subject="<script>x</script>",
        body_text="t",
        recipient="hook",
        status="failed",
        attempts=5,
        last_error="HTTP 503",
        next_attempt_at=datetime.now(UTC),
    )
    admin = role_client("administrator")
    page = admin.get(reverse("jails:notifications:log") + "?status=failed").content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x</script>" not in page
    assert "HTTP 503" in page
    assert (
        "No notifications"
        in admin.get(reverse("jails:notifications:log") + "?status=sent").content.decode()
    )
    # The navigation links to the page for administrators.
    assert reverse(INDEX) in admin.get(reverse(INDEX)).content.decode()


def test_notify_rules_json_and_channels_show_no_secret():
    channel = Channel.objects.create(name="chat", kind="apprise", secret="tgram://bot-token/1")
    rule = Rule.objects.create(name="digest", kind="digest", params={"period": "weekly"})
    rule.channels.add(channel)
    out = StringIO()
    call_command("notify", "rules", "--json", stdout=out)
    assert json.loads(out.getvalue()) == [
        {
            "name": "digest",
            "kind": "digest",
            "enabled": True,
            "params": {"period": "weekly"},
            "channels": ["chat"],
            "subscribers": 0,
            "rate_limit_minutes": 15,
            "last_fired_at": None,
        }
    ]
    out = StringIO()
    call_command("notify", "channels", "--json", stdout=out)
    assert "bot-token" not in out.getvalue()
    assert json.loads(out.getvalue())[0]["secret"] == "set"


def test_notify_test_sends_now_and_reports_failure(http_receiver, settings):
    settings.JAILADMIN_NOTIFY_TIMEOUT = 1.0
    Channel.objects.create(name="hook", kind="webhook", target=http_receiver.url, secret="k")
    out = StringIO()
    call_command("notify", "test", "hook", stdout=out)
    assert out.getvalue().strip() == "test message sent to hook"
    assert http_receiver.requests[0].json()["event"] == "test"
    Channel.objects.create(
        name="down", kind="webhook", target=f"http://127.0.0.1:{free_port()}/", secret="k"
    )
    with pytest.raises(CommandError, match="unreachable"):
        call_command("notify", "test", "down")
    assert Notification.objects.filter(status="failed", recipient="down").count() == 1
    with pytest.raises(CommandError, match="no channel 'nope'"):
        call_command("notify", "test", "nope")


def test_email_url_parses_the_three_schemes_and_refuses_bad_values():
    assert email_settings("E", "") == {}
    tls = email_settings("E", "smtp+tls://user%40x:p%3Ass@mail.example.test:2587")
    assert (tls["EMAIL_HOST"], tls["EMAIL_PORT"], tls["EMAIL_USE_TLS"]) == (
        "mail.example.test",
        2587,
        True,
    )
    assert (tls["EMAIL_HOST_USER"], tls["EMAIL_HOST_PASSWORD"]) == ("user@x", "p:ss")
    assert email_settings("E", "smtps://h")["EMAIL_PORT"] == 465
    assert email_settings("E", "smtp://h")["EMAIL_USE_SSL"] is False
    for bad in ("http://h", "smtp://", "smtp://h:notaport", "smtp://h/path"):
        with pytest.raises(ImproperlyConfigured):
            email_settings("E", bad)


def test_rule_changes_in_the_admin_are_audited(role_client):
    admin = role_client("administrator", staff=True)
    rule = Rule.objects.create(name="r", kind="burst")
    url = reverse("admin:notifications_rule_change", args=[rule.pk])
    response = admin.post(
        url, {"name": "r", "kind": "burst", "enabled": "", "params": "{}", "rate_limit_minutes": 5}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    rule.refresh_from_db()
    assert (rule.enabled, rule.rate_limit_minutes) == (False, 5)
    entry = AuditEntry.objects.get(action="notify_rule_update")
    assert entry.source == "admin" and entry.parameters["rule"] == "r"
    assert "enabled" in entry.parameters["fields"]
    # Operators are not administrators: no admin pages for them.
    operator = role_client("operator", username="op", staff=True)
    assert operator.get(url).status_code == 403
