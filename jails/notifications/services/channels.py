"""The writes behind the pages, the admin and `manage.py notify`: channels, rules, subscriptions.

Every change is audited (jails.services.audit). Nothing here sends a message from a request:
"send a test" queues one row that the runner delivers; the page then shows its outcome.
`channel_test_now` sends at once and is for `manage.py notify test` only.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext, gettext_noop

from jails.notifications.models import Channel, Notification, Rule
from jails.notifications.services.delivery import (
    DeliveryConfig,
    SendOutcome,
    outbox_add,
    outcome_record,
    send_one,
)
from jails.notifications.services.messages import Message
from jails.notifications.services.rules import DEFAULT_PARAMS
from jails.services.audit import Actor, audit_record

SECRET_BYTES = 32


class NotificationError(Exception):
    """A change that cannot be made (a name taken, a subscriber without an email address)."""


@dataclass(frozen=True)
class ChannelCreated:
    channel: Channel
    new_secret: str  # the webhook's key, to be shown once; "" for other kinds


def channel_create(
    *, name: str, kind: str, target: str, secret: str, actor: Actor
) -> ChannelCreated:
    """Add a channel; a webhook gets a new random key, returned once and never shown again."""
    if Channel.objects.filter(name=name).exists():
        raise NotificationError(gettext("a channel named %(name)s exists") % {"name": repr(name)})
    new_secret = secrets.token_urlsafe(SECRET_BYTES) if kind == Channel.Kind.WEBHOOK else ""
    with transaction.atomic():
        channel = Channel.objects.create(
            name=name, kind=kind, target=target, secret=new_secret or secret
        )
        audit_record(
            actor=actor,
            action="notify_channel_create",
            parameters={"channel": name, "kind": kind},
        )
    return ChannelCreated(channel, new_secret)


def channel_delete(*, channel: Channel, actor: Actor) -> None:
    """Remove a channel (its delivery log rows stay, with the channel's name)."""
    with transaction.atomic():
        name = channel.name
        channel.delete()
        audit_record(actor=actor, action="notify_channel_delete", parameters={"channel": name})


def test_message(channel: Channel) -> Message:
    """Worded in the active language (channel_test_queue makes it the site's)."""
    return Message(
        event="test",
        title=gettext("Test message for channel %(name)s") % {"name": channel.name},
        summary=gettext("If you can read this, jailadmin's notifications reach this channel."),
        facts=(
            (gettext_noop("Channel"), channel.name),
            (gettext_noop("Kind"), str(channel.get_kind_display())),
        ),
    )


def channel_test_queue(*, channel: Channel, now: datetime, actor: Actor) -> Notification:
    """Queue a test message for the runner to deliver; the page polls its outcome."""
    # Like every notification, in the site's language, not the language of who clicked.
    with transaction.atomic(), translation.override(settings.LANGUAGE_CODE):
        key = f"{channel.pk}:{now.isoformat()}:{secrets.token_hex(4)}"
        outbox_add(rule=None, key=key, message=test_message(channel), channels=[channel], now=now)
        row = Notification.objects.get(dedupe_key=f"test:{key}:c{channel.pk}")
        audit_record(
            actor=actor, action="notify_channel_test", parameters={"channel": channel.name}
        )
    return row


def channel_test_now(
    *, channel: Channel, now: datetime, config: DeliveryConfig, actor: Actor
) -> SendOutcome:
    """Send a test message at once (`manage.py notify test`), logged like any other."""
    row = channel_test_queue(channel=channel, now=now, actor=actor)
    claimed = Notification.objects.filter(pk=row.pk, claimed_until__isnull=True).update(
        claimed_by=f"command:{row.pk}", claimed_until=now + timedelta(minutes=10)
    )
    if not claimed:  # a runner took it first: it reports the outcome in the log
        return SendOutcome(ok=False, retry=True, error="taken by a job runner")
    row.refresh_from_db()
    outcome = send_one(row, config=config)
    # One try: a person is waiting for the answer; the log keeps the row as failed or sent.
    outcome_record(
        row,
        SendOutcome(ok=outcome.ok, retry=False, error=outcome.error),
        now=now,
        config=config,
    )
    return outcome


def rule_create(
    *,
    name: str,
    kind: str,
    params: dict[str, Any],
    channels: list[Channel],
    rate_limit_minutes: int,
    actor: Actor,
) -> Rule:
    """Add a rule; it reads the archive from now on (not the bans archived before it)."""
    from django.db.models import Max

    from jails.history.models import BanEvent

    if Rule.objects.filter(name=name).exists():
        raise NotificationError(gettext("a rule named %(name)s exists") % {"name": repr(name)})
    known = DEFAULT_PARAMS.get(kind, {})
    clean = {key: value for key, value in params.items() if key in known}
    with transaction.atomic():
        rule = Rule.objects.create(
            name=name,
            kind=kind,
            params=clean,
            rate_limit_minutes=rate_limit_minutes,
            cursor=BanEvent.objects.aggregate(top=Max("id"))["top"] or 0,
        )
        rule.channels.set(channels)
        audit_record(
            actor=actor,
            action="notify_rule_create",
            parameters={"rule": name, "kind": kind, **{k: str(v) for k, v in clean.items()}},
        )
    return rule


def rule_enable(*, rule: Rule, enabled: bool, actor: Actor) -> None:
    """Switch a rule on or off."""
    with transaction.atomic():
        Rule.objects.filter(pk=rule.pk).update(enabled=enabled)
        rule.enabled = enabled
        audit_record(
            actor=actor,
            action="notify_rule_enable" if enabled else "notify_rule_disable",
            parameters={"rule": rule.name},
        )


def rule_delete(*, rule: Rule, actor: Actor) -> None:
    """Remove a rule (its delivery log rows stay)."""
    with transaction.atomic():
        name = rule.name
        rule.delete()
        audit_record(actor=actor, action="notify_rule_delete", parameters={"rule": name})


def subscription_set(*, rule: Rule, user: Any, subscribed: bool, actor: Actor) -> None:
    """Subscribe a user to a rule with their own email address (or unsubscribe them)."""
    if subscribed and not user.email:
        raise NotificationError(gettext("your account has no email address"))
    with transaction.atomic():
        if subscribed:
            rule.subscribers.add(user)
        else:
            rule.subscribers.remove(user)
        audit_record(
            actor=actor,
            action="notify_subscribe" if subscribed else "notify_unsubscribe",
            parameters={"rule": rule.name},
        )
