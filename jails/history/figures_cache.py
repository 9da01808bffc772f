"""Per-process memory of what the dashboard and the history list computed from the archive.

The archive changes only when the history sync archives bans, the retention purge deletes
them or the summaries are rebuilt, and each of those changes the archive's stamp
(jails.history.selectors.archive.archive_stamp: one cheap query every request makes). Every
entry here belongs to one stamp: a request that reads a newer stamp drops them all, so a
change made by any process (the job runner, another gunicorn worker, a shell command) is
seen by the next request in every process. Windows relative to "now" are part of each key
(the views cut them to whole minutes), so the clock moving on also makes new entries.

Plain Python (no Django): jails.state holds one per process (HistoryState.figures).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar, cast

T = TypeVar("T")

# Kinds of entry (dashboard figures, its rendered panels, the filter choices, history pages)
# × filters × languages in use at one stamp: a few dozen. The bound caps memory (a rendered
# dashboard is about 60 KB, a history page with long log lines more) if someone walks every
# filter combination or page.
FIGURES_CACHE_ENTRIES = 128
# A dashboard over a million bans takes 0.1–2 s to build on a busy machine; a build that takes
# far longer is stuck (a database lock): waiting threads then build the value themselves.
BUILD_WAIT_SECONDS = 30.0


@dataclass
class FiguresCache:
    """Values computed from the archive at one stamp, least recently used dropped first."""

    max_entries: int = FIGURES_CACHE_ENTRIES
    stamp: Hashable | None = None
    entries: OrderedDict[Hashable, object] = field(default_factory=OrderedDict, repr=False)
    # gunicorn's threads share the process: entries and stamp change together.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Builds under way by (stamp, key): after a sync, or when a new minute moves the windows,
    # the 16 threads of a worker would otherwise each compute the same dashboard at once.
    building: dict[tuple[Hashable, Hashable], threading.Event] = field(
        default_factory=dict, repr=False
    )
    hits: int = 0
    misses: int = 0

    def clear(self) -> None:
        """Forget every entry (benchmarks time the pages' work with it: bench_history.py)."""
        with self.lock:
            self.entries.clear()
            self.stamp = None

    def get_or_build(self, stamp: Hashable, key: Hashable, build: Callable[[], T]) -> T:
        """The value of ``key`` at ``stamp``; ``build()`` it (outside the lock) if missing.

        ``stamp`` must be read before ``build`` reads the archive: a value is then never
        stored under a stamp newer than the data it was computed from. One thread builds a
        missing value; the others asking for it meanwhile wait for that one (at most
        BUILD_WAIT_SECONDS, then they build it themselves).
        """
        # The key names what was built (a kind and its inputs): a hit is of the same type T.
        with self.lock:
            if stamp != self.stamp:
                self.entries.clear()
                self.stamp = stamp
            if key in self.entries:
                return cast(T, self._hit(key))
            pending = self.building.get((stamp, key))
            builder = pending is None
            if pending is None:
                pending = self.building[stamp, key] = threading.Event()
                self.misses += 1
        if not builder:
            pending.wait(BUILD_WAIT_SECONDS)
            with self.lock:
                if stamp == self.stamp and key in self.entries:
                    return cast(T, self._hit(key))
            # The builder failed or is stuck, or the archive changed meanwhile: build here.
            return build()
        try:
            # Without the lock: it reads the database, and other keys' hits must not wait.
            value = build()
            with self.lock:
                if stamp == self.stamp:
                    self.entries[key] = value
                    self.entries.move_to_end(key)
                    while len(self.entries) > self.max_entries:
                        self.entries.popitem(last=False)
        finally:
            with self.lock:
                del self.building[stamp, key]
            pending.set()
        return value

    def _hit(self, key: Hashable) -> object:
        self.entries.move_to_end(key)
        self.hits += 1
        return self.entries[key]
