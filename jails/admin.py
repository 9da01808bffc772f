"""The Django admin: runtime settings, the read-only audit log, users and groups.

Every change made in the admin is on record in the audit log: ModelAdmins that save
through a service (SiteSettingsAdmin) write it there; the others inherit AuditedAdminMixin,
which records each addition, change and deletion the admin itself logs.
"""

from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db.models import Model, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.translation import gettext

from jails.admin_readonly import HostRowsAdmin, ReadOnlyForViewersAdmin
from jails.apps import runtime_state
from jails.forms import SiteSettingsForm
from jails.models import AuditEntry, ScheduledJob, SiteSettings
from jails.requests import actor_from_request, session_store
from jails.roles import PERM_ADMINISTER
from jails.services import settings as settings_service
from jails.services.audit import audit_record
from jails.sessions import SessionStorageUnavailable


class AuditedAdminMixin:
    """Writes an audit record for every addition, change and deletion made in the admin.

    Always listed before a ModelAdmin, whose log_* methods its super() calls reach; mypy
    sees only `object` above the mixin, hence the `type: ignore[misc]` on those calls.
    """

    def _audit(self, request: HttpRequest, action: str, obj: Model, message: Any = "") -> None:
        audit_record(
            actor=actor_from_request(request, source=AuditEntry.Source.ADMIN),
            action=action,
            parameters={
                "model": obj._meta.label_lower,
                "object_id": str(obj.pk),
                "object": str(obj)[:200],
                "message": message,
            },
        )

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        self._audit(request, "admin_add", obj, message)
        return super().log_addition(request, obj, message)  # type: ignore[misc]

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> Any:
        self._audit(request, "admin_change", obj, message)
        return super().log_change(request, obj, message)  # type: ignore[misc]

    def log_deletions(self, request: HttpRequest, queryset: QuerySet | list[Model]) -> Any:
        for obj in queryset:
            self._audit(request, "admin_delete", obj)
        return super().log_deletions(request, queryset)  # type: ignore[misc]


def _is_administrator(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff and user.has_perm(PERM_ADMINISTER))


@admin.register(SiteSettings)
class SiteSettingsAdmin(admin.ModelAdmin):
    """The one settings row: same form and live checks as /settings/, saved by its service."""

    form = SiteSettingsForm
    list_display = (
        "__str__",
        "fail2ban_socket",
        "fail2ban_agent",
        "session_cache",
        "version",
        "updated_at",
    )
    readonly_fields = ("version", "updated_at")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_administrator(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return _is_administrator(request)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return _is_administrator(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the row is created by the first-run setup

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Model, form: ModelForm, change: bool) -> None:
        assert isinstance(form, SiteSettingsForm)
        values = form.site_values()
        result = settings_service.settings_update(
            runtime_state(),
            values=values,
            actor=actor_from_request(request, source=AuditEntry.Source.ADMIN),
        )
        if result.storage_changed:
            try:
                settings_service.storage_switch_keep_session(
                    runtime_state(), session=session_store(request), values=values
                )
            except SessionStorageUnavailable as exc:
                messages.warning(
                    request,
                    gettext("Your session could not be copied (%(error)s): log in again.")
                    % {"error": exc},
                )


@admin.register(AuditEntry)
class AuditEntryAdmin(HostRowsAdmin):
    """The audit log, read-only for everybody (nobody edits or deletes history); a user
    limited to some hosts reads their records and those that concern no host."""

    blank_host_shared = True

    list_display = (
        "created_at",
        "actor",
        "source",
        "address",
        "action",
        "host",
        "jail",
        "ip_count",
        "ok",
    )
    list_filter = ("action", "host", "source", "ok", "created_at")
    search_fields = ("actor", "action", "host", "jail", "error")
    date_hierarchy = "created_at"
    list_select_related = ("user",)

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        return [field.name for field in AuditEntry._meta.fields]


# Users, groups and django-axes' records (unlocking = deleting an access attempt): the stock
# admins, with every change on record.
for model, base in (
    (get_user_model(), UserAdmin),
    (Group, GroupAdmin),
    (AccessAttempt, AccessAttemptAdmin),
    (AccessLog, AccessLogAdmin),
    (AccessFailureLog, AccessFailureLogAdmin),
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, type(f"Audited{base.__name__}", (AuditedAdminMixin, base), {}))


# The job runner's jobs (jails.jobs), read-only: the runner alone writes their rows.
@admin.register(ScheduledJob)
class ScheduledJobAdmin(ReadOnlyForViewersAdmin):
    list_display = (
        "name",
        "last_ok",
        "last_finished_at",
        "next_run_at",
        "locked_by",
        "run_count",
        "last_message",
    )


# Live bans and the unban action for archived bans (issue #4). The ban archive's admin is the
# history app's own (jails.history.admin, found by the admin's autodiscovery).
from jails import admin_bans  # noqa: E402, F401
