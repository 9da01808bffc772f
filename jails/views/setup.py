"""The first-run setup wizard (/setup/): usable once, before anything else works."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from jails.apps import runtime_state
from jails.forms import SettingsContext, SetupForm
from jails.models import AuditEntry
from jails.services import settings as settings_service
from jails.services.settings import SetupAlreadyComplete, SetupFailed
from jails.state import RuntimeSettings


def setup_initial(settings: RuntimeSettings) -> dict[str, object]:
    """The wizard's defaults: the JAILADMIN_* seed values."""
    return {
        "fail2ban_socket": settings.fail2ban_socket,
        "display_time_zone": settings.display_time_zone,
        "session_lifetime_seconds": settings.session_lifetime_seconds,
        "session_cache": settings.session_cache,
        "redis_url": settings.redis_url,
        "history_retention_days": settings.history_retention_days,
    }


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def setup_wizard(request: HttpRequest) -> HttpResponse:
    """Ask for the first administrator and every runtime setting; check live; save once."""
    state = runtime_state()
    if not state.setup_pending or settings_service.setup_is_complete():
        state.setup_pending = False
        return redirect("login")
    context = SettingsContext.from_settings(state.settings)
    checked = False
    if request.method == "POST":
        form = SetupForm(request.POST, context=context)
        if form.is_valid() and "check" in request.POST:
            checked = True  # "Check" button: run every check, save nothing
        elif form.is_valid():
            try:
                result = settings_service.site_setup(
                    state,
                    values=form.site_values(),
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password1"],
                    source=AuditEntry.Source.WEB,
                    address=request.META.get("REMOTE_ADDR") or None,
                )
            except SetupAlreadyComplete:
                return redirect("login")
            except SetupFailed as exc:
                form.add_error(None, f"Nothing was saved: {exc}.")
            else:
                messages.success(
                    request,
                    f"Setup complete (fail2ban {form.fail2ban_version}). "
                    f"Log in as {result.username}.",
                )
                return redirect("login")
    else:
        form = SetupForm(initial=setup_initial(state.settings), context=context)
    template = "jails/setup_form.html"
    if request.htmx:
        template += "#setup-form"
    return render(request, template, {"form": form, "checked": checked})
