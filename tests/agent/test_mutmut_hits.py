"""tests/support/mutmut_hits.py: mutmut's map reaches into the Python processes tests start.

A child runs a module laid out the way mutmut lays out a mutated one (a trampoline, the
original and one mutant), as `python -m`, the way the tests start the agent.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support import mutmut_hits
from tests.support.agent_process import REPO_ROOT, agent_environment

MUTATED_MAIN = textwrap.dedent(
    """
    from mutmut.mutation.trampoline import wrap_in_trampoline as _mutmut_mutated

    mutants_x_answer__mutmut = {}


    @_mutmut_mutated(mutants_x_answer__mutmut)
    def answer():
        return "original"


    def x_answer__mutmut_orig():
        return "original"


    def x_answer__mutmut_1():
        return "mutant"


    mutants_x_answer__mutmut["_mutmut_orig"] = x_answer__mutmut_orig
    mutants_x_answer__mutmut["x_answer__mutmut_1"] = x_answer__mutmut_1
    print(answer())
    print(answer())
    """
)


def _run_main(tmp_path, **env):
    package = tmp_path / "pkg"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(MUTATED_MAIN)
    result = subprocess.run(
        [sys.executable, "-m", "pkg"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{mutmut_hits.SITE_DIR}:{tmp_path}", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


def test_a_main_modules_mutant_switches_on_under_its_real_name(tmp_path):
    # mutmut names it pkg.__main__.x_answer__mutmut_1; `python -m` runs it as __main__.
    assert _run_main(tmp_path, MUTANT_UNDER_TEST="pkg.__main__.x_answer__mutmut_1") == [
        "mutant",
        "mutant",
    ]
    assert _run_main(tmp_path, MUTANT_UNDER_TEST="pkg.__main__.x_other__mutmut_1") == [
        "original",
        "original",
    ]


def test_stats_run_hits_are_written_under_the_real_name_and_read_once(tmp_path):
    hits_dir = tmp_path / "hits"
    hits_dir.mkdir()
    env = {"MUTANT_UNDER_TEST": "stats", mutmut_hits.HITS_DIR_ENV: str(hits_dir)}
    assert _run_main(tmp_path, **env) == ["original", "original"]
    [hits_file] = hits_dir.glob("*.hits")
    # Every hit, one a line: the same process may serve several tests.
    assert hits_file.read_text() == "pkg.__main__.x_answer\n" * 2

    reader = mutmut_hits.SubprocessHits(hits_dir)
    assert reader.new_names() == {"pkg.__main__.x_answer"}
    assert reader.new_names() == set()
    with open(hits_file, "a") as file:
        file.write("pkg.mod.x_half")  # a line still being written is left for the next read
    assert reader.new_names() == set()
    with open(hits_file, "a") as file:
        file.write("\n")
    assert reader.new_names() == {"pkg.mod.x_half"}


def test_agent_environment_adds_the_site_directory_only_under_mutmut(monkeypatch):
    monkeypatch.delenv("MUTANT_UNDER_TEST", raising=False)
    assert agent_environment()["PYTHONPATH"] == str(REPO_ROOT)
    monkeypatch.setenv("MUTANT_UNDER_TEST", "jails.agent.server.x_dispatch__mutmut_1")
    assert agent_environment()["PYTHONPATH"] == f"{mutmut_hits.SITE_DIR}:{REPO_ROOT}"


def test_under_a_mutant_the_tests_run_fastest_first_by_the_stats_runs_timings(monkeypatch):
    from mutmut.state import state

    class Item:
        def __init__(self, nodeid: str) -> None:
            self.nodeid = nodeid

    def order(items: list[Item]) -> list[str]:
        mutmut_hits.pytest_collection_modifyitems(items)  # type: ignore[arg-type]
        return [item.nodeid for item in items]

    names = ["tests/a.py::slow", "tests/a.py::untimed", "tests/b.py::fast", "tests/b.py::mid"]
    timings = {"tests/a.py::slow": 12.0, "tests/b.py::fast": 0.1, "tests/b.py::mid": 1.5}
    monkeypatch.setattr(state(), "duration_by_test", timings)
    monkeypatch.setenv("MUTANT_UNDER_TEST", "jails.agent.ssh.x_f__mutmut_1")
    expected = ["tests/a.py::untimed", "tests/b.py::fast", "tests/b.py::mid", "tests/a.py::slow"]
    assert order([Item(n) for n in names]) == expected
    # The stats run and a plain run keep pytest's order (the stats run maps tests to
    # functions; nothing is timed yet).
    monkeypatch.setenv("MUTANT_UNDER_TEST", "stats")
    assert order([Item(n) for n in names]) == names
    monkeypatch.delenv("MUTANT_UNDER_TEST")
    assert order([Item(n) for n in names]) == names
