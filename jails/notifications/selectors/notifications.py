"""The reads behind the pages and `manage.py notify`: channels, rules, the delivery log."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from jails.notifications.models import Channel, Notification, Rule
from jails.notifications.services.rules import rule_params


def channels_list() -> QuerySet[Channel]:
    return Channel.objects.order_by("name")


def rules_list() -> QuerySet[Rule]:
    return Rule.objects.prefetch_related("channels", "subscribers").order_by("name")


def rule_describe(rule: Rule) -> dict[str, Any]:
    """A rule as plain data (`notify rules --json`): no subscriber addresses, no secrets."""
    return {
        "name": rule.name,
        "kind": rule.kind,
        "enabled": rule.enabled,
        "params": rule_params(rule),
        "channels": [channel.name for channel in rule.channels.all()],
        "subscribers": rule.subscribers.count(),
        "rate_limit_minutes": rule.rate_limit_minutes,
        "last_fired_at": rule.last_fired_at.isoformat() if rule.last_fired_at else None,
    }


def channel_describe(channel: Channel) -> dict[str, Any]:
    """A channel as plain data: the secret only as set or not."""
    return {
        "name": channel.name,
        "kind": channel.kind,
        "enabled": channel.enabled,
        "target": channel.target if channel.kind != Channel.Kind.APPRISE else "",
        "secret": "set" if channel.secret else "",
    }


def delivery_log(*, status: str = "") -> QuerySet[Notification]:
    rows = Notification.objects.select_related("rule", "channel").order_by("-created_at", "-id")
    if status:
        rows = rows.filter(status=status)
    return rows
