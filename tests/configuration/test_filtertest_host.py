"""The filter tester's host side (jails.agent.regex) with the real fail2ban-regex.

fail2ban's own sample logs carry the expected result of every interesting line
(`# failJSON: {"match": true, "host": ...}`); the tester must agree with them. Also: drafts,
a broken regex, the timeout (and that the killed process is gone), caps and refused input.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
from pathlib import Path

import pytest

from jails.agent.logview import op_log_tail
from jails.agent.operations import HostConfig
from jails.agent.regex import (
    IGNORED,
    MATCHED,
    MAX_INPUT_BYTES,
    MAX_INPUT_LINES,
    MISSED,
    SKIPPED,
    RegexDraft,
    RegexReport,
    draft_file_text,
    input_lines,
    op_regex_test,
    regex_command,
    regex_test,
    validate_filter_name,
)
from jails.fail2ban import InvalidArgument
from jails.fail2ban.server import find_fail2ban, shipped_filter_dir

pytestmark = [pytest.mark.fail2ban]

INSTALL = find_fail2ban()
PACKAGE_ROOT = Path(INSTALL.server).parent.parent
SAMPLES = PACKAGE_ROOT / "usr/lib/python3/dist-packages/fail2ban/tests/files/logs"


@pytest.fixture(scope="module")
def config() -> HostConfig:
    """The selected fail2ban's own configuration directory (every shipped filter)."""
    return HostConfig(
        config_dir=str(shipped_filter_dir(INSTALL).parent),
        fail2ban_client=(INSTALL.client,),
        regex_timeout=120.0,  # a loaded 1-core box: a real run takes about a second
    )


def annotated(lines: list[str]) -> list[tuple[int, dict, list[dict]]]:
    """(line number, its failJSON, the filterOptions in force there) for each annotated line."""
    options: list[dict] = [{}]
    pending = None
    found = []
    for number, line in enumerate(lines, start=1):
        if line.startswith("# filterOptions:"):
            value = json.loads(line.removeprefix("# filterOptions:"))
            options = value if isinstance(value, list) else [value]
        elif line.startswith("# failJSON:"):
            pending = json.loads(line.removeprefix("# failJSON:"))
        elif line.strip() and not line.startswith("#") and pending is not None:
            found.append((number, pending, options))
            pending = None
    return found


# sshd's "Failed publickey" lines are nofail matches (a failure only if the session then ends
# without success): fail2ban-regex reports them as ignored, fail2ban's test counts them later.
NOFAIL_LINES = {"sshd": {148, 150}}


@pytest.mark.parametrize("name", ["sshd", "nginx-http-auth"])
def test_regex_test_agrees_with_fail2bans_sample_annotations(config, name):
    lines, truncated = input_lines((SAMPLES / name).read_text())
    assert not truncated
    expected = annotated(lines)
    # Sections that only choose a filter mode; others (logtype, test conditions) are skipped.
    checked = [
        (number, fail, options)
        for number, fail, options in expected
        if fail["match"]
        and "host" in fail
        and "constraint" not in fail
        and "attempts" not in fail
        and all(set(option) <= {"mode"} for option in options)
        and number not in NOFAIL_LINES.get(name, set())
    ]
    modes = {option.get("mode") for _, _, options in checked for option in options}
    reports = {
        mode: regex_test(config, lines=lines, source=name, filter_name=name, mode=mode)
        for mode in modes
    }
    assert all(report.error is None for report in reports.values())
    assert len(checked) >= 10
    for number, fail, options in checked:
        outcomes = [reports[option.get("mode")].lines[number - 1] for option in options]
        assert any(line.status == MATCHED and fail["host"] in line.hosts for line in outcomes), (
            number,
            fail,
            outcomes,
        )
    # Comments and blank lines are skipped, as fail2ban-regex skips them.
    report = next(iter(reports.values()))
    assert report.lines[0].status == SKIPPED
    assert {line.number for line in report.lines} == set(range(1, len(lines) + 1))


def test_regex_test_nginx_misses_what_fail2ban_says_it_must_not_match(config):
    lines, _ = input_lines((SAMPLES / "nginx-http-auth").read_text())
    report = regex_test(config, lines=lines, source="x", filter_name="nginx-http-auth")
    never = [n for n, fail, options in annotated(lines) if fail["match"] is False]
    assert never
    assert all(report.lines[n - 1].status != MATCHED for n in never)
    assert report.counts[MATCHED] > 0
    assert report.counts[MISSED] > 0


def test_regex_test_draft_on_top_of_a_filter(config):
    failed = "belka sshd[31602]: Failed password for invalid user ROOT from"
    lines = [
        f"Feb 25 14:34:10 {failed} 192.0.2.1 port 1 ssh2",
        f"Feb 25 14:34:11 {failed} 192.0.2.2 port 1 ssh2",
        "Feb 25 14:34:12 belka sshd[31602]: Server listening on 0.0.0.0 port 22.",
    ]
    # The draft keeps sshd's failregex (and its prefregex) and adds an ignoreregex.
    draft = RegexDraft(ignoreregex=r"from 192\.0\.2\.2 ")
    report = regex_test(config, lines=lines, source="x", filter_name="sshd", draft=draft)
    assert report.error is None
    assert [line.status for line in report.lines] == [MATCHED, IGNORED, MISSED]
    assert report.lines[0].hosts == ("192.0.2.1",)
    assert report.lines[0].time is not None


def test_regex_test_draft_alone_with_its_own_datepattern(config):
    lines = ["2026-11-30 10:00:00 AUTH FAIL user=x from 203.0.113.9", "no date from 203.0.113.8"]
    draft = RegexDraft(
        failregex=r"^\s*AUTH FAIL user=\S+ from <HOST>$" "\n" r"^no date from <HOST>$",
        datepattern="{^LN-BEG}%%Y-%%m-%%d %%H:%%M:%%S",
    )
    report = regex_test(config, lines=lines, source="x", draft=draft)
    assert report.error is None
    first, second = report.lines
    assert (first.status, first.hosts, first.undated) == (MATCHED, ("203.0.113.9",), False)
    # A match without a date: fail2ban would use the time it read the line. Said so.
    assert (second.status, second.hosts, second.undated) == (MATCHED, ("203.0.113.8",), True)
    assert second.time is None
    assert report.date_templates and report.date_templates[0][0] == 1


def test_regex_test_broken_regex_is_reported_not_raised(config):
    report = regex_test(
        config, lines=["x"], source="x", draft=RegexDraft(failregex="^(unclosed <HOST>")
    )
    assert report.error is not None
    assert "unterminated subpattern" in report.error
    assert report.lines == ()
    no_host = regex_test(config, lines=["x"], source="x", draft=RegexDraft(failregex="^x$"))
    assert "No failure-id group" in (no_host.error or "")
    bad_interpolation = RegexDraft(failregex="%(undefined <HOST>")
    assert regex_test(config, lines=["x"], source="x", draft=bad_interpolation).error


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(pid))
    return found


def test_regex_test_timeout_kills_fail2ban_regex(config, tmp_path, monkeypatch):
    # tempfile keeps the directory it chose first: TMPDIR set now would not move the runs
    # (this test once did that, and checked an empty directory).
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # Catastrophic backtracking: fail2ban-regex would run for hours on this line.
    draft = RegexDraft(failregex=r"^(a+)+X<HOST>$")
    try:
        report = regex_test(config, lines=["a" * 40], source="x", draft=draft, timeout=2.0)
        assert report == RegexReport("x", error="fail2ban-regex did not finish within 2 s")
        # Its whole process group was killed, and its private directory removed.
        assert _processes_mentioning(str(tmp_path)) == []
        assert list(tmp_path.iterdir()) == []
    finally:
        for pid in _processes_mentioning(str(tmp_path)):  # what a broken kill left running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_regex_test_timeout_is_capped_by_the_host(config):
    with pytest.raises(InvalidArgument, match="timeout"):
        regex_test(config, lines=["x"], source="x", filter_name="sshd", timeout=10_000.0)


def test_input_lines_caps_lines_and_bytes():
    lines, truncated = input_lines("x\n" * (MAX_INPUT_LINES + 5))
    assert (len(lines), truncated) == (MAX_INPUT_LINES, True)
    big = ("y" * 999 + "\n") * (MAX_INPUT_BYTES // 1000 + 10)
    lines, truncated = input_lines(big)
    assert truncated and sum(len(line) + 1 for line in lines) <= MAX_INPUT_BYTES
    assert all(line == "y" * 999 for line in lines)
    # Only \n ends a line: fail2ban keeps \r, \x0b, \x1c inside one.
    assert input_lines("a\x0bb\r\nc\x1cd\n") == (["a\x0bb", "c\x1cd"], False)
    with pytest.raises(InvalidArgument, match="NUL"):
        input_lines("a\x00b")


def test_regex_test_refuses_more_than_the_caps(config):
    with pytest.raises(InvalidArgument, match="at most"):
        regex_test(config, lines=["x"] * (MAX_INPUT_LINES + 1), source="x", filter_name="sshd")
    with pytest.raises(InvalidArgument, match="line break"):
        regex_test(config, lines=["a\nb"], source="x", filter_name="sshd")


@pytest.mark.parametrize(
    "name",
    ["../jail", "/etc/passwd", "sshd/../../x", "..", "a\x00b", "%2e%2e", "filter.d/sshd", ""],
)
def test_filter_names_with_paths_are_refused(name):
    with pytest.raises(InvalidArgument):
        validate_filter_name(name)


def test_unknown_filter_and_modes_are_refused(config):
    with pytest.raises(InvalidArgument, match="no filter"):
        regex_test(config, lines=["x"], source="x", filter_name="no-such-filter")
    with pytest.raises(InvalidArgument, match="mode"):
        regex_test(config, lines=["x"], source="x", filter_name="sshd", mode="a]b")
    with pytest.raises(InvalidArgument, match="draft"):
        regex_test(config, lines=["x"], source="x")


@pytest.mark.parametrize(
    "draft",
    [
        RegexDraft(failregex="x <HOST>\x00"),
        RegexDraft(failregex="x <HOST>\u2028[Definition]"),
        RegexDraft(ignoreregex="\x1b[31m"),
        RegexDraft(datepattern="%%Y\n%%m"),
        RegexDraft(failregex="x" * 5000 + "<HOST>"),
        RegexDraft(failregex="\n".join(f"r{n} <HOST>" for n in range(51))),
    ],
)
def test_draft_control_characters_and_sizes_are_refused(config, draft):
    with pytest.raises(InvalidArgument, match=r"control character|one line|at most|longer"):
        regex_test(config, lines=["x"], source="x", filter_name="sshd", draft=draft)


def test_draft_lines_cannot_add_sections_or_options(config):
    # Each line of a draft is one regex: written as an indented continuation line, so
    # "[Definition]" or "logpath = ..." stay text inside the failregex.
    draft = RegexDraft(failregex="x <HOST>\n[INCLUDES]\nbefore = /etc/shadow\nlogpath = /x")
    text = draft_file_text(draft, base=None)
    assert [line for line in text.split("\n") if line.startswith("[")] == ["[Definition]"]
    assert "\n    [INCLUDES]\n    before = /etc/shadow\n" in text
    report = regex_test(config, lines=["x 192.0.2.1"], source="x", draft=draft)
    # fail2ban sees regexes without a host group and says so; nothing was included.
    assert report.error is not None and "No failure-id group" in report.error


def test_regex_command_sits_next_to_fail2ban_client():
    assert regex_command(HostConfig(fail2ban_client=("/opt/f2b/bin/fail2ban-client",))) == (
        "/opt/f2b/bin/fail2ban-regex",
    )
    wrapped = HostConfig(fail2ban_client=("python3", "/usr/bin/fail2ban-client", "-v"))
    assert regex_command(wrapped) == ("python3", "/usr/bin/fail2ban-regex")
    assert regex_command(HostConfig(fail2ban_regex=("/x/regex",))) == ("/x/regex",)


def test_missing_fail2ban_regex_is_reported(config):
    gone = HostConfig(config_dir=config.config_dir, fail2ban_regex=("/nonexistent/f2b-regex",))
    report = regex_test(gone, lines=["x"], source="x", filter_name="sshd")
    assert report.error == "fail2ban-regex cannot be run: /nonexistent/f2b-regex"


def test_agent_operations_refuse_unknown_arguments(config):
    # The agent's entry points: a caller cannot name a file or add an option of its own.
    with pytest.raises(InvalidArgument, match="unexpected arguments: path"):
        op_regex_test(config, None, {"path": "/etc/shadow", "filter": "sshd"})
    with pytest.raises(InvalidArgument, match="unexpected arguments: file"):
        op_log_tail(None, {"file": "/etc/shadow"})
    with pytest.raises(InvalidArgument, match="timeout"):
        op_regex_test(config, None, {"lines": "x", "filter": "sshd", "timeout": "9"})
    with pytest.raises(InvalidArgument, match="time zone"):
        op_regex_test(config, None, {"lines": "x", "filter": "sshd", "time_zone": "../../x"})


def test_regex_test_pasted_lone_surrogate_is_a_question_mark_not_a_crash(config):
    # JSON (the agent's wire format) can carry "\ud800"; writing it for fail2ban-regex used to
    # fail with an untyped UnicodeEncodeError.
    failed = "belka sshd[31602]: Failed password for invalid user r\ud800t from"
    lines, truncated = input_lines(f"Feb 25 14:34:10 {failed} 192.0.2.1 port 1 ssh2\n")
    assert not truncated
    assert "\ud800" not in lines[0] and "r?t" in lines[0]
    report = regex_test(config, lines=lines, source="x", filter_name="sshd")
    assert report.error is None
    assert [line.status for line in report.lines] == [MATCHED]
    assert report.lines[0].hosts == ("192.0.2.1",)
