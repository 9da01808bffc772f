"""The language of the pages: the user's own choice, kept in the session (issue 16).

Order: the user's choice (saved on the user, copied into the session at login and when it
changes), else the browser's Accept-Language or the language cookie (Django's
LocaleMiddleware), else the site's JAILADMIN_LANGUAGE (LANGUAGE_CODE). The session is read
on every request anyway (jails.sessions.SessionMiddleware), so the choice costs no query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from jails.models import UserPreference

LANGUAGE_SESSION_KEY = "jailadmin_language"


def language_supported(code: str) -> bool:
    """One of the site's LANGUAGES, spelled as settings spell it ("pt-br", "zh-hans")."""
    return any(code == known for known, _name in settings.LANGUAGES)


def user_language_save(*, user: Any, language: str) -> None:
    """Remember `language` as the user's own choice ("" follows the browser again)."""
    UserPreference.objects.update_or_create(user=user, defaults={"language": language})


def session_language_set(request: HttpRequest, *, language: str) -> None:
    """From now on this session's pages are in `language`."""
    request.session[LANGUAGE_SESSION_KEY] = language


@receiver(user_logged_in, dispatch_uid="jails-language-login")
def language_on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    # One query per login, none per page. A user who never chose keeps what the login page
    # was shown in (a choice made there is in the session already).
    if request is None or not hasattr(request, "session"):
        return
    saved = UserPreference.objects.filter(user=user).values_list("language", flat=True).first()
    if saved and language_supported(saved):
        session_language_set(request, language=saved)


class UserLanguageMiddleware:
    """Activates the session's language; after LocaleMiddleware, which set the fallback.

    LocaleMiddleware's response step reads the active language for Content-Language, so the
    header names the language the page was rendered in.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        chosen = session.get(LANGUAGE_SESSION_KEY) if session is not None else None
        if isinstance(chosen, str) and language_supported(chosen):
            translation.activate(chosen)
            request.LANGUAGE_CODE = chosen
        return self.get_response(request)
