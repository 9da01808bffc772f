"""The ban archive in the Django admin (read-only).

Archived bans are written only by the sync and removed only by the retention purge, so the
admin may look and filter but not add, edit or delete; its one action unbans the selected
addresses in fail2ban (jails.admin_bans.unban_ban_events, through the ban service).
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from jails.admin_bans import unban_ban_events
from jails.admin_readonly import HostRowsAdmin
from jails.history.models import BanEvent


@admin.register(BanEvent)
class BanEventAdmin(HostRowsAdmin):
    list_display = (
        "banned_at",
        "host",
        "jail",
        "ip",
        "origin",
        "banned_by",
        "country_code",
        "as_name",
    )
    list_filter = ("host", "origin", "jail", "country_code")
    search_fields = ("=ip", "=network", "=jail", "=host")
    ordering = ("-timeofban", "-id")
    show_full_result_count = False  # a million rows: no second COUNT(*) per page
    actions = [unban_ban_events]
    readonly_fields = ("banned_at", "log_lines")
    exclude = ("matches",)

    @admin.display(description=_("matched log lines"))
    def log_lines(self, obj: BanEvent) -> str:
        # Attacker-controlled text: format_html_join escapes every line.
        return format_html_join(
            "", "<div><code>{}</code></div>", ((line,) for line in obj.match_lines)
        )
