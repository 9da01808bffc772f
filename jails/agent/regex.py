"""The filter tester's host side: fail2ban's own `fail2ban-regex` over lines, under limits.

Runs in the agent (agent mode) or in the site's process (direct mode), so every argument is
checked here: a filter is named, never a path (`filter.d/NAME.conf` inside the configured
config dir); a draft failregex/ignoreregex/datepattern is size-capped, free of control
characters, and written with its lines as INI continuation lines of a private temp filter
file, so it cannot add sections or options of its own; the lines come pasted (capped) or
from the end of a log file fail2ban itself monitors for the jail (`get J logpath`), never
from a path the caller names. fail2ban-regex runs with a fixed argv, the allow-listed
environment of a reload, a timeout (its whole process group is killed) and an output cap.

Two runs, because no single output of fail2ban-regex (1.0.2 and 1.1.0 alike) says both
which lines matched/were ignored/were missed *and* which host each match captured:
`--out '<fid>\t<time>\t<msg>'` prints one row per failure (host, time, the matched line)
but skips ignored and missed lines silently; the default report with `--print-all-*` lists
every line under Matched/Ignored/Missed. They run at the same time.

Nothing Django in here: standard library and jails.fail2ban only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jails.fail2ban import InvalidArgument
from jails.fail2ban.validation import validate_jail_name

from .operations import HostConfig, output_tail, reload_environment

MAX_INPUT_LINES = 5000
MAX_INPUT_BYTES = 1024 * 1024
MAX_REGEX_LINES = 50  # regexes in one draft failregex (a shipped filter has up to ~30)
MAX_REGEX_CHARS = 4000  # one regex; a shipped one is at most a few hundred characters
MAX_DRAFT_CHARS = 32 * 1024
MAX_OUTPUT_BYTES = 16 * 1024 * 1024  # input is 1 MB at most; the report repeats it ~twice
DEFAULT_TIMEOUT = 30.0
FILTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
FILTER_MODE = re.compile(r"[A-Za-z0-9_-]{1,32}")
TIME_ZONE = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+){0,3}")
# Anything but tab below 0x20, DEL, the C1 controls and the Unicode line/paragraph
# separators: in an INI value they would end the line or the value early.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# The extended --out format: host, time, matched line; the line last, so a tab in it is safe.
OUT_FORMAT = "<fid>\t<time>\t<msg>"
MATCHED, IGNORED, MISSED, SKIPPED = "matched", "ignored", "missed", "skipped"
_SECTIONS = {
    "|- Matched line(s):": MATCHED,
    "|- Ignored line(s):": IGNORED,
    "|- Missed line(s):": MISSED,
}
_NO_DATE = "] Match without a timestamp: "
_TEMPLATE_HIT = re.compile(r"^\|  \[(\d+)\] (.*)$")


@dataclass(frozen=True)
class RegexDraft:
    """A draft filter: each part None keeps the base filter's (or fail2ban's default)."""

    failregex: str | None = None
    ignoreregex: str | None = None
    datepattern: str | None = None

    @property
    def empty(self) -> bool:
        return self.failregex is None and self.ignoreregex is None and self.datepattern is None


@dataclass(frozen=True)
class RegexLine:
    """One tested line: its status and, when it matched, the hosts and time fail2ban found."""

    number: int
    text: str
    status: str
    hosts: tuple[str, ...] = ()
    time: float | None = None
    undated: bool = False  # matched, but fail2ban found no date in it (it uses "now")


@dataclass(frozen=True)
class RegexReport:
    """What fail2ban-regex made of the lines; `error` set when it could not run the filter."""

    source: str
    lines: tuple[RegexLine, ...] = ()
    error: str | None = None
    truncated: bool = False  # the input was cut to the caps
    date_templates: tuple[tuple[int, str], ...] = ()  # (hits, date format) fail2ban used
    counts: Mapping[str, int] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        """As JSON for the agent's reply (report_from_wire() reads it back)."""
        return {
            "source": self.source,
            "error": self.error,
            "truncated": self.truncated,
            "date_templates": [list(hit) for hit in self.date_templates],
            "counts": dict(self.counts),
            "lines": [
                [line.number, line.text, line.status, list(line.hosts), line.time, line.undated]
                for line in self.lines
            ],
        }


# --- Arguments ------------------------------------------------------------------------------------
def validate_filter_name(name: str) -> str:
    """A filter's name as in `filter = NAME` (no path, no `..`), else InvalidArgument."""
    if not isinstance(name, str) or not FILTER_NAME.fullmatch(name) or ".." in name:
        raise InvalidArgument("a filter name is letters, digits, '.', '_' and '-' (no path)")
    return name.removesuffix(".conf").removesuffix(".local")


def validate_filter_mode(mode: str | None) -> str | None:
    """A filter's `mode` option (sshd[mode=aggressive]), or None."""
    if mode is None or mode == "":
        return None
    if not isinstance(mode, str) or not FILTER_MODE.fullmatch(mode):
        raise InvalidArgument("a filter mode is letters, digits, '_' and '-'")
    return mode


def _draft_part(value: str | None, *, key: str, multi: bool) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{key} must be text")
    lines = [line.strip() for line in value.replace("\r\n", "\n").split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        return None
    if not multi and len(lines) > 1:
        raise InvalidArgument(f"{key} is one line")
    if len(lines) > MAX_REGEX_LINES:
        raise InvalidArgument(f"{key}: at most {MAX_REGEX_LINES} regular expressions")
    for line in lines:
        if len(line) > MAX_REGEX_CHARS:
            raise InvalidArgument(f"{key}: a line is longer than {MAX_REGEX_CHARS} characters")
        if _CONTROL.search(line):
            raise InvalidArgument(f"{key} contains a control character")
    return "\n".join(lines)


def validate_draft(draft: RegexDraft) -> RegexDraft:
    """The draft with each part checked: one regex a line, no control characters, capped."""
    checked = RegexDraft(
        failregex=_draft_part(draft.failregex, key="failregex", multi=True),
        ignoreregex=_draft_part(draft.ignoreregex, key="ignoreregex", multi=True),
        datepattern=_draft_part(draft.datepattern, key="datepattern", multi=False),
    )
    total = sum(len(part or "") for part in (checked.failregex, checked.ignoreregex))
    if total + len(checked.datepattern or "") > MAX_DRAFT_CHARS:
        raise InvalidArgument(f"the draft is longer than {MAX_DRAFT_CHARS} characters")
    return checked


def input_lines(text: str) -> tuple[list[str], bool]:
    """Pasted text as lines within the caps: (lines, whether anything was cut)."""
    if not isinstance(text, str):
        raise InvalidArgument("lines must be text")
    if "\x00" in text:
        raise InvalidArgument("the lines contain a NUL character")
    truncated = False
    # "replace": a lone surrogate (JSON may carry "\ud800") becomes "?", and the text goes on
    # as those bytes decode; kept as it was, writing the lines to a file would fail untyped.
    data = text.encode("utf-8", "replace")
    if len(data) > MAX_INPUT_BYTES:
        text = data[:MAX_INPUT_BYTES].decode("utf-8", "ignore")
        text = text[: text.rfind("\n") + 1] if "\n" in text else text
        truncated = True
    else:
        text = data.decode("utf-8")
    # Only "\n" ends a line, as for fail2ban reading a file (str.splitlines would also
    # split on \r, \x0b, \x1c and friends, which fail2ban leaves inside a line).
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) > MAX_INPUT_LINES:
        lines = lines[:MAX_INPUT_LINES]
        truncated = True
    return lines, truncated


# --- The log fail2ban monitors for a jail ---------------------------------------------------------
def jail_log_paths(send: Callable[..., Any], jail: str) -> list[str]:
    """The files fail2ban monitors for `jail` (`get J logpath`): the only logs we read."""
    value = send("get", validate_jail_name(jail), "logpath")
    if not isinstance(value, list | tuple):
        return []
    return [str(path) for path in value if isinstance(path, str) and path]


def file_tail(path: str, *, lines: int, max_bytes: int) -> tuple[list[str], bool]:
    """The last `lines` lines of `path`, reading at most `max_bytes` from its end.

    Returns (lines decoded as UTF-8 with replacement, whether the byte cap cut lines off).
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        start = max(0, size - max_bytes)
        handle.seek(start)
        data = handle.read(max_bytes)
    cut = False
    if start > 0:
        # The first line is partial (the window began inside it): drop it.
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else b""
        cut = True
    # A NUL would end the line for fail2ban-regex's argv-free file reading just the same,
    # but never reaches it: shown as the replacement character like invalid UTF-8.
    text_lines = data.decode("utf-8", "replace").replace("\x00", "\ufffd").split("\n")
    if text_lines and text_lines[-1] == "":
        text_lines.pop()
    if len(text_lines) > lines:
        return text_lines[-lines:], True
    return text_lines, cut


# --- Running fail2ban-regex -----------------------------------------------------------------------
def regex_command(config: HostConfig) -> tuple[str, ...]:
    """How to run fail2ban-regex: as configured, else next to the configured fail2ban-client."""
    if config.fail2ban_regex:
        return config.fail2ban_regex
    client = list(config.fail2ban_client)
    for index in range(len(client) - 1, -1, -1):
        if client[index].endswith("fail2ban-client"):
            client[index] = client[index].removesuffix("fail2ban-client") + "fail2ban-regex"
            return tuple(client[: index + 1])
    return ("fail2ban-regex",)


def _ini_value(text: str) -> str:
    # The first line after `key = `, every further one indented: INI continuation lines,
    # which cannot start a section or an option (control characters were refused).
    return "\n    ".join(text.split("\n"))


def draft_file_text(draft: RegexDraft, *, base: Path | None) -> str:
    """The private filter file for a draft: on top of `base` (a filter.d file) if given."""
    parts = []
    if base is not None:
        parts.append(f"[INCLUDES]\nbefore = {base}\n")
    parts.append("[Definition]\n")
    if draft.failregex is not None:
        parts.append(f"failregex = {_ini_value(draft.failregex)}\n")
    elif base is None:
        parts.append("failregex =\n")
    if draft.ignoreregex is not None:
        parts.append(f"ignoreregex = {_ini_value(draft.ignoreregex)}\n")
    if draft.datepattern is not None:
        parts.append(f"datepattern = {_ini_value(draft.datepattern)}\n")
    return "".join(parts)


def _filter_file(config: HostConfig, name: str) -> Path:
    directory = Path(config.config_dir) / "filter.d"
    for suffix in (".conf", ".local"):
        candidate = directory / f"{name}{suffix}"
        if candidate.is_file() and candidate.resolve().parent == directory.resolve():
            return candidate
    raise InvalidArgument(f"no filter {name!r} in {directory}")


@dataclass(frozen=True)
class _Run:
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    overflow: bool


def validate_time_zone(zone: str | None) -> str | None:
    """A time zone name such as Europe/Paris (fail2ban reads log dates in it), or None."""
    if zone is None or zone == "":
        return None
    if not isinstance(zone, str) or len(zone) > 64 or not TIME_ZONE.fullmatch(zone):
        raise InvalidArgument("a time zone is a name such as Europe/Paris")
    return zone


def _environment(time_zone: str | None) -> dict[str, str]:
    env = reload_environment(os.environ)
    if time_zone is not None:
        # The zone the fail2ban server reads its logs in, so a line's time is the same.
        env["TZ"] = time_zone
    return env


def _start(
    argv: Sequence[str], directory: Path, tag: str, env: Mapping[str, str]
) -> tuple[subprocess.Popen[bytes], Path]:
    out = directory / f"{tag}.out"
    err = directory / f"{tag}.err"
    # Files, not pipes: two runs at once never block on a full pipe, and the cap is
    # applied when reading them back, without holding a runaway output in memory.
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 (fixed argv, checked arguments, no shell)
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=directory,
            start_new_session=True,  # its own process group: a timeout kills all of it
        )
    return process, out


def _read_capped(path: Path) -> tuple[str, bool]:
    with open(path, "rb") as handle:
        data = handle.read(MAX_OUTPUT_BYTES + 1)
    return data[:MAX_OUTPUT_BYTES].decode("utf-8", "replace"), len(data) > MAX_OUTPUT_BYTES


def _run_all(
    runs: Mapping[str, Sequence[str]],
    directory: Path,
    *,
    timeout: float,
    env: Mapping[str, str],
) -> dict[str, _Run]:
    started: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    try:
        for tag, argv in runs.items():
            started[tag] = _start(argv, directory, tag, env)
        codes: dict[str, int | None] = {}
        for tag, (process, _) in started.items():
            try:
                codes[tag] = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                codes[tag] = None
                # The later runs got the same time meanwhile: no fresh timeout for them.
                timeout = 0.01
    finally:
        for process, _ in started.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    results = {}
    for tag, (_, out) in started.items():
        stdout, over_out = _read_capped(out)
        stderr, over_err = _read_capped(directory / f"{tag}.err")
        results[tag] = _Run(codes[tag], stdout, stderr, over_out or over_err)
    return results


def _failure(run: _Run) -> str:
    """Why fail2ban-regex did not run the filter: its ERROR lines, or its last line."""
    text = (run.stdout + "\n" + run.stderr).strip()
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.startswith(("ERROR", "Wrong config")):
            # The message and its explanation ("missing ), unterminated subpattern...").
            return output_tail("\n".join(lines[index : index + 4]).encode())
    last = lines[-1] if text else f"exit code {run.returncode}"
    return output_tail(last.encode())


def _report_lists(stdout: str) -> tuple[dict[str, Counter[str]], tuple[tuple[int, str], ...]]:
    lists: dict[str, Counter[str]] = {MATCHED: Counter(), IGNORED: Counter(), MISSED: Counter()}
    templates: list[tuple[int, str]] = []
    section: str | None = None
    in_templates = False
    for line in stdout.split("\n"):
        if section is not None:
            if line == "`-":
                section = None
            elif line.startswith("|  "):
                lists[section][line[3:]] += 1
        elif in_templates:
            # "|- [# of hits] date format", then "|  [N] FORMAT" rows, then "`-";
            # nothing at all (a blank line) when no template was used.
            hit = _TEMPLATE_HIT.match(line)
            if hit:
                templates.append((int(hit.group(1)), hit.group(2)))
            elif not line.startswith("|-"):
                in_templates = False
        elif line in _SECTIONS:
            section = _SECTIONS[line]
        elif line == "Date template hits:":
            in_templates = True
    return lists, tuple(templates)


def _failures(stdout: str) -> dict[str, list[tuple[str, float | None]]]:
    found: dict[str, list[tuple[str, float | None]]] = {}
    for row in stdout.split("\n"):
        parts = row.split("\t", 2)
        if len(parts) != 3:
            continue
        host, when, message = parts
        try:
            time_value: float | None = float(when)
        except ValueError:
            time_value = None
        found.setdefault(message.rstrip(), []).append((host, time_value))
    return found


def _undated(output: str) -> Counter[str]:
    lines: Counter[str] = Counter()
    for line in output.split("\n"):
        # fail2ban's warning (on stdout or stderr, by version); never a listed log line.
        at = line.find(_NO_DATE)
        if at >= 0 and not line.startswith("|"):
            lines[line[at + len(_NO_DATE) :].rstrip()] += 1
    return lines


def classify(
    lines: Sequence[str], *, report: str, failures: str, warnings: str
) -> tuple[tuple[RegexLine, ...], tuple[tuple[int, str], ...]]:
    """Each input line with its status, hosts and time, from the two runs' outputs."""
    lists, templates = _report_lists(report)
    hosts = _failures(failures)
    undated = _undated(warnings)
    result = []
    for number, line in enumerate(lines, start=1):
        key = line.rstrip()
        # fail2ban-regex skips what it takes for comments and blank lines.
        if not key or line.startswith("#"):
            result.append(RegexLine(number, line, SKIPPED))
            continue
        status = MISSED
        for candidate in (MATCHED, IGNORED, MISSED):
            if lists[candidate][key] > 0:
                lists[candidate][key] -= 1
                status = candidate
                break
        found: list[tuple[str, float | None]] = []
        if status == MATCHED and hosts.get(key):
            # The failures come in line order: the next one with this text is this line's.
            found = [hosts[key].pop(0)]
        no_date = status == MATCHED and undated[key] > 0
        if no_date:
            undated[key] -= 1
        result.append(
            RegexLine(
                number,
                line,
                status,
                hosts=tuple(dict.fromkeys(host for host, _ in found)),
                time=None if no_date or not found else found[0][1],
                undated=no_date,
            )
        )
    return tuple(result), templates


def regex_test(
    config: HostConfig,
    *,
    lines: Sequence[str],
    source: str,
    truncated: bool = False,
    filter_name: str | None = None,
    mode: str | None = None,
    draft: RegexDraft | None = None,
    timeout: float | None = None,
    time_zone: str | None = None,
) -> RegexReport:
    """Run fail2ban-regex with a filter (by name) and/or a draft over `lines`."""
    time_zone = validate_time_zone(time_zone)
    draft = validate_draft(draft) if draft is not None else None
    if draft is not None and draft.empty:
        draft = None
    name = validate_filter_name(filter_name) if filter_name is not None else None
    mode = validate_filter_mode(mode)
    if name is None and draft is None:
        raise InvalidArgument("name a filter, or give a draft failregex")
    if name is None and (draft is None or draft.failregex is None):
        raise InvalidArgument("a draft without a base filter needs a failregex")
    limit = config.regex_timeout if timeout is None else timeout
    if not 0 < limit <= config.regex_timeout:
        raise InvalidArgument(f"timeout must be between 0 and {config.regex_timeout:g} s")
    if len(lines) > MAX_INPUT_LINES or sum(len(line) + 1 for line in lines) > MAX_INPUT_BYTES:
        raise InvalidArgument(f"at most {MAX_INPUT_LINES} lines and {MAX_INPUT_BYTES} bytes")
    if any("\n" in line or "\x00" in line for line in lines):
        raise InvalidArgument("a line contains a line break or a NUL character")
    base = _filter_file(config, name) if name is not None else None
    option = f"[mode={mode}]" if mode else ""
    directory = Path(tempfile.mkdtemp(prefix="jailadmin-regex-"))  # 0700, ours alone
    try:
        log = directory / "lines.log"
        log.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        if draft is not None:
            filter_file = directory / "draft.conf"
            filter_file.write_text(draft_file_text(draft, base=base), encoding="utf-8")
            filter_args = [f"{filter_file}{option}"]
        else:
            assert name is not None
            filter_args = ["-c", config.config_dir, f"{name}{option}"]
        common = [*regex_command(config), "--raw", "--encoding=UTF-8", "--log-level=WARNING"]
        runs = _run_all(
            {
                "report": [
                    *common,
                    "--print-all-matched",
                    "--print-all-missed",
                    "--print-all-ignored",
                    *filter_args[:-1],
                    str(log),
                    filter_args[-1],
                ],
                "failures": [*common, f"--out={OUT_FORMAT}", *filter_args[:-1], str(log)]
                + filter_args[-1:],
            },
            directory,
            timeout=limit,
            env=_environment(time_zone),
        )
    except FileNotFoundError as exc:
        return RegexReport(source, error=f"fail2ban-regex cannot be run: {exc.filename}")
    except PermissionError as exc:
        return RegexReport(source, error=f"fail2ban-regex cannot be run: {exc}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    report, failures = runs["report"], runs["failures"]
    if report.returncode is None or failures.returncode is None:
        return RegexReport(source, error=f"fail2ban-regex did not finish within {limit:g} s")
    if report.overflow or failures.overflow:
        return RegexReport(source, error="fail2ban-regex's output exceeded the cap")
    for run in (report, failures):
        if run.returncode != 0:
            return RegexReport(source, error=_failure(run))
    if "\nResults\n" not in report.stdout:
        return RegexReport(source, error=_failure(report))
    tested, templates = classify(
        lines,
        report=report.stdout,
        failures=failures.stdout,
        warnings=report.stdout + "\n" + report.stderr,
    )
    counts = Counter(line.status for line in tested)
    return RegexReport(
        source,
        lines=tested,
        truncated=truncated,
        date_templates=templates,
        counts={status: counts.get(status, 0) for status in (MATCHED, IGNORED, MISSED)},
    )


def regex_test_request(
    config: HostConfig,
    send: Callable[..., Any],
    *,
    lines: str | None = None,
    jail: str | None = None,
    log_lines: int = 1000,
    logpath: str | None = None,
    filter_name: str | None = None,
    mode: str | None = None,
    draft: RegexDraft | None = None,
    timeout: float | None = None,
    time_zone: str | None = None,
) -> RegexReport:
    """The filter test over pasted `lines`, or the last `log_lines` of `jail`'s log.

    The log is one fail2ban reports for the jail (`send` asks it); `logpath` only picks
    among those, so no caller can make this read any other file.
    """
    if (lines is None) == (jail is None):
        raise InvalidArgument("test either pasted lines or a jail's log")
    if lines is not None:
        tested, truncated = input_lines(lines)
        source = "pasted lines"
    else:
        assert jail is not None
        if isinstance(log_lines, bool) or not isinstance(log_lines, int):
            raise InvalidArgument("log_lines must be a whole number")
        if not 1 <= log_lines <= MAX_INPUT_LINES:
            raise InvalidArgument(f"log_lines must be between 1 and {MAX_INPUT_LINES}")
        paths = jail_log_paths(send, jail)
        if not paths:
            raise InvalidArgument(f"fail2ban reads no log file for {jail} (the journal?)")
        if logpath is not None and logpath not in paths:
            raise InvalidArgument(f"{jail} does not monitor that file")
        source = logpath or paths[0]
        try:
            tested, truncated = file_tail(source, lines=log_lines, max_bytes=MAX_INPUT_BYTES)
        except OSError as exc:
            return RegexReport(source, error=f"cannot read {source}: {exc.strerror or exc}")
    return regex_test(
        config,
        lines=tested,
        source=source,
        truncated=truncated,
        filter_name=filter_name,
        mode=mode,
        draft=draft,
        timeout=timeout,
        time_zone=time_zone,
    )


def report_from_wire(value: Any) -> RegexReport:
    """A RegexReport from the agent's JSON reply (ValueError when it is malformed)."""
    if not isinstance(value, dict):
        raise ValueError("not an object")
    lines = []
    for row in value.get("lines") or []:
        number, text, status, hosts, when, undated = row
        if not (isinstance(number, int) and isinstance(text, str) and isinstance(status, str)):
            raise ValueError("a malformed line")
        lines.append(
            RegexLine(
                number,
                text,
                status,
                hosts=tuple(str(host) for host in hosts),
                time=None if when is None else float(when),
                undated=bool(undated),
            )
        )
    error = value.get("error")
    counts = value.get("counts") or {}
    return RegexReport(
        str(value.get("source", "")),
        lines=tuple(lines),
        error=None if error is None else str(error),
        truncated=bool(value.get("truncated")),
        date_templates=tuple((int(n), str(t)) for n, t in value.get("date_templates") or []),
        counts={str(k): int(v) for k, v in counts.items()},
    )


@dataclass(frozen=True)
class RegexRequest:
    """One filter test as the site asks for it (HostLink.regex_test)."""

    lines: str | None = None  # pasted text, or:
    jail: str | None = None  # the last `log_lines` lines of this jail's log
    log_lines: int = 1000
    logpath: str | None = None  # which of the jail's logs (default: its first)
    filter_name: str | None = None
    mode: str | None = None
    draft: RegexDraft = field(default_factory=RegexDraft)
    timeout: float | None = None
    time_zone: str | None = None  # the zone fail2ban reads log dates in (its TZ)

    def wire(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "jail": self.jail,
            "log_lines": self.log_lines,
            "logpath": self.logpath,
            "filter": self.filter_name,
            "mode": self.mode,
            "failregex": self.draft.failregex,
            "ignoreregex": self.draft.ignoreregex,
            "datepattern": self.draft.datepattern,
            "timeout": self.timeout,
            "time_zone": self.time_zone,
        }


def regex_test_run(
    config: HostConfig, send: Callable[..., Any], request: RegexRequest
) -> RegexReport:
    """regex_test_request() for a RegexRequest (DirectLink, in this process)."""
    return regex_test_request(
        config,
        send,
        lines=request.lines,
        jail=request.jail,
        log_lines=request.log_lines,
        logpath=request.logpath,
        filter_name=request.filter_name,
        mode=request.mode,
        draft=request.draft,
        timeout=request.timeout,
        time_zone=request.time_zone,
    )


REQUEST_ARGUMENTS = frozenset(
    {
        "lines",
        "jail",
        "log_lines",
        "logpath",
        "filter",
        "mode",
        "failregex",
        "ignoreregex",
        "datepattern",
        "timeout",
        "time_zone",
    }
)


def _optional_text(args: Mapping[str, Any], key: str) -> str | None:
    value = args.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidArgument(f"{key} must be text or null")
    return value


def op_regex_test(config: HostConfig, client: Any, args: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's `regex_test` operation: every argument checked, the report as JSON."""
    unknown = set(args) - REQUEST_ARGUMENTS
    if unknown:
        raise InvalidArgument(f"unexpected arguments: {', '.join(sorted(unknown))[:200]}")
    timeout = args.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)):
        raise InvalidArgument("timeout must be a number of seconds or null")
    log_lines = args.get("log_lines", 1000)
    draft = RegexDraft(
        failregex=_optional_text(args, "failregex"),
        ignoreregex=_optional_text(args, "ignoreregex"),
        datepattern=_optional_text(args, "datepattern"),
    )
    report = regex_test_request(
        config,
        # Asked only for a jail's log paths: pasted lines never reach fail2ban.
        lambda *command: client.send(*command),
        lines=_optional_text(args, "lines"),
        jail=_optional_text(args, "jail"),
        log_lines=log_lines,
        logpath=_optional_text(args, "logpath"),
        filter_name=_optional_text(args, "filter"),
        mode=_optional_text(args, "mode"),
        draft=draft,
        timeout=None if timeout is None else float(timeout),
        time_zone=_optional_text(args, "time_zone"),
    )
    return report.wire()
