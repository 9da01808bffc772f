from django.urls import include, path

from jails.views import audit, bans, control, ip, jails, language, setup, site_settings, status

app_name = "jails"

urlpatterns = [
    # The ban history app (`/`, `/history/`): its names join this namespace (jails:dashboard).
    path("", include("jails.history.urls")),
    # fail2ban's configuration files (issue #11): namespace jails:configuration.
    path("config/", include("jails.configuration.urls")),
    # Blocklists (issue #13): namespace jails:blocklists.
    path("blocklists/", include("jails.blocklists.urls")),
    # Notifications (issue #14): namespace jails:notifications.
    path("notifications/", include("jails.notifications.urls")),
    # A jail on one host of the fleet (issue 12): the same views as /jails/<name>/..., with
    # the host; before the hosts pages' include, which must not shadow them.
    path("hosts/<str:host>/jails/<str:name>/", jails.jail_detail, name="host-jail-detail"),
    path("hosts/<str:host>/jails/<str:name>/ban/", bans.jail_ban, name="host-jail-ban"),
    path(
        "hosts/<str:host>/jails/<str:name>/bulk-ban/",
        bans.jail_bulk_ban,
        name="host-jail-bulk-ban",
    ),
    path("hosts/<str:host>/jails/<str:name>/unban/", bans.jail_unban, name="host-jail-unban"),
    path(
        "hosts/<str:host>/jails/<str:name>/unban-all/",
        bans.jail_unban_all,
        name="host-jail-unban-all",
    ),
    path("hosts/<str:host>/jails/<str:name>/ignore/", control.jail_ignore, name="host-jail-ignore"),
    path("hosts/<str:host>/jails/<str:name>/tune/", control.jail_tune, name="host-jail-tune"),
    path(
        "hosts/<str:host>/jails/<str:name>/control/",
        control.jail_control,
        name="host-jail-control",
    ),
    # One host's configuration pages (issue 12): namespace jails:host-configuration.
    path("hosts/<str:host>/config/", include("jails.configuration.host_urls")),
    path("hosts/<str:host>/server/", control.server_actions, name="host-server"),
    path("hosts/<str:host>/server/reload/", control.server_reload, name="host-server-reload"),
    path("hosts/<str:host>/server/unban-all/", bans.server_unban_all, name="host-server-unban-all"),
    # Managing the hosts (issue 12): namespace jails:hosts.
    path("hosts/", include("jails.hosts.urls")),
    path("jails/", jails.jail_list, name="jail-list"),
    path("jails/<str:name>/", jails.jail_detail, name="jail-detail"),
    # Operating jails (issue #4): every change is a POST, operators only.
    path("jails/<str:name>/ban/", bans.jail_ban, name="jail-ban"),
    path("jails/<str:name>/bulk-ban/", bans.jail_bulk_ban, name="jail-bulk-ban"),
    path("jails/<str:name>/unban/", bans.jail_unban, name="jail-unban"),
    path("jails/<str:name>/unban-all/", bans.jail_unban_all, name="jail-unban-all"),
    path("jails/<str:name>/ignore/", control.jail_ignore, name="jail-ignore"),
    path("jails/<str:name>/tune/", control.jail_tune, name="jail-tune"),
    path("jails/<str:name>/control/", control.jail_control, name="jail-control"),
    path("ip/", ip.ip_search, name="ip-search"),
    path("ip/<path:address>/unban/", ip.ip_unban, name="ip-unban"),
    path("ip/<path:address>/ban/", ip.ip_ban, name="ip-ban"),
    path("ip/<path:address>/ignore/", ip.ip_ignore, name="ip-ignore"),
    path("ip/<path:address>/", ip.ip_detail, name="ip-detail"),
    path("server/", control.server_actions, name="server"),
    path("server/reload/", control.server_reload, name="server-reload"),
    path("server/unban-all/", bans.server_unban_all, name="server-unban-all"),
    path("status-bar/", status.status_bar, name="status-bar"),
    # First-run setup, runtime settings, audit log (issue #3).
    path("setup/", setup.setup_wizard, name="setup"),
    path("settings/", site_settings.settings_edit, name="settings"),
    path("audit/", audit.audit_list, name="audit"),
    path("healthz", status.healthz, name="healthz"),
    # The language selector in the header (issue 16); the login page has it too.
    path("language/", language.language_set, name="language"),
    # Prometheus metrics (issue 15): jails:metrics:scrape, its own token or address list.
    path("", include("jails.metrics.urls")),
]
