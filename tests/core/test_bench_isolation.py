"""`make bench` must never touch the site it runs next to (issue 8, item 5).

The Makefile exports JAILADMIN_VAR_DIR=var and an operator's shell may export a database
or Redis URL; bench/common.py used `setdefault`, so every benchmark migrated and wrote the
site's own database. Here the environment points at a fake site with a database, a
secret and a socket of its own; the benchmark set-up runs in a child process (it
configures Django) and the site must come out byte for byte as it went in.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, os, sys
sys.path.insert(0, {root!r})
from bench.common import django_setup

work = django_setup()
from django.conf import settings
from django.contrib.auth import get_user_model
from jails.models import SiteSettings

# What a benchmark does: a user and a repointed fail2ban socket, in its own database.
get_user_model().objects.create_superuser("bench", password=None)
SiteSettings.objects.update_or_create(singleton=1, defaults={{"fail2ban_socket": "/x.sock"}})
print(json.dumps({{
    "work": str(work),
    "database": str(settings.DATABASES["default"]["NAME"]),
    "var_dir": str(settings.VAR_DIR),
    "static_root": str(settings.STATIC_ROOT),
    "session_cache": os.environ["JAILADMIN_SESSION_CACHE"],
    "redis": os.environ.get("JAILADMIN_REDIS_URL"),
}}))
"""


def snapshot(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_bench_setup_leaves_the_site_alone(tmp_path):
    import json

    site = tmp_path / "site"
    site.mkdir()
    (site / "jailadmin.sqlite3").write_bytes(b"the site's own database")
    (site / "secret-key").write_text("site secret")
    before = snapshot(site)
    env = {
        **os.environ,
        "JAILADMIN_VAR_DIR": str(site),
        "JAILADMIN_DATABASE_URL": f"sqlite:///{site / 'jailadmin.sqlite3'}",
        "JAILADMIN_STATIC_ROOT": str(site / "static"),
        "JAILADMIN_SESSION_CACHE": "redis",
        "JAILADMIN_REDIS_URL": "redis://:site-password@127.0.0.1:1/0",
        "JAILADMIN_FAIL2BAN_SOCKET": str(site / "fail2ban.sock"),
        "JAILADMIN_SECRET_KEY": "the-site-secret-key-0123456789-abcdefghijklmnop",
    }
    result = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(ROOT))],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert snapshot(site) == before
    assert not str(seen["database"]).startswith(str(site))
    assert not seen["var_dir"].startswith(str(site))
    assert not seen["static_root"].startswith(str(site))
    assert seen["database"].startswith(seen["work"])
    assert (seen["session_cache"], seen["redis"]) == ("database", None)
    # The throw-away directory goes when the benchmark exits.
    assert not Path(seen["work"]).exists()
