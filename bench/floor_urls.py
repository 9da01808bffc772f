"""A bench-only URLconf: the site's URLs plus /bench-floor/, the floor of a jail page.

Never part of the site: bench/bench_users.py installs it in-process with
`override_settings(ROOT_URLCONF="bench.floor_urls")` for its --profile figures only.

The floor is what any authenticated page that shows the jails cannot avoid: the whole
middleware stack (session, user, language, CSRF, time zone...), the permission check and
one overview round to fail2ban (the same `status` + `status J short` batch the jail list
sends). It renders no template and returns a few bytes, so `/jails/ ÷ floor` is the part
of a jail list request that is the page itself (layout, list, status bar), and
`floor ÷ /healthz` the part no page can shed.
"""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.http import require_GET

from jails.apps import runtime_state
from jails.requests import overview_for_request
from jails.roles import PERM_VIEW


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def floor(request: HttpRequest) -> HttpResponse:
    """Session, user, permission, one overview round; no template."""
    overview = overview_for_request(request, runtime_state())
    return HttpResponse(f"{overview.jail_count}\n", content_type="text/plain")


urlpatterns = [
    path("bench-floor/", floor, name="bench-floor"),
    # The site's own names (login, setup, jails:...) must still reverse: middleware uses them.
    path("", include("jailadmin.urls")),
]
