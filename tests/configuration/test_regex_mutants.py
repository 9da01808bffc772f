"""The filter tester's host side (jails.agent.regex) pinned down to what a caller sees: which
filter names, modes, time zones, drafts and pasted lines are refused and with which message,
and exactly what is kept of what passes.

Written for `make mutation MUTANTS='jails.agent.regex*'` (issue 17): these checks run in this
process, so each mutant of an argument check is judged without starting fail2ban-regex.
"""

from __future__ import annotations

import json

import pytest

from jails.agent import regex
from jails.agent.operations import HostConfig
from jails.fail2ban import InvalidArgument

NAME_MESSAGE = "a filter name is letters, digits, '.', '_' and '-' (no path)"


def refused(function, *args, **kwargs) -> str:
    with pytest.raises(InvalidArgument) as error:
        function(*args, **kwargs)
    return str(error.value)


# --- Filter names, modes and time zones ---------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("sshd", "sshd"),
        ("sshd.conf", "sshd"),
        ("sshd.local", "sshd"),
        ("apache-auth", "apache-auth"),
        ("a", "a"),
        ("9_x.y-z", "9_x.y-z"),
        ("s" * 64, "s" * 64),
    ],
)
def test_filter_names_that_pass_and_what_is_kept(name, kept):
    assert regex.validate_filter_name(name) == kept


@pytest.mark.parametrize(
    "name",
    ["", "s" * 65, "../sshd", "a..b", ".sshd", "-sshd", "_sshd", "filter.d/sshd", "ssh d", None],
)
def test_filter_names_that_are_refused(name):
    assert refused(regex.validate_filter_name, name) == NAME_MESSAGE


def test_filter_modes():
    assert regex.validate_filter_mode(None) is None
    assert regex.validate_filter_mode("") is None
    assert regex.validate_filter_mode("aggressive") == "aggressive"
    assert regex.validate_filter_mode("m" * 32) == "m" * 32
    assert regex.validate_filter_mode("ddos_2-x") == "ddos_2-x"
    for mode in ("m" * 33, "a b", "normal]", "x=y", 5):
        assert refused(regex.validate_filter_mode, mode) == (
            "a filter mode is letters, digits, '_' and '-'"
        )


def test_time_zones():
    assert regex.validate_time_zone(None) is None
    assert regex.validate_time_zone("") is None
    for zone in ("UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "a/b/c/d"):
        assert regex.validate_time_zone(zone) == zone
    longest = "Z" * 64
    assert regex.validate_time_zone(longest) == longest
    for zone in ("Z" * 65, "a/b/c/d/e", "../etc/passwd", "/etc/localtime", "Europe/", "UTC 1", 3):
        assert refused(regex.validate_time_zone, zone) == (
            "a time zone is a name such as Europe/Paris"
        )


# --- Drafts --------------------------------------------------------------------------------------
def test_draft_lines_are_stripped_blank_lines_dropped_and_crlf_accepted():
    draft = regex.validate_draft(
        regex.RegexDraft(
            failregex="  ^a <HOST>$ \r\n\n\t^b <HOST>$\n",
            ignoreregex="\n  \n",
            datepattern=" {^LN-BEG}%%Y ",
        )
    )
    assert draft == regex.RegexDraft(
        failregex="^a <HOST>$\n^b <HOST>$", ignoreregex=None, datepattern="{^LN-BEG}%%Y"
    )
    assert not draft.empty
    assert regex.validate_draft(regex.RegexDraft()).empty
    assert regex.RegexDraft(ignoreregex="x").empty is False
    assert regex.RegexDraft(datepattern="x").empty is False


def test_draft_refusals_name_the_part():
    assert refused(regex.validate_draft, regex.RegexDraft(failregex=5)) == (
        "failregex must be text"
    )
    assert refused(regex.validate_draft, regex.RegexDraft(ignoreregex=["x"])) == (
        "ignoreregex must be text"
    )
    assert refused(regex.validate_draft, regex.RegexDraft(datepattern="a\nb")) == (
        "datepattern is one line"
    )
    # failregex and ignoreregex take several lines, up to 50.
    fifty = "\n".join(f"^r{n} <HOST>$" for n in range(50))
    assert regex.validate_draft(regex.RegexDraft(failregex=fifty)).failregex == fifty
    assert regex.validate_draft(regex.RegexDraft(ignoreregex=fifty)).ignoreregex == fifty
    assert refused(regex.validate_draft, regex.RegexDraft(ignoreregex=fifty + "\nx")) == (
        "ignoreregex: at most 50 regular expressions"
    )
    longest = "x" * regex.MAX_REGEX_CHARS
    assert regex.validate_draft(regex.RegexDraft(failregex=longest)).failregex == longest
    assert refused(regex.validate_draft, regex.RegexDraft(failregex=longest + "x")) == (
        "failregex: a line is longer than 4000 characters"
    )
    for control in ("\x00", "\x0b", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"):
        assert refused(regex.validate_draft, regex.RegexDraft(failregex=f"a{control}b")) == (
            "failregex contains a control character"
        )
    assert regex.validate_draft(regex.RegexDraft(failregex="a\tb")).failregex == "a\tb"


def test_draft_total_is_capped_over_all_three_parts():
    part = "\n".join(["y" * 3000] * 5)  # 15 004 characters once joined
    assert len(part) == 15004
    date = "d" * (regex.MAX_DRAFT_CHARS - 2 * 15004)
    at_cap = regex.RegexDraft(failregex=part, ignoreregex=part, datepattern=date)
    assert regex.validate_draft(at_cap) == at_cap
    over = regex.RegexDraft(failregex=part, ignoreregex=part, datepattern=date + "d")
    assert refused(regex.validate_draft, over) == "the draft is longer than 32768 characters"


# --- Pasted lines ---------------------------------------------------------------------------------
def test_input_lines_split_on_newline_only():
    assert regex.input_lines("a\r\nb\rc\x0bd\n\ne\n") == (["a", "b\rc\x0bd", "", "e"], False)
    assert regex.input_lines("") == ([], False)
    assert regex.input_lines("no newline") == (["no newline"], False)
    assert refused(regex.input_lines, "a\x00b") == "the lines contain a NUL character"
    assert refused(regex.input_lines, b"bytes") == "lines must be text"


def test_input_lines_caps_count_and_bytes():
    at_cap = "x\n" * regex.MAX_INPUT_LINES
    assert regex.input_lines(at_cap) == (["x"] * regex.MAX_INPUT_LINES, False)
    assert regex.input_lines(at_cap + "y\n") == (["x"] * regex.MAX_INPUT_LINES, True)
    # Over the byte cap: cut at the last whole line before it.
    line = "z" * 999 + "\n"
    text = line * 1049 + "tail"  # 1 049 004 bytes
    assert len(text.encode()) > regex.MAX_INPUT_BYTES
    lines, truncated = regex.input_lines("é" + text)
    assert truncated is True
    assert lines == ["é" + "z" * 999] + ["z" * 999] * 1047  # 1 001 + 1 047 000 bytes
    # Exactly at the byte cap: nothing cut.
    exact = "w" * (regex.MAX_INPUT_BYTES - 1) + "\n"
    assert regex.input_lines(exact) == (["w" * (regex.MAX_INPUT_BYTES - 1)], False)
    # The cap falls inside a two-byte character: the half character is dropped, not an error.
    split = "a" * (regex.MAX_INPUT_BYTES - 1) + "é\nmore\n"
    assert regex.input_lines(split) == (["a" * (regex.MAX_INPUT_BYTES - 1)], True)
    # One line over the byte cap with no newline in it: its first megabyte, cut.
    huge = "v" * (regex.MAX_INPUT_BYTES + 1)
    assert regex.input_lines(huge) == (["v" * regex.MAX_INPUT_BYTES], True)


# --- How fail2ban-regex is found, and the draft's filter file -------------------------------------
def test_regex_command_is_next_to_the_client_unless_configured():
    config = HostConfig
    assert regex.regex_command(config(fail2ban_regex=("/opt/f2b-regex", "-v"))) == (
        "/opt/f2b-regex",
        "-v",
    )
    assert regex.regex_command(config(fail2ban_client=("/usr/bin/fail2ban-client",))) == (
        "/usr/bin/fail2ban-regex",
    )
    # A wrapper in front (sudo, an interpreter): kept; the client's own options: dropped.
    assert regex.regex_command(
        config(fail2ban_client=("python3", "/x/fail2ban-client", "-c", "/etc/fail2ban"))
    ) == ("python3", "/x/fail2ban-regex")
    assert regex.regex_command(
        config(fail2ban_client=("fail2ban-client", "/y/fail2ban-client"))
    ) == ("fail2ban-client", "/y/fail2ban-regex")
    assert regex.regex_command(config(fail2ban_client=("/usr/bin/f2b",))) == ("fail2ban-regex",)
    assert regex.regex_command(config(fail2ban_client=())) == ("fail2ban-regex",)


def test_draft_file_text_is_continuation_lines_under_definition(tmp_path):
    base = tmp_path / "filter.d" / "sshd.conf"
    draft = regex.RegexDraft(failregex="^a <HOST>$\n^b <HOST>$", ignoreregex="^ok$")
    assert regex.draft_file_text(draft, base=base) == (
        f"[INCLUDES]\nbefore = {base}\n"
        "[Definition]\n"
        "failregex = ^a <HOST>$\n    ^b <HOST>$\n"
        "ignoreregex = ^ok$\n"
    )
    # No base filter: an empty failregex unless the draft has one; a datepattern on its own.
    assert regex.draft_file_text(regex.RegexDraft(datepattern="%%Y"), base=None) == (
        "[Definition]\nfailregex =\ndatepattern = %%Y\n"
    )
    assert regex.draft_file_text(regex.RegexDraft(datepattern="%%Y"), base=base) == (
        f"[INCLUDES]\nbefore = {base}\n[Definition]\ndatepattern = %%Y\n"
    )
    assert regex.draft_file_text(regex.RegexDraft(failregex="x"), base=None) == (
        "[Definition]\nfailregex = x\n"
    )


# --- The end of a jail's log ----------------------------------------------------------------------
def test_file_tail_last_lines_and_the_byte_window(tmp_path):
    log = tmp_path / "auth.log"
    log.write_bytes(b"one\ntwo\x00\nthr\xffee\n")
    assert regex.file_tail(str(log), lines=3, max_bytes=1000) == (
        ["one", "two\ufffd", "thr\ufffdee"],
        False,
    )
    assert regex.file_tail(str(log), lines=2, max_bytes=1000) == (
        ["two\ufffd", "thr\ufffdee"],
        True,
    )
    # The window starts inside "two": that partial line is dropped and the cut reported.
    assert regex.file_tail(str(log), lines=5, max_bytes=11) == (["thr\ufffdee"], True)
    # Exactly the whole file (16 bytes): nothing cut.
    assert regex.file_tail(str(log), lines=5, max_bytes=16) == (
        ["one", "two\ufffd", "thr\ufffdee"],
        False,
    )
    # A window one byte in, or starting right on a newline: still only whole lines.
    log.write_bytes(b"one\ntwo\n")
    assert regex.file_tail(str(log), lines=5, max_bytes=7) == (["two"], True)
    assert regex.file_tail(str(log), lines=5, max_bytes=5) == (["two"], True)
    # A window without a newline in it: nothing whole to give.
    log.write_bytes(b"a\n" + b"b" * 20)
    assert regex.file_tail(str(log), lines=5, max_bytes=10) == ([], True)
    log.write_bytes(b"last line without newline")
    assert regex.file_tail(str(log), lines=5, max_bytes=100) == (
        ["last line without newline"],
        False,
    )


# --- Requests and reports on the wire -------------------------------------------------------------
def test_request_wire_names_every_argument_the_operation_takes():
    request = regex.RegexRequest(
        lines="x",
        jail="sshd",
        log_lines=7,
        logpath="/var/log/auth.log",
        filter_name="sshd",
        mode="aggressive",
        draft=regex.RegexDraft(failregex="f", ignoreregex="i", datepattern="d"),
        timeout=3.0,
        time_zone="UTC",
    )
    assert request.wire() == {
        "lines": "x",
        "jail": "sshd",
        "log_lines": 7,
        "logpath": "/var/log/auth.log",
        "filter": "sshd",
        "mode": "aggressive",
        "failregex": "f",
        "ignoreregex": "i",
        "datepattern": "d",
        "timeout": 3.0,
        "time_zone": "UTC",
    }
    assert set(request.wire()) == regex.REQUEST_ARGUMENTS
    assert regex.RegexRequest().log_lines == 1000


def test_report_survives_the_wire_field_for_field():
    report = regex.RegexReport(
        "pasted lines",
        lines=(
            regex.RegexLine(1, "a 192.0.2.1", regex.MATCHED, ("192.0.2.1",), 1.5, False),
            regex.RegexLine(2, "b", regex.MATCHED, (), None, True),
            regex.RegexLine(3, "", regex.SKIPPED),
        ),
        error=None,
        truncated=True,
        date_templates=((3, "{^LN-BEG}ExYear"),),
        counts={"matched": 2, "ignored": 0, "missed": 0},
    )
    wire = report.wire()
    assert wire["lines"][0] == [1, "a 192.0.2.1", "matched", ["192.0.2.1"], 1.5, False]
    assert wire["date_templates"] == [[3, "{^LN-BEG}ExYear"]]
    assert regex.report_from_wire(json.loads(json.dumps(wire))) == report
    failed = regex.RegexReport("x", error="boom")
    assert regex.report_from_wire(failed.wire()) == failed


def test_report_from_wire_defaults_and_refusals():
    assert regex.report_from_wire({}) == regex.RegexReport("", counts={})
    assert regex.report_from_wire(
        {"source": 1, "error": 2, "date_templates": [["4", 5]], "counts": {"m": "3"}}
    ) == regex.RegexReport("1", error="2", date_templates=((4, "5"),), counts={"m": 3})
    converted = regex.report_from_wire({"lines": [[1, "t", "matched", [7], 2, 1]]})
    assert converted.lines == (regex.RegexLine(1, "t", "matched", ("7",), 2.0, True),)
    for value, message in (
        ("report", "not an object"),
        ({"lines": [["1", "t", "matched", [], None, False]]}, "a malformed line"),
        ({"lines": [[1, None, "matched", [], None, False]]}, "a malformed line"),
        ({"lines": [[1, "t", None, [], None, False]]}, "a malformed line"),
    ):
        with pytest.raises(ValueError) as error:
            regex.report_from_wire(value)
        assert str(error.value) == message


# --- The operation's and the test's own argument checks (refused before anything runs) -----------
def test_op_regex_test_refuses_unknown_and_mistyped_arguments():
    config = HostConfig()
    assert refused(regex.op_regex_test, config, None, {"lines": "x", "path": "/etc/shadow"}) == (
        "unexpected arguments: path"
    )
    for timeout in (True, "5", [5]):
        assert refused(regex.op_regex_test, config, None, {"timeout": timeout}) == (
            "timeout must be a number of seconds or null"
        )
    for key in ("lines", "jail", "logpath", "filter", "mode", "failregex", "time_zone"):
        assert refused(regex.op_regex_test, config, None, {key: 5}) == (
            f"{key} must be text or null"
        )
    assert refused(regex.op_regex_test, config, None, {}) == (
        "test either pasted lines or a jail's log"
    )


def test_regex_test_request_refusals():
    config = HostConfig()
    request = regex.regex_test_request
    assert refused(request, config, None, lines="x", jail="sshd") == (
        "test either pasted lines or a jail's log"
    )
    for log_lines in (True, 1.0, "5"):
        assert refused(request, config, None, jail="sshd", log_lines=log_lines) == (
            "log_lines must be a whole number"
        )
    for log_lines in (0, regex.MAX_INPUT_LINES + 1):
        assert refused(request, config, None, jail="sshd", log_lines=log_lines) == (
            "log_lines must be between 1 and 5000"
        )


def test_regex_test_refusals_before_fail2ban_regex_runs(tmp_path):
    config = HostConfig(config_dir=str(tmp_path), regex_timeout=10.0)
    (tmp_path / "filter.d").mkdir()
    test = regex.regex_test
    assert refused(test, config, lines=["x"], source="s") == (
        "name a filter, or give a draft failregex"
    )
    assert refused(test, config, lines=["x"], source="s", draft=regex.RegexDraft(" \n")) == (
        "name a filter, or give a draft failregex"
    )
    assert (
        refused(test, config, lines=["x"], source="s", draft=regex.RegexDraft(ignoreregex="i"))
        == "a draft without a base filter needs a failregex"
    )
    for timeout in (0, -1, 10.5):
        assert refused(test, config, lines=["x"], source="s", filter_name="f", timeout=timeout) == (
            "timeout must be between 0 and 10 s"
        )
    too_many = ["x"] * (regex.MAX_INPUT_LINES + 1)
    assert refused(test, config, lines=too_many, source="s", filter_name="f") == (
        "at most 5000 lines and 1048576 bytes"
    )
    # Each line counts with its newline: 1 048 575 characters and one newline fit exactly.
    fits = ["y" * (regex.MAX_INPUT_BYTES - 1)]
    too_big = ["y" * regex.MAX_INPUT_BYTES]
    assert refused(test, config, lines=too_big, source="s", filter_name="f") == (
        "at most 5000 lines and 1048576 bytes"
    )
    for line in ("a\nb", "a\x00b"):
        assert refused(test, config, lines=[line], source="s", filter_name="f") == (
            "a line contains a line break or a NUL character"
        )
    # Past the argument checks, a missing filter is named with where it was looked for.
    assert refused(test, config, lines=fits, source="s", filter_name="f", timeout=10) == (
        f"no filter 'f' in {tmp_path / 'filter.d'}"
    )
    assert refused(test, config, lines=["x"], source="s", filter_name="f", mode="a b") == (
        "a filter mode is letters, digits, '_' and '-'"
    )
    assert refused(test, config, lines=["x"], source="s", filter_name="f", time_zone="a b") == (
        "a time zone is a name such as Europe/Paris"
    )
