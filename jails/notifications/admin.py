"""Channels, rules and the delivery log in the Django admin.

Secrets are never shown: the channel form has no secret field (a webhook's key is made on
/notifications/, an Apprise URL entered there), only whether one is set. The delivery log
is read-only: rows are written by the job runner alone.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from jails.notifications.models import Channel, Notification, Rule
from jails.requests import actor_from_request
from jails.roles import PERM_ADMINISTER
from jails.services.audit import audit_record


class AdministratorsAdmin(admin.ModelAdmin):
    """For staff administrators only (the role, not Django's model permissions); audited."""

    audit_noun = ""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_staff and request.user.has_perm(PERM_ADMINISTER))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_module_permission(request)

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit_record(
            actor=actor_from_request(request, source="admin"),
            action=f"notify_{self.audit_noun}_{'update' if change else 'create'}",
            parameters={self.audit_noun: str(obj), "fields": ",".join(form.changed_data)},
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        name = str(obj)
        super().delete_model(request, obj)
        audit_record(
            actor=actor_from_request(request, source="admin"),
            action=f"notify_{self.audit_noun}_delete",
            parameters={self.audit_noun: name},
        )


@admin.register(Channel)
class ChannelAdmin(AdministratorsAdmin):
    audit_noun = "channel"
    list_display = ("name", "kind", "enabled", "target", "secret_set")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    exclude = ("secret",)
    readonly_fields = ("kind", "secret_set", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # on /notifications/: a webhook's key is made and shown once there

    @admin.display(boolean=True, description=_("secret set"))
    def secret_set(self, obj: Channel) -> bool:
        return obj.secret_set


@admin.register(Rule)
class RuleAdmin(AdministratorsAdmin):
    audit_noun = "rule"
    list_display = ("name", "kind", "enabled", "rate_limit_minutes", "last_fired_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    filter_horizontal = ("channels", "subscribers")
    readonly_fields = ("cursor", "memory", "last_fired_at", "created_at")


@admin.register(Notification)
class NotificationAdmin(AdministratorsAdmin):
    """The delivery log: read-only, written by the job runner alone."""

    list_display = ("created_at", "rule", "recipient", "subject", "status", "attempts", "sent_at")
    list_filter = ("status", "rule")
    search_fields = ("subject", "recipient")
    ordering = ("-created_at", "-id")
    exclude = ("payload", "body_html")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
