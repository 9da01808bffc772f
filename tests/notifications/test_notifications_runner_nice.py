"""The job runner's CPU priority (JAILADMIN_JOBS_NICE): read back from the kernel.

Real `manage.py run_jobs` processes; their niceness (and every thread's) is read from
/proc/<pid>/task/<tid>/stat, the value the scheduler uses, not from anything jailadmin says.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Django's start-up and a migration on a loaded 1-core box.
START_TIMEOUT = 180


@pytest.fixture(scope="module")
def runner_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a runner on a migrated throw-away database of its own."""
    db = tmp_path_factory.mktemp("nice") / "jobs.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "JAILADMIN_"))}
    env.update(
        JAILADMIN_DATABASE_URL=f"sqlite:///{db}",
        JAILADMIN_DEBUG="false",
        JAILADMIN_SECRET_KEY="test-key-for-the-runner-niceness-0123456789",
        PYTHONUNBUFFERED="1",
    )
    subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "migrate", "-v0"],
        env=env,
        check=True,
        cwd=REPO,
        timeout=START_TIMEOUT,
    )
    return env


def niceness_of(pid: int) -> set[int]:
    """The niceness of every thread of `pid` (field 19 of stat; the name may hold spaces)."""
    values = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rpartition(")")[2].split()
        values.add(int(fields[16]))  # fields[0] is field 3 (state)
    return values


def runner_niceness(
    env: dict[str, str], socket: Path, *, preexec: Callable[[], None] | None = None
) -> tuple[set[int], str]:
    """Start `run_jobs`, wait until it runs its loop, read its niceness, stop it."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "run_jobs", "--only", "notify-deliver"],
        env=env | {"JAILADMIN_FAIL2BAN_SOCKET": str(socket)},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the priority is set and threads started
        assert line.startswith("job runner "), line + (proc.stderr.read() if proc.stderr else "")
        values = niceness_of(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=START_TIMEOUT)
    assert proc.returncode == 0
    return values, line


def own_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


@pytest.mark.parametrize(("setting", "expected"), [(None, 10), ("3", 3), ("19", 19)])
def test_run_jobs_lowers_its_priority_to_jobs_nice(runner_env, f2b, setting, expected):
    env = dict(runner_env)
    if setting is not None:
        env["JAILADMIN_JOBS_NICE"] = setting
    expected = max(expected, own_niceness())  # an unprivileged process cannot raise it
    values, line = runner_niceness(env, f2b.socket_path)
    # Every thread: the settings watcher started after the change inherits it too.
    assert values == {expected}
    assert f"(nice {expected})" in line


def test_run_jobs_jobs_nice_zero_leaves_the_priority_alone(runner_env, f2b):
    values, _ = runner_niceness(runner_env | {"JAILADMIN_JOBS_NICE": "0"}, f2b.socket_path)
    assert values == {own_niceness()}


def test_run_jobs_never_raises_a_priority_already_lower(runner_env, f2b):
    """Started at nice 15 (systemd's Nice=15, say), a setting of 10 keeps it at 15."""

    def start_nicer() -> None:
        os.setpriority(os.PRIO_PROCESS, 0, max(15, os.getpriority(os.PRIO_PROCESS, 0)))

    values, line = runner_niceness(
        runner_env | {"JAILADMIN_JOBS_NICE": "10"}, f2b.socket_path, preexec=start_nicer
    )
    assert values == {max(15, own_niceness())}
    assert f"(nice {max(15, own_niceness())})" in line


@pytest.mark.parametrize("value", ["20", "-1", "low"])
def test_run_jobs_refuses_a_bad_jobs_nice(runner_env, f2b, value):
    done = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "run_jobs", "--once"],
        env=runner_env
        | {"JAILADMIN_JOBS_NICE": value, "JAILADMIN_FAIL2BAN_SOCKET": str(f2b.socket_path)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert done.returncode != 0
    assert "JAILADMIN_JOBS_NICE must be" in done.stderr
