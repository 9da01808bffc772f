"""The language selector's POST (templates/jails/_language_form.html), open to everyone."""

from __future__ import annotations

from typing import Literal, cast

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from jails.language import language_supported, session_language_set, user_language_save


@require_POST
@login_not_required  # the login page has the selector too
def language_set(request: HttpRequest) -> HttpResponse:
    """Switch the pages to the chosen language and go back where the form was."""
    language = request.POST.get("language", "")
    if not language_supported(language):
        # Only a hand-made request gets here: the form offers nothing else.
        return HttpResponseBadRequest(_("Unknown language."), content_type="text/plain")
    if request.user.is_authenticated:
        user_language_save(user=request.user, language=language)
        session_language_set(request, language=language)
    # Anonymous (the login page, the setup wizard): the cookie alone, so choosing a language
    # creates no session.
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("jails:dashboard")
    response = HttpResponseRedirect(target)
    # The cookie outlives the session: after logging out the login page stays in it.
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        # A plain str in the settings; set_cookie's stubs want the literal names.
        samesite=cast(Literal["Lax", "Strict", "None"], settings.LANGUAGE_COOKIE_SAMESITE),
    )
    return response
