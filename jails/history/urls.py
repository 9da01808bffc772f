"""The history's pages. Included by jails.urls without a namespace of its own, so the names stay
`jails:dashboard`, `jails:history` and `jails:history-export` (and the paths `/`, `/history/`)."""

from django.urls import path

from jails.history.views import archive

urlpatterns = [
    path("", archive.dashboard, name="dashboard"),
    # Ban history (issue #5): archive, filters, CSV export of the filtered set.
    path("history/", archive.history_list, name="history"),
    path("history/export.csv", archive.history_export, name="history-export"),
]
