"""The hosts pages' URLs (under /hosts/)."""

from __future__ import annotations

from django.urls import URLPattern

app_name = "hosts"

urlpatterns: list[URLPattern] = []
