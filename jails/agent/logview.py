"""The log viewer's host side: the end of fail2ban's own log, filtered, and what came after.

Which log is never the caller's choice: it is fail2ban's `logtarget` (asked over its
socket), or the systemd journal of fail2ban.service when fail2ban logs there. STDOUT,
STDERR and SYSLOG targets are not readable from here, and say so.

Every line leaves here as printable text: invalid UTF-8 becomes U+FFFD, and control
characters (ANSI escapes, carriage returns, NUL, C1) become visible `\\xNN` text, so a
hostile log line cannot restyle a terminal or a page; HTML escaping is the page's job.

Follow: the reply carries a cursor (`file:INODE:OFFSET` or `journal:CURSOR`); given back, it
returns only the lines written since. A rotated or truncated file starts again at its top.

Nothing Django in here: standard library and jails.fail2ban only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jails.fail2ban import InvalidArgument

from .operations import reload_environment

MAX_LINES = 5000
MAX_BYTES = 1024 * 1024  # read from the log per request
MAX_LINE_CHARS = 4000  # one shown line (a traceback line, a huge matched request)
MAX_SEARCH_CHARS = 200
JOURNAL_UNIT = "fail2ban.service"
JOURNAL_TIMEOUT = 15.0
# fail2ban's own levels (fail2ban/helpers.py adds NOTICE, HEAVYDEBUG and TRACEDEBUG).
LEVELS = {
    "CRITICAL": 50,
    "ERROR": 40,
    "WARNING": 30,
    "NOTICE": 25,
    "INFO": 20,
    "DEBUG": 10,
    "TRACEDEBUG": 7,
    "HEAVYDEBUG": 5,
}
# "2026-12-01 18:55:33,655 fail2ban.filter         [14612]: WARNING [sshd] Found ..."
_LINE_LEVEL = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ \S+\s*\[\d+\]: ([A-Z]+)\s")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_JOURNAL_CURSOR = re.compile(r"[A-Za-z0-9=;_-]{1,512}")
# The journal's PRIORITY (syslog severities) as fail2ban's level names.
_PRIORITY_LEVELS = ("CRITICAL", "CRITICAL", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO")
UNREADABLE_TARGETS = ("STDOUT", "STDERR", "SYSLOG")


@dataclass(frozen=True)
class LogLine:
    text: str
    level: str | None  # None: fail2ban's level is not known (a line it did not format)


@dataclass(frozen=True)
class LogTail:
    """The lines read, the cursor to follow from, and whether the log is readable at all."""

    source: str
    lines: tuple[LogLine, ...] = ()
    cursor: str | None = None
    readable: bool = True
    reason: str | None = None
    truncated: bool = False  # the byte cap cut older lines off

    def wire(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "lines": [[line.text, line.level] for line in self.lines],
            "cursor": self.cursor,
            "readable": self.readable,
            "reason": self.reason,
            "truncated": self.truncated,
        }


def tail_from_wire(value: Any) -> LogTail:
    """A LogTail from the agent's JSON reply (ValueError when it is malformed)."""
    if not isinstance(value, dict):
        raise ValueError("not an object")
    lines = []
    for row in value.get("lines") or []:
        text, level = row
        if not isinstance(text, str) or not (level is None or isinstance(level, str)):
            raise ValueError("a malformed line")
        lines.append(LogLine(text, level))
    cursor, reason = value.get("cursor"), value.get("reason")
    return LogTail(
        str(value.get("source", "")),
        lines=tuple(lines),
        cursor=None if cursor is None else str(cursor),
        readable=bool(value.get("readable")),
        reason=None if reason is None else str(reason),
        truncated=bool(value.get("truncated")),
    )


def printable(raw: str) -> str:
    """A log line as plain printable text: controls as visible \\xNN, capped in length."""
    text = _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", raw)
    return text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + "…"


def line_levels(texts: Sequence[str]) -> list[LogLine]:
    """Each line with fail2ban's level; a continuation (a traceback) takes its record's."""
    result = []
    current: str | None = None
    for text in texts:
        match = _LINE_LEVEL.match(text)
        if match and match.group(1) in LEVELS:
            current = match.group(1)
        result.append(LogLine(printable(text), current))
    return result


def _wanted(line: LogLine, *, level: str | None, search: str | None) -> bool:
    if level is not None and (line.level is None or LEVELS[line.level] < LEVELS[level]):
        return False
    return search is None or search in line.text.casefold()


def check_arguments(
    *, lines: int, level: str | None, search: str | None, cursor: str | None
) -> tuple[int, str | None, str | None, str | None]:
    """The arguments checked (the search folded for a case-blind plain substring match)."""
    if isinstance(lines, bool) or not isinstance(lines, int) or not 1 <= lines <= MAX_LINES:
        raise InvalidArgument(f"lines must be a whole number from 1 to {MAX_LINES}")
    if level is not None and level not in LEVELS:
        raise InvalidArgument(f"level must be one of {', '.join(LEVELS)}")
    if search is not None:
        if not isinstance(search, str) or len(search) > MAX_SEARCH_CHARS:
            raise InvalidArgument(f"search is text of at most {MAX_SEARCH_CHARS} characters")
        if _CONTROL.search(search):
            raise InvalidArgument("search contains a control character")
        search = search.casefold() or None
    if cursor is not None and (not isinstance(cursor, str) or len(cursor) > 600):
        raise InvalidArgument("a malformed cursor")
    return lines, level, search, cursor


# --- A log file -----------------------------------------------------------------------------------
def _file_cursor(cursor: str | None) -> tuple[int, int] | None:
    if cursor is None:
        return None
    parts = cursor.split(":")
    if len(parts) != 3 or parts[0] != "file" or not all(p.isdigit() for p in parts[1:]):
        raise InvalidArgument("a malformed cursor")
    return int(parts[1]), int(parts[2])


def file_read(
    path: str, *, lines: int, level: str | None, search: str | None, cursor: str | None
) -> LogTail:
    """The last `lines` wanted lines of `path` (from the end), or those after `cursor`."""
    after = _file_cursor(cursor)
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed below; fstat needs the handle)
    except OSError as exc:
        return LogTail(path, readable=False, reason=f"cannot read {path}: {exc.strerror}")
    with handle:
        info = os.fstat(handle.fileno())
        size = info.st_size
        following = after is not None and after[0] == info.st_ino and after[1] <= size
        # Following: from the cursor on. Rotated (another inode) or truncated: from the top.
        start = after[1] if following and after is not None else 0
        if after is None:
            start = max(0, size - MAX_BYTES)
        handle.seek(start)
        data = handle.read(min(MAX_BYTES, max(0, size - start)))
    truncated = False
    if after is None and start > 0:
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else b""
        start += newline + 1 if newline >= 0 else 0
        truncated = True
    # Only whole lines: a line still being written is returned by the next follow.
    end = data.rfind(b"\n") + 1
    complete = data[:end]
    if after is not None and end == 0 and len(data) == MAX_BYTES:
        complete, end = data, len(data)  # one line longer than the cap: take it as it is
    texts = complete.decode("utf-8", "replace").split("\n")
    if texts and texts[-1] == "":
        texts.pop()
    wanted = [line for line in line_levels(texts) if _wanted(line, level=level, search=search)]
    if len(wanted) > lines:
        wanted = wanted[-lines:]
        truncated = truncated or after is None
    return LogTail(
        path,
        lines=tuple(wanted),
        cursor=f"file:{info.st_ino}:{start + end}",
        truncated=truncated,
    )


# --- The systemd journal --------------------------------------------------------------------------
def journal_argv(*, lines: int, cursor: str | None) -> list[str]:
    """journalctl for fail2ban.service: the last `lines` entries, or those after `cursor`."""
    argv = ["journalctl", "--unit", JOURNAL_UNIT, "--output", "json", "--no-pager", "--quiet"]
    if cursor is None:
        return [*argv, "--lines", str(lines)]
    journal = cursor.removeprefix("journal:")
    if journal == cursor or not _JOURNAL_CURSOR.fullmatch(journal):
        raise InvalidArgument("a malformed cursor")
    return [*argv, "--after-cursor", journal]


def journal_lines(output: bytes) -> tuple[list[LogLine], str | None]:
    """journalctl's JSON lines as LogLines and the last entry's cursor."""
    result = []
    cursor = None
    for raw in output.split(b"\n"):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        message = entry.get("MESSAGE")
        # The journal gives a message that is not valid UTF-8 as a list of byte values.
        if isinstance(message, list):
            message = bytes(b for b in message if isinstance(b, int) and 0 <= b < 256)
            message = message.decode("utf-8", "replace")
        if not isinstance(message, str):
            continue
        try:
            priority = int(entry.get("PRIORITY", 6))
        except (TypeError, ValueError):
            priority = 6
        level = _PRIORITY_LEVELS[priority] if 0 <= priority < 7 else "DEBUG"
        match = _LINE_LEVEL.match(message)
        if match and match.group(1) in LEVELS:
            level = match.group(1)
        for text in message.split("\n"):
            result.append(LogLine(printable(text), level))
        if isinstance(entry.get("__CURSOR"), str):
            cursor = entry["__CURSOR"]
    return result, cursor


def journal_read(
    *, lines: int, level: str | None, search: str | None, cursor: str | None
) -> LogTail:
    source = f"systemd journal ({JOURNAL_UNIT})"
    if shutil.which("journalctl", path=reload_environment(os.environ)["PATH"]) is None:
        return LogTail(source, readable=False, reason="journalctl is not installed here")
    argv = journal_argv(lines=lines, cursor=cursor)
    try:
        result = subprocess.run(  # noqa: S603 (fixed argv, checked cursor, no shell)
            argv,
            env=reload_environment(os.environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=JOURNAL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return LogTail(source, readable=False, reason=f"journalctl failed: {exc}")
    if result.returncode != 0:
        reason = printable(result.stderr.decode("utf-8", "replace").strip()[:500])
        return LogTail(source, readable=False, reason=f"journalctl failed: {reason}")
    found, last = journal_lines(result.stdout[: MAX_BYTES * 4])
    wanted = [line for line in found if _wanted(line, level=level, search=search)][-lines:]
    next_cursor = f"journal:{last}" if last else cursor
    return LogTail(source, lines=tuple(wanted), cursor=next_cursor)


# --- fail2ban's log, wherever it is ---------------------------------------------------------------
def log_tail(
    send: Callable[..., Any],
    *,
    lines: int = 200,
    level: str | None = None,
    search: str | None = None,
    cursor: str | None = None,
) -> LogTail:
    """fail2ban's own log: where its `logtarget` says, read within the caps."""
    lines, level, search, cursor = check_arguments(
        lines=lines, level=level, search=search, cursor=cursor
    )
    target = str(send("get", "logtarget") or "").strip()
    # A target may carry options: "SYSLOG[format=...]", "SYSTEMD-JOURNAL[...]".
    kind = target.split("[", 1)[0].upper()
    if kind == "SYSTEMD-JOURNAL":
        return journal_read(lines=lines, level=level, search=search, cursor=cursor)
    if kind in UNREADABLE_TARGETS or not target.startswith("/"):
        return LogTail(
            target or "(none)",
            readable=False,
            reason=f"fail2ban logs to {target or 'nowhere'}, which cannot be read from here",
        )
    return file_read(target, lines=lines, level=level, search=search, cursor=cursor)


def op_log_tail(client: Any, args: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's `log_tail` operation: every argument checked, the lines as JSON."""
    unknown = set(args) - {"lines", "level", "search", "cursor"}
    if unknown:
        raise InvalidArgument(f"unexpected arguments: {', '.join(sorted(unknown))[:200]}")
    return log_tail(
        client.send,
        lines=args.get("lines", 200),
        level=args.get("level"),
        search=args.get("search"),
        cursor=args.get("cursor"),
    ).wire()
