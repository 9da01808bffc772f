"""mutmut's test-to-function map, extended to the Python processes the tests start.

mutmut 3 runs each mutant only against the tests that reached the mutated function, and it
learns which those are in a "stats" run: every mutated function is wrapped in a trampoline
that, while MUTANT_UNDER_TEST is "stats", records its name in the test process, and mutmut
reads the names after each test. The agent's server side (jails/agent/server.py,
__main__.py, much of operations.py) only ever runs in the agent processes the tests start
(tests/support/agent_process.py), where those records are lost, so mutmut saw no test for
about 1 000 of its mutants and never ran them. The mutants themselves can be tested: a
child inherits MUTANT_UNDER_TEST and imports the mutated copy like the test process does.

Active only under mutmut (`-p tests.support.mutmut_hits` in [tool.mutmut] pytest_add_cli_args;
without MUTANT_UNDER_TEST it does nothing):

- the test process makes a directory and names it in the environment (HITS_DIR_ENV);
- agent_environment() puts SITE_DIR first on the agent's PYTHONPATH (under mutmut only),
  whose sitecustomize.py makes each trampoline hit append its name, as one line, to
  `<dir>/<pid>.hits` (every hit, not each name once, because the same agent may serve many
  tests; the write happens on entry, before the function can answer the test). It also
  translates `__main__` to `jails.agent.__main__` both ways, so that the command line's
  mutants are counted, and switch on, in `python -m jails.agent`;
- after each test, fixtures' teardown included (so an agent stopped then is counted), the
  test process reads the new lines of every file and adds the test to those functions.

A hit that an agent writes after the test that caused it has ended (work left running in
the background, e.g. closing a connection) is given to the next test instead: the map is
then off by one test for that function, as mutmut's own is for what a fixture's teardown
runs. Tests
that end with the agent they started (AgentProcess is stopped in their teardown) are exact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest

HITS_DIR_ENV = "JAILADMIN_MUTMUT_HITS_DIR"  # also spelled out in mutmut_site/sitecustomize.py
SITE_DIR = Path(__file__).resolve().parent / "mutmut_site"
STATS = "stats"  # MUTANT_UNDER_TEST during mutmut's stats run


def stats_run() -> bool:
    return os.environ.get("MUTANT_UNDER_TEST") == STATS


def subprocess_pythonpath() -> list[str]:
    """What goes first on a child Python's PYTHONPATH under mutmut (else nothing)."""
    return [str(SITE_DIR)] if os.environ.get("MUTANT_UNDER_TEST") else []


class SubprocessHits:
    """The test process's side: reads the children's hits files after each test."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.offsets: dict[Path, int] = {}

    def new_names(self) -> set[str]:
        names: set[str] = set()
        for path in sorted(self.directory.glob("*.hits")):
            offset = self.offsets.get(path, 0)
            with open(path, "rb") as file:
                file.seek(offset)
                data = file.read()
            # Only whole lines: a child may be writing the next one right now.
            end = data.rfind(b"\n") + 1
            self.offsets[path] = offset + end
            names.update(data[:end].decode().split())
        return names

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        yield  # after the fixtures' teardown: an agent stopped there has written its hits
        from mutmut.state import state
        from mutmut.utils.format_utils import strip_prefix

        # The same key as mutmut's own StatsCollector uses for the in-process hits.
        test = strip_prefix(item.nodeid, prefix="mutants/")
        for name in self.new_names():
            state().tests_by_mangled_function_name[name].add(test)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under a mutant, the tests that reached its function run fastest first.

    mutmut hands them over as a set (any order) and stops at the first failure (-x), so a
    mutant that a 0.1 s test kills often waited first for tests of 10 s and more that start
    a fail2ban server or an agent. The stats run's timings (mutmut's state, inherited by the
    forked child) give the order; tests it did not time keep theirs, first.
    """
    if not os.environ.get("MUTANT_UNDER_TEST") or stats_run():
        return
    from mutmut.state import state
    from mutmut.utils.format_utils import strip_prefix

    durations = state().duration_by_test
    items.sort(key=lambda item: durations.get(strip_prefix(item.nodeid, prefix="mutants/"), 0.0))


def pytest_configure(config: pytest.Config) -> None:
    if not stats_run():
        return
    directory = Path(tempfile.mkdtemp(prefix="ja-mutmut-hits-", dir="/tmp"))
    os.environ[HITS_DIR_ENV] = str(directory)
    config.pluginmanager.register(SubprocessHits(directory), "jailadmin-mutmut-hits")
    config.add_cleanup(lambda: _forget(directory))


def _forget(directory: Path) -> None:
    os.environ.pop(HITS_DIR_ENV, None)
    shutil.rmtree(directory, ignore_errors=True)
