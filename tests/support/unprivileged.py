"""Run the Django side as an unprivileged system user (issue 10: the privilege separation test).

The tests run as root (here and in CI). `system_user_ensure` creates the user once (idempotent;
it is left in place afterwards: removing it would race with another pytest process using it,
and a system user with no home, no password and no login shell grants nothing). `as_user`
prefixes a command with `setpriv`, which switches the real and effective user and group and
the supplementary groups without PAM and keeps the environment exactly as given; a process
started that way has no capabilities left (the kernel clears them when root changes uid).

Two things on a test machine can keep the user from running the checkout's Python, and both
are handled here rather than skipped: the venv's interpreter may be a symlink into a private
directory (pyenv under /root, mode 0700), so `user_python` falls back to the system interpreter
of the same major.minor with the venv's site-packages on PYTHONPATH; and the checkout may sit
in a private directory (CI's 0700 `mktemp -d`), so `traverse_granted` adds o+x (traverse, not
list) to exactly the ancestors that block the user and restores their modes when the last
pytest process using the grant is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
USER_NAME = "jailadmin-test"
PROBE_TIMEOUT = 120.0  # a cold interpreter importing Django on a loaded 1-core box
# Shared by every pytest process on the machine (xdist workers, parallel runs): what
# traverse_granted changed and the locks that make only the last user restore it.
GRANT_DIR = Path("/tmp/jailadmin-test-traverse")


@dataclass(frozen=True)
class SystemUser:
    name: str
    uid: int
    gid: int
    groups: frozenset[int]


def system_user_ensure(name: str = USER_NAME) -> SystemUser:
    """The system user and its group, created if missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        # 9: created meanwhile by another pytest process (xdist): fine, it is the same user.
        if result.returncode not in (0, 9):
            raise RuntimeError(
                f"useradd {name} failed ({result.returncode}): {result.stderr}"
            ) from None
        entry = pwd.getpwnam(name)
    groups = frozenset(os.getgrouplist(name, entry.pw_gid))
    return SystemUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups)


def as_user(user: SystemUser, argv: Sequence[str]) -> list[str]:
    """`argv` run as `user` (and its groups only), with the caller's environment as given."""
    return ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--", *argv]


def user_may(user: SystemUser, path: Path, need: int) -> bool:
    """Whether `user` has the `need` bits (os.R_OK | os.X_OK ...) on `path` by its mode bits
    (no ACLs here: test machines have none on these paths)."""
    info = path.stat()
    if info.st_uid == user.uid:
        shift = 6
    elif info.st_gid in user.groups:
        shift = 3
    else:
        shift = 0
    granted = (info.st_mode >> shift) & 0o7
    return granted & need == need


def blocking_ancestors(user: SystemUser, path: Path) -> list[Path]:
    """The directories above `path` that `user` cannot traverse."""
    return [parent for parent in reversed(path.parents) if not user_may(user, parent, os.X_OK)]


def paths_needed() -> list[Path]:
    """What the user's Python must reach: the checkout and the venv's packages."""
    paths = [REPO_ROOT, *venv_site_packages()]
    return list(dict.fromkeys(paths))


def venv_site_packages() -> list[Path]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys(Path(paths[key]) for key in ("purelib", "platlib")))


def grant_dir_ensure(directory: Path) -> Path:
    """Root's own directory for the grant's locks and record (never a planted symlink)."""
    directory.mkdir(mode=0o700, exist_ok=True)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise RuntimeError(f"{directory} is not a private directory of this user")
    return directory


@contextmanager
def traverse_granted(
    user: SystemUser, paths: Iterable[Path], *, state_dir: Path = GRANT_DIR
) -> Iterator[list[Path]]:
    """Give `user` o+x on the ancestors of `paths` it cannot traverse (and o+rx on a needed
    directory it cannot list), for the block's duration;
    yields every directory the grant holds (changed here or by another process still in it).

    One lock (`mutex`) serialises changes to modes and the record of the original ones; each
    process in a grant holds a shared lock on `holders`, so whoever can take it exclusively on
    the way out is the last one and restores the modes. flock locks vanish with a crashed
    process, so a crash never leaves the grant held forever (its directories stay o+x until
    the next grant ends).
    """
    grant_dir_ensure(state_dir)
    record_path = state_dir / "record.json"
    mutex = os.open(state_dir / "mutex", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    holders = os.open(state_dir / "holders", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(mutex, fcntl.LOCK_EX)
        try:
            record: dict[str, int] = (
                json.loads(record_path.read_text()) if record_path.exists() else {}
            )
            for path in paths:
                for directory in blocking_ancestors(user, path):
                    mode = stat.S_IMODE(directory.stat().st_mode)
                    record.setdefault(str(directory), mode)
                    os.chmod(directory, mode | stat.S_IXOTH)
                # A needed directory itself must also be listed: Python's importer reads
                # the directory to find modules (a fresh clone may *be* a 0700 mktemp dir).
                if path.is_dir() and not user_may(user, path, os.R_OK | os.X_OK):
                    mode = stat.S_IMODE(path.stat().st_mode)
                    record.setdefault(str(path), mode)
                    os.chmod(path, mode | stat.S_IROTH | stat.S_IXOTH)
            record_path.write_text(json.dumps(record))
            fcntl.flock(holders, fcntl.LOCK_SH)
        finally:
            fcntl.flock(mutex, fcntl.LOCK_UN)
        yield [Path(name) for name in record]
    finally:
        fcntl.flock(mutex, fcntl.LOCK_EX)
        try:
            fcntl.flock(holders, fcntl.LOCK_UN)
            try:
                fcntl.flock(holders, fcntl.LOCK_EX | fcntl.LOCK_NB)
                last = True
            except BlockingIOError:
                last = False
            if last and record_path.exists():
                # Deepest first, so a restored 0700 never hides a directory still to restore.
                record = json.loads(record_path.read_text())
                for name, mode in sorted(record.items(), key=lambda item: -len(item[0])):
                    with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                        os.chmod(name, mode)
                record_path.unlink()
        finally:
            os.close(holders)
            fcntl.flock(mutex, fcntl.LOCK_UN)
            os.close(mutex)


@dataclass(frozen=True)
class UserPython:
    """How the user runs the checkout's Python: the interpreter and its PYTHONPATH."""

    argv: tuple[str, ...]
    pythonpath: str
    fallback: bool

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment for the user's process: nothing of root's leaks in."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONPATH": self.pythonpath,
            # The checkout is root's: the user could not write __pycache__ there anyway.
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.update(extra)
        return env


# Imports what the site needs and says which interpreter really ran: on some machines exec'ing
# the venv's symlink as the user starts a different Python (seen here: the system 3.11.2 in
# place of pyenv's 3.11.7), so "it ran" alone proves nothing.
PROBE = (
    "import sys, django, gunicorn, jails, jailadmin; print(repr((sys.version, sys.base_prefix)))"
)


def user_python(user: SystemUser) -> UserPython:
    """The venv's interpreter if the user can run it, else the system's of the same version."""
    venv = UserPython(argv=(sys.executable,), pythonpath=str(REPO_ROOT), fallback=False)
    first = _probe(user, venv)
    if first.returncode == 0 and first.stdout.strip() == repr((sys.version, sys.base_prefix)):
        return venv
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/local/bin:/usr/bin:/bin")
    if system is None:
        raise RuntimeError(
            f"{user.name} cannot run {sys.executable} ({_outcome(first)}) and there is no "
            f"system {version} to run the checkout with instead"
        )
    packages = [str(path) for path in venv_site_packages()]
    fallback = UserPython(
        argv=(system,), pythonpath=os.pathsep.join([*packages, str(REPO_ROOT)]), fallback=True
    )
    second = _probe(user, fallback)
    if second.returncode != 0:
        raise RuntimeError(
            f"{user.name} can run neither {sys.executable} ({_outcome(first)}) nor "
            f"{system} with the venv's packages ({second.stderr.strip()[-1500:]}); "
            f"{_blockers_text(user, [Path(sys.executable), *paths_needed()])}"
        )
    return fallback


def _probe(user: SystemUser, python: UserPython) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        as_user(user, [*python.argv, "-c", PROBE]),
        cwd=REPO_ROOT,
        env=python.env(JAILADMIN_DEBUG="true"),
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
    )


def _outcome(result: subprocess.CompletedProcess[str]) -> str:
    if result.returncode != 0:
        return result.stderr.strip()[-500:]
    return f"it started another interpreter: {result.stdout.strip()}"


def _blockers_text(user: SystemUser, paths: Iterable[Path]) -> str:
    problems = []
    for path in paths:
        problems += [f"{d} (not traversable)" for d in blocking_ancestors(user, path)]
        if path.is_dir() and not user_may(user, path, os.R_OK | os.X_OK):
            problems.append(f"{path} (not readable)")
    if not problems:
        return "no blocking directory found by mode bits"
    return "blocked by: " + ", ".join(dict.fromkeys(problems))


def checkout_check(user: SystemUser) -> None:
    """Fail, naming the path, if the user still cannot read the checkout and the packages."""
    problems = [path for path in paths_needed() if not user_may(user, path, os.R_OK | os.X_OK)] + [
        d for path in paths_needed() for d in blocking_ancestors(user, path)
    ]
    if problems:
        raise RuntimeError(f"{user.name} cannot read {', '.join(map(str, problems))}")


def process_ids(pid: int) -> tuple[int, int, int]:
    """(real uid, effective uid, effective capabilities) of a running process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return int(fields["Uid"][0]), int(fields["Uid"][1]), int(fields["CapEff"][0], 16)


def children(pid: int) -> list[int]:
    """The direct children of a process (gunicorn's workers)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()]


def chown_tree(root: Path, user: SystemUser) -> None:
    for directory, dirnames, filenames in os.walk(root):
        os.chown(directory, user.uid, user.gid)
        for name in [*dirnames, *filenames]:
            os.chown(os.path.join(directory, name), user.uid, user.gid, follow_symlinks=False)
