"""50 concurrent ban/unban requests through real gunicorn workers against real fail2ban.

The site runs as in production: gunicorn with several workers and threads, on a free
loopback port, with its own SQLite file (migrated by `manage.py migrate` in the same
environment), logged in through the real login form. At the end fail2ban must hold exactly
the expected addresses, and the audit log must have exactly one record per request.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from tests.conftest import wait_until
from tests.support.live_site import login, site  # noqa: F401

JAILS = ("sshd", "nginx-http-auth", "postfix")

pytestmark = pytest.mark.slow


def post(opener: urllib.request.OpenerDirector, url: str, data: dict, csrf: str) -> int:
    request = urllib.request.Request(
        url, data=urllib.parse.urlencode(data).encode(), headers={"X-CSRFToken": csrf}
    )
    try:
        with opener.open(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def banned(f2b, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


def test_50_concurrent_ban_and_unban_requests_through_gunicorn(f2b, site):  # noqa: F811
    base, database = site
    opener, csrf = login(base)
    to_unban = {jail: [f"198.51.{n}.{i}" for i in range(1, 5)] for n, jail in enumerate(JAILS)}
    for jail, ips in to_unban.items():
        f2b.client().send("set", jail, "banip", *ips)
    # fail2ban answers `set J banip` at once and bans in its actions thread: an unban that
    # arrived before the ban took effect would find nothing to unban (seen on a loaded box).
    wait_until(
        lambda: all(set(ips) <= banned(f2b, jail) for jail, ips in to_unban.items()),
        timeout=60,
    )
    # 38 bans of new addresses, 12 unbans of addresses banned above: 50 requests.
    requests = [
        (f"/jails/{JAILS[i % 3]}/ban/", {"ip": f"203.0.113.{i + 1}"}) for i in range(38)
    ] + [(f"/jails/{jail}/unban/", {"ip": ip}) for jail, ips in to_unban.items() for ip in ips]
    assert len(requests) == 50
    barrier = Barrier(len(requests))

    def fire(item: tuple[str, dict]) -> int:
        barrier.wait()
        return post(opener, base + item[0], item[1], csrf)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        statuses = list(pool.map(fire, requests))
    # On a failure, the site's own log says why (a 503 is fail2ban or the session storage).
    log = (database.parent / "gunicorn.log").read_text(errors="replace")[-6000:]
    assert statuses == [302] * 50, log

    expected = {jail: set() for jail in JAILS}
    for i in range(38):
        expected[JAILS[i % 3]].add(f"203.0.113.{i + 1}")
    # The same lag after the requests: wait for the end state, then check it exactly.
    with contextlib.suppress(AssertionError):  # then the assertion below shows the difference
        wait_until(lambda: {jail: banned(f2b, jail) for jail in JAILS} == expected, timeout=60)
    actual = {jail: banned(f2b, jail) for jail in JAILS}
    assert actual == expected

    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT action, jail, ips, ok, source, actor FROM jails_auditentry"
            " WHERE action IN ('ban', 'unban')"
        ).fetchall()
    assert len(rows) == 50
    assert all(ok == 1 and source == "web" and actor == "conc-operator" for *_, ok, source, actor
               in rows)  # fmt: skip
    audited = sorted((action, jail, tuple(json.loads(ips))) for action, jail, ips, *_ in rows)
    wanted = sorted(
        [("ban", url.split("/")[2], (data["ip"],)) for url, data in requests[:38]]
        + [("unban", url.split("/")[2], (data["ip"],)) for url, data in requests[38:]]
    )
    assert audited == wanted
