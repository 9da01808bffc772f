"""A small translation catalogue made for one test: its own .po text, compiled with msgfmt
and made the only entry of LOCALE_PATHS (pytest-django's `settings` sends setting_changed,
so Django drops the catalogues it had loaded, on the way in and out)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

# msgfmt of a few entries: instant here, generous for a slow machine.
MSGFMT_TIMEOUT = 60


def catalogue_install(settings: Any, base: Path, *, language: str, po_text: str) -> None:
    """`po_text` compiled as `language`'s catalogue under `base`, the site's only one."""
    messages = base / language / "LC_MESSAGES"
    messages.mkdir(parents=True)
    po = messages / "django.po"
    po.write_text(po_text, encoding="utf-8")
    subprocess.run(
        ["msgfmt", "--check", "-o", str(messages / "django.mo"), str(po)],
        check=True,
        timeout=MSGFMT_TIMEOUT,
    )
    settings.LOCALE_PATHS = [str(base)]
