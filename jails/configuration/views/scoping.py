"""Which host a configuration page is about, and what every such page shows of it.

Each view takes the URL's `host` (absent under `/config/`: the local host, as before the
fleet), scopes the runtime state to it (jails.requests.host_for_request: 404 for an unknown
host, 403 without the role there) and hands that state to the services, which then talk to
that host. The page context says which host it is and, on a fleet, offers the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from jails.apps import runtime_state
from jails.hosts.models import LOCAL_HOST
from jails.hosts.permissions import host_permitted, hosts_permitted
from jails.hosts.services import fleet
from jails.hosts.services.fleet import HostScope
from jails.requests import host_for_request, is_fleet_request
from jails.roles import PERM_ADMINISTER, PERM_OPERATE, PERM_VIEW
from jails.state import RuntimeState

MAX_PATH = 300


@dataclass(frozen=True)
class ConfigHost:
    """The host a page is about, scoped, and how its URLs name it (None: `/config/`)."""

    scope: HostScope
    url_host: str | None

    @property
    def state(self) -> RuntimeState:
        return self.scope.state

    @property
    def name(self) -> str:
        return self.scope.name


def config_host(request: HttpRequest, host: str | None, perm: str) -> ConfigHost:
    """The page's host: 404 if there is no such enabled host, 403 without `perm` there."""
    return ConfigHost(host_for_request(request, runtime_state(), host, perm), host)


def permitted(request: HttpRequest, perm: str, where: ConfigHost) -> bool:
    """Whether the user holds `perm` (one of the roles) on the page's host."""
    return request.user.has_perm(perm) and host_permitted(request.user, perm, where.name)


def host_context(request: HttpRequest, where: ConfigHost) -> dict[str, Any]:
    """What every configuration page needs about its host (links, roles, the switcher)."""
    context: dict[str, Any] = {
        "config_host": where.url_host,
        "host_name": where.name,
        "fleet": is_fleet_request(request),
        "can_operate": permitted(request, PERM_OPERATE, where),
        "can_administer": permitted(request, PERM_ADMINISTER, where),
    }
    if context["fleet"]:
        allowed = hosts_permitted(request.user, PERM_VIEW)
        match = request.resolver_match
        context.update(
            host_choices=[
                host.name
                for host in fleet.hosts_enabled()
                if allowed is None or host.name in allowed
            ],
            switch_page=match.url_name if match else "index",
            switch_name=str(match.kwargs.get("name", "")) if match else "",
            switch_path=request.GET.get("path", "")[:MAX_PATH],
        )
    return context


def page(
    request: HttpRequest,
    where: ConfigHost,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> HttpResponse:
    """Render a configuration page (or partial) with its host's context."""
    return render(request, template, {**host_context(request, where), **context}, status=status)


def url_host_for(name: str) -> str | None:
    """How URLs name host `name`: the local host keeps its pre-fleet `/config/` URLs."""
    return None if name == LOCAL_HOST else name
