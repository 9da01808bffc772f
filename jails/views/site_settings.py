"""Runtime settings (/settings/): administrators only, same form and checks as the admin."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from jails.apps import runtime_state
from jails.forms import SettingsContext, SiteSettingsForm
from jails.requests import HtmxHttpRequest, actor_from_request, session_store
from jails.roles import PERM_ADMINISTER
from jails.runtime import site_settings_row
from jails.services import settings as settings_service
from jails.services.settings import SetupRequired, SiteValues
from jails.sessions import MEMORY, REDIS, SESSION_TABLE, SessionCache, SessionStorageUnavailable


@dataclass(frozen=True)
class StorageShown:
    """The session storage in use as the page says it: the kind and where, translated (the
    SessionCache's own `kind` and `location` are values: logs and checks print them)."""

    kind: str
    location: str

    @classmethod
    def of(cls, storage: SessionCache) -> StorageShown:
        if storage.kind == REDIS:  # a product name, and the URL (password masked) is data
            return cls(kind=storage.kind, location=storage.location)
        if storage.kind == MEMORY:
            kind = pgettext("session storage", "memory")
            return cls(kind=kind, location=_("this process's memory"))
        kind = pgettext("session storage", "database")
        return cls(kind=kind, location=_("table %(table)s") % {"table": SESSION_TABLE})


def _storage_switch_keep_session(request: HtmxHttpRequest, values: SiteValues) -> None:
    try:
        settings_service.storage_switch_keep_session(
            runtime_state(), session=session_store(request), values=values
        )
    except SessionStorageUnavailable as exc:
        messages.warning(
            request,
            _("Your session could not be copied (%(error)s): log in again.") % {"error": exc},
        )


# never_cache: the page shows the stored settings (the Redis URL, masked); no browser or
# proxy cache may keep a copy of it.
@never_cache
@require_http_methods(["GET", "POST"])
@permission_required(PERM_ADMINISTER, raise_exception=True)
@vary_on_headers("HX-Request")
def settings_edit(request: HtmxHttpRequest) -> HttpResponse:
    """Show and change the runtime settings; a change reaches every worker within seconds."""
    state = runtime_state()
    row = site_settings_row()
    if row is None or not row.setup_complete:
        return redirect("jails:setup")
    context = SettingsContext.from_settings(state.settings)
    if request.method == "POST":
        form = SiteSettingsForm(request.POST, instance=row, context=context)
        if form.is_valid():
            try:
                change = settings_service.settings_update(
                    state, values=form.site_values(), actor=actor_from_request(request)
                )
            except SetupRequired:
                return redirect("jails:setup")
            if change.storage_changed:
                _storage_switch_keep_session(request, form.site_values())
            if change.changes:
                names = ", ".join(str(form.fields[name].label or name) for name in change.changes)
                messages.success(
                    request,
                    _("Saved: %(names)s. Every worker uses it within seconds.") % {"names": names},
                )
            else:
                messages.info(request, _("Nothing changed."))
            return redirect("jails:settings")
    else:
        form = SiteSettingsForm(instance=row, context=context)
    template = "jails/settings_form.html"
    if request.htmx:
        template += "#settings-form"
    return render(
        request,
        template,
        {
            "form": form,
            "storage": StorageShown.of(state.session_cache),
            "row": row,
            "runtime": state.settings,
        },
    )
