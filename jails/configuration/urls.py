"""The configuration pages under `/config/` (namespace `jails:configuration`), the local
host's; the same routes serve any host under `/hosts/<host>/config/` (host_urls.py)."""

from django.urls import path

from jails.configuration.views import config, filtertest, logs

app_name = "configuration"

urlpatterns = [
    path("", config.config_index, name="index"),
    path("jails/new/", config.jail_new, name="jail-new"),
    path("jails/<str:name>/", config.jail_config, name="jail"),
    path("jails/<str:name>/toggle/", config.jail_toggle, name="jail-toggle"),
    path("filters/", config.definition_list, {"directory": "filter.d"}, name="filters"),
    path("filters/new/", config.filter_new, name="filter-new"),
    path("actions/", config.definition_list, {"directory": "action.d"}, name="actions"),
    path(
        "filters/<str:name>/",
        config.definition_detail,
        {"directory": "filter.d"},
        name="filter",
    ),
    path(
        "actions/<str:name>/",
        config.definition_detail,
        {"directory": "action.d"},
        name="action",
    ),
    # The file is a query parameter (`?path=jail.d/sshd.local`): the host checks it again.
    path("file/", config.file_edit, name="file"),
    path("history/", config.file_history, name="history"),
    path("diff/", config.version_diff, name="diff"),
    path("versions/<int:pk>/restore/", config.version_restore, name="restore"),
    # The host switcher (a fleet's pages): the same page on the chosen host.
    path("switch-host/", config.host_switch, name="host-switch"),
    # Filter tester and log viewer (issue #11 items 5 and 6).
    path("filter-test/", filtertest.filter_test, name="filter-test"),
    path("filter-test/explain/", filtertest.ban_explain, name="ban-explain"),
    path("logs/", logs.log_view, name="logs"),
    path("logs/follow/", logs.log_follow, name="log-follow"),
]
