"""Version stamps in the site's var dir: a per-process cache's way to see any process's write.

A stamp is a small file holding a random token; whoever changes the data it guards writes
a new token (to a temporary file, then `os.replace`, so a reader never sees half a token).
A cache keeps the token it read *before* reading the data and, on every later use, reads
the file again (an open and a read of 16 bytes: about 10 µs, against a database query's
0.3-1 ms of CPU) and drops its copy when the token changed. Every gunicorn worker, the job
runner and `manage.py` commands of one site share its var dir (JAILADMIN_VAR_DIR; the
SQLite database lives there too), so a change made by any of them is seen by the next
request of every worker.

A token, not the file's mtime or inode: both can repeat within a clock tick or after a
delete. A missing file is created on first read (so a fresh site caches from its first
request); a file that cannot be read gives no stamp, and callers then do not cache.

Plain Python (no Django): the callers know which file guards what.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

STAMP_DIR = "stamps"  # under the var dir
TOKEN_BYTES = 16


def stamp_path(var_dir: str, name: str) -> Path | None:
    """The stamp file `name` of the site whose var dir is `var_dir` (None: no var dir)."""
    if not var_dir:
        return None
    return Path(var_dir) / STAMP_DIR / name


def stamp_bump(path: Path) -> bool:
    """Write a new token: every cache keyed on the old one is stale from now on.

    False (logged) if the file could not be written: the caller's change is saved, but
    other processes may go on serving their copy, so the failure is an error in the log.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as stamp:
                stamp.write(os.urandom(TOKEN_BYTES))
            os.replace(temporary, path)
        except OSError:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        logger.exception("could not write the stamp %s: other processes may show old data", path)
        return False
    return True


def stamp_read(path: Path | None) -> bytes | None:
    """The current token; a missing file is created first. None: do not cache."""
    if path is None:
        return None
    for _attempt in range(2):
        try:
            with open(path, "rb") as stamp:
                token = stamp.read(TOKEN_BYTES + 1)
        except FileNotFoundError:
            if not stamp_bump(path):
                return None
            continue
        except OSError:
            return None
        # A token is exactly TOKEN_BYTES (os.replace never shows a partial write): a file
        # of another size is not one of ours, and nothing is cached on it.
        return token if len(token) == TOKEN_BYTES else None
    return None
