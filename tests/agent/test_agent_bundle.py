"""`manage.py agent_bundle`: one reproducible zipapp that runs on the host's system python3."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jails.fail2ban.server import PrivateServer
from jails.management.commands.agent_bundle import (
    FIXED_DATE_TIME,
    JAILS_DIR,
    SHEBANG,
    bundle_bytes,
)
from tests.conftest import FAIL2BAN_VERSION

pytestmark = [pytest.mark.fail2ban]

# The host's interpreter, not the venv's: the bundle must need nothing but the stdlib.
SYSTEM_PYTHON = "/usr/bin/python3"
# A cold start of the system python on a loaded 1-core box, plus one fail2ban round trip.
RUN_TIMEOUT = 60
HEADER = struct.Struct(">I")


def build(out: Path, *extra: str) -> str:
    stdout = StringIO()
    call_command("agent_bundle", str(out), *extra, stdout=stdout)
    return stdout.getvalue()


def run_bundle(bundle: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    # -I: no PYTHON* variables, no user site, no script or current directory magic; cwd is a
    # directory without jails/ in it, so every jails module can only come from the bundle.
    return subprocess.run(
        [SYSTEM_PYTHON, "-I", str(bundle), *args],
        input=stdin,
        capture_output=True,
        cwd=bundle.parent,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def frame(obj: object) -> bytes:
    body = json.dumps(obj).encode()
    return HEADER.pack(len(body)) + body


def frames_read(data: bytes) -> list[dict]:
    replies = []
    while data:
        (length,) = HEADER.unpack(data[:4])
        replies.append(json.loads(data[4 : 4 + length]))
        data = data[4 + length :]
    return replies


def archive_modules(bundle: Path) -> set[str]:
    with zipfile.ZipFile(bundle) as archive:
        names = [n.removesuffix(".py").replace("/", ".") for n in archive.namelist()]
    return {n.removesuffix(".__init__") for n in names}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    out = tmp_path / "agent.pyz"
    build(out)
    return out


def test_agent_bundle_runs_version_and_help_on_isolated_system_python(bundle: Path):
    version = run_bundle(bundle, "--version")
    assert version.returncode == 0, version.stderr.decode()
    assert version.stdout.decode().startswith("jailadmin-agent ")

    helped = run_bundle(bundle, "--help")
    assert helped.returncode == 0, helped.stderr.decode()
    text = helped.stdout.decode()
    for option in ("--stdio", "--listen", "--socket"):
        assert option in text


def test_agent_bundle_serves_stdio_against_real_fail2ban_without_django(
    bundle: Path, f2b_server: PrivateServer
):
    """The bundle alone, on the system python, speaks the protocol and reaches fail2ban."""
    requests = frame({"op": "hello", "protocol": 1}) + frame(
        {"id": 1, "op": "fail2ban", "args": {"commands": [["ping"], ["status"]]}}
    )
    # -X importtime lists every module the interpreter imported, on stderr.
    done = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-I",
            "-X",
            "importtime",
            str(bundle),
            "--stdio",
            "--socket",
            str(f2b_server.socket_path),
        ],
        input=requests,
        capture_output=True,
        cwd=bundle.parent,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    hello, reply = frames_read(done.stdout)
    assert hello["ok"] is True
    assert hello["value"]["agent"] == "jailadmin-agent"
    assert hello["value"]["fail2ban_version"] == FAIL2BAN_VERSION
    assert reply["id"] == 1
    assert reply["ok"] is True
    ping, status = reply["value"]["results"]
    assert ping == {"ok": True, "value": "pong"}
    assert status["ok"] is True

    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.decode().splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "jails.agent" in imported
    assert not {m for m in imported if m.split(".")[0] == "django"}
    # Every jails module came from the bundle: nothing else of the checkout is reachable.
    assert {m for m in imported if m.split(".")[0] == "jails"} <= archive_modules(bundle)


def test_agent_bundle_holds_only_the_agent_and_fail2ban_packages(bundle: Path):
    expected = {"__main__.py", "jails/__init__.py"}
    for package in ("agent", "fail2ban"):
        expected |= {
            f"jails/{p.relative_to(JAILS_DIR).as_posix()}"
            for p in (JAILS_DIR / package).rglob("*.py")
            if "__pycache__" not in p.parts
        }
    with zipfile.ZipFile(bundle) as archive:
        infos = archive.infolist()
        assert {i.filename for i in infos} == expected
        assert [i.filename for i in infos] == sorted(i.filename for i in infos)
        for info in infos:
            assert info.compress_type == zipfile.ZIP_DEFLATED
            assert info.date_time == FIXED_DATE_TIME
            assert (info.external_attr >> 16) == 0o100644

    assert bundle.read_bytes().startswith(SHEBANG)
    assert SHEBANG == b"#!/usr/bin/env python3\n"
    assert bundle.stat().st_mode & 0o777 == 0o755


def test_agent_bundle_imports_nothing_but_stdlib_and_its_own_modules(bundle: Path):
    """No django (grep and parse) and no jails module that is not inside the archive."""
    bundled = archive_modules(bundle)
    with zipfile.ZipFile(bundle) as archive:
        sources = {n: archive.read(n).decode() for n in archive.namelist()}
    for name, source in sources.items():
        assert "import django" not in source, name
        assert "from django" not in source, name
        for node in ast.walk(ast.parse(source, name)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top == "jails":
                    assert module in bundled, f"{name} imports {module}, not in the bundle"
                else:
                    assert top in sys.stdlib_module_names, f"{name} imports {module}"


def test_agent_bundle_is_byte_for_byte_reproducible(tmp_path: Path):
    first, second = tmp_path / "a.pyz", tmp_path / "b.pyz"
    printed = build(first)
    build(second)
    content = first.read_bytes()
    assert content == second.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    assert printed.split() == [str(first.resolve()), str(len(content)), "bytes", "sha256", digest]


def test_agent_bundle_ignores_timestamps_order_and_bytecode(tmp_path: Path):
    """Same sources, different mtimes and caches: the same bytes."""
    copy = tmp_path / "jails"
    copy.mkdir()
    shutil.copy2(JAILS_DIR / "__init__.py", copy / "__init__.py")
    for package in ("fail2ban", "agent"):
        shutil.copytree(JAILS_DIR / package, copy / package)
    before = bundle_bytes(copy)

    for path in copy.rglob("*.py"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    (copy / "agent" / "__pycache__").mkdir(exist_ok=True)
    (copy / "agent" / "__pycache__" / "stray.cpython-311.pyc").write_bytes(b"junk")
    (copy / "fail2ban" / "notes.txt").write_text("not python")
    assert bundle_bytes(copy) == before

    (copy / "fail2ban" / "validation.py").write_text(
        (copy / "fail2ban" / "validation.py").read_text() + "\n# changed\n"
    )
    assert bundle_bytes(copy) != before


def test_agent_bundle_refuses_to_overwrite_without_force(tmp_path: Path):
    out = tmp_path / "agent.pyz"
    out.write_bytes(b"someone else's file")
    with pytest.raises(CommandError, match="--force"):
        build(out)
    assert out.read_bytes() == b"someone else's file"

    build(out, "--force")
    assert out.read_bytes().startswith(SHEBANG)
    assert out.stat().st_mode & 0o777 == 0o755
    # No temp file is left beside it.
    assert [p.name for p in tmp_path.iterdir()] == ["agent.pyz"]


def test_agent_bundle_refuses_a_missing_directory(tmp_path: Path):
    with pytest.raises(CommandError, match="not a directory"):
        build(tmp_path / "missing" / "agent.pyz")
