"""The language of the pages: the user's choice (saved on the user, in the session and a
cookie), else Accept-Language, else JAILADMIN_LANGUAGE; logs and the audit stay English."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from jails.language import LANGUAGE_SESSION_KEY
from jails.models import AuditEntry, UserPreference
from tests.i18n.conftest import PSEUDO_CLOSE, PSEUDO_OPEN, ROOT

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

PASSWORD = "a-long-test-password-1"  # tests/conftest.py's user_with_role
COMMAND_TIMEOUT = 120


def html_lang(body: bytes) -> str:
    start = body.index(b"<html lang=") + len(b'<html lang="')
    return body[start : body.index(b'"', start)].decode()


def choose(client: Client, language: str, *, next_url: str = "/jails/"):
    return client.post(reverse("jails:language"), {"language": language, "next": next_url})


def test_selector_is_on_every_page_with_native_names(runtime, logged_in_client: Client):
    body = logged_in_client.get(reverse("jails:jail-list")).content.decode()
    assert f'action="{reverse("jails:language")}"' in body
    assert '<label for="language-select" class="visually-hidden">' in body
    for code, name in settings.LANGUAGES:
        assert f'<option value="{code}" lang="{code}"' in body
        assert f">{name}</option>" in body
    assert '<option value="en" lang="en" selected>' in body
    assert '<html lang="en" dir="ltr">' in body


def test_choice_is_saved_on_the_user_and_the_session(
    runtime, logged_in_client: Client, operator_user
):
    response = choose(logged_in_client, "de", next_url="/jails/?page=2")
    assert response.status_code == 302
    assert response["Location"] == "/jails/?page=2"
    assert UserPreference.objects.get(user=operator_user).language == "de"
    assert logged_in_client.session[LANGUAGE_SESSION_KEY] == "de"
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "de"
    assert cookie["httponly"] and cookie["path"] == settings.LANGUAGE_COOKIE_PATH

    page = logged_in_client.get(reverse("jails:jail-list"))
    assert html_lang(page.content) == "de"
    assert page["Content-Language"] == "de"
    assert '<option value="de" lang="de" selected>' in page.content.decode()
    # The session alone carries it: no cookie, a browser asking for French.
    del logged_in_client.cookies[settings.LANGUAGE_COOKIE_NAME]
    page = logged_in_client.get(reverse("jails:jail-list"), HTTP_ACCEPT_LANGUAGE="fr")
    assert page["Content-Language"] == "de"

    # Changing again overwrites, one row per user.
    choose(logged_in_client, "ja")
    assert UserPreference.objects.get(user=operator_user).language == "ja"
    assert UserPreference.objects.count() == 1


def test_choice_survives_logout_and_login_in_another_browser(runtime, client, operator_user):
    assert client.post("/login/", {"username": "oper", "password": PASSWORD}).status_code == 302
    choose(client, "ru")
    client.post(reverse("logout"))
    # Logged out, the cookie keeps the login page in the chosen language.
    assert html_lang(client.get(reverse("login")).content) == "ru"

    elsewhere = Client()  # no cookie, no session: only the saved choice
    assert html_lang(elsewhere.get(reverse("login")).content) == "en"
    response = elsewhere.post("/login/", {"username": "oper", "password": PASSWORD})
    assert response.status_code == 302
    assert elsewhere.session[LANGUAGE_SESSION_KEY] == "ru"
    page = elsewhere.get(reverse("jails:jail-list"))
    assert html_lang(page.content) == "ru" and page["Content-Language"] == "ru"


def test_login_without_a_saved_choice_keeps_the_browsers_language(runtime, client):
    from django.contrib.auth import get_user_model

    from tests.conftest import user_with_role

    user_with_role(get_user_model(), "viewer", username="fresh")
    client.post(reverse("login"), {"username": "fresh", "password": PASSWORD})
    assert LANGUAGE_SESSION_KEY not in client.session
    page = client.get(reverse("jails:jail-list"), HTTP_ACCEPT_LANGUAGE="it-IT,it;q=0.9")
    assert page["Content-Language"] == "it"


@pytest.mark.parametrize("bad", ["", "xx", "de-at", "DE", "en-us", "de\n", "../../etc"])
def test_unknown_language_is_refused(runtime, logged_in_client: Client, operator_user, bad):
    response = choose(logged_in_client, bad)
    assert response.status_code == 400
    assert not UserPreference.objects.filter(user=operator_user).exists()
    assert LANGUAGE_SESSION_KEY not in logged_in_client.session
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/jails/", "http://testserver.evil/", "javascript:x"],
)
def test_unsafe_next_goes_to_the_dashboard(runtime, logged_in_client: Client, target):
    response = choose(logged_in_client, "fr", next_url=target)
    assert response.status_code == 302
    assert response["Location"] == reverse("jails:dashboard")


def test_get_is_not_allowed_and_csrf_is_enforced(runtime, operator_user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator_user)
    assert browser.get(reverse("jails:language")).status_code == 405
    assert choose(browser, "de").status_code == 403
    assert not UserPreference.objects.exists()
    # With the token the login page's form carries, the same POST works.
    browser.get(reverse("jails:jail-list"))
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    response = browser.post(
        reverse("jails:language"), {"language": "de", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


def test_anonymous_choice_on_the_login_page_uses_the_cookie_only(client: Client):
    body = client.get(reverse("login")).content.decode()
    assert f'action="{reverse("jails:language")}"' in body
    assert '<input type="hidden" name="next" value="/login/">' in body
    response = choose(client, "zh-hans", next_url="/login/?next=/jails/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/jails/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    # No session is created for an anonymous visitor.
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    page = client.get(reverse("login"))
    assert html_lang(page.content) == "zh-hans" and page["Content-Language"] == "zh-hans"
    assert not UserPreference.objects.exists()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("pt-BR,pt;q=0.9", "pt-br"),
        ("zh-CN,zh;q=0.9", "zh-hans"),
        ("ja", "ja"),
        ("sv-SE,sv;q=0.9", "en"),  # none of ours: the site's language
        ("", "en"),
    ],
)
def test_accept_language_picks_the_language_without_a_choice(client: Client, header, expected):
    response = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE=header)
    assert html_lang(response.content) == expected
    assert response["Content-Language"] == expected
    assert "Accept-Language" in response["Vary"]


def test_users_choice_beats_accept_language(runtime, logged_in_client: Client):
    choose(logged_in_client, "es")
    page = logged_in_client.get(reverse("jails:jail-list"), HTTP_ACCEPT_LANGUAGE="ja")
    assert page["Content-Language"] == "es"


def test_site_language_is_the_fallback(settings, client: Client):
    settings.LANGUAGE_CODE = "fr"
    response = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="sv")
    assert html_lang(response.content) == "fr" and response["Content-Language"] == "fr"


def manage(*args: str, language: str | None, **extra_env: str):
    env = {k: v for k, v in os.environ.items() if k != "JAILADMIN_LANGUAGE"}
    env["DJANGO_SETTINGS_MODULE"] = "jailadmin.settings"
    env.update(extra_env)
    if language is not None:
        env["JAILADMIN_LANGUAGE"] = language
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def test_jailadmin_language_must_be_one_of_ours() -> None:
    done = manage("check", language="klingon")
    assert done.returncode != 0
    assert "JAILADMIN_LANGUAGE must be one of en, de, fr, es, pt-br, it, ru, zh-hans, ja" in (
        done.stderr
    )


def test_commands_speak_jailadmin_language(pseudo_locale_dir: Path) -> None:
    """A real command's human output follows JAILADMIN_LANGUAGE (the pseudo-locale stands in
    for German, so the test does not depend on the translators' words)."""
    pseudo = {
        "DJANGO_SETTINGS_MODULE": "tests.i18n.pseudo_settings",
        "JAILADMIN_TEST_LOCALE_PATH": str(pseudo_locale_dir),
    }
    german = manage("jails", "--help", language="de", **pseudo)
    english = manage("jails", "--help", language=None, **pseudo)
    assert german.returncode == 0 and english.returncode == 0, german.stderr + english.stderr
    assert f"{PSEUDO_OPEN}Every jail, or one jail's counters.{PSEUDO_CLOSE}" in german.stdout
    assert "Every jail, or one jail's counters." in english.stdout
    assert PSEUDO_OPEN not in english.stdout


def test_audit_stays_english_when_the_page_is_not(runtime, f2b, logged_in_client, pseudo_locale):
    choose(logged_in_client, pseudo_locale)
    before = AuditEntry.objects.count()
    page = logged_in_client.post("/jails/sshd/ban/", {"ip": "203.0.113.9"}, follow=True)
    assert page.status_code == 200
    # The page itself is in the pseudo-locale (else this test could not notice anything).
    assert PSEUDO_OPEN in page.content.decode()
    refused = logged_in_client.post("/jails/sshd/tune/", {"maxretry": "-5"}, follow=True)
    assert refused.status_code in (200, 400)
    written = list(AuditEntry.objects.order_by("id")[before:])
    assert any(entry.action == "ban" and entry.ok for entry in written)
    for entry in written:
        stored = " ".join(
            str(getattr(entry, field.attname)) for field in AuditEntry._meta.concrete_fields
        )
        assert PSEUDO_OPEN not in stored and PSEUDO_CLOSE not in stored, stored
