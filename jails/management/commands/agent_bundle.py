"""`manage.py agent_bundle OUT.pyz`: the host agent as one file to copy to a host.

The bundle is a stdlib zipapp (a shebang line, then a zip archive) holding only the Django-free
packages the agent needs: ``jails/agent/`` and ``jails/fail2ban/``. It runs on the host's own
``/usr/bin/python3 -I`` with no virtual environment. It is reproducible: the entries are sorted
and carry a fixed timestamp and mode, so the same sources give the same bytes and the printed
sha256 can be compared with a build made elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.translation import gettext, gettext_noop

from jails.management.base import TranslatedCommand

# jails/management/commands/agent_bundle.py -> jails/
JAILS_DIR = Path(__file__).resolve().parents[2]
BUNDLED_PACKAGES = ("agent", "fail2ban")
SHEBANG = b"#!/usr/bin/env python3\n"
# The zip format cannot store a date before 1980; any fixed value makes the bytes repeatable.
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
ENTRY_MODE = 0o100644  # a regular file, rw-r--r--
# runpy runs jails/agent/__main__.py exactly as `python -m jails.agent` does, so the bundle
# and the checkout share one entry point whatever that module calls its main function.
MAIN_SOURCE = b'''"""jailadmin host agent, bundled by `manage.py agent_bundle`."""

import runpy

runpy.run_module("jails.agent", run_name="__main__", alter_sys=True)
'''


def bundle_sources(jails_dir: Path) -> list[tuple[str, bytes]]:
    """The (archive name, content) pairs of the bundle, sorted by name."""
    if not (jails_dir / "agent" / "__main__.py").is_file():
        raise CommandError(f"{jails_dir / 'agent' / '__main__.py'} is missing: no agent to bundle")
    # jails/__init__.py is empty; the agent is imported as jails.agent, so the package is needed.
    entries = [("jails/__init__.py", (jails_dir / "__init__.py").read_bytes())]
    for package in BUNDLED_PACKAGES:
        for path in (jails_dir / package).rglob("*.py"):
            relative = path.relative_to(jails_dir)
            if any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
                continue
            entries.append((f"jails/{relative.as_posix()}", path.read_bytes()))
    entries.append(("__main__.py", MAIN_SOURCE))
    return sorted(entries)


def bundle_bytes(jails_dir: Path) -> bytes:
    """The whole .pyz: shebang, then a deflated zip with fixed timestamps and modes."""
    fd, scratch = tempfile.mkstemp(suffix=".zip")
    os.close(fd)
    try:
        with zipfile.ZipFile(scratch, "w") as archive:
            for name, content in bundle_sources(jails_dir):
                info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = ENTRY_MODE << 16
                archive.writestr(info, content, compresslevel=9)
        # zipimport finds the archive by its end record, so a prefix (the shebang) is fine:
        # this is exactly what zipapp.create_archive writes.
        return SHEBANG + Path(scratch).read_bytes()
    finally:
        os.unlink(scratch)


def bundle_write(out: Path, content: bytes, *, force: bool) -> None:
    """Write the bundle with mode 0755, atomically; refuse an existing file unless force."""
    if out.exists() and not force:
        raise CommandError(gettext("%(path)s exists; pass --force to replace it") % {"path": out})
    if out.is_dir():
        raise CommandError(gettext("%(path)s is a directory") % {"path": out})
    # A temp file beside the target and a rename: a host copying the bundle never sees half.
    fd, scratch = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(scratch, 0o755)
        if force:
            os.replace(scratch, out)
        else:
            # link() fails if the name appeared meanwhile: no race replaces someone's file.
            try:
                os.link(scratch, out)
            except FileExistsError as exc:
                raise CommandError(
                    gettext("%(path)s exists; pass --force to replace it") % {"path": out}
                ) from exc
            os.unlink(scratch)
    except BaseException:
        if os.path.lexists(scratch):
            os.unlink(scratch)
        raise


class Command(TranslatedCommand):
    help = gettext_noop(
        "Build the host agent as one reproducible zipapp (runs on the system python3)."
    )
    # Building a file needs no site configuration: no fail2ban socket, no database.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "out", type=Path, help=gettext("Where to write the bundle, e.g. agent.pyz.")
        )
        parser.add_argument(
            "--force", action="store_true", help=gettext("Replace an existing file.")
        )

    def handle(self, *args: Any, **options: Any) -> None:
        out: Path = options["out"]
        if not out.parent.is_dir():
            raise CommandError(gettext("%(path)s is not a directory") % {"path": out.parent})
        content = bundle_bytes(JAILS_DIR)
        bundle_write(out, content, force=options["force"])
        digest = hashlib.sha256(content).hexdigest()
        # Not translated: a line scripts read (the path, the size, the digest).
        self.stdout.write(f"{out.resolve()} {len(content)} bytes sha256 {digest}")
