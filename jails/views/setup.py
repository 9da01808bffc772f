"""The first-run setup wizard (/setup/): usable once, before anything else works."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from jails.apps import runtime_state
from jails.forms import SettingsContext, SetupForm
from jails.models import AuditEntry
from jails.requests import HtmxHttpRequest
from jails.services import settings as settings_service
from jails.services import setup as setup_service
from jails.services.settings import SetupAlreadyComplete, SetupFailed
from jails.services.setup import SetupSync


def _setup_done_message(*, version: str | None, username: str, sync: SetupSync) -> str:
    text = _("Setup complete (fail2ban %(version)s). Log in as %(username)s.") % {
        "version": version,
        "username": username,
    }
    if sync.ok:
        archived = ngettext(
            "Ban history: %(count)d ban archived from fail2ban.",
            "Ban history: %(count)d bans archived from fail2ban.",
            sync.archived,
        ) % {"count": sync.archived}
        return f"{text} {archived}"
    # The setup is saved; only the first copy of the ban history has to wait. The reason is
    # the error's own text (fail2ban's or the client's), shown as it is.
    waiting = _("Ban history not synced yet (%(reason)s); the job runner will sync it.") % {
        "reason": sync.reason
    }
    return f"{text} {waiting}"


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def setup_wizard(request: HtmxHttpRequest) -> HttpResponse:
    """Ask for the setup token, the first administrator and every runtime setting; save once."""
    state = runtime_state()
    token_path = Path(settings.JAILADMIN_SETUP_TOKEN_FILE)
    if not state.setup_pending or settings_service.setup_is_complete():
        state.setup_pending = False
        setup_service.setup_token_delete(path=token_path)
        return redirect("login")
    try:
        # First need of the token: create it here (never in ready(), which does no I/O).
        setup_service.setup_token_ensure(path=token_path)
    except setup_service.SetupTokenError as exc:
        return render(
            request, "jails/setup_form.html", {"form": None, "token_error": str(exc)}, status=503
        )

    def token_valid(given: str) -> bool:
        return setup_service.setup_token_valid(path=token_path, given=given)

    context = SettingsContext.from_settings(state.settings)
    checked = False
    if request.method == "POST":
        form = SetupForm(request.POST, context=context, token_valid=token_valid)
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
                form.add_error(None, _("Nothing was saved: %(error)s.") % {"error": exc})
            else:
                setup_service.setup_token_delete(path=token_path)
                # Without this the dashboard says "No bans archived yet" until the job
                # runner's next sync, although fail2ban holds bans.
                values = form.site_values()
                sync = setup_service.setup_history_sync(
                    state,
                    fail2ban_socket=values.fail2ban_socket,
                    fail2ban_agent=values.fail2ban_agent,
                )
                messages.success(
                    request,
                    _setup_done_message(
                        version=form.fail2ban_version, username=result.username, sync=sync
                    ),
                )
                return redirect("login")
    else:
        initial = {
            **setup_service.setup_initial(state.settings),
            "token": request.GET.get("token", ""),
        }
        form = SetupForm(initial=initial, context=context, token_valid=token_valid)
    template = "jails/setup_form.html"
    if request.htmx:
        template += "#setup-form"
    return render(request, template, {"form": form, "checked": checked})
