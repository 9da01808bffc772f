"""`PrivateServer` (jails/fail2ban/server.py) pinned down to what its callers rely on.

The tests, the benchmarks and `manage.py demo_fail2ban` start, stop and reload private
fail2ban servers through it: these tests check what the server it starts is actually
configured with (asked of the live server), where its output goes, how it stops (also from
another `PrivateServer` object, as `demo_fail2ban stop` does), and which error, with which
message, a caller gets when something goes wrong. Each test that looks at a server starts
its own, so that under mutmut the test that reaches `start`/`write_config`/`stop` is the
one that checks them (a shared fixture's start is credited to whichever test ran first).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jails.fail2ban.client import Fail2banClient
from jails.fail2ban.dbfile import Fail2banBan, fail2ban_db_add
from jails.fail2ban.errors import InvalidArgument, UnknownJail
from jails.fail2ban.server import (
    VERSION_VARIABLE,
    Fail2banInstall,
    JailSpec,
    PrivateServer,
    _alive,
    find_fail2ban,
    package_roots,
    selected_version,
    shipped_filter_dir,
)
from tests.conftest import wait_until
from tests.support.fakeserver import FakeFail2ban, hang

# Sized for a loaded 1-core box: a start is about 0.5 s on an idle one.
START_TIMEOUT = 60.0
BAN_TIMEOUT = 30.0
# Only a guard against a call that never returns (a broken stop/wait loop); the calls
# guarded take about a second.
HANG_GUARD = 120.0
NOT_INSTALLED = "fail2ban is not installed: run `make install` (unpacks Debian's fail2ban package)"


@pytest.fixture
def install() -> Fail2banInstall:
    try:
        return find_fail2ban()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def base_dir() -> Iterator[Path]:
    # Short, under /tmp: the socket path must fit AF_UNIX's 107 bytes.
    base = Path(tempfile.mkdtemp(prefix="f2bm", dir="/tmp"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def start_server(
    base_dir: Path, install: Fail2banInstall
) -> Iterator[Callable[..., PrivateServer]]:
    """Start private servers in `base_dir`; whatever a test left running is stopped."""
    servers: list[PrivateServer] = []

    def start(jails: list[JailSpec], **options: Any) -> PrivateServer:
        server = PrivateServer(base_dir / str(len(servers)), jails, install=install, **options)
        servers.append(server)
        server.start(timeout=START_TIMEOUT)
        return server

    yield start
    for server in servers:
        process = server.process
        if process is None:
            continue
        try:
            if process.poll() is None:
                # A test that froze the server (SIGSTOP) and failed before stopping it.
                os.kill(process.pid, signal.SIGCONT)
            server.stop()
        finally:
            # A broken stop (under mutmut, say) must not leave a server behind.
            if process.poll() is None:
                process.kill()
                process.wait()


def _banned(server: PrivateServer, jail: str) -> list[str]:
    return list(server.client().send("get", jail, "banip"))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _in_thread(call: Callable[[], None]) -> list[BaseException]:
    """Run `call` in a thread; fail if it has not returned after HANG_GUARD seconds."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD)
    assert not thread.is_alive(), f"{call} did not return within {HANG_GUARD} s"
    return errors


def _zone_hours_from_local(hours: int) -> str:
    """A fixed-offset zone `hours` east of this process's local time (Etc/GMT signs are POSIX)."""
    local = datetime.now().astimezone().utcoffset() or timedelta(0)
    target = round(local / timedelta(hours=1)) + hours
    if not -12 <= target <= 14:
        pytest.skip(f"no Etc/GMT zone {hours} h from the local zone")
    return f"Etc/GMT{-target:+d}" if target else "Etc/UTC"


# Locating fail2ban ------------------------------------------------------------------------------
def test_selected_version_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv(VERSION_VARIABLE, "2.0")
    with pytest.raises(ValueError) as info:
        selected_version()
    assert str(info.value) == "JAILADMIN_TEST_FAIL2BAN='2.0': expected one of 1.0, 1.1"


def _path_with(tmp_path: Path, install: Fail2banInstall, *programs: str) -> Path:
    """A PATH directory holding (links to) the real fail2ban programs named."""
    bin_dir = tmp_path / "path-bin"
    bin_dir.mkdir()
    real = {"fail2ban-server": install.server, "fail2ban-client": install.client}
    for program in programs:
        (bin_dir / program).symlink_to(real[program])
    return bin_dir


def test_find_fail2ban_falls_back_to_the_programs_on_path(tmp_path, install, monkeypatch):
    monkeypatch.setenv(
        "PATH", str(_path_with(tmp_path, install, "fail2ban-server", "fail2ban-client"))
    )
    empty_root = tmp_path / "not-unpacked"
    expected = Fail2banInstall(
        server=str(tmp_path / "path-bin" / "fail2ban-server"),
        client=str(tmp_path / "path-bin" / "fail2ban-client"),
    )
    # No unpacked copy: the system's programs, for the default series or none asked for.
    assert find_fail2ban(empty_root) == expected
    assert find_fail2ban(empty_root, version="1.0") == expected


def test_find_fail2ban_never_substitutes_another_series(tmp_path, install, monkeypatch):
    monkeypatch.setenv(
        "PATH", str(_path_with(tmp_path, install, "fail2ban-server", "fail2ban-client"))
    )
    empty_root = tmp_path / "not-unpacked"
    with pytest.raises(FileNotFoundError) as info:
        find_fail2ban(empty_root, version="1.1")
    assert str(info.value) == f"fail2ban 1.1 is not unpacked in {empty_root}: run `make fail2ban`"


def test_find_fail2ban_needs_both_programs(tmp_path, install, monkeypatch):
    # An unpacked copy with only the server is not an install (nor is a PATH with only it).
    half_root = tmp_path / "half"
    (half_root / "bin").mkdir(parents=True)
    (half_root / "bin" / "fail2ban-server").symlink_to(install.server)
    monkeypatch.setenv("PATH", str(_path_with(tmp_path, install, "fail2ban-server")))
    with pytest.raises(FileNotFoundError) as info:
        find_fail2ban(half_root)
    assert str(info.value) == NOT_INSTALLED


def test_install_env_drops_python_variables_and_sets_the_zone(monkeypatch):
    # The unpacked wrappers run the system's python3: the venv's PYTHON* settings must not
    # reach it (PYTHONHOME alone makes it fail to start).
    monkeypatch.setenv("PYTHONHOME", "/nonexistent")
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")
    monkeypatch.setenv("JAILADMIN_KEPT", "yes")
    env = Fail2banInstall(server="s", client="c").env(tz="Etc/GMT-3")
    assert not [key for key in env if key.startswith("PYTHON")]
    assert env["JAILADMIN_KEPT"] == "yes"
    assert env["PATH"] == os.environ["PATH"]
    assert env["TZ"] == "Etc/GMT-3"


# Construction and configuration errors --------------------------------------------------------
def test_socket_path_limit_is_af_unix_107_bytes(install):
    suffix = len("/run/f2b.sock")
    fits = Path("/tmp/" + "x" * (107 - suffix - len("/tmp/")))
    server = PrivateServer(fits, [], install=install)
    assert len(str(server.socket_path)) == 107
    too_long = Path(str(fits) + "y")
    with pytest.raises(ValueError) as info:
        PrivateServer(too_long, [], install=install)
    assert str(info.value) == f"socket path too long for AF_UNIX: {too_long}/run/f2b.sock"


def test_toy_jail_may_not_shadow_a_shipped_filter(base_dir, install):
    jails = [JailSpec("sshd"), JailSpec("ssh-real", filter="sshd")]
    with pytest.raises(ValueError) as info:
        PrivateServer(base_dir, jails, install=install).write_config()
    assert str(info.value) == "a toy jail's filter would replace the shipped one: {'sshd'}"


def test_unknown_shipped_filter_is_named(base_dir, install):
    jails = [JailSpec("web", filter="no-such-filter")]
    with pytest.raises(FileNotFoundError) as info:
        PrivateServer(base_dir, jails, install=install).write_config()
    source = shipped_filter_dir(install)
    assert str(info.value) == f"no such fail2ban filter in {source}: ['no-such-filter']"


def test_shipped_filter_jail_runs_the_packages_filter(start_server, install):
    # filter.d is copied whole (sshd.conf includes common.conf), next to the toy filters.
    server = start_server([JailSpec("ssh-real", filter="sshd"), JailSpec("toy")])
    assert (server.conf_dir / "filter.d" / "common.conf").is_file()
    assert (server.conf_dir / "filter.d" / "toy.conf").is_file()
    regexes = server.client().send("get", "ssh-real", "failregex")
    assert len(regexes) > 1  # sshd's many failregex lines, not the toy filter's one
    assert server.client().send("get", "toy", "failregex") != regexes


# Waiting and stopping without a server --------------------------------------------------------
def test_wait_ready_without_a_server_reports_why(base_dir, install):
    server = PrivateServer(base_dir, [JailSpec("a")], install=install)
    with pytest.raises(RuntimeError) as info:
        server.wait_ready(timeout=0.5)
    assert str(info.value) == (
        "fail2ban did not become ready in 0.5 s: "
        f"fail2ban is not reachable at {server.socket_path}: the socket does not exist"
    )


def test_wait_ready_gives_up_on_a_server_that_never_answers(base_dir, install):
    server = PrivateServer(base_dir, [JailSpec("a")], install=install)
    server.run_dir.mkdir(parents=True)
    with FakeFail2ban(hang()) as fake:
        server.socket_path.symlink_to(fake.path)
        errors = _in_thread(lambda: server.wait_ready(timeout=1.0))
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError), errors
    assert str(errors[0]).startswith("fail2ban did not become ready in 1.0 s: ")


def test_stop_without_a_server_is_quiet(base_dir, install):
    server = PrivateServer(base_dir, [JailSpec("a")], install=install)
    server.stop()
    assert server.process is None
    assert not server.is_running()


# A real server -------------------------------------------------------------------------------
def test_started_server_runs_the_configuration_written(start_server, monkeypatch):
    # The caller's PYTHONHOME must not reach fail2ban (its python3 would not start).
    monkeypatch.setenv("PYTHONHOME", "/nonexistent")
    jail = JailSpec(
        "toy",
        maxretry=2,
        findtime="5m",
        bantime="1h",
        options={"ignoreip": "192.0.2.0/24", "maxlines": "3"},
    )
    server = start_server([jail, JailSpec("other")])
    assert server.process is not None
    pid = server.process.pid
    assert server.read_pid() == pid
    assert server.is_running()
    # Its own session: a Ctrl-C for the tests' process group never reaches it.
    assert os.getsid(pid) == pid != os.getsid(0)
    # fail2ban's own output (stdout and stderr) lands in run/stdout.log; 1.0.2 warns on
    # stderr about `syslogsocket` at every start (1.1.0 writes nothing there).
    client = server.client()
    output = (server.run_dir / "stdout.log").read_text()
    assert "Server ready" in output
    if str(client.send("version")).startswith("1.0."):
        assert "WARNING 'syslogsocket' not defined" in output

    assert client.send("get", "loglevel") == "INFO"
    assert client.send("get", "logtarget") == str(server.server_log)
    assert client.send("get", "dbfile") == str(server.dbfile)
    assert client.send("get", "toy", "usedns") == "no"
    assert client.send("get", "toy", "ignoreself") is False
    assert client.send("get", "toy", "maxretry") == 2
    assert client.send("get", "toy", "findtime") == 300
    assert client.send("get", "toy", "bantime") == 3600
    assert client.send("get", "toy", "ignoreip") == ["192.0.2.0/24"]
    assert client.send("get", "toy", "maxlines") == 3
    assert client.send("get", "toy", "actions") == ["jailadmin-record"]
    assert client.send("get", "toy", "logpath") == [str(server.log_path("toy"))]

    # The toy filter reads FAILURE_LINE; one line per address by default (below maxretry),
    # and the server's own addresses are banned too (ignoreself = false).
    server.append_failures("toy", ["198.51.100.1"])
    server.append_failures("toy", ["127.0.0.1"], count=2)
    wait_until(lambda: "127.0.0.1" in _banned(server, "toy"), timeout=BAN_TIMEOUT)
    assert _banned(server, "toy") == ["127.0.0.1"]
    # Each failure names its own user: the matched lines fail2ban keeps (and the history
    # shows) tell the attempts apart.
    written = [line.split(" ", 2)[2] for line in server.log_path("toy").read_text().splitlines()]
    assert written == [
        "AUTH FAIL user=user0 from 198.51.100.1",
        "AUTH FAIL user=user0 from 127.0.0.1",
        "AUTH FAIL user=user1 from 127.0.0.1",
    ]
    assert _banned(server, "other") == []
    assert client.send("set", "toy", "unbanip", "127.0.0.1") == 1

    server.stop()
    assert server.process is None
    assert not server.is_running()
    assert _gone(pid)
    # Without record_actions the actions are no-ops: nothing recorded, nothing failed.
    assert not server.actions_log.exists()
    log = server.server_log.read_text()
    assert "Ban 127.0.0.1" in log
    assert [line for line in log.splitlines() if "ERROR" in line] == []


def test_recorded_actions_and_a_clean_stop(start_server):
    server = start_server([JailSpec("toy")], record_actions=True)
    client = server.client()
    assert client.send("set", "toy", "banip", "203.0.113.5") == 1
    wait_until(
        lambda: server.actions_log.exists() and "203.0.113.5" in server.actions_log.read_text(),
        timeout=BAN_TIMEOUT,
    )
    # Stopping asks fail2ban to stop, which unbans (actionunban) before it exits.
    server.stop()
    assert server.actions_log.read_text().splitlines() == ["203.0.113.5", "unban 203.0.113.5"]
    assert not server.socket_path.exists()


@pytest.mark.parametrize("hours", [-8, 8], ids=["west", "east"])
def test_failure_lines_are_stamped_in_the_servers_zone(start_server, hours):
    # Stamped in the wrong zone the lines would be 8 hours off: older than findtime in one
    # direction or the other, and never banned.
    server = start_server([JailSpec("toy")], tz=_zone_hours_from_local(hours))
    server.append_failures("toy", ["203.0.113.20"], count=3)
    wait_until(lambda: "203.0.113.20" in _banned(server, "toy"), timeout=BAN_TIMEOUT)


def test_stop_from_another_object_waits_until_the_server_is_gone(start_server, base_dir):
    # `manage.py demo_fail2ban stop` runs in another process than the `start`: it only has
    # the pidfile to go by.
    started = start_server([JailSpec("toy")])
    assert started.process is not None
    pid = started.process.pid
    other = PrivateServer(started.base_dir, started.jails, install=started.install)
    assert other.is_running()
    other.stop()
    assert _gone(pid)
    assert not other.is_running()


def test_stop_waits_for_a_server_that_is_not_its_child(base_dir, install):
    # The usual case for `demo_fail2ban stop`: the server was started by another process,
    # which also reaps it; this one can only watch the pid until it is gone.
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from jails.fail2ban.server import JailSpec, PrivateServer\n"
        "server = PrivateServer(Path(sys.argv[1]), [JailSpec('toy')])\n"
        "server.start(timeout=float(sys.argv[2]))\n"
        "print('ready', flush=True)\n"
        "server.process.wait()\n"
    )
    project = Path(__file__).resolve().parents[2]
    starter = subprocess.Popen(
        [sys.executable, "-c", script, str(base_dir), str(START_TIMEOUT)],
        cwd=project,
        stdout=subprocess.PIPE,
        text=True,
    )
    server = PrivateServer(base_dir, [JailSpec("toy")], install=install)
    try:
        assert starter.stdout is not None
        assert starter.stdout.readline() == "ready\n"
        pid = server.read_pid()
        assert pid is not None and pid != starter.pid
        server.stop()
        assert _gone(pid)
    finally:
        leftover = server.read_pid()
        if starter.poll() is None and leftover is not None and not _gone(leftover):
            os.kill(leftover, signal.SIGKILL)  # a failed test must not leave its server behind
        starter.wait(timeout=HANG_GUARD)


def test_stop_kills_a_server_that_does_not_answer(start_server):
    server = start_server([JailSpec("toy")])
    assert server.process is not None
    pid = server.process.pid
    os.kill(pid, signal.SIGSTOP)  # alive, but it will never answer `stop`
    errors = _in_thread(lambda: server.stop(timeout=1.0))
    assert errors == []
    assert server.process is None
    assert _gone(pid)


def test_a_crashed_server_is_not_running(start_server):
    # The session fixture restarts a server that `is_running` reports gone.
    server = start_server([JailSpec("toy")])
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    assert not server.is_running()


def test_failed_start_says_where_to_look_and_leaves_nothing_running(base_dir, install):
    server = PrivateServer(base_dir, [JailSpec("toy")], backend="no-such-backend", install=install)
    with pytest.raises(RuntimeError) as info:
        server.start(timeout=START_TIMEOUT)
    assert re.fullmatch(
        rf"fail2ban exited with \d+; see {re.escape(str(server.run_dir))}", str(info.value)
    )
    assert server.process is None
    assert "Unknown backend no-such-backend" in server.server_log.read_text()


def test_reload_one_jail_or_all(start_server, monkeypatch):
    server = start_server([JailSpec("a"), JailSpec("b")])
    # fail2ban-client runs the system's python3 too: the caller's PYTHONHOME must not reach it.
    monkeypatch.setenv("PYTHONHOME", "/nonexistent")
    client = server.client()
    overrides = server.conf_dir / "jail.d"
    overrides.mkdir()
    (overrides / "mutants.local").write_text("[a]\nmaxretry = 7\n\n[b]\nmaxretry = 8\n")
    server.reload("a")
    assert client.send("get", "a", "maxretry") == 7
    assert client.send("get", "b", "maxretry") == 3  # only the jail named was reloaded
    server.reload()
    assert client.send("get", "b", "maxretry") == 8


def test_reload_failure_carries_fail2bans_reason(start_server):
    server = start_server([JailSpec("a")])
    overrides = server.conf_dir / "jail.d"
    overrides.mkdir()
    (overrides / "broken.local").write_text("[a]\nfilter = no-such-filter\n")
    with pytest.raises(RuntimeError) as info:
        server.reload()
    message = str(info.value)
    assert message.startswith("fail2ban reload failed: ")
    assert "no-such-filter" in message


# Reset and unban --all between tests ------------------------------------------------------------
def _jail_list(server: PrivateServer) -> set[str]:
    status = dict(server.client().send("status"))
    return {name.strip() for name in str(status["Jail list"]).split(",")}


def _database_has(server: PrivateServer, ip: str) -> bool:
    with contextlib.closing(sqlite3.connect(server.dbfile, timeout=BAN_TIMEOUT)) as db:
        return db.execute("SELECT count(*) FROM bans WHERE ip = ?", (ip,)).fetchone()[0] > 0


def test_reset_restores_each_jails_own_settings_in_every_unit(start_server):
    # One jail per unit `_seconds` reads (w, h, d, s, m and none), padded as jail.conf allows.
    server = start_server(
        [
            JailSpec("a", maxretry=5, findtime="2h", bantime="1w"),
            JailSpec("b", maxretry=4, findtime="30s", bantime=" 1d "),
            JailSpec("c", maxretry=6, findtime="45", bantime="90m"),
        ]
    )
    client = server.client()
    for jail in ("a", "b", "c"):
        for key, value in (("maxretry", "11"), ("findtime", "77"), ("bantime", "88")):
            client.send("set", jail, key, value)
        client.send("set", jail, "addignoreip", "192.0.2.7")
        client.send("set", jail, "addignoreip", "2001:db8::/64")
        client.send("set", jail, "idle", "on")
    server.reset()
    settings = {
        jail: [client.send("get", jail, key) for key in ("maxretry", "findtime", "bantime")]
        for jail in ("a", "b", "c")
    }
    assert settings == {"a": [5, 7200, 604800], "b": [4, 30, 86400], "c": [6, 45, 5400]}
    assert [client.send("get", jail, "ignoreip") for jail in ("a", "b", "c")] == [[], [], []]
    # No longer idle: every jail reads its log and bans again.
    for number, (jail, count) in enumerate((("a", 5), ("b", 4), ("c", 6)), start=1):
        server.append_failures(jail, [f"203.0.113.{number}"], count=count)
    expected = [["203.0.113.1"], ["203.0.113.2"], ["203.0.113.3"]]
    wait_until(
        lambda: [_banned(server, j) for j in ("a", "b", "c")] == expected, timeout=BAN_TIMEOUT
    )


def test_reset_unbans_every_jail_and_empties_the_database(start_server):
    server = start_server([JailSpec("a"), JailSpec("b")])
    client = server.client()
    client.send("set", "a", "banip", "198.51.100.1", "198.51.100.2")
    client.send("set", "b", "banip", "2001:db8::3")
    wait_until(lambda: _database_has(server, "2001:db8::3"), timeout=BAN_TIMEOUT)
    server.reset()
    assert [_banned(server, "a"), _banned(server, "b")] == [[], []]
    assert server._database_ban_rows() == 0


def test_reset_leaves_the_overrides_of_running_jails_alone(start_server):
    server = start_server([JailSpec("a"), JailSpec("b")])
    overrides = server.conf_dir / "jail.d"
    overrides.mkdir()
    (overrides / "a.local").write_text("[a]\nmaxretry = 3\n")
    server.reset()
    assert (overrides / "a.local").is_file()
    assert _jail_list(server) == {"a", "b"}


def test_reset_brings_back_a_deactivated_jail_without_its_old_bans(start_server):
    # What the configuration editor's "deactivate" leaves: jail.d/<jail>.local and a reload.
    server = start_server([JailSpec("a"), JailSpec("b", bantime="1w"), JailSpec("c")])
    client = server.client()
    client.send("set", "b", "banip", "198.51.100.9")
    wait_until(lambda: _database_has(server, "198.51.100.9"), timeout=BAN_TIMEOUT)
    overrides = server.conf_dir / "jail.d"
    overrides.mkdir()
    (overrides / "a.local").write_text("[a]\nmaxretry = 3\n")
    (overrides / "b.local").write_text("[b]\nenabled = false\n")
    (overrides / "c.local").write_text("[c]\nenabled = false\n")
    server.reload()
    assert _jail_list(server) == {"a"}
    server.reset()
    assert _jail_list(server) == {"a", "b", "c"}
    assert sorted(path.name for path in overrides.iterdir()) == ["a.local"]
    # The ban the database held came back with the jail, and is gone again.
    assert _banned(server, "b") == []
    assert server._database_ban_rows() == 0
    assert client.send("get", "b", "bantime") == 604800


def test_reset_restarts_a_jail_stopped_over_the_socket(start_server):
    # No override to remove: the jail was stopped with `stop <jail>`, not deactivated.
    server = start_server([JailSpec("a"), JailSpec("b", maxretry=4)])
    client = server.client()
    client.send("stop", "b")
    assert _jail_list(server) == {"a"}
    server.reset()
    assert _jail_list(server) == {"a", "b"}
    assert client.send("get", "b", "maxretry") == 4
    assert not (server.conf_dir / "jail.d").exists()


def test_only_the_harness_client_may_stop_the_server_even_in_a_batch(start_server):
    server = start_server([JailSpec("a")])
    assert server.process is not None
    site = Fail2banClient(str(server.socket_path), timeout=START_TIMEOUT)
    with pytest.raises(InvalidArgument) as alone:
        site.send("stop")
    with site.connection() as conn, pytest.raises(InvalidArgument) as in_batch:
        conn.send_batch([["ping"], ["stop"]])
    assert str(alone.value) == str(in_batch.value) == "the command takes exactly one jail"
    with server.client().connection() as conn:
        assert conn.send_batch([["ping"], ["stop"]]) == ["pong", None]
    server.process.wait(timeout=HANG_GUARD)


def test_a_batch_refusal_carries_its_own_command(start_server):
    server = start_server([JailSpec("a")])
    with server.client().connection() as conn:
        kept, refused = conn.send_batch_outcomes(
            [["get", "a", "maxretry"], ["get", "b", "bantime"]]
        )
    assert kept == 3
    assert type(refused) is UnknownJail
    assert (refused.command, refused.jail) == (["get", "b", "bantime"], "b")


def test_unban_all_waits_for_the_database_to_catch_up_with_a_bulk_ban(start_server):
    server = start_server([JailSpec("a"), JailSpec("b")])
    client = server.client()
    bulk = [f"10.{n // 250}.{n % 250}.1" for n in range(1500)]
    assert client.send("set", "a", "banip", *bulk) == len(bulk)
    client.send("set", "b", "banip", "198.51.100.77")
    server.unban_all()
    assert [_banned(server, "a"), _banned(server, "b")] == [[], []]
    assert server._database_ban_rows() == 0
    # fail2ban writes the rows in order: once a later ban's row is there, no row of the bulk
    # ban is still on its way.
    client.send("set", "b", "banip", "192.0.2.200")
    wait_until(lambda: _database_has(server, "192.0.2.200"), timeout=BAN_TIMEOUT)
    assert server._database_ban_rows() == 1


def test_unban_all_gives_up_at_its_deadline_on_rows_unban_all_never_deletes(start_server):
    # A row of a jail this server does not run (a stop with another jail list): fail2ban's
    # `unban --all` deletes only its own jails' rows, so the harness tries again until its
    # deadline (10 s, and 20 ms a ban), then returns with that row still there.
    server = start_server([JailSpec("a")])
    server.client().send("set", "a", "banip", "198.51.100.5")
    stamp = int(datetime.now().timestamp())
    fail2ban_db_add(server.dbfile, [Fail2banBan("gone", "192.0.2.66", timeofban=stamp)])
    server.unban_all()
    assert _banned(server, "a") == []
    with contextlib.closing(sqlite3.connect(server.dbfile, timeout=BAN_TIMEOUT)) as db:
        assert db.execute("SELECT jail, ip FROM bans").fetchall() == [("gone", "192.0.2.66")]


def test_package_roots_are_the_unpacked_package_then_the_systems(install):
    # A system install has no etc/ next to /usr/bin: its files are under /.
    assert package_roots(install) == [Path(install.server).parent.parent, Path("/")]


def test_banned_count_adds_up_every_jail_and_skips_unknown_ones(start_server):
    server = start_server([JailSpec("a"), JailSpec("b")])
    client = server.client()
    client.send("set", "a", "banip", "198.51.100.1", "198.51.100.2")
    client.send("set", "b", "banip", "198.51.100.3")
    assert server._banned_count() == 3
    # A jail the server does not run (the demo's stop with another jail list) counts 0.
    other = PrivateServer(
        server.base_dir, [JailSpec("a"), JailSpec("gone"), JailSpec("b")], install=server.install
    )
    assert other._banned_count() == 3


def test_banned_count_and_database_rows_without_a_server_are_zero(base_dir, install):
    server = PrivateServer(base_dir, [JailSpec("a")], install=install)
    assert server._banned_count() == 0
    assert server._database_ban_rows() == 0
    server.run_dir.mkdir(parents=True)
    server.dbfile.write_text("not a database\n")
    assert server._database_ban_rows() == 0


def test_work_timeout_grows_with_the_bans():
    assert PrivateServer._work_timeout(0) == 10.0
    assert PrivateServer._work_timeout(1000) == 30.0


def test_alive_tells_running_exited_and_foreign_processes_apart():
    echo = "import sys; sys.stdout.write(sys.stdin.read())"
    child = subprocess.Popen(
        [sys.executable, "-c", echo], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert _alive(child.pid)
    finally:
        answer, _ = child.communicate(b"untouched")
    # Asking sent no signal: the child lived on to answer.
    assert (answer, child.returncode) == (b"untouched", 0)
    # Exited (and already reaped by communicate): gone.
    assert not _alive(child.pid)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_until(lambda: os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT), timeout=30)
    assert not _alive(zombie.pid)  # a zombie child of ours is reaped, and not alive
    with pytest.raises(ChildProcessError):
        os.waitpid(zombie.pid, os.WNOHANG)
    assert _alive(os.getppid())  # alive, but not our child
