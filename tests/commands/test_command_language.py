"""The commands' language (issue 16): the site's default, whatever the calling thread has active;
help texts that argparse can print in every language; `--json` never translated.

The project's catalogues are filled by translators later, so the language switch is shown with
msgids Django's own catalogues translate ("This field is required.", "Yes"): the same gettext
machinery, with real catalogues.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import CommandParser
from django.utils import translation
from django.utils.translation import gettext, gettext_noop

from jails.management.base import TranslatedCommand

GERMAN_REQUIRED = "Dieses Feld ist zwingend erforderlich."


class Speaker(TranslatedCommand):
    help = gettext_noop("This field is required.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--flag", action="store_true", help=gettext("Yes"))

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(gettext("This field is required."))


def speak() -> str:
    out = io.StringIO()
    call_command(Speaker(), stdout=out)
    return out.getvalue().strip()


def project_commands() -> list[tuple[str, str]]:
    return sorted(
        (name, app) for name, app in get_commands().items() if app.split(".")[0] == "jails"
    )


def test_a_command_speaks_the_sites_default_language(settings):
    settings.LANGUAGE_CODE = "de"
    assert speak() == GERMAN_REQUIRED


def test_a_command_ignores_the_language_the_calling_thread_has_active(settings):
    # A test or a view that served a French request before calling the command.
    settings.LANGUAGE_CODE = "en"
    with translation.override("fr"):
        assert speak() == "This field is required."
        assert translation.get_language() == "fr"  # and the caller's language is put back


def test_help_is_translated_when_the_parser_is_built(settings):
    settings.LANGUAGE_CODE = "de"
    text = Speaker().create_parser("manage.py", "speaker").format_help()
    assert GERMAN_REQUIRED in text
    assert re.search(r"--flag\s+Ja\n", text), text


@pytest.mark.parametrize("language", ["en", "de", "ja"])
def test_every_project_commands_help_prints(settings, language):
    # argparse needs plain str: a lazy `help` on a command breaks `manage.py CMD --help`.
    settings.LANGUAGE_CODE = language
    commands = project_commands()
    assert {"jails", "hosts", "f2bconfig", "notify", "agent_bundle"} <= {n for n, _ in commands}
    for name, app in commands:
        command = load_command_class(app, name)
        text = command.create_parser("manage.py", name).format_help()
        assert text.startswith(f"usage: manage.py {name}"), name
        assert isinstance(command.help, str) and command.help, name
        assert isinstance(command, TranslatedCommand), name


@pytest.mark.django_db
def test_json_output_stays_english_in_another_language(settings):
    # `hosts list`: its human line says "enabled" in the site's language, its JSON does not.
    settings.LANGUAGE_CODE = "de"
    out = io.StringIO()
    call_command("hosts", "list", "--json", stdout=out)
    [local] = json.loads(out.getvalue())["hosts"]
    assert (local["host"], local["kind"], local["enabled"]) == ("local", "local", True)
    assert set(local) == {
        "host",
        "kind",
        "address",
        "enabled",
        "time_zone",
        "host_key",
        "unreachable_since",
        "last_error",
        "last_seen",
        "note",
    }
