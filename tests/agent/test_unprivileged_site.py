"""The privilege separation, for real (issue 10): the agent runs as root, the Django side as an
unprivileged system user, and that user cannot open fail2ban's socket or database itself while
every command and page still works through the agent.

Needs root: it creates the system user `jailadmin-test` (idempotently, and leaves it in place:
see tests/support/unprivileged.py) and switches to it with `setpriv`; not root, it skips.
If the venv's interpreter is out of the user's reach (a pyenv symlink under /root), the user
runs the system interpreter of the same version with the venv's packages on PYTHONPATH. If the
checkout sits below a directory the user cannot traverse (CI's 0700 `mktemp -d`), o+x
(traverse, not list) is added to just those directories for the session and their exact modes
are restored afterwards. Anything else that keeps the user from running the checkout fails
the tests with the blocking path named; nothing is skipped silently.

The user's process gets a clean environment: its own var dir (database, static files, HOME,
TMPDIR: everything it writes), the agent's address, and JAILADMIN_FAIL2BAN_SOCKET pointing at
fail2ban's real socket, so a silent fallback to the socket would fail loudly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jails.fail2ban.server import PrivateServer
from tests.conftest import FAIL2BAN_VERSION, SERVER_TZ, wait_until
from tests.support.agent_process import AgentProcess, server_options
from tests.support.live_site import free_port, gunicorn_arguments, login, served
from tests.support.unprivileged import (
    REPO_ROOT,
    SystemUser,
    UserPython,
    as_user,
    checkout_check,
    children,
    chown_tree,
    paths_needed,
    process_ids,
    system_user_ensure,
    traverse_granted,
    user_python,
)

ADMIN = "unpriv-admin"
ADMIN_PASSWORD = "an-unprivileged-site-admin-password-3"
JAILS = {"sshd", "nginx-http-auth", "postfix"}
COMMAND_TIMEOUT = 300.0  # migrate from scratch under a cold interpreter on a loaded 1-core box


@pytest.fixture(scope="session")
def system_user() -> Iterator[SystemUser]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates a system user and runs the site as it (setpriv)")
    user = system_user_ensure()
    with traverse_granted(user, paths_needed()):
        checkout_check(user)
        yield user


@pytest.fixture(scope="session")
def user_py(system_user: SystemUser) -> UserPython:
    return user_python(system_user)


@pytest.fixture(scope="module")
def root_agent(f2b_server: PrivateServer, system_user: SystemUser) -> Iterator[AgentProcess]:
    """An agent as root whose socket is root:jailadmin-test 0660, as the systemd unit makes it."""
    agent = AgentProcess(
        str(f2b_server.socket_path),
        options=[
            "--group",
            system_user.name,
            "--mode",
            "0660",
            *server_options(f2b_server),
        ],
    )
    # Its directory is a root-only mkdtemp: the group may pass through it to the socket.
    os.chown(agent.directory, 0, system_user.gid)
    os.chmod(agent.directory, 0o710)
    try:
        agent.start()
        yield agent
    finally:
        agent.cleanup()


@pytest.fixture
def agent(f2b: PrivateServer, root_agent: AgentProcess) -> AgentProcess:
    root_agent.start()
    return root_agent


@dataclass(frozen=True)
class UserSite:
    """The Django side as the user: its var dir and environment, and manage.py as the user."""

    user: SystemUser
    python: UserPython
    var_dir: Path
    env: dict[str, str]

    @property
    def database(self) -> Path:
        return self.var_dir / "jailadmin.sqlite3"

    def argv(self, *args: str) -> list[str]:
        return as_user(self.user, [*self.python.argv, *args])

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv("manage.py", *args),
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args)} as {self.user.name} failed "
                f"({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def query(self, sql: str) -> list[tuple[object, ...]]:
        """Read the user's database as root (read-only): what the commands really stored."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            return db.execute(sql).fetchall()


@pytest.fixture(scope="module")
def user_site(
    system_user: SystemUser, user_py: UserPython, root_agent: AgentProcess, f2b_server
) -> Iterator[UserSite]:
    """A migrated, set-up site in a var dir of the user's own, all of it done as the user."""
    from django.conf import settings

    var_dir = Path(tempfile.mkdtemp(prefix="ja-unpriv-", dir="/tmp"))
    try:
        # The test session has collected the static files (tests/conftest.py); a copy the user
        # owns saves a second collectstatic.
        shutil.copytree(settings.STATIC_ROOT, var_dir / "static")
        (var_dir / "tmp").mkdir()
        chown_tree(var_dir, system_user)
        env = user_py.env(
            HOME=str(var_dir),
            TMPDIR=str(var_dir / "tmp"),
            DJANGO_SETTINGS_MODULE="jailadmin.settings",
            JAILADMIN_DEBUG="false",
            JAILADMIN_SECRET_KEY="unprivileged-site-test-secret-key-0123456789-abcdefghijk",
            JAILADMIN_VAR_DIR=str(var_dir),
            JAILADMIN_STATIC_ROOT=str(var_dir / "static"),
            JAILADMIN_FAIL2BAN_AGENT=root_agent.address,
            # The real socket, forbidden to this user: a fallback to it would fail loudly.
            JAILADMIN_FAIL2BAN_SOCKET=str(f2b_server.socket_path),
            JAILADMIN_FAIL2BAN_TIMEOUT="10",
            JAILADMIN_FAIL2BAN_TIME_ZONE=SERVER_TZ,
            JAILADMIN_SESSION_CACHE="database",
            JAILADMIN_ALLOWED_HOSTS="127.0.0.1",
            JAILADMIN_ADMIN_PASSWORD=ADMIN_PASSWORD,
        )
        site = UserSite(user=system_user, python=user_py, var_dir=var_dir, env=env)
        site.manage("migrate", "--noinput", "-v0")
        site.manage("jailadmin_setup", "--username", ADMIN, "--agent", root_agent.address)
        yield site
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


def banned(f2b: PrivateServer, jail: str) -> set[str]:
    return {str(ip) for ip in f2b.client().send("get", jail, "banip")}


# What the user cannot do ------------------------------------------------------------------------
TRY_FAIL2BAN = r"""
import json, os, socket, sqlite3, sys

sock_path, db_path = sys.argv[1:3]
out = {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": os.getgroups()}

def attempt(name, action):
    try:
        action()
        out[name] = "ok"
    except PermissionError:
        out[name] = "PermissionError"
    except sqlite3.Error as exc:
        out[name] = f"{getattr(exc, 'sqlite_errorname', type(exc).__name__)}: {exc}"
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"

def query():
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        db.execute("SELECT count(*) FROM bans").fetchone()

attempt("socket", lambda: socket.socket(socket.AF_UNIX).connect(sock_path))
attempt("sqlite", query)
attempt("read", lambda: open(db_path, "rb").read(16))
attempt("stat", lambda: os.stat(db_path))
print(json.dumps(out))
"""


def test_the_user_cannot_open_fail2bans_socket_or_database(f2b, system_user, user_py):
    # Root can (so what follows is the user's lack of permission, not a missing file).
    assert f2b.client().send("ping") == "pong"
    assert f2b.dbfile.exists()
    with sqlite3.connect(f"file:{f2b.dbfile}?mode=ro", uri=True) as db:
        db.execute("SELECT count(*) FROM bans").fetchone()
    assert f2b.dbfile.read_bytes()[:16] == b"SQLite format 3\x00"

    result = subprocess.run(
        as_user(
            system_user,
            [user_py.argv[0], "-I", "-c", TRY_FAIL2BAN, str(f2b.socket_path), str(f2b.dbfile)],
        ),
        env=user_py.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(result.stdout)
    assert (out["uid"], out["euid"], out["gid"]) == (system_user.uid,) * 2 + (system_user.gid,)
    assert set(out["groups"]) <= system_user.groups  # root's supplementary groups are gone
    assert out["socket"] == "PermissionError"
    assert out["read"] == "PermissionError"
    assert out["stat"] == "PermissionError"
    # sqlite reports the EACCES underneath as "unable to open database file".
    assert out["sqlite"] == "SQLITE_CANTOPEN: unable to open database file"


def test_the_agent_runs_as_root_behind_a_group_socket(agent, system_user):
    assert process_ids(agent.pid)[:2] == (0, 0)
    info = agent.path.stat()
    assert stat.S_ISSOCK(info.st_mode)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, system_user.gid, 0o660)


# The traverse grant (what a CI checkout in a 0700 `mktemp -d` gets) ----------------------------
READ_FILE = "import sys; print(open(sys.argv[1]).read(), end='')"
LIST_DIR = "import os, sys; print(os.listdir(sys.argv[1]))"


def test_traverse_grant_adds_o_x_to_the_blocking_ancestors_and_restores_them(system_user, user_py):
    def as_the_user(code: str, path: Path) -> subprocess.CompletedProcess[str]:
        argv = as_user(system_user, [user_py.argv[0], "-I", "-c", code, str(path)])
        return subprocess.run(argv, env=user_py.env(), capture_output=True, text=True, timeout=60)

    def modes() -> tuple[int, int]:
        return stat.S_IMODE(base.stat().st_mode), stat.S_IMODE(inner.stat().st_mode)

    base = Path(tempfile.mkdtemp(prefix="ja-grant-", dir="/tmp"))  # 0700, like CI's mktemp -d
    state_dir = Path(tempfile.mkdtemp(prefix="ja-grant-state-", dir="/tmp")) / "state"
    try:
        inner = base / "inner"
        inner.mkdir()
        os.chmod(inner, 0o750)
        checkout = inner / "checkout"
        checkout.mkdir()
        os.chmod(checkout, 0o755)
        (checkout / "hello.txt").write_text("hello")
        assert "PermissionError" in as_the_user(READ_FILE, checkout / "hello.txt").stderr

        with traverse_granted(system_user, [checkout], state_dir=state_dir) as granted:
            assert set(granted) == {base, inner}
            assert modes() == (0o701, 0o751)
            assert as_the_user(READ_FILE, checkout / "hello.txt").stdout == "hello"
            assert "PermissionError" in as_the_user(LIST_DIR, base).stderr  # traverse, not list
            # Another pytest process (an xdist worker) in the same grant: leaving it, while the
            # first is still in, restores nothing.
            with traverse_granted(system_user, [checkout], state_dir=state_dir) as again:
                assert set(again) == {base, inner}
            assert modes() == (0o701, 0o751)
        assert modes() == (0o700, 0o750)  # the last one out restores the exact modes
        assert not (state_dir / "record.json").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(state_dir.parent, ignore_errors=True)


# Commands as the user ---------------------------------------------------------------------------
def test_setup_as_the_user_saved_the_agent_and_the_administrator(user_site, agent):
    assert user_site.query("SELECT setup_complete, fail2ban_agent FROM jails_sitesettings") == [
        (1, agent.address)
    ]
    assert user_site.query(
        "SELECT g.name FROM auth_user u JOIN auth_user_groups ug ON ug.user_id = u.id "
        f"JOIN auth_group g ON g.id = ug.group_id WHERE username = '{ADMIN}'"
    ) == [("administrator",)]
    owners = {path.stat().st_uid for path in user_site.var_dir.rglob("*")}
    assert owners == {user_site.user.uid}  # everything it wrote is in its var dir, and its own


def test_jails_command_as_the_user_goes_through_the_agent(user_site, f2b, agent):
    status = json.loads(user_site.manage("jails", "status", "--json").stdout)
    assert status["version"] == FAIL2BAN_VERSION
    assert {row["jail"] for row in status["jails"]} == JAILS

    user_site.manage("jails", "ban", "sshd", "203.0.113.21", "198.51.100.0/24", "--json")
    assert banned(f2b, "sshd") == {"203.0.113.21", "198.51.100.0/24"}
    user_site.manage("jails", "unban", "203.0.113.21", "--json")
    assert banned(f2b, "sshd") == {"198.51.100.0/24"}
    audit = user_site.query(
        "SELECT action, jail, ok FROM jails_auditentry WHERE action LIKE '%ban%' "
        "ORDER BY id DESC LIMIT 2"
    )
    assert audit == [("unban_everywhere", "", 1), ("ban", "sshd", 1)]


def test_history_sync_as_the_user_reads_fail2bans_database_through_the_agent(user_site, f2b, agent):
    f2b.client().send("set", "postfix", "banip", "203.0.113.60", "203.0.113.61")

    def rows() -> int:  # fail2ban writes its database from its own thread, just after a ban
        with sqlite3.connect(f"file:{f2b.dbfile}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM bans WHERE jail = 'postfix'").fetchone()[0]

    wait_until(lambda: rows() >= 2, timeout=60)
    report = json.loads(user_site.manage("history_sync", "--json").stdout)["sync"]
    assert report["dbfile"] == str(f2b.dbfile)  # the path the agent reported, not opened here
    assert report["archived"] >= 2
    archived = user_site.query("SELECT ip FROM history_banevent WHERE jail = 'postfix'")
    assert {"203.0.113.60", "203.0.113.61"} <= {ip for (ip,) in archived}


# The site as the user ---------------------------------------------------------------------------
def csrf_token(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match is not None, page[:2000]
    return match.group(1)


@pytest.mark.slow
def test_gunicorn_as_the_user_serves_every_page_through_the_agent(user_site, f2b, agent):
    port = free_port()
    command = user_site.argv("-m", "gunicorn", *gunicorn_arguments(port, workers=2))
    log_path = user_site.var_dir / "gunicorn.log"
    with served(command, env=user_site.env, log_path=log_path, port=port) as (base, server):
        master_uid, master_euid, master_caps = process_ids(server.pid)
        assert (master_uid, master_euid, master_caps) == (user_site.user.uid,) * 2 + (0,)
        workers = children(server.pid)
        assert workers
        assert {process_ids(pid)[:2] for pid in workers} == {(user_site.user.uid,) * 2}

        with urllib.request.urlopen(f"{base}/healthz", timeout=30) as response:
            assert response.read() == b"ok\n"

        f2b.client().send("set", "sshd", "banip", "203.0.113.50")
        opener, _ = login(base, username=ADMIN, password=ADMIN_PASSWORD)
        with opener.open(f"{base}/jails/", timeout=60) as response:
            body = response.read().decode()
        for jail in JAILS:
            assert f'href="/jails/{jail}/"' in body
        with opener.open(f"{base}/jails/sshd/", timeout=60) as response:
            page = response.read().decode()
        assert "203.0.113.50" in page

        # The page's own form, with its CSRF token, as a browser posts it.
        data = urllib.parse.urlencode(
            {"ip": "203.0.113.9", "csrfmiddlewaretoken": csrf_token(page)}
        )
        request = urllib.request.Request(f"{base}/jails/sshd/ban/", data=data.encode())
        with pytest.raises(urllib.error.HTTPError) as redirect:  # NoRedirect: the 302 is raised
            opener.open(request, timeout=60)
        assert redirect.value.code == 302
        assert banned(f2b, "sshd") == {"203.0.113.50", "203.0.113.9"}
        with opener.open(f"{base}/jails/sshd/", timeout=60) as response:
            assert "Banned 203.0.113.9 in sshd." in response.read().decode()

    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
