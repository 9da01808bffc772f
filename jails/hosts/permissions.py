"""Per-host permissions: a group given hosts grants its permissions on those hosts only.

The three roles stay as they are (jails.roles). An administrator may give a group some
hosts (Host.groups): that group's permissions then hold on those hosts alone. A group with
no hosts grants its permissions on every host, so a site that never assigns hosts behaves
exactly as before. Superusers may do everything everywhere.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group

from jails.hosts.models import Host


def hosts_permitted(user: Any, perm: str) -> set[str] | None:
    """The host names on which `user` holds `perm`; None means every host."""
    if not user.is_active:
        return set()
    if user.is_superuser:
        return None
    app_label, _, codename = perm.partition(".")
    groups = Group.objects.filter(
        user=user, permissions__codename=codename, permissions__content_type__app_label=app_label
    ).distinct()
    names: set[str] = set()
    for group in groups:
        hosts = list(Host.objects.filter(groups=group).values_list("name", flat=True))
        if not hosts:
            return None
        names.update(hosts)
    # Permissions given to the user directly (not through a group) hold everywhere.
    if user.user_permissions.filter(codename=codename, content_type__app_label=app_label).exists():
        return None
    return names


def host_permitted(user: Any, perm: str, host_name: str) -> bool:
    """Whether `user` holds `perm` on the host called `host_name`."""
    permitted = hosts_permitted(user, perm)
    return permitted is None or host_name in permitted
