from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:  # jails.jobs imports models: not importable while the registry loads
    from jails.jobs import JobSpec
    from jails.notifications.services.delivery import DeliveryConfig


class NotificationsConfig(AppConfig):
    name = "jails.notifications"
    label = "notifications"
    verbose_name = _("Notifications")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the receiver of blocklist_import_failed (the hook the blocklists app calls).
        from jails.notifications import signals  # noqa: F401

    def delivery_config(self) -> DeliveryConfig:
        """Delivery settings from JAILADMIN_NOTIFY_* / JAILADMIN_EMAIL_* (read only here)."""
        from django.conf import settings

        from jails.notifications.services.delivery import DeliveryConfig

        return DeliveryConfig(
            email_from=settings.DEFAULT_FROM_EMAIL,
            email_configured=settings.JAILADMIN_EMAIL_CONFIGURED,
            timeout=settings.JAILADMIN_NOTIFY_TIMEOUT,
            max_attempts=settings.JAILADMIN_NOTIFY_MAX_ATTEMPTS,
            backoff=timedelta(seconds=settings.JAILADMIN_NOTIFY_BACKOFF_SECONDS),
            site_url=settings.JAILADMIN_SITE_URL,
        )

    def periodic_jobs(self) -> list[JobSpec]:
        """The rules' evaluation and the outbox's delivery (jails.jobs.default_jobs)."""
        from jails.notifications.services.jobs import notification_jobs

        return notification_jobs(self.delivery_config())
