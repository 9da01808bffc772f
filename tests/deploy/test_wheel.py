"""jailadmin as a built wheel: installed into a fresh virtual environment, run from outside
the checkout with the `jailadmin` command, templates and static files included.

The wheel is built from a copy of the sources (a build in the checkout would leave build/
behind in everyone's tree), with pip's build isolation; the fresh environment gets its
dependencies from the package index (pip's cache makes a second run quick).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What a source distribution holds (MANIFEST.in and pyproject.toml say the same).
SOURCES = ("jailadmin", "jails", "templates", "static")
SOURCE_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
# Building and installing fetch setuptools and the dependencies: minutes on a slow box.
PIP_TIMEOUT = 900
COMMAND_TIMEOUT = 300

pytestmark = pytest.mark.slow


def run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: int):
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def wheel_build(base: Path) -> Path:
    """Build jailadmin's wheel from a copy of the sources under `base`; the wheel's path."""
    source = base / "source"
    source.mkdir(parents=True)
    for name in SOURCES:
        shutil.copytree(
            ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    for name in SOURCE_FILES:
        shutil.copy2(ROOT / name, source / name)
    wheels = base / "wheels"
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), "."],
        cwd=source,
        timeout=PIP_TIMEOUT,
    )
    (wheel,) = wheels.glob("jailadmin-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with jailadmin installed from its wheel; its bin/."""
    base = tmp_path_factory.mktemp("wheel")
    wheel = wheel_build(base)
    venv = base / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=base, timeout=COMMAND_TIMEOUT)
    run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        cwd=base,
        timeout=PIP_TIMEOUT,
    )
    return venv / "bin"


def test_wheel_installed_site_works_from_outside_the_checkout(installed: Path, f2b, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "var").mkdir()  # as the README's install does (the site does not create it)
    env = {
        # Nothing of the checkout: no PYTHONPATH, a working directory of its own.
        "PATH": f"{installed}:/usr/bin:/bin",
        "JAILADMIN_SECRET_KEY": "wheel-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "JAILADMIN_VAR_DIR": str(tmp_path / "var"),
        "JAILADMIN_FAIL2BAN_SOCKET": str(f2b.socket_path),
        "JAILADMIN_FAIL2BAN_TIME_ZONE": f2b.tz or "UTC",
    }
    jailadmin = str(installed / "jailadmin")

    where = run(
        [str(installed / "python"), "-c", "import jailadmin, jails; print(jailadmin.__file__)"],
        cwd=outside,
        env=env,
        timeout=COMMAND_TIMEOUT,
    )
    assert where.startswith(str(installed.parent)), where

    assert "no issues" in run(
        [jailadmin, "check", "--fail-level", "WARNING"],
        cwd=outside,
        env=env,
        timeout=COMMAND_TIMEOUT,
    )
    run([jailadmin, "migrate", "--noinput", "-v0"], cwd=outside, env=env, timeout=COMMAND_TIMEOUT)
    collected = run(
        [jailadmin, "collectstatic", "--noinput"], cwd=outside, env=env, timeout=COMMAND_TIMEOUT
    )
    assert "static files copied" in collected
    assert list((tmp_path / "var" / "static" / "jails").glob("htmx.min.*.js"))
    status = run([jailadmin, "jails", "status"], cwd=outside, env=env, timeout=COMMAND_TIMEOUT)
    assert "sshd" in status
    token = run(
        [jailadmin, "jailadmin_setup", "--print-token"],
        cwd=outside,
        env=env,
        timeout=COMMAND_TIMEOUT,
    ).strip()
    assert token and " " not in token

    # A page from the packaged templates, and a static file through WhiteNoise.
    render = f"""
import django, os
os.environ["DJANGO_SETTINGS_MODULE"] = "jailadmin.settings"
django.setup()
from django.test import Client
page = Client(HTTP_HOST="127.0.0.1").get("/setup/", {{"token": {token!r}}})
print(page.status_code, 'id="setup-form"' in page.content.decode())
static = Client(HTTP_HOST="127.0.0.1").get("/static/jails/app.js")
print(static.status_code, static["Content-Type"])
"""
    out = run(
        [str(installed / "python"), "-c", render], cwd=outside, env=env, timeout=COMMAND_TIMEOUT
    )
    assert out.split("\n")[:2] == ["200 True", '200 text/javascript; charset="utf-8"']


def test_wheel_installed_site_needs_a_var_dir(installed: Path, tmp_path):
    """Installed, the checkout's var/ would be inside site-packages: the site says so."""
    done = subprocess.run(
        [str(installed / "jailadmin"), "check"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "JAILADMIN_SECRET_KEY": "x" * 50},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode != 0
    assert "JAILADMIN_VAR_DIR must be set for an installed jailadmin" in done.stderr
