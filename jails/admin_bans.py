"""Bans in the Django admin: the live bans page, and an unban action for archived bans.

"Live bans" (admin/jails/liveban/) lists what fail2ban bans right now, straight from the
server, with checkboxes and two actions: unban from the row's jail, or from every jail.
``unban_ban_events`` is the same action for archived bans (BanEvent) in the admin.
Both go through the ban service: validated, permission-checked (operate), and audited with
source "admin" (one record per jail acted on).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, ngettext

from jails.admin_readonly import ReadOnlyForViewersAdmin
from jails.apps import runtime_state
from jails.hosts.models import LOCAL_HOST
from jails.hosts.permissions import host_permitted, hosts_permitted
from jails.hosts.services import fleet
from jails.models import AuditEntry, LiveBan
from jails.requests import actor_from_request
from jails.roles import PERM_OPERATE, PERM_VIEW
from jails.services import bans as ban_service
from jails.services import jails as jail_service
from jails.services.bans import LineStatus
from jails.state import RuntimeState

PER_PAGE = 100
ACTIONS = {
    "unban": gettext_lazy("Unban the selected addresses from their jail"),
    "unban_everywhere": gettext_lazy("Unban the selected addresses from every jail"),
}


def unban_pairs(
    request: HttpRequest,
    pairs: Iterable[tuple[str, str]],
    *,
    everywhere: bool,
    state: RuntimeState | None = None,
) -> None:
    """Unban (jail, address) pairs, one service call (and audit record) per jail.

    `state`: scoped to the host to act on (jails.hosts); the local host when not given."""
    actor = actor_from_request(request, source=AuditEntry.Source.ADMIN)
    state = state or runtime_state()
    host = "" if state.snapshot.host == LOCAL_HOST else state.snapshot.host
    by_jail: dict[str | None, list[str]] = defaultdict(list)
    for jail, ip in pairs:
        by_jail[None if everywhere else jail].append(ip)
    # `target`, not `jail`: None (every jail) is a value here, unlike in the pairs above.
    for target, ips in by_jail.items():
        report = ban_service.ips_unban(state, jail=target, lines=sorted(set(ips)), actor=actor)
        if report.error:
            messages.error(request, _unban_failed(target, host, report.error))
            continue
        unbanned = report.count(LineStatus.UNBANNED)
        not_banned = report.count(LineStatus.NOT_BANNED)
        invalid = report.count(LineStatus.INVALID)
        text = _unbanned(target, host, unbanned)
        # Whole sentences each, so a translation orders its own words.
        if not_banned:
            text += " " + ngettext(
                "%(count)d was not banned any more.",
                "%(count)d were not banned any more.",
                not_banned,
            ) % {"count": not_banned}
        if invalid:
            text += " " + ngettext(
                "%(count)d invalid entry ignored.", "%(count)d invalid entries ignored.", invalid
            ) % {"count": invalid}
        if unbanned:
            messages.success(request, text)
        else:
            messages.info(request, text)


def _unban_failed(jail: str | None, host: str, error: str) -> str:
    """One whole sentence for each of jail / every jail, local host / named host."""
    values = {"jail": jail, "host": host, "error": error}
    if jail and host:
        return gettext("Unban from %(jail)s on %(host)s failed: %(error)s") % values
    if jail:
        return gettext("Unban from %(jail)s failed: %(error)s") % values
    if host:
        return gettext("Unban from every jail on %(host)s failed: %(error)s") % values
    return gettext("Unban from every jail failed: %(error)s") % values


def _unbanned(jail: str | None, host: str, count: int) -> str:
    if jail and host:
        text = ngettext(
            "Unbanned %(count)d address from %(jail)s on %(host)s.",
            "Unbanned %(count)d addresses from %(jail)s on %(host)s.",
            count,
        )
    elif jail:
        text = ngettext(
            "Unbanned %(count)d address from %(jail)s.",
            "Unbanned %(count)d addresses from %(jail)s.",
            count,
        )
    elif host:
        text = ngettext(
            "Unbanned %(count)d address from every jail on %(host)s.",
            "Unbanned %(count)d addresses from every jail on %(host)s.",
            count,
        )
    else:
        text = ngettext(
            "Unbanned %(count)d address from every jail.",
            "Unbanned %(count)d addresses from every jail.",
            count,
        )
    return text % {"count": count, "jail": jail, "host": host}


@admin.action(
    description=gettext_lazy("Unban the selected addresses in their jails (where still banned)")
)
def unban_ban_events(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> None:
    """Admin action for archived bans (BanEvent): unban each (jail, ip) in fail2ban, on the
    host that banned it (a host the user may not operate on, or no longer enabled, is
    reported and skipped)."""
    if not request.user.has_perm(PERM_OPERATE):
        raise PermissionDenied
    by_host: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for host_name, jail, ip in queryset.order_by().values_list("host", "jail", "ip").distinct():
        by_host[host_name].append((jail, ip))
    state = runtime_state()
    for host_name, pairs in sorted(by_host.items()):
        if not host_permitted(request.user, PERM_OPERATE, host_name):
            messages.error(
                request, gettext("Not permitted to unban on %(host)s.") % {"host": host_name}
            )
            continue
        try:
            host = fleet.host_get(host_name)
        except fleet.HostUnknown:
            messages.error(
                request,
                gettext("No enabled host named %(host)s: nothing unbanned there.")
                % {"host": host_name},
            )
            continue
        unban_pairs(request, pairs, everywhere=False, state=fleet.host_state(state, host))


@admin.register(LiveBan)
class LiveBanAdmin(ReadOnlyForViewersAdmin):
    """Not a table: fail2ban's current bans, with unban actions."""

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view(self.live_bans_view)
        return [path("", view, name="%s_%s_changelist" % info)]  # noqa: UP031

    def live_bans_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        state, host_name, host_names = self._host(request, PERM_VIEW)
        if request.method == "POST":
            return self._act(request, state, host_name)
        overview = jail_service.overview_get(state)
        jail = request.GET.get("jail", "")
        query = request.GET.get("q", "").strip()[:64]
        rows = []
        for summary in overview.jails:
            if (jail and summary.name != jail) or not summary.currently_banned:
                continue
            for ban in jail_service.jail_bans_list(state, name=summary.name, search=query):
                rows.append((summary.name, ban))
        page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Live bans"),
            "subtitle": gettext("What fail2ban bans right now"),
            "jails": [j.name for j in overview.jails],
            "jail": jail,
            "query": query,
            "page": page,
            "now": timezone.now(),
            "actions": ACTIONS.items(),
            "can_operate": request.user.has_perm(PERM_OPERATE)
            and host_permitted(request.user, PERM_OPERATE, host_name),
            # The host the page is about (a choice only when the site has other hosts).
            "host": host_name,
            "hosts": host_names if len(host_names) > 1 else [],
        }
        return TemplateResponse(request, "admin/jails/liveban/change_list.html", context)

    def _host(self, request: HttpRequest, perm: str) -> tuple[RuntimeState, str, list[str]]:
        """The state scoped to the page's host (`?host=`; by default the local host, or the
        first the user may view), its name, and the enabled hosts the user may view; 404 for
        another name."""
        permitted = hosts_permitted(request.user, perm)
        names = [
            host.name
            for host in fleet.hosts_enabled()
            if permitted is None or host.name in permitted
        ]
        default = LOCAL_HOST if LOCAL_HOST in names or not names else names[0]
        name = request.GET.get("host") or default
        if name not in names:
            raise Http404("No such host, or not one you may view.")
        return fleet.host_state(runtime_state(), fleet.host_get(name)), name, names

    def _act(self, request: HttpRequest, state: RuntimeState, host_name: str) -> HttpResponse:
        if not (
            request.user.has_perm(PERM_OPERATE)
            and host_permitted(request.user, PERM_OPERATE, host_name)
        ):
            raise PermissionDenied
        action = request.POST.get("action", "")
        selected = request.POST.getlist("_selected_action")
        if action not in ACTIONS:
            messages.warning(request, gettext("Choose an action."))
        elif not selected:
            messages.warning(request, gettext("Tick at least one ban."))
        else:
            # partition, not split: a (jail, ip) pair by type, split at the first "|" all the same.
            pairs = [(j, ip) for j, _, ip in (v.partition("|") for v in selected if "|" in v)]
            unban_pairs(request, pairs, everywhere=action == "unban_everywhere", state=state)
        return HttpResponseRedirect(request.get_full_path())
