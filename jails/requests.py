"""What the layers below the views need from a request: its audit actor, its overview.

Views, the admin and the context processors all turn a request into these; they live
here, below the views, so the admin and the context processors never import a view. The
typed HTMX request lives here too, so every view annotates with the same class.
"""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from jails.services import jails as jail_service
from jails.services.audit import Actor
from jails.services.jails import Overview
from jails.sessions import SessionStore
from jails.state import RuntimeState

# An attribute on the request, not a cache anywhere else: it dies with the request.
_OVERVIEW_ATTR = "_jailadmin_overview"


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
