"""What every full page reuses between requests in one process (RuntimeState.pages).

The layout (navigation, header, language selector, status bar) and the jail list used to
redo the same work on every request: about twenty URL reversals, the static files' hashed
names, the language names, a read of the host rows and one of the failing blocklist
sources. Three kinds of entry, each with its own freshness rule, so an operator is never
shown something that is no longer true:

- `text`: values that depend only on the code and on what the key names (the URLconf, the
  request's script prefix, the language): reversed URLs, static URLs, translated labels.
  They cannot go stale while the process runs; the key must name every input.
- `stamped`: database rows, kept with the version stamp (jails.stamps) read before them; a
  request that reads another stamp reads the rows again. Any process's write bumps it. The
  status bar's sentences are kept the same way, their live counters as the stamp.
- `recent`: the status bar's alerts, at most `max_age` seconds old (its own poll interval).

fail2ban's state is never kept here: every page asks it (one overview round).

Plain Python (no Django): jails.state holds one per process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

# Keys are (kind, URLconf, script prefix, language, ...): a few hundred at most on a real
# site. The bound only guards memory against something unforeseen multiplying them.
PAGE_CACHE_TEXTS = 2048


@dataclass
class PageCache:
    """Per-process page parts; gunicorn's threads share it (dict reads and writes are atomic,
    and two threads building the same entry at once build equal values)."""

    max_texts: int = PAGE_CACHE_TEXTS
    texts: dict[Hashable, object] = field(default_factory=dict, repr=False)
    timed: dict[Hashable, tuple[float, object]] = field(default_factory=dict, repr=False)
    stamps: dict[Hashable, tuple[Hashable, object]] = field(default_factory=dict, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def text(self, key: Hashable, build: Callable[[], T]) -> T:
        """The value for `key`, built once; `key` names everything `build` depends on."""
        try:
            return self.texts[key]  # type: ignore[return-value]
        except KeyError:
            pass
        value = build()
        with self.lock:
            if len(self.texts) >= self.max_texts:
                self.texts.clear()
            self.texts[key] = value
        return value

    def recent(
        self,
        key: Hashable,
        build: Callable[[], T],
        *,
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> T:
        """`build()`'s value, reused while it is less than `max_age` seconds old."""
        now = clock()
        entry = self.timed.get(key)
        if entry is not None and 0 <= now - entry[0] < max_age:
            return entry[1]  # type: ignore[return-value]
        value = build()
        self.timed[key] = (now, value)
        return value

    def stamped(self, key: Hashable, stamp: Hashable | None, build: Callable[[], T]) -> T:
        """`build()`'s value, reused while the stamp read before it still holds.

        `stamp` must be read before `build` reads the data: a value is then never kept
        under a stamp newer than what it was built from. None (no stamp): built every time.
        A stamp may also be the inputs themselves (the status bar's live counters): one
        entry per key, replaced when they change, where `text` would keep one per value.
        """
        if stamp is None:
            return build()
        entry = self.stamps.get(key)
        if entry is not None and entry[0] == stamp:
            return entry[1]  # type: ignore[return-value]
        value = build()
        self.stamps[key] = (stamp, value)
        return value
