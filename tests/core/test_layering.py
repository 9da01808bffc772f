"""The layering holds: arrows point down only (README, "How it is built").

`make lint` runs the import-linter contracts in pyproject.toml; the suite runs them too, so a
new upward import fails the tests as well. Import-linter sees modules, not names, so the
rule that no module borrows another's private (underscore) helpers is checked here.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with this project's contracts over the `jails` package in `tree`."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "lint-imports"),
            "--no-cache",
            str(ROOT / "pyproject.toml"),
        ],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_layering_import_contracts_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_layering_import_contracts_catch_an_upward_import(tmp_path):
    # The inversions issue 9 found, put back one at a time into a copy of the package.
    shutil.copytree(
        ROOT / "jails", tmp_path / "jails", ignore=shutil.ignore_patterns("__pycache__")
    )
    admin = tmp_path / "jails" / "admin.py"
    admin.write_text(admin.read_text() + "\nfrom jails.views.common import page_number\n")
    forms = tmp_path / "jails" / "forms.py"
    forms.write_text(forms.read_text() + "\nfrom jails.templatetags.jailadmin import duration\n")
    control = tmp_path / "jails" / "views" / "control.py"
    control.write_text(control.read_text() + "\nfrom jails.views.bans import jail_bulk_ban\n")
    bans = tmp_path / "jails" / "views" / "bans.py"
    bans.write_text(bans.read_text() + "\nfrom jails.views.control import jail_tune\n")
    client = tmp_path / "jails" / "fail2ban" / "client.py"
    client.write_text(client.read_text() + "\nfrom django.conf import settings\n")
    # A core page reaching into the history app's pages instead of its selectors.
    ip = tmp_path / "jails" / "views" / "ip.py"
    ip.write_text(ip.read_text() + "\nfrom jails.history.views.archive import dashboard\n")
    # The history's services reaching up into a view.
    sync = tmp_path / "jails" / "history" / "services" / "sync.py"
    sync.write_text(sync.read_text() + "\nfrom jails.views.common import page_number\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert "jails.admin is not allowed to import jails.views" in out
    assert "jails.forms is not allowed to import jails.templatetags" in out
    assert "No cycles are allowed in jails.views" in out
    assert "jails.fail2ban is not allowed to import django" in out
    assert "jails.views is not allowed to import jails.history.views" in out
    assert "jails.history.services is not allowed to import jails.views" in out


def _private_imports(source: str, *, module: str) -> list[str]:
    """The `from jails.x import _name` imports in `module`'s source that take a name private
    to another module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        if not node.module.startswith("jails") or node.module == module:
            continue
        found += [
            f"{module}:{node.lineno}: {node.module}.{alias.name}"
            for alias in node.names
            if alias.name.startswith("_") and not alias.name.startswith("__")
        ]
    return found


def test_layering_no_module_imports_private_helpers_of_another():
    found = []
    for path in sorted((ROOT / "jails").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found += _private_imports(path.read_text(), module=module)
    assert found == []


def test_layering_private_import_check_can_fail():
    # The selectors once imported the archive's private month helpers like this.
    source = "from jails.history.services.summaries import DAY, _month_start\n"
    assert _private_imports(source, module="jails.history.selectors.archive") == [
        "jails.history.selectors.archive:1: jails.history.services.summaries._month_start"
    ]
