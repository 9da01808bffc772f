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
from django.utils.translation import gettext, gettext_lazy

from jails.admin import AuditedAdminMixin
from jails.admin_readonly import HostRowsAdmin
from jails.apps import runtime_state
from jails.blocklists.models import BlocklistSource, ImportRun
from jails.blocklists.services.imports import (
    ImportRefused,
    source_entries_hosts,
    source_import,
    source_targets,
)
from jails.blocklists.services.sources import source_delete
from jails.hosts.models import Host
from jails.hosts.permissions import hosts_permitted
from jails.hosts.services import fleet
from jails.jobs import runner_id
from jails.models import AuditEntry
from jails.requests import actor_from_request
from jails.roles import PERM_ADMINISTER, PERM_OPERATE, PERM_VIEW


@admin.action(description=gettext_lazy("Import the selected sources now (confirmed ones)"))
def import_now(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> None:
    if not request.user.has_perm(PERM_OPERATE):
        raise PermissionDenied
    actor = actor_from_request(request, source=AuditEntry.Source.ADMIN)
    allowed = hosts_permitted(request.user, PERM_OPERATE)
    for source in queryset:
        targets = source_targets(source)
        permitted = [host for host in targets if allowed is None or host.name in allowed]
        if len(permitted) < len(targets):
            left_out = ", ".join(host.name for host in targets if host not in permitted)
            messages.warning(
                request,
                gettext("%(source)s: not imported on %(hosts)s (no permission)")
                % {"source": source.name, "hosts": left_out},
            )
            if not permitted:
                continue
        try:
            runs = source_import(
                runtime_state(),
                source=source,
                actor=actor,
                trigger="admin",
                owner=runner_id(),
                hosts=permitted if len(permitted) < len(targets) else None,
            )
        except ImportRefused as exc:
            messages.error(request, str(exc))
            continue
        for run in runs:
            level = messages.ERROR if run.status == ImportRun.Status.FAILED else messages.SUCCESS
            values = {
                "source": source.name,
                "host": run.host,
                "status": run.get_status_display().lower(),
                "banned": run.banned,
                "unbanned": run.unbanned,
            }
            if len(runs) > 1:
                text = gettext(
                    "%(source)s on %(host)s: %(status)s, %(banned)d banned, %(unbanned)d unbanned"
                )
            else:
                text = gettext("%(source)s: %(status)s, %(banned)d banned, %(unbanned)d unbanned")
            text %= values
            # run.errors is a stored record (database text, in English): shown as it is.
            messages.add_message(request, level, f"{text}: {run.errors}" if run.errors else text)


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
        return self.has_add_permission(request) and self._administers_hosts_of(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and not self._administers_hosts_of(request, obj):
            # What decides what is banned stays as it is on hosts this user does not
            # administer (the schedule, the switch and their own hosts remain theirs).
            fields += ["url", "jail", "allow_private"]
        return fields

    def _administers_hosts_of(self, request: HttpRequest, obj: Model | None) -> bool:
        """Whether the user administers every host the source imports on or holds bans on:
        its list, its jail or its removal changes what is banned there (as on the page)."""
        allowed = hosts_permitted(request.user, PERM_ADMINISTER)
        if allowed is None or not isinstance(obj, BlocklistSource):
            return True
        involved = {host.name for host in source_targets(obj)}
        involved.update(source_entries_hosts(obj))
        return involved <= allowed

    def get_exclude(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        excluded = list(super().get_exclude(request, obj) or [])
        if not fleet.is_fleet():
            excluded += ["hosts", "all_hosts"]  # a single-host site's form, as it always was
        elif hosts_permitted(request.user, PERM_ADMINISTER) is not None:
            excluded.append("all_hosts")  # only for who may administer every host
        return excluded

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "hosts":
            allowed = hosts_permitted(request.user, PERM_ADMINISTER)
            queryset = Host.objects.order_by("name")
            if allowed is not None:
                queryset = queryset.filter(name__in=allowed)
            kwargs["queryset"] = queryset
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        allowed = hosts_permitted(request.user, PERM_ADMINISTER)
        hidden: list[Host] = []
        if change and allowed is not None and "hosts" in form.fields:
            # Targets this user may not administer were not offered: they stay as they were.
            hidden = list(form.instance.hosts.exclude(name__in=allowed))
        super().save_related(request, form, formsets, change)
        if hidden:
            form.instance.hosts.add(*hidden)

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
class ImportRunAdmin(HostRowsAdmin):
    list_display = (
        "started_at",
        "label",
        "host",
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
    list_filter = ("status", "host", "jail", "trigger")
    search_fields = ("label",)
    ordering = ("-started_at", "-id")
