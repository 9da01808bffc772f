"""The committed catalogues match the code, are complete, and their .mo files are current.

`make messages` (scripts/messages.py) regenerates them; translators fill the msgstr lines.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.utils.translation import to_locale

from scripts.messages import LOCALES, MSGFMT
from tests.i18n.conftest import LOCALE_DIR
from tests.i18n.po import entries, header, keys

# No test database here (README, "Tests": the PostgreSQL pass leaves these out).
pytestmark = pytest.mark.no_site_database

# Each language's plural rule, as gettext's documentation and CLDR give it: Russian has three
# forms (1, 2–4, 5–20), Japanese and Chinese one.
PLURAL_FORMS = {
    "de": "nplurals=2; plural=(n != 1);",
    "fr": "nplurals=2; plural=(n > 1);",
    "es": "nplurals=2; plural=(n != 1);",
    "pt_BR": "nplurals=2; plural=(n > 1);",
    "it": "nplurals=2; plural=(n != 1);",
    "ru": "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
    "(n%100<10 || n%100>=20) ? 1 : 2);",
    "zh_Hans": "nplurals=1; plural=0;",
    "ja": "nplurals=1; plural=0;",
}


def po_path(locale: str, base: Path = LOCALE_DIR) -> Path:
    return base / locale / "LC_MESSAGES" / "django.po"


def test_every_site_language_has_a_catalogue(settings) -> None:
    # en is the source language: its text is the msgids themselves.
    site = {to_locale(code) for code, _name in settings.LANGUAGES} - {"en"}
    assert site == set(LOCALES) == set(PLURAL_FORMS)
    for locale in LOCALES:
        assert po_path(locale).is_file(), locale
        assert po_path(locale).with_suffix(".mo").is_file(), locale


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogue_matches_the_code(locale: str, fresh_locale_dir: Path) -> None:
    """A string marked in the code but missing here, or kept here but no longer in the code:
    run `make messages` and commit the catalogues."""
    committed = keys(po_path(locale))
    wanted = keys(po_path(locale, fresh_locale_dir))
    missing = sorted(wanted - committed, key=str)
    obsolete = sorted(committed - wanted, key=str)
    assert not missing and not obsolete, (
        f"run `make messages`: {len(missing)} marked string(s) not in the {locale} catalogue "
        f"{missing[:20]}, {len(obsolete)} obsolete {obsolete[:20]}"
    )


@pytest.mark.parametrize("locale", LOCALES)
def test_catalogue_is_complete(locale: str) -> None:
    """Every message translated, none fuzzy, placeholders and the header checked by msgfmt,
    the plural rule right for the language and every plural entry with all its forms."""
    po = po_path(locale)
    done = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(po)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "untranslated" not in done.stderr and "fuzzy" not in done.stderr, done.stderr
    fields = header(po)
    assert fields.get("Language") == locale
    assert fields.get("Plural-Forms") == PLURAL_FORMS[locale]
    forms = int(PLURAL_FORMS[locale].split(";")[0].split("=")[1])
    for entry in entries(po)[1:]:
        if "msgid_plural" in entry.fields:
            got = sorted(k for k in entry.fields if k.startswith("msgstr["))
            assert got == [f"msgstr[{i}]" for i in range(forms)], entry.key
            assert all(entry.fields[k] for k in got), f"{locale}: empty plural form {entry.key}"


@pytest.mark.parametrize("locale", LOCALES)
def test_compiled_catalogue_is_current(locale: str, tmp_path: Path) -> None:
    """The committed .mo is what msgfmt makes of the committed .po (`make messages`)."""
    po = po_path(locale)
    fresh = tmp_path / "django.mo"
    subprocess.run([*MSGFMT, "-o", str(fresh), str(po)], check=True, timeout=120)
    assert po.with_suffix(".mo").read_bytes() == fresh.read_bytes(), (
        f"{po.with_suffix('.mo')} is older than its .po: run `make messages`"
    )


@pytest.mark.slow
def test_wheel_ships_the_compiled_catalogues(tmp_path: Path) -> None:
    """An installed jailadmin finds its translations (pyproject's package-data)."""
    import zipfile

    from tests.deploy.test_wheel import wheel_build

    names = set(zipfile.ZipFile(wheel_build(tmp_path)).namelist())
    for locale in LOCALES:
        assert f"jailadmin/locale/{locale}/LC_MESSAGES/django.mo" in names, locale
