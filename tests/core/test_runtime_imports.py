"""The runtime core imports in one direction (issue 9: apps → checks → runtime → sessions →
state → apps was a cycle, closed by imports inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = (
    "jails.apps",
    "jails.checks",
    "jails.runtime",
    "jails.sessions",
    "jails.session_storage",
    "jails.state",
    "jails.management.base",
)


def jails_imports(module: str) -> set[str]:
    """Every jails.* module `module` imports, at the top or inside a function."""
    path = ROOT / (module.replace(".", "/") + ".py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("jails"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("jails"))
    return found & set(CORE)


def test_runtime_core_import_graph_has_no_cycle_even_inside_functions():
    graph = {module: jails_imports(module) for module in CORE}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " → ".join((*path, module))
        if module in done:
            return
        for target in graph[module]:
            visit(target, (*path, module))
        done.add(module)

    for module in CORE:
        visit(module, ())
    # The state is the bottom: it may be imported by everything and imports none of them
    # but the storages.
    assert graph["jails.state"] == {"jails.session_storage"}
    assert graph["jails.session_storage"] == set()
