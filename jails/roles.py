"""The three roles, as Django groups with the site's permissions."""

from __future__ import annotations

from typing import Any

VIEWER = "viewer"
OPERATOR = "operator"
ADMINISTRATOR = "administrator"

# Permission codenames (app label "jails" unless given as "app.codename").
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    VIEWER: ("view_fail2ban",),
    OPERATOR: ("view_fail2ban", "operate_jails"),
    ADMINISTRATOR: (
        "view_fail2ban",
        "operate_jails",
        "administer_site",
        "auth.add_user",
        "auth.change_user",
        "auth.delete_user",
        "auth.view_user",
        "auth.view_group",
    ),
}

PERM_VIEW = "jails.view_fail2ban"
PERM_OPERATE = "jails.operate_jails"
PERM_ADMINISTER = "jails.administer_site"


def roles_ensure(group_model: Any, permission_model: Any) -> None:
    """Create the three groups with exactly their permissions (idempotent)."""
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        permissions = []
        for codename in codenames:
            app_label, _, name = codename.rpartition(".")
            permissions.append(
                permission_model.objects.get(
                    content_type__app_label=app_label or "jails", codename=name
                )
            )
        group.permissions.set(permissions)
