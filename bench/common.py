"""Shared set-up for the benchmark scripts: a private Django environment and timing helpers."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def django_setup() -> Path:
    """Configure Django on a throw-away SQLite database and migrate it; returns the var dir."""
    var_dir = Path(tempfile.mkdtemp(prefix="jailadmin-bench-"))
    os.environ.setdefault("JAILADMIN_VAR_DIR", str(var_dir))
    os.environ.setdefault("JAILADMIN_SECRET_KEY", "benchmark-only-secret-key-0123456789abcdef")
    os.environ.setdefault("JAILADMIN_DEBUG", "false")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jailadmin.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    return var_dir


def median_ms(func: Callable[[], object], *, repeat: int, warmup: int = 2) -> float:
    """Median wall time of `func` in milliseconds."""
    for _ in range(warmup):
        func()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    """A two-column table, the benchmarks' common output format."""
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 24))
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
