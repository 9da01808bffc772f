"""Notifications: channels, rules, the outbox (also the delivery log) and pending events.

Rules are evaluated and messages delivered only by the job runner (jails.notifications.apps
lists the jobs); a request only edits channels, rules and subscriptions, or queues a test.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Channel(models.Model):
    """Where messages go: an email list, a signed webhook or an Apprise URL (chat)."""

    class Kind(models.TextChoices):
        EMAIL = "email", _("Email")
        WEBHOOK = "webhook", _("Webhook (signed JSON POST)")
        APPRISE = "apprise", _("Chat (Apprise URL)")

    name = models.SlugField(_("name"), max_length=64, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(_("enabled"), default=True)
    # Email: comma-separated recipients; webhook: the URL. Shown on the pages.
    target = models.CharField(_("target"), max_length=2000, blank=True)
    # Webhook: the HMAC key; Apprise: the whole URL (it carries the service's token).
    # Never rendered back: pages and the admin show only whether it is set.
    secret = models.CharField(_("secret"), max_length=2000, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self) -> str:
        return self.name

    @property
    def secret_set(self) -> bool:
        return bool(self.secret)


class Rule(models.Model):
    """What is worth telling someone about, with its parameters and where it goes."""

    class Kind(models.TextChoices):
        BURST = "burst", _("Ban burst")
        REPEAT = "repeat", _("Repeat offender")
        ORIGIN = "origin", _("Bans from chosen countries or networks")
        DOWN = "down", _("fail2ban unreachable (and recovered)")
        BLOCKLIST = "blocklist", _("Blocklist import failing")
        DIGEST = "digest", _("Digest")

    name = models.SlugField(_("name"), max_length=64, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(_("enabled"), default=True)
    # Per kind (jails.notifications.services.rules.RuleParams documents each key).
    params = models.JSONField(_("params"), default=dict, blank=True)
    channels = models.ManyToManyField(
        Channel, blank=True, related_name="rules", verbose_name=_("channels")
    )
    subscribers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="notification_rules",
        verbose_name=_("subscribers"),
    )
    # At most one message per this many minutes (per jail for a per-jail burst); events in
    # between are held and grouped into the next message.
    rate_limit_minutes = models.PositiveIntegerField(_("rate limit minutes"), default=15)
    # How far the rule has read the archive (BanEvent.id) and what it remembers between runs
    # (when fail2ban went down, when each key last fired, which digest period was sent).
    cursor = models.BigIntegerField(default=0)
    memory = models.JSONField(default=dict, blank=True)
    last_fired_at = models.DateTimeField(_("last fired at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("rule")
        verbose_name_plural = _("rules")

    def __str__(self) -> str:
        return self.name


class Notification(models.Model):
    """One message to one destination: the outbox row, then its entry in the delivery log."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    rule = models.ForeignKey(
        Rule, null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("rule")
    )
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.SET_NULL, verbose_name=_("channel")
    )
    # A subscriber's own address (channel empty), or a copy of the channel's name for the log.
    recipient = models.CharField(_("recipient"), max_length=2000, blank=True)
    # Unique: the same event never makes two messages to one destination, whatever runs twice.
    dedupe_key = models.CharField(max_length=255, unique=True)
    subject = models.CharField(_("subject"), max_length=255)
    body_text = models.TextField(_("body text"))
    body_html = models.TextField(_("body html"), blank=True)
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), db_index=True)
    # A delivering runner's claim: rows it holds until claimed_until (a dead runner's expire).
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
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
