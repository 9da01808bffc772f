"""The one base class for admin pages that viewers may read and nobody edits in place."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

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
