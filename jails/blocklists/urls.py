"""The blocklist pages under `/blocklists/` (namespace `jails:blocklists`)."""

from django.urls import path

from jails.blocklists.views import sources

app_name = "blocklists"

urlpatterns = [
    path("", sources.source_list, name="list"),
    path("add/", sources.source_add, name="add"),
    # Two segments: never taken for a source's page (`<slug:name>/`).
    path("jail/create/", sources.jail_create, name="jail-create"),
    path("<slug:name>/", sources.source_detail, name="detail"),
    path("<slug:name>/preview/", sources.source_preview, name="preview"),
    path("<slug:name>/import/", sources.source_import, name="import"),
    path("<slug:name>/delete/", sources.source_delete, name="delete"),
]
