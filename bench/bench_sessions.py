"""Benchmark the three session storages: what loading and saving one session costs.

Run: .venv/bin/python bench/bench_sessions.py   (starts a private redis-server itself)

Every page loads the session once; a login, a logout or a changed session saves it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import django_setup, median_ms, print_table  # noqa: E402


def main() -> None:
    django_setup()
    from jails.apps import runtime_state
    from jails.sessions import SessionStore
    from jails.state import session_cache_build
    from tests.support.redis_server import RedisServer

    redis = RedisServer(Path(tempfile.mkdtemp(prefix="ja-redis-b-", dir="/tmp")))
    redis.start()
    try:
        state = runtime_state()
        rows = []
        for kind, url in (("database", ""), ("redis", redis.url), ("memory", "")):
            state.snapshot_replace(
                session_cache=session_cache_build(state, kind=kind, redis_url=url)
            )
            session = SessionStore()
            session.update({"_auth_user_id": "1", "_auth_user_hash": "h" * 64, "x": "y" * 100})
            session.save()
            key = session.session_key

            def load(key: str = key) -> None:
                SessionStore(key).load()

            def save(key: str = key) -> None:
                store = SessionStore(key)
                store["n"] = 1
                store.save()

            rows.append(
                (
                    f"{kind}: load / save",
                    f"{median_ms(load, repeat=500):.3f} ms / {median_ms(save, repeat=200):.3f} ms",
                )
            )
        print_table("Session storage, one session (median)", rows)
    finally:
        redis.stop()
        shutil.rmtree(redis.directory, ignore_errors=True)


if __name__ == "__main__":
    main()
