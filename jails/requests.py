"""What the layers below the views need from a request: its audit actor, its overview.

Views, the admin and the context processors all turn a request into these; they live
here, below the views, so the admin and the context processors never import a view. The
typed HTMX request lives here too, so every view annotates with the same class.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django_htmx.middleware import HtmxDetails

from jails.hosts.models import LOCAL_HOST
from jails.hosts.permissions import host_permitted, hosts_permitted
from jails.hosts.services import fleet
from jails.hosts.services.fleet import HostOutcome, HostScope
from jails.hosts.services.rows import hosts_enabled_rows
from jails.services import jails as jail_service
from jails.services.audit import Actor
from jails.services.jails import Overview
from jails.sessions import SessionStore
from jails.state import RuntimeState, runtime_state

# An attribute on the request, not a cache anywhere else: it dies with the request.
_OVERVIEW_ATTR = "_jailadmin_overview"
_FLEET_ATTR = "_jailadmin_fleet"
_FLEET_OVERVIEW_ATTR = "_jailadmin_fleet_overview"
_LOCAL_HOST_ATTR = "_jailadmin_local_host"
_HOSTS_ATTR = "_jailadmin_hosts"


class HtmxHttpRequest(HttpRequest):
    """A request as the views see it: django-htmx's middleware has set `request.htmx`.

    Only a type (django-htmx's documented pattern): Django still builds plain
    `WSGIRequest`s, and `HtmxMiddleware` (in `MIDDLEWARE` for every request) adds the
    attribute. Annotating a view with it lets mypy check `request.htmx.target` and the like.
    """

    htmx: HtmxDetails


def actor_from_request(request: HttpRequest, *, source: str = "web") -> Actor:
    """The audit actor for a request: the signed-in user and the client address."""
    user = request.user
    return Actor(
        name=user.get_username() if user.is_authenticated else "anonymous",
        source=source,
        user_id=user.pk if user.is_authenticated else None,
        address=request.META.get("REMOTE_ADDR") or None,
    )


def overview_for_request(request: HttpRequest, state: RuntimeState) -> Overview:
    """The server overview, fetched at most once per request (view and status bar share it)."""
    cached = getattr(request, _OVERVIEW_ATTR, None)
    if cached is None:
        cached = jail_service.overview_get(state)
        setattr(request, _OVERVIEW_ATTR, cached)
    return cached


def overview_if_fetched(request: HttpRequest) -> Overview | None:
    """The overview this request has already fetched, if any (then the status bar is free)."""
    return getattr(request, _OVERVIEW_ATTR, None)


def session_store(request: HttpRequest) -> SessionStore:
    """The request's session as jailadmin's own store (it knows which storage it lives in).

    SESSION_ENGINE is `jails.sessions`, so Django's SessionMiddleware always builds this
    class; the stubs can only say `SessionBase`. Checked rather than cast: another engine
    would break the storage switch, and better loudly here than by losing the session.
    """
    session = request.session
    if not isinstance(session, SessionStore):
        raise TypeError(f"SESSION_ENGINE must be jails.sessions, got {type(session).__name__}")
    return session


# --- the fleet (jails.hosts) --------------------------------------------------------------------
def is_fleet_request(request: HttpRequest) -> bool:
    """Whether the site has hosts besides the local one (asked once per request)."""
    cached = getattr(request, _FLEET_ATTR, None)
    if cached is None:
        # One read for both questions every page asks: a fleet or not, and the local
        # host's row (host_for_request with no name) — on the hot /jails/ page that was two.
        # Kept per process while the hosts' stamp holds (no query at all then).
        hosts = hosts_enabled_rows(runtime_state())
        cached = fleet.is_fleet(hosts)
        setattr(request, _HOSTS_ATTR, hosts)
        setattr(request, _FLEET_ATTR, cached)
        local = [host for host in hosts if host.name == LOCAL_HOST]
        setattr(request, _LOCAL_HOST_ATTR, local[0] if local else None)
    return bool(cached)


def host_for_request(
    request: HttpRequest, state: RuntimeState, host_name: str | None, perm: str
) -> HostScope:
    """The host a page acts on, scoped: 404 unknown or disabled, 403 without `perm` there.

    No name (the pre-fleet URLs, /jails/<name>/...) means the local host, as it always did.
    """
    try:
        # The local host's row is made by a migration; local_host() remakes it if deleted,
        # so a single-host site never depends on that row being there.
        if host_name:
            host = fleet.host_get(host_name)
        else:
            # The enabled local row this request already read, else local_host() (which
            # also remakes a deleted row; a disabled one is refused just below).
            host = getattr(request, _LOCAL_HOST_ATTR, None) or fleet.local_host()
    except fleet.HostUnknown:
        raise Http404("no such host") from None
    if not host.enabled:
        raise Http404("no such host")
    if not host_permitted(request.user, perm, host.name):
        raise PermissionDenied(f"not permitted on {host.name}")
    return fleet.scope(state, host)


def scopes_for_request(
    request: HttpRequest, state: RuntimeState, perm: str, *, names: list[str] | None = None
) -> list[HostScope]:
    """The enabled hosts (only `names` if given) on which the user holds `perm`, scoped."""
    allowed = hosts_permitted(request.user, perm)
    # The enabled rows is_fleet_request read, if it did: on /jails/ over 10 hosts, reading
    # them again cost about 1 ms of the page's CPU. Only a GET: a POST may change the rows.
    rows = getattr(request, _HOSTS_ATTR, None) if request.method in ("GET", "HEAD") else None
    return fleet.scopes_list(state, names=names, allowed=allowed, hosts=rows)


def fleet_overviews_for_request(
    request: HttpRequest, state: RuntimeState, scopes: list[HostScope], *, every_viewable: bool
) -> list[HostOutcome[Overview]]:
    """The given hosts' overviews, asked in parallel within the per-host deadline.

    Kept on the request when `scopes` are every host the user may view (`every_viewable`),
    so the same page's status bar costs nothing (as overview_for_request does for one host).
    """
    outcomes = fleet.fleet_map(
        scopes, jail_service.overview_get, deadline=state.settings.host_deadline
    )
    if every_viewable:
        setattr(request, _FLEET_OVERVIEW_ATTR, outcomes)
    return outcomes


def fleet_overviews_if_fetched(request: HttpRequest) -> list[HostOutcome[Any]] | None:
    """The overviews of every viewable host this request has already fetched, if any."""
    return getattr(request, _FLEET_OVERVIEW_ATTR, None)
