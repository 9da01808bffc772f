"""First on an agent's PYTHONPATH only under mutmut (tests/support/mutmut_hits.py).

Python imports `sitecustomize` at start-up. Standard library and mutmut only: the agent must
not import pytest or the tests to be counted. It shadows Debian's own sitecustomize (which
only installs apport's crash hook) in those processes, and only there. Two things:

- `python -m jails.agent` runs jails/agent/__main__.py as the module `__main__`, so its
  trampolines call themselves `__main__.x_...`: mutmut's stats would not know them and its
  mutants (named `jails.agent.__main__.x_...`) would never switch on. Names are translated
  both ways between `__main__` and the module's real name (`__main__.__spec__.name`).
- During the stats run (JAILADMIN_MUTMUT_HITS_DIR set), every trampoline hit appends its
  name, one a line, to `<dir>/<pid>.hits`, where the test process reads it after each test.
"""

import os
import sys


def _main_module_name() -> str | None:
    """The real name of the module running as __main__ (`python -m`), if any."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name if spec is not None else None


def _install() -> None:
    if not os.environ.get("MUTANT_UNDER_TEST"):
        return
    from mutmut.mutation import trampoline

    real_get_mutant_under_test = trampoline.get_mutant_under_test

    def get_mutant_under_test() -> str:
        name = real_get_mutant_under_test()
        main = _main_module_name()
        if main is not None and name.startswith(f"{main}."):
            return f"__main__.{name[len(main) + 1 :]}"
        return name

    # The trampolines look both functions up in their module at each call.
    trampoline.get_mutant_under_test = get_mutant_under_test

    directory = os.environ.get("JAILADMIN_MUTMUT_HITS_DIR")  # mutmut_hits.HITS_DIR_ENV
    if not directory or os.environ["MUTANT_UNDER_TEST"] != "stats":
        return
    # O_APPEND: each hit is one write that lands whole, even with several threads writing.
    fd = os.open(
        os.path.join(directory, f"{os.getpid()}.hits"),
        os.O_WRONLY | os.O_CREAT | os.O_APPEND,
        0o600,
    )

    def record_trampoline_hit(name: str, caller: str | None = None) -> None:
        # Every hit, not each name once: the same agent may serve many tests. Written on
        # entry, before the function can answer the test that caused it.
        if name.startswith("__main__."):
            name = f"{_main_module_name() or '__main__'}.{name[len('__main__.') :]}"
        os.write(fd, f"{name}\n".encode())

    trampoline.record_trampoline_hit = record_trampoline_hit


_install()
