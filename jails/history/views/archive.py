"""The dashboard (`/`) and the ban history (`/history/`, CSV export).

All three read the archive only (never fail2ban's socket, except the status bar) through
jails.history.selectors.archive; figures come from the summaries the sync keeps, so a year of bans
costs a few small queries.
"""

from __future__ import annotations

import csv
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse
from django.utils import dateformat, timezone, translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from jails.apps import runtime_state
from jails.history import charts
from jails.history.countries import country_name
from jails.history.forms import WINDOWS, HistoryFilterForm
from jails.history.models import BanEvent
from jails.history.selectors import archive as history_selectors
from jails.history.selectors.archive import Dashboard, HistoryFilter
from jails.hosts.permissions import hosts_permitted
from jails.hosts.services import fleet
from jails.requests import HtmxHttpRequest
from jails.roles import PERM_VIEW
from jails.state import RuntimeState
from jails.views.common import page_number

DASHBOARD_REFRESH_SECONDS = 60  # the archive changes once a minute (the sync's interval)
SORT_LABELS = {
    "time": gettext_lazy("Time"),
    "jail": gettext_lazy("Jail"),
    "ip": gettext_lazy("Address"),
    "country": gettext_lazy("Country"),
}
FLEET_SORT_LABELS = {"time": gettext_lazy("Time"), "host": gettext_lazy("Host"), **SORT_LABELS}
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# --- Filters --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    """The parsed request: the filter for the service, plus what the page shows about it."""

    form: HistoryFilterForm
    window: str
    filter: HistoryFilter
    search: Any | None
    sort: str
    zone: ZoneInfo
    # More hosts than the local one: the pages show a host filter and column.
    fleet: bool = False
    # The hosts the user may view (None: every host), whatever the host filter says.
    permitted: frozenset[str] | None = None

    @property
    def window_label(self) -> str:
        if self.window == "custom":
            start = datetime.fromtimestamp(self.filter.start, tz=self.zone)
            end = datetime.fromtimestamp(self.filter.end - 1, tz=self.zone)
            return gettext("%(start)s to %(end)s") % {
                "start": f"{start:%Y-%m-%d}",
                "end": f"{end:%Y-%m-%d}",
            }
        return str(WINDOWS[self.window][0])

    @property
    def window_text(self) -> str:
        """The window inside a sentence ("last 7 days", "42 bans · everything"): the label,
        except "Everything", which is lower-cased there; a language that capitalises its
        nouns keeps its own spelling (the label is not lower-cased as a whole)."""
        if self.window == "all":
            return gettext("everything")
        return self.window_label

    def params(self, **changes: str | None) -> str:
        """The query string of this page with some parameters changed (None removes one)."""
        values: dict[str, str] = {}
        data = self.form.data
        for key in ("window", "start", "end", "host", "jail", "country", "origin", "q", "sort"):
            value = data.get(key, "")
            if value and key not in self.form.errors:
                values[key] = str(value)
        for key, value in changes.items():
            if value is None or value == "":
                values.pop(key, None)
            else:
                values[key] = value
        return "?" + urlencode(values) if values else "?"


def _zone(state: RuntimeState) -> ZoneInfo:
    try:
        return ZoneInfo(state.settings.display_time_zone)
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


def hosts_scope(host: str, permitted: frozenset[str] | None) -> tuple[str, ...] | None:
    """The hosts whose bans a page shows: the chosen one if the user may view it, else those
    the user may view (None: every host; empty: none)."""
    if host:
        return (host,) if permitted is None or host in permitted else ()
    return None if permitted is None else tuple(sorted(permitted))


def minute_last_second(moment: datetime) -> datetime:
    """The last second of ``moment``'s minute: windows relative to now end with the minute.

    So a window ("last 7 days") is the same one for a whole minute and its figures can be kept
    for that minute (jails.history.figures_cache); a ban never starts after now, so the
    window's exclusive end at the next minute holds no more bans than one second past now.
    """
    return moment.replace(second=59, microsecond=0)


def filters_from_request(
    request: HtmxHttpRequest, state: RuntimeState, *, default_window: str
) -> Filters:
    """Read window, filters, search and sort from the query string; bad values are ignored."""
    allowed = hosts_permitted(request.user, PERM_VIEW)
    permitted = None if allowed is None else frozenset(allowed)
    form = HistoryFilterForm(request.GET)
    form.is_valid()
    data = {k: v for k, v in form.cleaned_data.items() if k not in form.errors}
    if form.non_field_errors():
        data["window"] = default_window
    window = data.get("window") or default_window
    zone = _zone(state)
    now = minute_last_second(timezone.now())
    if window == "custom":
        start_day: date = data["start"]
        end_day: date = data["end"]
        start = int(datetime.combine(start_day, time.min, tzinfo=zone).timestamp())
        end = int(datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=zone).timestamp())
    elif window == "all":
        start, end = history_selectors.window_everything(now=now)
    else:
        days = WINDOWS[window][1]
        assert days is not None
        start, end = history_selectors.window_ending_now(days, now=now)
    sort = data.get("sort") or "-time"
    if sort.lstrip("-") not in history_selectors.HISTORY_SORTS:
        sort = "-time"
    in_fleet = fleet.is_fleet()
    # A single-host site ignores ?host= (there is nothing to choose); permissions still hold.
    host = (data.get("host") or "") if in_fleet else ""
    return Filters(
        form=form,
        window=window,
        filter=HistoryFilter(
            start=start,
            end=end,
            jail=data.get("jail") or "",
            country=data.get("country") or "",
            origin=data.get("origin") or "",
            hosts=hosts_scope(host, permitted),
        ),
        search=data.get("q"),
        sort=sort,
        zone=zone,
        fleet=in_fleet,
        permitted=permitted,
    )


# --- Dashboard ------------------------------------------------------------------------------------
def _bucket_label(epoch: int, grain: str, zone: ZoneInfo) -> str:
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    # dateformat: month abbreviations in the request's language ("Dec" in English).
    if grain == "hour":
        return dateformat.format(moment.astimezone(zone), "d M H:i")
    if grain == "day":
        return dateformat.format(moment, "d M")
    return dateformat.format(moment, "M Y")


def _country_label(code: str, names: dict[str, str]) -> str:
    if not code:
        return gettext("Unknown")
    return f"{country_name(code, names.get(code, code))} ({code})"


def dashboard_charts(board: Dashboard, filters: Filters, state: RuntimeState) -> dict[str, Any]:
    """The SVG charts (escaped by jails.history.charts, so safe to insert as markup)."""
    grain = board.trend_grain
    if filters.window not in ("custom", "all"):
        windowed = {
            "hour": gettext("Bans per hour, last %(window)s"),
            "day": gettext("Bans per day (UTC), last %(window)s"),
            "month": gettext("Bans per month (UTC), last %(window)s"),
        }
        title = windowed[grain] % {"window": filters.window_text}
    else:
        title = {
            "hour": gettext("Bans per hour"),
            "day": gettext("Bans per day (UTC)"),
            "month": gettext("Bans per month (UTC)"),
        }[grain]
    trend_points = [(_bucket_label(t, grain, filters.zone), n) for t, n in board.trend]
    jail_rows = [(jail, n, filters.params(jail=jail, page=None)) for jail, n in board.by_jail[:15]]
    # Every country (the map's figures; the first ten are the "Top countries" bars).
    country_rows = [
        (
            _country_label(code, board.country_names),
            n,
            filters.params(country=code, page=None) if code else None,
        )
        for code, n in board.by_country
    ]
    trend = charts.bar_chart_svg(
        trend_points,
        title=title,
        width=1200,
        height=260,
        max_labels=10,
    )
    by_jail = charts.hbar_chart_svg(jail_rows, title=gettext("Bans by jail"))
    by_country = charts.hbar_chart_svg(country_rows[:10], title=gettext("Top countries"))
    template = filters.params(country="CODE", page=None).replace("country=CODE", "country={code}")
    world = charts.world_map_svg(
        {code: n for code, n in board.by_country if code},
        world=state.history.world_map(),
        names=_localised_map_names(state),
        href_template=template,
        selected=filters.filter.country or None,
        title=gettext("Bans by country"),
    )
    return {
        # jails.history.charts escapes every label and attribute: the markup is safe to insert.
        "trend_svg": mark_safe(trend),
        "by_jail_svg": mark_safe(by_jail),
        "by_country_svg": mark_safe(by_country),
        "world_svg": mark_safe(world),
        # The same figures as tables (a text alternative that needs no JavaScript or sight).
        "trend_rows": trend_points,
        "jail_rows": jail_rows,
        "country_rows": country_rows,
    }


def _map_names(state: RuntimeState) -> dict[str, str]:
    return {code: country.name for code, country in state.history.world_map().countries.items()}


def _localised_map_names(state: RuntimeState) -> dict[str, str]:
    """The map's countries named in the page's language (English from the map's data file)."""
    return {code: country_name(code, name) for code, name in _map_names(state).items()}


def _host_choices(filters: Filters) -> list[str]:
    """The hosts to filter by: the enabled ones the user may view (none on a single host)."""
    if not filters.fleet:
        return []
    names = [host.name for host in fleet.hosts_enabled()]
    if filters.permitted is not None:
        names = [name for name in names if name in filters.permitted]
    chosen = filters.form.cleaned_data.get("host") if filters.form.is_bound else ""
    if chosen and chosen not in names and filters.filter.hosts:
        names.append(chosen)  # a disabled host's archive stays viewable
    return names


def _archived_choices(
    hosts: tuple[str, ...] | None, state: RuntimeState
) -> tuple[list[str], list[tuple[str, str]]]:
    return (
        history_selectors.jail_names_archived(hosts=hosts),
        history_selectors.countries_archived(known_names=_map_names(state), hosts=hosts),
    )


def _choices(filters: Filters, state: RuntimeState, *, stamp: Hashable) -> dict[str, Any]:
    hosts = filters.filter.hosts
    archived_jails, archived = state.history.figures.get_or_build(
        stamp, ("choices", hosts), lambda: _archived_choices(hosts, state)
    )
    jails = list(archived_jails)  # a copy: the cached list is shared by every request
    if filters.filter.jail and filters.filter.jail not in jails:
        jails.append(filters.filter.jail)
    # Named and sorted in the page's language (the selector's names are the stored English).
    countries = sorted(
        ((code, country_name(code, name)) for code, name in archived), key=lambda cn: cn[1]
    )
    if filters.filter.country and filters.filter.country not in {c for c, _ in countries}:
        countries.append((filters.filter.country, filters.filter.country))
    return {
        "host_choices": _host_choices(filters),
        "jail_choices": jails,
        "country_choices": countries,
        "origin_choices": BanEvent.Origin.choices,
        "window_choices": [(k, label) for k, (label, _) in WINDOWS.items()],
    }


def _rendering_inputs(request: HtmxHttpRequest, filters: Filters) -> tuple[Hashable, ...]:
    """What kept markup depends on besides the archive and the filters, for the cache keys of
    the dashboard's panels and the history table: a host column or not, the path and script
    prefix (links), the language, and the time zones (hour labels, a custom window's dates)."""
    return (
        filters.fleet,
        request.path,
        get_script_prefix(),
        translation.get_language(),
        timezone.get_current_timezone_name(),
        filters.zone.key,
    )


def _dashboard_panels(
    request: HtmxHttpRequest, filters: Filters, state: RuntimeState, *, stamp: Hashable
) -> str:
    """The figures, charts and tables (the part the page refreshes), rendered once per stamp.

    The markup depends on the archive (the stamp), the window and filters, this page's query
    string and path, the script prefix (links), the language and the time zone (labels,
    dates): all of them are in the key, so a cached copy is what rendering it again would give.
    """
    figures = state.history.figures
    f = filters.filter
    key = ("dashboard-panels", f, filters.params(), *_rendering_inputs(request, filters))

    def board_get() -> Dashboard:
        return history_selectors.dashboard_get(f=f, known_names=_map_names(state))

    def render_panels() -> str:
        board = figures.get_or_build(stamp, ("dashboard", f), board_get)
        context = _dashboard_context(request, filters, state, board)
        return render_to_string("history/dashboard.html#dashboard-panels", context, request)

    return figures.get_or_build(stamp, key, render_panels)


def _window_links(filters: Filters) -> list[tuple[str, Any, str, bool]]:
    return [
        (key, label, filters.params(window=key, start=None, end=None), key == filters.window)
        for key, (label, _) in WINDOWS.items()
        if key != "custom"
    ]


def _dashboard_context(
    request: HtmxHttpRequest, filters: Filters, state: RuntimeState, board: Dashboard
) -> dict[str, Any]:
    busiest = board.busiest_jail
    links = {
        "self": request.path + filters.params(),
        "busiest_jail": filters.params(jail=busiest[0]) if busiest else "",
        "every_country": filters.params(country=None),
        "history": reverse("jails:history") + filters.params(),
    }
    return {
        "filters": filters,
        "board": board,
        "links": links,
        "repeat_days": history_selectors.REPEAT_DAYS,
        "refresh_seconds": DASHBOARD_REFRESH_SECONDS,
        "latest_at": datetime.fromtimestamp(board.latest, tz=UTC) if board.latest else None,
        **dashboard_charts(board, filters, state),
    }


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
@vary_on_headers("HX-Request", "HX-Target")
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    """Headline figures, trend, bans by jail and country, world map and top offenders."""
    state = runtime_state()
    filters = filters_from_request(request, state, default_window="7d")
    # Read before anything is computed from the archive (FiguresCache.get_or_build).
    stamp = history_selectors.archive_stamp()
    panels = _dashboard_panels(request, filters, state, stamp=stamp)
    if request.htmx and request.htmx.target == "dashboard-panels":
        return HttpResponse(panels)  # the periodic refresh: figures and charts only
    context = {
        "filters": filters,
        # Rendered from the same template (its dashboard-panels partial), escaped there.
        "panels": mark_safe(panels),
        "window_links": _window_links(filters),
        **_choices(filters, state, stamp=stamp),
    }
    template = "history/dashboard.html"
    if request.htmx:
        template += "#dashboard"
    return render(request, template, context)


# --- History list and CSV -------------------------------------------------------------------------
@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
@vary_on_headers("HX-Request")
def history_list(request: HtmxHttpRequest) -> HttpResponse:
    """Every archived ban, filtered, searchable by address or network, sortable, paginated."""
    state = runtime_state()
    filters = filters_from_request(request, state, default_window="all")
    # Read before anything is computed from the archive (FiguresCache.get_or_build).
    stamp = history_selectors.archive_stamp()
    table = _history_table(request, filters, state, stamp=stamp)
    if request.htmx:
        return HttpResponse(table)
    context = {
        "filters": filters,
        # Rendered from the same template (its history-table partial), escaped there.
        "table": mark_safe(table),
        **_choices(filters, state, stamp=stamp),
    }
    return render(request, "history/history_list.html", context)


def _history_table(
    request: HtmxHttpRequest, filters: Filters, state: RuntimeState, *, stamp: Hashable
) -> str:
    """The count, one page of bans and the pager, rendered once per stamp and query.

    As for the dashboard's panels, the key holds everything the markup depends on: the
    archive (the stamp), the window, filters, search, order and page (the whole query string:
    the links repeat it), the page size, whether the site is a fleet (a host column), the
    path, the script prefix, the language and the time zone.
    """
    page_size = state.settings.page_size
    key = (
        "history-table",
        filters.filter,
        filters.search,
        filters.sort,
        page_size,
        request.GET.urlencode(),
        *_rendering_inputs(request, filters),
    )

    def render_table() -> str:
        events = history_selectors.history_events(
            f=filters.filter, search=filters.search, sort=filters.sort
        )
        page = Paginator(events, page_size).get_page(page_number(request))
        headers = []
        for column, label in (FLEET_SORT_LABELS if filters.fleet else SORT_LABELS).items():
            direction = {column: "up", f"-{column}": "down"}.get(filters.sort, "")
            # A click reverses the current order; time starts newest first, the others A to Z.
            descending = direction == "up" or (not direction and column == "time")
            next_sort = f"-{column}" if descending else column
            headers.append((label, filters.params(sort=next_sort), direction))
        context = {
            "filters": filters,
            "page": page,
            "sort_headers": headers,
            "export_url": "export.csv" + filters.params(page=None),
        }
        return render_to_string("history/history_list.html#history-table", context, request)

    return state.history.figures.get_or_build(stamp, key, render_table)


def csv_cell(value: object) -> object:
    """A cell a spreadsheet shows as text: formulas (= + - @) are defused with a quote."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_PREFIXES):
        return "'" + value
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


# `host` came last (issue 12): the columns before it keep their places for existing readers.
CSV_HEADER = (
    "time_utc",
    "jail",
    "ip",
    "network",
    "origin",
    "banned_by",
    "bantime_seconds",
    "bancount",
    "failures",
    "country_code",
    "country",
    "asn",
    "as_name",
    "matches",
    "host",
)


def _csv_rows(events: Iterable[BanEvent]) -> Iterator[list[object]]:
    yield list(CSV_HEADER)
    for e in events:
        yield [
            csv_cell(cell)
            for cell in (
                e.banned_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                e.jail,
                e.ip,
                e.network,
                e.origin,
                e.banned_by,
                e.bantime,
                e.bancount,
                e.failures,
                e.country_code,
                e.country_name,
                e.asn if e.asn is not None else "",
                e.as_name,
                e.matches,
                e.host,
            )
        ]


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def history_export(request: HtmxHttpRequest) -> StreamingHttpResponse:
    """The filtered history as CSV, streamed (a million rows never sit in memory)."""
    state = runtime_state()
    filters = filters_from_request(request, state, default_window="all")
    events = history_selectors.history_events(
        f=filters.filter, search=filters.search, sort=filters.sort
    ).iterator(chunk_size=2000)
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in _csv_rows(events)), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="jailadmin-bans-{stamp}.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
