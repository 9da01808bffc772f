"""A private fail2ban server: tests, benchmarks and the demo run one of these.

No root, no firewall, no system files: everything lives in one short directory
(``conf/``, ``run/``, ``logs/``), the actions are no-ops (or append the banned address to
a file, to prove that actions fire), and the server runs in its own process group.
Nothing Django in here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from .client import Fail2banClient
from .errors import Fail2banError
from .validation import normalise_ip

# Debian's fail2ban packages, unpacked into the project by `make` (scripts/install-fail2ban.sh):
# Debian 12's 1.0.2 in var/fail2ban, Debian 13's 1.1.0 in var/fail2ban-1.1. The system's own
# installation is used when there is no unpacked 1.0 copy.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
UNPACKED_ROOT = PROJECT_ROOT / "var" / "fail2ban"
UNPACKED_ROOTS = {"1.0": UNPACKED_ROOT, "1.1": PROJECT_ROOT / "var" / "fail2ban-1.1"}
# Which unpacked fail2ban the tests, benchmarks and the demo start (`1.0` or `1.1`).
VERSION_VARIABLE = "JAILADMIN_TEST_FAIL2BAN"
DEFAULT_VERSION = "1.0"
FAILURE_LINE = "{when} AUTH FAIL user={user} from {ip}\n"
MAX_SOCKET_PATH = 107
# What the harness allows fail2ban per ban when it unbans or stops: `unban --all` of
# 100 000 bans took 20 s on a loaded 2-core machine (0.2 ms a ban), but each unban also
# deletes its database row, and on a busy disk (load 10, the suite under coverage beside
# other runs) 1 200 bans did not finish in 12.4 s: over 10 ms a ban. 20 ms is sized for
# that without ever waiting forever on a hung server.
HARNESS_SECONDS = 10.0
HARNESS_SECONDS_PER_BAN = 0.02
# The harness's reads (e.g. `get J banip` of 100 000 bans: 3 s on a loaded machine) get a
# timeout that only a hung server reaches; the site's own client keeps its short one.
HARNESS_CLIENT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Fail2banInstall:
    """Where fail2ban's own programs are (server and client)."""

    server: str
    client: str
    version: str | None = None  # the selected unpacked version; None for the system's

    def env(self, *, tz: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        if tz:
            env["TZ"] = tz
        return env


def selected_version() -> str:
    """The fail2ban version JAILADMIN_TEST_FAIL2BAN selects (default 1.0)."""
    version = os.environ.get(VERSION_VARIABLE, "").strip() or DEFAULT_VERSION
    if version not in UNPACKED_ROOTS:
        raise ValueError(
            f"{VERSION_VARIABLE}={version!r}: expected one of {', '.join(UNPACKED_ROOTS)}"
        )
    return version


def find_fail2ban(
    unpacked_root: Path | None = None, *, version: str | None = None
) -> Fail2banInstall:
    """Locate fail2ban's programs: the selected unpacked package first, then the system's.

    Without arguments the version comes from JAILADMIN_TEST_FAIL2BAN. Only 1.0 falls back
    to the system's fail2ban: a run that asked for 1.1 must not quietly test another one.
    """
    if unpacked_root is None:
        version = version or selected_version()
        unpacked_root = UNPACKED_ROOTS[version]
    wrappers = unpacked_root / "bin"
    if (wrappers / "fail2ban-server").exists() and (wrappers / "fail2ban-client").exists():
        return Fail2banInstall(
            server=str(wrappers / "fail2ban-server"),
            client=str(wrappers / "fail2ban-client"),
            version=version,
        )
    if version not in (None, DEFAULT_VERSION):
        raise FileNotFoundError(
            f"fail2ban {version} is not unpacked in {unpacked_root}: run `make fail2ban`"
        )
    server = shutil.which("fail2ban-server")
    client = shutil.which("fail2ban-client")
    if server and client:
        return Fail2banInstall(server=server, client=client)
    raise FileNotFoundError(
        "fail2ban is not installed: run `make install` (unpacks Debian's fail2ban package)"
    )


def package_roots(install: Fail2banInstall) -> list[Path]:
    """Where the install's package files live: the unpacked package's root, then the system's."""
    # The unpacked package's wrappers are <root>/bin/fail2ban-server; a system install has
    # its programs in /usr/bin and its files under /.
    return [Path(install.server).parent.parent, Path("/")]


def shipped_filter_dir(install: Fail2banInstall) -> Path:
    """The package's own ``filter.d`` (sshd.conf, common.conf, ...)."""
    for root in package_roots(install):
        candidate = root / "etc" / "fail2ban" / "filter.d"
        if (candidate / "common.conf").is_file():
            return candidate
    raise FileNotFoundError(f"fail2ban's filter.d not found for {install.server}")


@dataclass(frozen=True)
class JailSpec:
    """One jail of a private server; every jail reads its own log file.

    ``filter`` names one of fail2ban's shipped filters (``filter.d/<filter>.conf`` of the
    installed package, copied into the server's ``conf/``); ``None`` keeps the toy filter
    that matches `FAILURE_LINE`, which the tests' `append_failures` writes.
    """

    name: str
    maxretry: int = 3
    findtime: str = "10m"
    bantime: str = "10m"
    options: dict[str, str] = field(default_factory=dict)
    filter: str | None = None


@dataclass
class PrivateServer:
    """A fail2ban server in ``base_dir`` with the given jails."""

    base_dir: Path
    jails: Sequence[JailSpec]
    backend: str = "polling"
    record_actions: bool = False
    tz: str | None = None
    dbpurgeage: str = "1d"
    install: Fail2banInstall | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir)
        if len(str(self.socket_path)) > MAX_SOCKET_PATH:
            raise ValueError(f"socket path too long for AF_UNIX: {self.socket_path}")
        if self.install is None:
            self.install = find_fail2ban()

    # Paths -------------------------------------------------------------------------------
    @property
    def conf_dir(self) -> Path:
        return self.base_dir / "conf"

    @property
    def run_dir(self) -> Path:
        return self.base_dir / "run"

    @property
    def logs_dir(self) -> Path:
        return self.base_dir / "logs"

    @property
    def socket_path(self) -> Path:
        return self.base_dir / "run" / "f2b.sock"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "f2b.pid"

    @property
    def dbfile(self) -> Path:
        return self.run_dir / "f2b.sqlite3"

    @property
    def server_log(self) -> Path:
        return self.run_dir / "server.log"

    @property
    def actions_log(self) -> Path:
        return self.run_dir / "actions.log"

    def log_path(self, jail: str) -> Path:
        return self.logs_dir / f"{jail}.log"

    def client(self, *, timeout: float = HARNESS_CLIENT_TIMEOUT) -> Fail2banClient:
        """The harness's own client (tests read fail2ban's real state with it)."""
        return Fail2banClient(str(self.socket_path), timeout=timeout, allow_server_stop=True)

    # Configuration ---------------------------------------------------------------------------
    def write_config(self) -> None:
        """Write conf/ (fail2ban.conf, jail.conf, one filter per jail, the action)."""
        for directory in (self.conf_dir / "filter.d", self.conf_dir / "action.d"):
            directory.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "fail2ban.conf").write_text(
            "[Definition]\n"
            "loglevel = INFO\n"
            f"logtarget = {self.server_log}\n"
            f"socket = {self.socket_path}\n"
            f"pidfile = {self.pidfile}\n"
            f"dbfile = {self.dbfile}\n"
            f"dbpurgeage = {self.dbpurgeage}\n"
            "allowipv6 = yes\n"
        )
        ban = f'printf "%%s\\n" "<ip>" >> {self.actions_log}' if self.record_actions else ""
        unban = f'printf "unban %%s\\n" "<ip>" >> {self.actions_log}' if self.record_actions else ""
        (self.conf_dir / "action.d" / "jailadmin-record.conf").write_text(
            "[Definition]\n"
            "actionstart =\nactionstop =\nactioncheck =\n"
            f"actionban = {ban}\n"
            f"actionunban = {unban}\n"
        )
        sections = [
            "[DEFAULT]\n"
            f"backend = {self.backend}\n"
            "usedns = no\n"
            "ignoreself = false\n"
            "action = jailadmin-record\n"
        ]
        shipped = {jail.filter for jail in self.jails if jail.filter}
        if shipped:
            self._copy_shipped_filters(shipped)
        for jail in self.jails:
            if jail.filter is None:
                (self.conf_dir / "filter.d" / f"{jail.name}.conf").write_text(
                    "[Definition]\n"
                    "failregex = ^\\s*AUTH FAIL user=\\S+ from <HOST>\\s*$\n"
                    "datepattern = {^LN-BEG}%%Y-%%m-%%d %%H:%%M:%%S\n"
                )
            self.log_path(jail.name).touch()
            options = "".join(f"{key} = {value}\n" for key, value in jail.options.items())
            sections.append(
                f"[{jail.name}]\n"
                "enabled = true\n"
                f"filter = {jail.filter or jail.name}\n"
                f"logpath = {self.log_path(jail.name)}\n"
                f"maxretry = {jail.maxretry}\n"
                f"findtime = {jail.findtime}\n"
                f"bantime = {jail.bantime}\n"
                f"{options}"
            )
        (self.conf_dir / "jail.conf").write_text("\n".join(sections))

    def _copy_shipped_filters(self, names: set[str]) -> None:
        # The whole filter.d: the shipped filters include common.conf (and others such as
        # apache-common.conf or ignorecommands/) through [INCLUDES] and their own paths.
        toy_names = {jail.name for jail in self.jails if jail.filter is None}
        if clash := names & toy_names:
            raise ValueError(f"a toy jail's filter would replace the shipped one: {clash}")
        assert self.install is not None
        source = shipped_filter_dir(self.install)
        missing = sorted(n for n in names if not (source / f"{n}.conf").is_file())
        if missing:
            raise FileNotFoundError(f"no such fail2ban filter in {source}: {missing}")
        shutil.copytree(source, self.conf_dir / "filter.d", dirs_exist_ok=True)

    def configure_command(self) -> list[str]:
        """The fail2ban-client argv prefix for this server (used for reload and -t)."""
        assert self.install is not None
        return [
            self.install.client,
            "-c",
            str(self.conf_dir),
            "-s",
            str(self.socket_path),
        ]

    # Life cycle ---------------------------------------------------------------------------------
    # `# pragma: no mutate` on a def line (here and on wait_ready) spares only its default: a
    # time bound (30 s or 31 s) that a test cannot tell apart without timing the machine.
    def start(self, *, timeout: float = 30.0) -> None:  # pragma: no mutate
        """Write the configuration, start the server, wait until every jail is up."""
        assert self.install is not None
        self.write_config()
        argv = [
            self.install.server,
            "-f",
            "-x",
            "-c",
            str(self.conf_dir),
            "-s",
            str(self.socket_path),
            "-p",
            str(self.pidfile),
        ]
        # Its own process group: a Ctrl-C meant for the tests or `make run` never reaches it
        # half-way; it is stopped with the `stop` command instead.
        with (self.run_dir / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                env=self.install.env(tz=self.tz),
                # Hygiene only: fail2ban never reads stdin (a mutant inheriting it is equivalent).
                stdin=subprocess.DEVNULL,  # pragma: no mutate
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self.wait_ready(timeout=timeout)
        except RuntimeError:
            self.stop()
            raise

    def wait_ready(self, *, timeout: float = 30.0) -> None:  # pragma: no mutate
        """Wait until `status` lists every configured jail."""
        deadline = time.monotonic() + timeout
        wanted = {jail.name for jail in self.jails}
        missing = wanted
        last_error: Exception | None = None
        # `<` or `<=`: equal floats of a monotonic clock never decide anything.
        while time.monotonic() < deadline:  # pragma: no mutate
            if self.process and self.process.poll() is not None:
                raise RuntimeError(
                    f"fail2ban exited with {self.process.returncode}; see {self.run_dir}"
                )
            # A server restoring many bans answers late: give each try what is left of the
            # deadline rather than a fixed slice a slow machine would miss every time.
            client = self.client(timeout=max(deadline - time.monotonic(), 0.1))
            try:
                status = dict(client.send("status"))
                listed = {n.strip() for n in str(status.get("Jail list", "")).split(",")}
                missing = wanted - listed
                if not missing:
                    return
                last_error = None  # it answers: what is wrong now is the jails it lacks
            except Fail2banError as exc:
                last_error = exc
            time.sleep(0.05)
        # A jail that is not running (stopped, or not back after a reload) is named.
        why = last_error or f"jails not running: {', '.join(sorted(missing))}"
        raise RuntimeError(f"fail2ban did not become ready in {timeout} s: {why}")

    def read_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            return False  # our own child has exited: no need to ask the socket
        # A live but busy server (still unbanning thousands) answers late, not never: a
        # short timeout here would make the caller start a second server on the same socket.
        try:
            self.client(timeout=HARNESS_SECONDS * 3).send("ping")
        except Fail2banError:
            return False
        return True

    def stop(self, *, timeout: float | None = None) -> None:
        """Ask the server to stop, wait for it, and kill it if it does not go."""
        pid = self.process.pid if self.process else self.read_pid()
        if timeout is None:
            # Stopping unbans every ban (the actions' actionunban): sized like unban --all.
            timeout = self._work_timeout(self._banned_count())
        deadline = time.monotonic() + timeout
        with contextlib.suppress(Fail2banError):
            self.client(timeout=timeout).send("stop")
        while pid and time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        if self.process:
            # Reached once the process has exited or been SIGKILLed: the bound (5 s, 6 s, none)
            # only matters for a process that survives SIGKILL, which no test can make.
            self.process.wait(timeout=5)  # pragma: no mutate
            self.process = None

    def reload(self, jail: str | None = None) -> None:
        """`fail2ban-client reload [JAIL]`: re-reads the configuration (re-adds stopped jails)."""
        assert self.install is not None
        argv = [*self.configure_command(), "reload", *([jail] if jail else [])]
        result = subprocess.run(
            argv, env=self.install.env(tz=self.tz), capture_output=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                "fail2ban reload failed: " + (result.stderr or result.stdout).decode()[-2000:]
            )

    def reset(self) -> None:
        """Unban everything and restore each jail's configured settings."""
        client = self.client(timeout=HARNESS_SECONDS)
        status = dict(client.send("status"))
        listed = {n.strip() for n in str(status.get("Jail list", "")).split(",")}
        missing = {jail.name for jail in self.jails} - listed
        if missing:
            # A test that deactivated a jail through the configuration editor left an
            # override behind: the harness's own configuration is what reset restores.
            for name in missing:
                (self.conf_dir / "jail.d" / f"{name}.local").unlink(missing_ok=True)
            self.reload()  # a stopped jail is gone from the server until a reload
            self.wait_ready()
            # The re-added jail restores its old bans from the database, asynchronously
            # (its actions thread picks them up about a second later): outwait that, or a
            # restored ban with little time left expires in the middle of the next test.
            settle_until = time.monotonic() + 2.0
            while time.monotonic() < settle_until:
                restored = self._banned_count()
                self.client(timeout=self._work_timeout(restored)).send("unban", "--all")
                time.sleep(0.25)
        self.unban_all()
        with client.connection() as conn:
            for jail in self.jails:
                conn.send("set", jail.name, "idle", "off")
                for key, value in (
                    ("maxretry", str(jail.maxretry)),
                    ("findtime", str(_seconds(jail.findtime))),
                    ("bantime", str(_seconds(jail.bantime))),
                ):
                    conn.send("set", jail.name, key, value)
                for ip in conn.send("get", jail.name, "ignoreip"):
                    conn.send(
                        "set", jail.name, "delignoreip", normalise_ip(str(ip), allow_network=True)
                    )

    def unban_all(self) -> None:
        """Unban every address in every jail and wait until fail2ban's database is empty.

        The time allowed grows with the number of bans (100 000 take fail2ban tens of
        seconds), so the harness does not depend on how fast the machine is.
        """
        banned = self._banned_count()
        timeout = self._work_timeout(banned)
        client = self.client(timeout=timeout)
        deadline = time.monotonic() + timeout
        # fail2ban writes a ban to its database from an observer thread, after `banip` has
        # answered, and lags far behind after a bulk ban: an `unban --all` that overtakes
        # those writes leaves rows that reappear afterwards, which the next test would see
        # in the history. Wait until every current ban has its row, then unban; repeat
        # until the database stays empty.
        while banned and self._database_ban_rows() < banned and time.monotonic() < deadline:
            time.sleep(0.05)
        while True:
            client.send("unban", "--all")
            if self._database_ban_rows() == 0 or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def _banned_count(self) -> int:
        """How many bans the jails hold now (0 when the server does not answer)."""
        total = 0
        try:
            with self.client(timeout=HARNESS_SECONDS).connection() as conn:
                for jail in self.jails:
                    with contextlib.suppress(Fail2banError):
                        actions = dict(dict(conn.send("status", jail.name, "short"))["Actions"])
                        total += int(actions.get("Currently banned", 0))
        except (Fail2banError, KeyError, TypeError, ValueError):
            return total
        return total

    @staticmethod
    def _work_timeout(bans: int) -> float:
        return HARNESS_SECONDS + bans * HARNESS_SECONDS_PER_BAN

    def _database_ban_rows(self) -> int:
        if not self.dbfile.exists():
            return 0
        uri = f"file:{self.dbfile}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=1)) as db:
                return int(db.execute("SELECT count(*) FROM bans").fetchone()[0])
        except sqlite3.Error:
            return 0

    # Traffic --------------------------------------------------------------------------------------
    def append_failures(
        self, jail: str, ips: Iterable[str], *, count: int = 1, when: datetime | None = None
    ) -> None:
        """Append `count` failure lines per address to the jail's log (fail2ban bans on them)."""
        # The server reads the stamp in its own local time zone.
        zone = ZoneInfo(self.tz) if self.tz else None
        stamp = (when or datetime.now(zone)).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
        lines = [
            FAILURE_LINE.format(when=stamp, user=f"user{n}", ip=ip)
            for ip in ips
            for n in range(count)
        ]
        with self.log_path(jail).open("a") as log:
            log.writelines(lines)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _seconds(value: str) -> int:
    value = value.strip()
    if value and value[-1] in _UNITS:
        return int(value[:-1]) * _UNITS[value[-1]]
    return int(value)
