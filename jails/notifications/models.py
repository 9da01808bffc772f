"""Notifications: channels, rules, the outbox (also the delivery log) and pending events.

Rules are evaluated and messages delivered only by the job runner (jails.notifications.apps
lists the jobs); a request only edits channels, rules and subscriptions, or queues a test.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Channel(models.Model):
    """Where messages go: an email list, a signed webhook or an Apprise URL (chat)."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook (signed JSON POST)"
        APPRISE = "apprise", "Chat (Apprise URL)"

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    # Email: comma-separated recipients; webhook: the URL. Shown on the pages.
    target = models.CharField(max_length=2000, blank=True)
    # Webhook: the HMAC key; Apprise: the whole URL (it carries the service's token).
    # Never rendered back: pages and the admin show only whether it is set.
    secret = models.CharField(max_length=2000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def secret_set(self) -> bool:
        return bool(self.secret)


class Rule(models.Model):
    """What is worth telling someone about, with its parameters and where it goes."""

    class Kind(models.TextChoices):
        BURST = "burst", "Ban burst"
        REPEAT = "repeat", "Repeat offender"
        ORIGIN = "origin", "Bans from chosen countries or networks"
        DOWN = "down", "fail2ban unreachable (and recovered)"
        BLOCKLIST = "blocklist", "Blocklist import failing"
        DIGEST = "digest", "Digest"

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    # Per kind (jails.notifications.services.rules.RuleParams documents each key).
    params = models.JSONField(default=dict, blank=True)
    channels = models.ManyToManyField(Channel, blank=True, related_name="rules")
    subscribers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="notification_rules"
    )
    # At most one message per this many minutes (per jail for a per-jail burst); events in
    # between are held and grouped into the next message.
    rate_limit_minutes = models.PositiveIntegerField(default=15)
    # How far the rule has read the archive (BanEvent.id) and what it remembers between runs
    # (when fail2ban went down, when each key last fired, which digest period was sent).
    cursor = models.BigIntegerField(default=0)
    memory = models.JSONField(default=dict, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Notification(models.Model):
    """One message to one destination: the outbox row, then its entry in the delivery log."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    rule = models.ForeignKey(Rule, null=True, blank=True, on_delete=models.SET_NULL)
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.SET_NULL)
    # A subscriber's own address (channel empty), or a copy of the channel's name for the log.
    recipient = models.CharField(max_length=2000, blank=True)
    # Unique: the same event never makes two messages to one destination, whatever runs twice.
    dedupe_key = models.CharField(max_length=255, unique=True)
    subject = models.CharField(max_length=255)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    # A delivering runner's claim: rows it holds until claimed_until (a dead runner's expire).
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_due"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {self.recipient}"


class PendingEvent(models.Model):
    """Something another app reported (a failed blocklist import) for the rules to read."""

    kind = models.CharField(max_length=32, db_index=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"
