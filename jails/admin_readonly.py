"""The base classes for admin pages that viewers may read and nobody edits in place."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest

from jails.hosts.permissions import host_permitted, hosts_permitted
from jails.roles import PERM_VIEW


class ReadOnlyForViewersAdmin(admin.ModelAdmin):
    """Visible to staff with the view permission; no add, change or delete (actions only)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_staff and request.user.has_perm(PERM_VIEW))

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class HostLimitedAdmin(admin.ModelAdmin):
    """Rows that each belong to one host (`host_field` holds a Host's name).

    A user whose view role is limited to some hosts (jails.hosts.permissions) sees only those
    hosts' rows: the changelist, its filters' choices and its actions (Django applies an
    action to the selected rows of this queryset only, so another host's row cannot be
    slipped in by its id) are all built on get_queryset; another host's row answers 404 like
    a row that does not exist, so its existence is not given away either.
    """

    host_field = "host"
    # Rows that concern no host (blank): shown to every reader, as on the /audit/ page.
    blank_host_shared = False

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_staff and request.user.has_perm(PERM_VIEW))

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        permitted = hosts_permitted(request.user, PERM_VIEW)
        if permitted is None:
            return queryset
        names = [*permitted, ""] if self.blank_host_shared else list(permitted)
        return queryset.filter(**{f"{self.host_field}__in": names})

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is None and hosts_permitted(request.user, PERM_VIEW) is not None:
            # Django's own answer (a redirect saying "perhaps it was deleted") would tell a
            # limited user that the row exists on some host: a plain 404 tells nothing.
            raise Http404("No such row, or not on a host you may view.")
        return obj

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if not self.has_module_permission(request):
            return False
        if obj is None:
            return True
        host = str(getattr(obj, self.host_field))
        return (self.blank_host_shared and not host) or host_permitted(
            request.user, PERM_VIEW, host
        )


class HostRowsAdmin(HostLimitedAdmin, ReadOnlyForViewersAdmin):
    """Read-only rows of one host each (history: archived bans, audit records, configuration
    versions, import runs), limited to the hosts the user may view."""
