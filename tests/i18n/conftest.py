"""Catalogues made at test time: `make messages` over a copy of today's sources, and a
pseudo-locale built from it (every translation is its English text inside ⟦…⟧)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCALE_DIR = ROOT / "jailadmin" / "locale"
# makemessages over every source file, then msgfmt: about 15 s here, minutes on a slow box.
MESSAGES_TIMEOUT = 600
# The pseudo-locale takes the place of a real language the site offers, so the language
# middleware and the selector accept it. Django's own German catalogue still answers the
# strings ours lacks (the admin's, form errors): those are German, not ⟦…⟧.
PSEUDO_LANGUAGE = "de"
PSEUDO_OPEN, PSEUDO_CLOSE = "⟦", "⟧"


def source_copy(base: Path) -> Path:
    """What `make messages` reads and writes (jails/, jailadmin/ with its catalogues,
    templates/, manage.py), copied under `base`."""
    root = base / "source"
    root.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "site")
    for name in ("jails", "jailadmin", "templates"):
        shutil.copytree(ROOT / name, root / name, ignore=ignore)
    shutil.copy2(ROOT / "manage.py", root / "manage.py")
    return root


@pytest.fixture(scope="session")
def fresh_locale_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The locale directory `make messages` would leave behind for today's sources."""
    root = source_copy(tmp_path_factory.mktemp("messages"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "messages.py"), str(root)],
        capture_output=True,
        text=True,
        timeout=MESSAGES_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "jailadmin" / "locale"


def pseudo_catalogue(source_po: Path, target_dir: Path) -> Path:
    """A compiled catalogue whose every translation is its English text in ⟦…⟧
    (placeholders, markup and plural forms kept as they are); the .mo file's path."""
    target = target_dir / "LC_MESSAGES"
    target.mkdir(parents=True)
    # The catalogue may already hold translations, which msgen keeps: empty them first
    # (msgfilter with `sed -e d` gives every msgstr ""), then msgen puts the English in.
    emptied = subprocess.run(
        ["msgfilter", "--keep-header", "-i", str(source_po), "sed", "-e", "d"],
        capture_output=True,
        check=True,
        timeout=MESSAGES_TIMEOUT,
    ).stdout
    english = subprocess.run(
        ["msgen", "-"], input=emptied, capture_output=True, check=True, timeout=120
    ).stdout
    po = target / "django.po"
    subprocess.run(
        [
            "msgfilter",
            "--keep-header",
            "-o",
            str(po),
            # -z: each translation is one record, so one wrapped in ⟦…⟧ has several lines.
            *("sed", "-z", "-e", f"s/^/{PSEUDO_OPEN}/", "-e", f"s/$/{PSEUDO_CLOSE}/"),
        ],
        input=english,
        check=True,
        timeout=MESSAGES_TIMEOUT,
    )
    mo = target / "django.mo"
    subprocess.run(["msgfmt", "--check-format", "-o", str(mo), str(po)], check=True, timeout=120)
    return mo


@pytest.fixture(scope="session")
def pseudo_locale_dir(fresh_locale_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LOCALE_PATHS entry holding the pseudo-locale as PSEUDO_LANGUAGE."""
    base = tmp_path_factory.mktemp("pseudo")
    pseudo_catalogue(
        fresh_locale_dir / PSEUDO_LANGUAGE / "LC_MESSAGES" / "django.po", base / PSEUDO_LANGUAGE
    )
    return base


@pytest.fixture
def pseudo_locale(settings, pseudo_locale_dir: Path) -> Iterator[str]:
    """The site with the pseudo-locale in place of its catalogues; the language to ask for.

    Changing LOCALE_PATHS through pytest-django's `settings` empties Django's translation
    caches (django.test.signals), on the way in and out again."""
    settings.LOCALE_PATHS = [str(pseudo_locale_dir)]
    yield PSEUDO_LANGUAGE
