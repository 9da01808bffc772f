"""The log viewer's host side (jails.agent.logview) pinned down to what a caller sees: which
arguments are refused and with which message, exactly which lines come back with which level,
where a follow resumes, and what the reply says when fail2ban's log cannot be read.

Written against the survivors of `make mutation MUTANTS='jails.agent.logview*'` (issue 17):
most of it runs on files in tmp_path and journalctl's own JSON, so each mutant is judged in
well under a second; what depends on fail2ban's `logtarget` asks a real private server.
"""

from __future__ import annotations

import json
import os

import pytest

from jails.agent import logview
from jails.fail2ban import Fail2banClient, InvalidArgument
from tests.support.fakeserver import FakeFail2ban, pickled_reply, reply_for_each

STAMP = "2026-12-01 10:00:00,000 fail2ban.server         [4242]: "


def read(path, *, lines=50, level=None, search=None, cursor=None):
    return logview.file_read(str(path), lines=lines, level=level, search=search, cursor=cursor)


def texts(tail):
    return [line.text for line in tail.lines]


# --- Arguments ------------------------------------------------------------------------------------
@pytest.mark.parametrize("lines", [0, -1, logview.MAX_LINES + 1, True, 2.0, "5"])
def test_lines_out_of_range_or_not_a_whole_number_are_refused(lines):
    with pytest.raises(InvalidArgument) as refused:
        logview.check_arguments(lines=lines, level=None, search=None, cursor=None)
    assert str(refused.value) == "lines must be a whole number from 1 to 5000"


@pytest.mark.parametrize("lines", [1, logview.MAX_LINES])
def test_lines_at_either_bound_are_accepted(lines):
    assert logview.check_arguments(lines=lines, level=None, search=None, cursor=None) == (
        lines,
        None,
        None,
        None,
    )


def test_unknown_level_is_refused_with_the_known_ones_listed():
    with pytest.raises(InvalidArgument) as refused:
        logview.check_arguments(lines=1, level="info", search=None, cursor=None)
    assert str(refused.value) == (
        "level must be one of CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG, TRACEDEBUG, HEAVYDEBUG"
    )
    for level in logview.LEVELS:
        assert logview.check_arguments(lines=1, level=level, search=None, cursor=None)[1] == level


def test_search_is_folded_capped_and_free_of_controls():
    folded = logview.check_arguments(lines=1, level=None, search="Straße", cursor=None)
    assert folded[2] == "strasse"
    # An empty search is no search at all.
    assert logview.check_arguments(lines=1, level=None, search="", cursor=None)[2] is None
    longest = "a" * logview.MAX_SEARCH_CHARS
    assert logview.check_arguments(lines=1, level=None, search=longest, cursor=None)[2] == longest
    for search in ("a" * (logview.MAX_SEARCH_CHARS + 1), 42):
        with pytest.raises(InvalidArgument) as refused:
            logview.check_arguments(lines=1, level=None, search=search, cursor=None)
        assert str(refused.value) == "search is text of at most 200 characters"
    for control in ("\x00", "\x1b[31m", "a\nb", "\x7f", "\x9f"):
        with pytest.raises(InvalidArgument) as refused:
            logview.check_arguments(lines=1, level=None, search=control, cursor=None)
        assert str(refused.value) == "search contains a control character"
    # A tab is not a control character here (fail2ban's lines contain them).
    assert logview.check_arguments(lines=1, level=None, search="a\tb", cursor=None)[2] == "a\tb"


def test_cursor_of_600_characters_passes_and_longer_or_non_text_is_refused():
    cursor = "c" * 600
    assert logview.check_arguments(lines=1, level=None, search=None, cursor=cursor)[3] == cursor
    for bad in ("c" * 601, 7):
        with pytest.raises(InvalidArgument) as refused:
            logview.check_arguments(lines=1, level=None, search=None, cursor=bad)
        assert str(refused.value) == "a malformed cursor"


# --- Lines as shown -------------------------------------------------------------------------------
def test_printable_shows_each_control_as_two_hex_digits_and_keeps_tabs_and_text():
    assert logview.printable("a\x00b\x08\tc\x0a\x1b\x1f\x7f\x80\x9f\xa0é") == (
        "a\\x00b\\x08\tc\\x0a\\x1b\\x1f\\x7f\\x80\\x9f\xa0é"
    )
    exact = "z" * logview.MAX_LINE_CHARS
    assert logview.printable(exact) == exact
    assert logview.printable(exact + "q") == exact + "…"


def test_line_levels_takes_the_records_level_and_keeps_it_for_continuations():
    levels = logview.line_levels(
        [
            "before any record",
            f"{STAMP}NOTICE  [sshd] Ban 192.0.2.1",
            "  continuation",
            "2026-12-01 10:00:00.5 fail2ban.filter [1]: HEAVYDEBUG dotted fraction",
            f"{STAMP}LOUD    not one of fail2ban's levels",
            f"x{STAMP}ERROR   not at the start",
            "2026-12-01 10:00:00,000 fail2ban.server [42]:ERROR no blank after the colon",
            f"{STAMP}ERROR\x1b[0m coloured",
        ]
    )
    assert [(line.text, line.level) for line in levels] == [
        ("before any record", None),
        (f"{STAMP}NOTICE  [sshd] Ban 192.0.2.1", "NOTICE"),
        ("  continuation", "NOTICE"),
        ("2026-12-01 10:00:00.5 fail2ban.filter [1]: HEAVYDEBUG dotted fraction", "HEAVYDEBUG"),
        (f"{STAMP}LOUD    not one of fail2ban's levels", "HEAVYDEBUG"),
        (f"x{STAMP}ERROR   not at the start", "HEAVYDEBUG"),
        (
            "2026-12-01 10:00:00,000 fail2ban.server [42]:ERROR no blank after the colon",
            "HEAVYDEBUG",
        ),
        (f"{STAMP}ERROR\\x1b[0m coloured", "HEAVYDEBUG"),
    ]


# --- A log file -----------------------------------------------------------------------------------
def test_level_filter_keeps_that_level_and_above_and_drops_unknown_levels(tmp_path):
    log = tmp_path / "f.log"
    log.write_text(
        "no level yet\n"
        f"{STAMP}DEBUG   d\n{STAMP}INFO    i\n{STAMP}NOTICE  n\n{STAMP}WARNING w\n"
        f"{STAMP}CRITICAL c\n"
    )
    assert [line.text[-1] for line in read(log, level="NOTICE").lines] == ["n", "w", "c"]
    assert [line.text[-1] for line in read(log, level="HEAVYDEBUG").lines] == [
        "d",
        "i",
        "n",
        "w",
        "c",
    ]
    assert len(read(log).lines) == 6


def test_search_matches_a_folded_substring_not_a_pattern(tmp_path):
    log = tmp_path / "f.log"
    log.write_text("Alpha one\nalpha.two\nALPHA three\nbeta\n")
    search = logview.check_arguments(lines=5, level=None, search="ALPHA", cursor=None)[2]
    assert texts(read(log, search=search)) == ["Alpha one", "alpha.two", "ALPHA three"]
    assert texts(read(log, search="a.t")) == ["alpha.two"]


def test_tail_returns_the_last_wanted_lines_and_a_cursor_at_the_last_newline(tmp_path):
    log = tmp_path / "f.log"
    log.write_bytes(b"one\ntwo\nthree\nhalf a li")
    tail = read(log, lines=2)
    assert texts(tail) == ["two", "three"]
    # Older lines left out by the line cap: the page says the view is cut.
    assert tail.truncated is True and tail.readable is True and tail.reason is None
    assert tail.source == str(log)
    assert tail.cursor == f"file:{os.stat(log).st_ino}:14"
    everything = read(log, lines=3)
    assert texts(everything) == ["one", "two", "three"] and everything.truncated is False
    # The half-written line comes with the next follow, once complete.
    with open(log, "ab") as handle:
        handle.write(b"ne\nfour\n")
    follow = read(log, cursor=tail.cursor)
    assert texts(follow) == ["half a line", "four"] and follow.truncated is False
    assert follow.cursor == f"file:{os.stat(log).st_ino}:{os.path.getsize(log)}"
    nothing_new = read(log, cursor=follow.cursor)
    assert texts(nothing_new) == [] and nothing_new.cursor == follow.cursor


def test_follow_caps_lines_without_calling_it_truncated(tmp_path):
    log = tmp_path / "f.log"
    log.write_bytes(b"")
    start = read(log)
    assert texts(start) == [] and start.cursor == f"file:{os.stat(log).st_ino}:0"
    log.write_bytes(b"a\nb\nc\n")
    follow = read(log, lines=2, cursor=start.cursor)
    assert texts(follow) == ["b", "c"] and follow.truncated is False


def test_cursor_at_the_very_end_and_one_byte_past_it(tmp_path):
    log = tmp_path / "f.log"
    log.write_bytes(b"a\nb\n")
    inode = os.stat(log).st_ino
    at_end = read(log, cursor=f"file:{inode}:4")
    assert texts(at_end) == [] and at_end.cursor == f"file:{inode}:4"
    # Past the end: the file was truncated and rewritten, so from its top.
    past = read(log, cursor=f"file:{inode}:5")
    assert texts(past) == ["a", "b"] and past.cursor == f"file:{inode}:4"
    middle = read(log, cursor=f"file:{inode}:2")
    assert texts(middle) == ["b"]


@pytest.mark.parametrize(
    "cursor",
    ["file:1", "file:1:2:3", "disk:1:2", "file:x:2", "file:1:-2", "file::2", "journal:s=1"],
)
def test_malformed_file_cursors_are_refused(tmp_path, cursor):
    log = tmp_path / "f.log"
    log.write_bytes(b"a\n")
    with pytest.raises(InvalidArgument) as refused:
        read(log, cursor=cursor)
    assert str(refused.value) == "a malformed cursor"


def test_byte_cap_drops_the_partial_first_line_and_says_truncated(tmp_path):
    log = tmp_path / "big.log"
    head = b"h" * 699 + b"\n"
    body = b"".join(b"%0999d\n" % n for n in range(1048))
    log.write_bytes(head + body)
    size = os.path.getsize(log)
    assert logview.MAX_BYTES < size < logview.MAX_BYTES + len(head)
    tail = read(log, lines=logview.MAX_LINES)
    # The read started inside the head line: that partial line is dropped, the rest is whole.
    assert texts(tail) == [f"{n:0999d}" for n in range(1048)]
    assert tail.truncated is True
    assert tail.cursor == f"file:{os.stat(log).st_ino}:{size}"


def test_byte_cap_with_no_newline_in_the_window_gives_nothing(tmp_path):
    log = tmp_path / "one-line.log"
    log.write_bytes(b"a\n" + b"x" * (logview.MAX_BYTES + 10))
    tail = read(log)
    assert texts(tail) == [] and tail.truncated is True
    # The window starts 12 bytes in, past the only newline: the cursor stays there.
    assert tail.cursor == f"file:{os.stat(log).st_ino}:12"


def test_a_file_exactly_the_cap_is_read_whole(tmp_path):
    log = tmp_path / "cap.log"
    log.write_bytes(b"first\n" + b"y" * (logview.MAX_BYTES - 7) + b"\n")
    assert os.path.getsize(log) == logview.MAX_BYTES
    tail = read(log)
    assert texts(tail)[0] == "first" and tail.truncated is False


def test_follow_of_one_line_longer_than_the_cap_takes_it_as_it_is(tmp_path):
    log = tmp_path / "long.log"
    log.write_bytes(b"")
    start = read(log)
    log.write_bytes(b"L" * (logview.MAX_BYTES + 5))
    follow = read(log, cursor=start.cursor)
    assert len(follow.lines) == 1
    assert follow.lines[0].text == "L" * logview.MAX_LINE_CHARS + "…"
    assert follow.cursor == f"file:{os.stat(log).st_ino}:{logview.MAX_BYTES}"
    # Shorter than the cap and without a newline: still being written, so nothing yet.
    log.write_bytes(b"M" * 10)
    fresh = read(log, cursor=f"file:{os.stat(log).st_ino}:0")
    assert texts(fresh) == [] and fresh.cursor == f"file:{os.stat(log).st_ino}:0"


def test_invalid_utf8_becomes_the_replacement_character(tmp_path):
    log = tmp_path / "f.log"
    log.write_bytes(b"caf\xc3\xa9 \xff\xfe end\n")
    assert texts(read(log)) == ["café \ufffd\ufffd end"]


def test_unreadable_file_says_why(tmp_path):
    missing = read(tmp_path / "nope.log")
    assert missing.readable is False and missing.lines == () and missing.cursor is None
    assert missing.reason == f"cannot read {tmp_path / 'nope.log'}: No such file or directory"
    assert missing.source == str(tmp_path / "nope.log")


# --- The wire -------------------------------------------------------------------------------------
def test_a_tail_survives_the_wire_field_for_field():
    tail = logview.LogTail(
        "/var/log/fail2ban.log",
        lines=(logview.LogLine("a", "INFO"), logview.LogLine("b", None)),
        cursor="file:1:2",
        readable=True,
        reason=None,
        truncated=True,
    )
    wire = tail.wire()
    assert wire == {
        "source": "/var/log/fail2ban.log",
        "lines": [["a", "INFO"], ["b", None]],
        "cursor": "file:1:2",
        "readable": True,
        "reason": None,
        "truncated": True,
    }
    assert logview.tail_from_wire(json.loads(json.dumps(wire))) == tail
    unreadable = logview.LogTail("STDOUT", readable=False, reason="no")
    assert logview.tail_from_wire(unreadable.wire()) == unreadable


def test_tail_from_wire_defaults_and_refusals():
    assert logview.tail_from_wire({}) == logview.LogTail(
        "", lines=(), cursor=None, readable=False, reason=None, truncated=False
    )
    assert logview.tail_from_wire({"source": 5, "cursor": 7, "reason": 8}) == logview.LogTail(
        "5", cursor="7", readable=False, reason="8"
    )
    for value, message in (
        ([], "not an object"),
        ({"lines": [[1, None]]}, "a malformed line"),
        ({"lines": [["a", 3]]}, "a malformed line"),
    ):
        with pytest.raises(ValueError) as refused:
            logview.tail_from_wire(value)
        assert str(refused.value) == message


# --- The journal ----------------------------------------------------------------------------------
def test_journal_argv_is_fixed_and_the_cursor_checked():
    base = ["journalctl", "--unit", "fail2ban.service", "--output", "json", "--no-pager"]
    assert logview.journal_argv(lines=7, cursor=None) == [*base, "--quiet", "--lines", "7"]
    assert logview.journal_argv(lines=7, cursor="journal:s=ab;i=1_C-d") == [
        *base,
        "--quiet",
        "--after-cursor",
        "s=ab;i=1_C-d",
    ]
    longest = "journal:" + "a" * 512
    assert logview.journal_argv(lines=1, cursor=longest)[-1] == "a" * 512
    for cursor in ("s=1;i=b", "journal:", "journal:" + "a" * 513, "file:1:2", "journal:a b"):
        with pytest.raises(InvalidArgument) as refused:
            logview.journal_argv(lines=1, cursor=cursor)
        assert str(refused.value) == "a malformed cursor"


def test_journal_lines_priorities_messages_and_cursor():
    entries = [
        {"MESSAGE": "p0", "PRIORITY": "0"},
        {"MESSAGE": "p2", "PRIORITY": 2},
        {"MESSAGE": "p3", "PRIORITY": "3"},
        {"MESSAGE": "p4", "PRIORITY": "4"},
        {"MESSAGE": "p5", "PRIORITY": "5"},
        {"MESSAGE": "p6", "PRIORITY": "6"},
        {"MESSAGE": "p7", "PRIORITY": "7"},
        {"MESSAGE": "p-1", "PRIORITY": "-1"},
        {"MESSAGE": "no priority", "__CURSOR": "s=1;i=1"},
        {"MESSAGE": "bad priority", "PRIORITY": "high"},
        {"MESSAGE": "null priority", "PRIORITY": None},
        {"MESSAGE": f"{STAMP}WARNING own level wins\nsecond line", "PRIORITY": "6"},
        {
            "MESSAGE": [104, 0, 105, 256, 300, -1, "x", 10, 27],
            "PRIORITY": "6",
            "__CURSOR": "s=1;i=2",
        },
        {"MESSAGE": 12, "__CURSOR": "s=1;i=3"},
        {"PRIORITY": "3", "__CURSOR": "s=1;i=4"},
        {"MESSAGE": "cursor not text", "__CURSOR": 5},
    ]
    rows = [json.dumps(entry).encode() for entry in entries]
    # Blank, non-JSON and non-object rows are skipped wherever they are, not the end of it.
    rows[1:1] = [b"   ", b"{broken", b"[1, 2]", b'"text"']
    output = b"\n".join(rows) + b"\n"
    lines, cursor = logview.journal_lines(output)
    assert [(line.text, line.level) for line in lines] == [
        ("p0", "CRITICAL"),
        ("p2", "CRITICAL"),
        ("p3", "ERROR"),
        ("p4", "WARNING"),
        ("p5", "NOTICE"),
        ("p6", "INFO"),
        ("p7", "DEBUG"),
        ("p-1", "DEBUG"),
        ("no priority", "INFO"),
        ("bad priority", "INFO"),
        ("null priority", "INFO"),
        (f"{STAMP}WARNING own level wins", "WARNING"),
        ("second line", "WARNING"),
        ("h\\x00i", "INFO"),
        ("\\x1b", "INFO"),
        ("cursor not text", "INFO"),
    ]
    # Only entries read as lines move the cursor, and only with a text cursor.
    assert cursor == "s=1;i=2"
    assert logview.journal_lines(b"") == ([], None)


def test_journal_read_reports_journalctls_refusal(monkeypatch):
    # journalctl runs with the reload's allow-listed environment, not the agent's: a debug
    # level set for the agent's own process does not reach it (it would add lines here).
    monkeypatch.setenv("SYSTEMD_LOG_LEVEL", "debug")
    # A well-formed cursor the journal does not know: journalctl exits 1 and says why.
    tail = logview.journal_read(lines=5, level=None, search=None, cursor="journal:s=1;i=b")
    assert tail.source == "systemd journal (fail2ban.service)"
    assert tail.readable is False and tail.lines == ()
    assert tail.reason == "journalctl failed: Failed to seek to cursor: Invalid argument"
    # No cursor: journalctl answers (this machine's journal has no fail2ban.service entries).
    empty = logview.journal_read(lines=5, level=None, search=None, cursor=None)
    assert empty == logview.LogTail("systemd journal (fail2ban.service)", cursor=None)


def test_journal_read_with_a_journalctl_that_cannot_run(monkeypatch, tmp_path):
    # A damaged install: a "journalctl" on the PATH that is no program at all.
    broken = tmp_path / "journalctl"
    broken.write_bytes(b"\x00not a program\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    tail = logview.journal_read(lines=5, level=None, search=None, cursor=None)
    assert tail == logview.LogTail(
        "systemd journal (fail2ban.service)",
        readable=False,
        reason="journalctl failed: [Errno 8] Exec format error: 'journalctl'",
    )


def test_journal_read_without_journalctl_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    tail = logview.journal_read(lines=5, level=None, search=None, cursor=None)
    assert tail == logview.LogTail(
        "systemd journal (fail2ban.service)",
        readable=False,
        reason="journalctl is not installed here",
    )


# --- fail2ban's logtarget (a real private server) -------------------------------------------------
def test_op_log_tail_refuses_unknown_arguments_before_asking_fail2ban():
    with pytest.raises(InvalidArgument) as refused:
        logview.op_log_tail(None, {"lines": 1, "path": "/etc/shadow", "file": "x"})
    assert str(refused.value) == "unexpected arguments: file, path"


@pytest.mark.fail2ban
def test_op_log_tail_defaults_to_the_last_200_lines_of_the_logtarget(f2b):
    marker = f"default-{os.getpid()}"
    with open(f2b.server_log, "a") as log:
        log.writelines(f"{STAMP}INFO    {marker} {n}\n" for n in range(250))
    client = f2b.client()
    reply = logview.op_log_tail(client, {})
    assert reply["source"] == str(f2b.server_log) and reply["readable"] is True
    assert [text for text, _ in reply["lines"]] == [
        f"{STAMP}INFO    {marker} {n}" for n in range(50, 250)
    ]
    direct = logview.log_tail(client.send)
    assert [line.text for line in direct.lines] == [text for text, _ in reply["lines"]]
    chosen = logview.op_log_tail(
        client, {"lines": 3, "level": "INFO", "search": f"{marker} 24", "cursor": None}
    )
    assert [text for text, _ in chosen["lines"]] == [
        f"{STAMP}INFO    {marker} {n}" for n in (247, 248, 249)
    ]


# fail2ban answers `get logtarget` with whatever its configuration says; the private servers
# here all log to a file, so the other targets come from a socket that answers as fail2ban
# configured that way would (tests/support/fakeserver.py).
def logtarget_server(target):
    def answer(command):
        assert command == ["get", "logtarget"]
        return pickled_reply(0, target)

    return FakeFail2ban(reply_for_each(answer))


@pytest.mark.parametrize(
    ("target", "source", "where"),
    [
        ("STDERR", "STDERR", "STDERR"),
        ("STDOUT", "STDOUT", "STDOUT"),
        ("SYSLOG[format=%(message)s]", "SYSLOG[format=%(message)s]", "SYSLOG[format=%(message)s]"),
        ("fail2ban.log", "fail2ban.log", "fail2ban.log"),
        ("", "(none)", "nowhere"),
        (None, "(none)", "nowhere"),
    ],
)
def test_log_tail_on_an_unreadable_logtarget_says_where_fail2ban_logs(target, source, where):
    with logtarget_server(target) as fake:
        tail = logview.log_tail(Fail2banClient(fake.path, timeout=5.0).send, lines=5)
    assert tail == logview.LogTail(
        source,
        readable=False,
        reason=f"fail2ban logs to {where}, which cannot be read from here",
    )


@pytest.mark.parametrize("target", ["SYSTEMD-JOURNAL", "systemd-journal[facility=daemon]"])
def test_log_tail_on_the_journal_reads_the_journal(target):
    with logtarget_server(target) as fake:
        tail = logview.log_tail(Fail2banClient(fake.path, timeout=5.0).send, lines=5)
    # This machine's journal holds no fail2ban.service entries: readable, and empty.
    assert tail == logview.LogTail("systemd journal (fail2ban.service)")


def test_log_tail_on_a_file_target_reads_that_file(tmp_path):
    log = tmp_path / "f2b.log"
    log.write_text(f"  {STAMP}INFO    padded\n")
    with logtarget_server(f"  {log}  ") as fake:
        tail = logview.log_tail(Fail2banClient(fake.path, timeout=5.0).send, lines=5)
    assert tail.source == str(log) and texts(tail) == [f"  {STAMP}INFO    padded"]


def test_journalctls_complaint_is_cut_at_500_characters_and_never_fails_to_decode(
    monkeypatch, tmp_path
):
    # No real journalctl says this much, or anything but UTF-8, on stderr: a scripted one does.
    fake = tmp_path / "journalctl"
    fake.write_text("#!/bin/sh\nprintf '\\377\\033 %0600d' 7 >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    tail = logview.journal_read(lines=5, level=None, search=None, cursor=None)
    shown = "\ufffd\\x1b " + "0" * 497
    assert tail == logview.LogTail(
        "systemd journal (fail2ban.service)",
        readable=False,
        reason=f"journalctl failed: {shown}",
    )


def test_a_window_starting_one_byte_in_still_drops_the_cut_line(tmp_path):
    log = tmp_path / "one-over.log"
    log.write_bytes(b"ab\n" + b"c" * (logview.MAX_BYTES - 3) + b"\n")
    assert os.path.getsize(log) == logview.MAX_BYTES + 1
    tail = read(log)
    # The window starts at "b": that half line is not shown as a line of its own.
    assert [len(text) for text in texts(tail)] == [logview.MAX_LINE_CHARS + 1]
    assert tail.truncated is True
    assert tail.cursor == f"file:{os.stat(log).st_ino}:{logview.MAX_BYTES + 1}"
