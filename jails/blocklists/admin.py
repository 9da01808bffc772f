"""Blocklist sources and their import runs in the Django admin.

Sources: viewers look, administrators add, change and remove them (removal goes through the
service, so what a source alone banned is unbanned, and it is audited like the page's).
Import runs are written only by imports: read-only.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from jails.admin import AuditedAdminMixin
from jails.admin_readonly import ReadOnlyForViewersAdmin
from jails.apps import runtime_state
from jails.blocklists.models import BlocklistSource, ImportRun
from jails.blocklists.services.imports import ImportRefused, source_import
from jails.blocklists.services.sources import source_delete
from jails.jobs import runner_id
from jails.models import AuditEntry
from jails.requests import actor_from_request
from jails.roles import PERM_ADMINISTER, PERM_OPERATE, PERM_VIEW


@admin.action(description="Import the selected sources now (confirmed ones)")
def import_now(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    if not request.user.has_perm(PERM_OPERATE):
        raise PermissionDenied
    actor = actor_from_request(request, source=AuditEntry.Source.ADMIN)
    for source in queryset:
        try:
            run = source_import(
                runtime_state(), source=source, actor=actor, trigger="admin", owner=runner_id()
            )
        except ImportRefused as exc:
            messages.error(request, str(exc))
            continue
        level = messages.ERROR if run.status == ImportRun.Status.FAILED else messages.SUCCESS
        messages.add_message(
            request,
            level,
            f"{source.name}: {run.get_status_display().lower()}, {run.banned} banned, "
            f"{run.unbanned} unbanned{': ' + run.errors if run.errors else ''}",
        )


@admin.register(BlocklistSource)
class BlocklistSourceAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "url",
        "jail",
        "schedule",
        "enabled",
        "confirmed",
        "consecutive_failures",
        "last_run_at",
    )
    list_filter = ("enabled", "schedule", "jail")
    search_fields = ("name", "url")
    readonly_fields = ("confirmed", "last_run_at", "next_run_at", "consecutive_failures", "etag")
    actions = [import_now]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_staff and request.user.has_perm(PERM_VIEW))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_staff and request.user.has_perm(PERM_ADMINISTER))

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_add_permission(request)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change and {"url", "jail"} & set(form.changed_data):
            # A new list or jail: the next import waits for a new preview, like on the page.
            obj.confirmed = False
            obj.etag = obj.last_modified = obj.content_hash = ""
        super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        source_delete(
            runtime_state(),
            source=obj,
            actor=actor_from_request(request, source=AuditEntry.Source.ADMIN),
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyForViewersAdmin):
    list_display = (
        "started_at",
        "label",
        "jail",
        "status",
        "http_status",
        "lines",
        "banned",
        "already_banned",
        "unbanned",
        "invalid",
        "skipped",
        "actor",
    )
    list_filter = ("status", "jail", "trigger")
    search_fields = ("label",)
    ordering = ("-started_at", "-id")
