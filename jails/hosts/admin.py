"""The hosts in the Django admin.

Administrators add, change and remove hosts here as on /hosts/: an SSH host added here gets
its key pair, a new destination drops the confirmed host key, removal goes through the
service (the local host cannot be removed). The private key is in no form and no page; the
public key and the host key's fingerprint are read-only (a host key is confirmed after a
scan, on the host's page or with `manage.py hosts confirm-key`). Groups are given hosts
here, and on each group's own page.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext, gettext_lazy

from jails.admin import AuditedAdminMixin
from jails.admin_readonly import HostLimitedAdmin
from jails.agent import ssh
from jails.apps import runtime_state
from jails.fail2ban import InvalidArgument
from jails.hosts.models import Host
from jails.hosts.permissions import hosts_permitted
from jails.hosts.services import hosts as host_service
from jails.models import AuditEntry
from jails.requests import actor_from_request
from jails.roles import PERM_ADMINISTER, PERM_VIEW


class HostAdminForm(forms.ModelForm):
    class Meta:
        model = Host
        fields = ["name", "kind", "address", "time_zone", "enabled", "note", "groups"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "kind" in self.fields and not (self.instance.pk and self.instance.is_local):
            # There is one local host (the migration's): no second one is added here.
            kind = self.fields["kind"]
            assert isinstance(kind, forms.ChoiceField)
            kind.choices = [c for c in Host.Kind.choices if c[0] != Host.Kind.LOCAL]

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"])
        if self.instance.pk is None:
            try:
                host_service.name_check(name)
            except InvalidArgument as exc:
                raise forms.ValidationError(str(exc)) from None
        return name

    def clean_time_zone(self) -> str:
        try:
            return host_service.time_zone_check(str(self.cleaned_data.get("time_zone") or ""))
        except InvalidArgument as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind", self.instance.kind)
        if kind != Host.Kind.LOCAL and "address" in data:
            try:
                data["address"] = host_service.address_check(kind, str(data["address"]))
            except InvalidArgument as exc:
                self.add_error("address", str(exc))
        return data


@admin.register(Host)
class HostAdmin(AuditedAdminMixin, HostLimitedAdmin):
    # A user limited to some hosts sees those hosts' rows alone (HostLimitedAdmin).
    host_field = "name"
    form = HostAdminForm
    list_display = ("name", "kind", "address", "enabled", "unreachable_since")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "address", "note")
    filter_horizontal = ("groups",)
    readonly_fields = (
        "ssh_public_key",
        "host_key_fingerprint",
        "unreachable_since",
        "last_error",
        "last_seen",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "kind", "address", "time_zone", "enabled", "note")}),
        (
            "SSH",
            {
                "fields": ("ssh_public_key", "host_key_fingerprint"),
                "description": gettext_lazy(
                    "The site's key for this host (its public half) and the host's "
                    "confirmed key. The private key is never shown."
                ),
            },
        ),
        (
            gettext_lazy("Limited groups"),
            {
                "fields": ("groups",),
                "description": gettext_lazy(
                    "A group given hosts holds its permissions on those hosts only; "
                    "a group given none holds them everywhere."
                ),
            },
        ),
        (
            gettext_lazy("Reachability"),
            {"fields": ("unreachable_since", "last_error", "last_seen")},
        ),
    )

    @admin.display(description=gettext_lazy("Host key"))
    def host_key_fingerprint(self, obj: Host) -> str:
        return host_service.host_key_fingerprint(obj) or gettext("not confirmed")

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if isinstance(obj, Host) and obj.pk is not None:
            fields.append("kind")  # a host's kind decides its keys: add another host instead
            if obj.is_local:
                fields += ["name", "address", "time_zone"]
        return fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Administrators of every host only: this form holds the groups a host limits, so an
        # administrator limited to some hosts could lift their own limit here (/hosts/ lets
        # them edit their hosts' address and note, never the groups).
        return bool(
            request.user.is_staff
            and request.user.has_perm(PERM_ADMINISTER)
            and hosts_permitted(request.user, PERM_ADMINISTER) is None
        )

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if isinstance(obj, Host) and obj.is_local:
            return False
        return self.has_add_permission(request)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        assert isinstance(obj, Host)
        if obj.kind == Host.Kind.SSH and not obj.ssh_private_key:
            obj.ssh_private_key, obj.ssh_public_key = ssh.key_pair_generate(f"jailadmin-{obj.name}")
        if change and obj.kind == Host.Kind.SSH and "address" in form.changed_data:
            obj.ssh_host_key = ""  # another destination: its key is confirmed anew
        super().save_model(request, obj, form, change)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        try:
            host_service.host_remove(
                runtime_state(),
                host=obj,
                actor=actor_from_request(request, source=AuditEntry.Source.ADMIN),
            )
        except host_service.HostRefused as exc:
            messages.error(request, str(exc))

    def render_delete_form(self, request: HttpRequest, context: dict[str, Any]) -> Any:
        # What the removal keeps (history) and removes (live bookkeeping), shown above
        # Django's list of rows (admin/hosts/host/delete_confirmation.html).
        obj = context.get("object")
        if isinstance(obj, Host) and not obj.is_local:
            context["removal"] = host_service.host_removal(obj)
        return super().render_delete_form(request, context)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    def log_deletions(self, request: HttpRequest, queryset: QuerySet | list[Model]) -> Any:
        # The local host is refused by delete_model: no record of a removal that never was.
        kept = [obj for obj in queryset if not (isinstance(obj, Host) and obj.is_local)]
        return super().log_deletions(request, kept)


class HostGroupInline(admin.TabularInline):
    """On a group's page: the hosts it is limited to (none: everywhere)."""

    model = Host.groups.through
    extra = 0
    verbose_name = gettext_lazy("host this group is limited to")
    verbose_name_plural = gettext_lazy("Hosts this group is limited to (none: every host)")

    # The auto-created through model has no permissions of its own: the site's roles decide.
    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return bool(request.user.is_staff and request.user.has_perm(PERM_VIEW))

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return bool(request.user.is_staff and request.user.has_perm(PERM_ADMINISTER))

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.has_add_permission(request, obj)


# The group admin is the core's (jails.admin, an audited GroupAdmin); this app only adds the
# hosts inline to it. jails.hosts comes after jails in INSTALLED_APPS, so the core's is there.
_group_admin = type(admin.site.get_model_admin(Group))
admin.site.unregister(Group)
admin.site.register(
    Group,
    type(
        "HostsGroupAdmin",
        (_group_admin,),
        {"inlines": [*_group_admin.inlines, HostGroupInline]},
    ),
)


class HostsUserAdminMixin:
    """Users can be changed only by administrators of every host, and made superusers only
    by a superuser.

    The administrator role holds `auth.change_user`, and the stock user admin edits a user's
    groups, permissions and superuser flag. An administrator limited to some hosts could
    otherwise put themselves in an unlimited group (or take over an unlimited administrator
    by setting their password) and so lift their own limit.
    """

    def _unlimited(self, request: HttpRequest) -> bool:
        return hosts_permitted(request.user, PERM_ADMINISTER) is None

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._unlimited(request) and super().has_add_permission(request, *args)  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._unlimited(request) and super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._unlimited(request) and super().has_delete_permission(request, obj)  # type: ignore[misc]

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        if not request.user.is_superuser:
            fields.append("is_superuser")
        return fields


# The user admin is the core's (an audited UserAdmin); wrapped here like the group admin.
_user_model = get_user_model()
_user_admin = type(admin.site.get_model_admin(_user_model))
admin.site.unregister(_user_model)
admin.site.register(_user_model, type("HostsUserAdmin", (HostsUserAdminMixin, _user_admin), {}))
