"""The hosts pages' URLs (under /hosts/, namespace jails:hosts).

Only these shapes: /hosts/<host>/jails/<name>/… belongs to the jail pages (jails/urls.py).
"""

from __future__ import annotations

from django.urls import URLPattern, path

from jails.hosts.views import hosts

app_name = "hosts"

urlpatterns: list[URLPattern] = [
    path("", hosts.host_list, name="list"),
    # "add" is a reserved host name (jails.hosts.services.hosts.RESERVED_NAMES).
    path("add/", hosts.host_add, name="add"),
    path("<str:name>/", hosts.host_detail, name="detail"),
    path("<str:name>/edit/", hosts.host_edit, name="edit"),
    path("<str:name>/check/", hosts.host_check, name="check"),
    path("<str:name>/confirm-key/", hosts.host_confirm_key, name="confirm-key"),
    path("<str:name>/remove/", hosts.host_remove, name="remove"),
]
