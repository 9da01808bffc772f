"""Stopping a process the tests started, and everything below it.

A process group does not reach every descendant (sshd gives each connection its own
session), so the tree is read from /proc: each process's parent, children found from there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def process_stats() -> Iterator[tuple[int, str, list[str]]]:
    """(pid, comm, the stat fields after comm: state, ppid, …) of every process now."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        yield int(entry), comm, stat[stat.rfind(")") + 2 :].split()


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process now (from /proc)."""
    return {pid: int(fields[1]) for pid, _comm, fields in process_stats()}


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, children before grandchildren."""
    parents = _parents()
    found: list[int] = []
    frontier = [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _exists(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is not: it only waits to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2 :].split()[0] != "Z"


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def process_tree_stop(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM `process` and every process below it; SIGKILL whatever is still there after
    `timeout`. Returns once `process` is reaped and the rest gone (or killed)."""
    if process.poll() is not None:
        return  # gone and reaped already: its pid may be another process's by now
    # Collected before the top goes: its children are then re-parented, out of reach.
    pids = [*descendants(process.pid), process.pid]
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    for pid in pids[:-1]:
        while _exists(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _exists(pid):
            _signal(pid, signal.SIGKILL)
