"""`make messages`: regenerate the translation catalogues and compile them (issue 16).

    python scripts/messages.py [CHECKOUT]

Runs Django's makemessages for every language of the site over jails/, jailadmin/ and
templates/ (nothing else: tests, benchmarks, the venv, var/, mutants/ and the Django-free
agent, which stays English, are left out), then msgfmt for each catalogue. The compiled .mo
files are committed, so an install needs no gettext. tests/i18n/test_catalogues.py runs this
very script on a copy of the checkout and compares, so the two cannot drift apart.

Locations are kept as file names only (`--add-location file`): a translator sees where a
string is used, and moving a line does not touch every catalogue.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Every language of settings.LANGUAGES but the source language, spelled as locale names.
LOCALES = ("de", "fr", "es", "pt_BR", "it", "ru", "zh_Hans", "ja")
SCANNED = ("jails", "jailadmin", "templates")
# Inside the scanned directories: the Django-free agent (English by design), build copies.
IGNORED_INSIDE = ("jails/agent", "jailadmin/site", "__pycache__")
LOCALE_DIR = Path("jailadmin") / "locale"
# msgfmt's own check of the printf-style placeholders: a translation that drops or adds
# one fails here, not on a page.
MSGFMT = ("msgfmt", "--check-format")


def makemessages(root: Path) -> None:
    """Regenerate root's .po files from its sources (new strings in, obsolete ones out)."""
    # Directories only: makemessages matches an ignore pattern against every file's own name
    # too, so ignoring the top-level setup.py would also drop jails/services/setup.py and
    # jails/views/setup.py. The top-level files (manage.py, setup.py) mark no strings.
    ignored = [p.name for p in root.iterdir() if p.is_dir() and p.name not in SCANNED]
    ignored += list(IGNORED_INSIDE)
    command = [sys.executable, "manage.py", "makemessages", "--no-obsolete"]
    command += ["--add-location", "file", "--domain", "django"]
    command += [f"--locale={locale}" for locale in LOCALES]
    command += [f"--ignore={pattern}" for pattern in ignored]
    # makemessages loads the settings: a development key and the default language do.
    env = {**os.environ, "JAILADMIN_DEBUG": "true", "JAILADMIN_LANGUAGE": "en"}
    env.pop("JAILADMIN_SECRET_KEY", None)
    subprocess.run(command, cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)


def compilemessages(root: Path) -> list[Path]:
    """Compile every catalogue under root (not Django's own compilemessages: it walks the
    whole tree, the venv's locale directories included)."""
    compiled = []
    for po in sorted((root / LOCALE_DIR).glob("*/LC_MESSAGES/django.po")):
        mo = po.with_suffix(".mo")
        subprocess.run([*MSGFMT, "-o", str(mo), str(po)], check=True)
        compiled.append(mo)
    return compiled


def main(argv: list[str]) -> int:
    root = Path(argv[1]).resolve() if len(argv) > 1 else Path(__file__).resolve().parents[1]
    makemessages(root)
    for mo in compilemessages(root):
        print(mo.relative_to(root))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
