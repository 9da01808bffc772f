"""The filter tester's host side (jails.agent.regex) pinned down to what a caller sees: which
filter names, modes, time zones, drafts and pasted lines are refused and with which message,
and exactly what is kept of what passes.

Written for `make mutation MUTANTS='jails.agent.regex*'` (issue 17): these checks run in this
process, so each mutant of an argument check is judged without starting fail2ban-regex. The
last part runs the real fail2ban-regex over a private fail2ban's jail logs, in this process
(regex_test_request, DirectLink) and through a real agent (AgentLink): which log is read, how
much of it, which arguments reach fail2ban-regex; a scripted agent only for what a real one
never does (a malformed reply, an answer slower than the link's command timeout).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from jails.agent import regex
from jails.agent.client import REPLY_MARGIN, AgentLink
from jails.agent.link import DirectLink
from jails.agent.operations import HostConfig
from jails.fail2ban import AgentUnreachable, InvalidArgument, ProtocolError
from jails.fail2ban.server import FAILURE_LINE, JailSpec, find_fail2ban
from tests.agent.test_agent_client_mutants import CLOSE, ScriptedAgent, answering
from tests.configuration.config_host import ConfigHost, config_agent_run, config_host_run
from tests.support.agent_process import AgentProcess

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


# --- A jail's log and every argument, against a private fail2ban ----------------------------------
INSTALL = find_fail2ban()
# web: the toy filter over two logs; quiet: no log file at all (as a journal jail);
# gone: a log file removed after fail2ban started.
REGEX_JAILS = (JailSpec("web"), JailSpec("quiet"), JailSpec("gone"))
NO_REGEX = ("/nonexistent/fail2ban-regex",)


@pytest.fixture(scope="module")
def regex_host() -> Iterator[ConfigHost]:
    for host in config_host_run("jrx-", REGEX_JAILS):
        server = host.server
        second = server.logs_dir / "web-2.log"
        second.touch()
        # fail2ban's own client: jailadmin's allow-list has no log path commands.
        assert server.install is not None
        for command in (
            ["set", "web", "addlogpath", str(second)],
            ["set", "quiet", "dellogpath", str(server.log_path("quiet"))],
        ):
            subprocess.run(
                [*server.configure_command(), *command],
                env=server.install.env(),
                capture_output=True,
                timeout=60,
                check=True,
            )
        server.log_path("gone").unlink()
        yield host


@pytest.fixture(scope="module")
def regex_agent(regex_host: ConfigHost) -> Iterator[AgentProcess]:
    yield from config_agent_run(regex_host)


def host_config(host: ConfigHost, **changes: Any) -> HostConfig:
    assert host.server.install is not None
    settings = {
        "socket": str(host.server.socket_path),
        "config_dir": str(host.conf),
        "fail2ban_client": (host.server.install.client,),
        "regex_timeout": 120.0,  # a loaded 1-core box: a real run takes about a second
        **changes,
    }
    return HostConfig(**settings)


def failure(second: int, ip: str) -> str:
    """A line the toy filter matches, dated 2020 (older than findtime: fail2ban bans nothing)."""
    return FAILURE_LINE.format(when=f"2020-01-02 03:04:{second:02d}", user="u", ip=ip).rstrip()


def logs(host: ConfigHost, first: Sequence[str], second: Sequence[str] = ()) -> tuple[str, str]:
    """Write web's two logs; their paths, as fail2ban reports them."""
    paths = (host.server.log_path("web"), host.server.logs_dir / "web-2.log")
    for path, lines in zip(paths, (first, second), strict=True):
        path.write_text("".join(f"{line}\n" for line in lines))
    return str(paths[0]), str(paths[1])


def statuses(report: regex.RegexReport) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(line.text, line.status, line.hosts) for line in report.lines]


def test_jail_log_is_the_end_of_the_log_fail2ban_monitors(regex_host):
    web, second = logs(
        regex_host, [failure(1, "192.0.2.1"), failure(2, "192.0.2.2"), "hello"], ["only line"]
    )
    config = host_config(regex_host)
    send = DirectLink(config).send
    report = regex.regex_test_request(config, send, jail="web", log_lines=2, filter_name="web")
    assert report.error is None
    assert report.source == web  # the first of the jail's logs
    assert statuses(report) == [
        (failure(2, "192.0.2.2"), regex.MATCHED, ("192.0.2.2",)),
        ("hello", regex.MISSED, ()),
    ]
    assert report.truncated is True  # one line left out
    # logpath picks another log of the same jail; all of it fits: nothing cut.
    report = regex.regex_test_request(
        config, send, jail="web", logpath=second, log_lines=5, filter_name="web"
    )
    assert (report.source, statuses(report), report.truncated) == (
        second,
        [("only line", regex.MISSED, ())],
        False,
    )


def test_pasted_lines_are_tested_as_pasted_lines(regex_host):
    config = host_config(regex_host)
    report = regex.regex_test_request(
        config,
        DirectLink(config).send,
        lines=f"{failure(3, '192.0.2.3')}\nhello\n",
        filter_name="web",
    )
    assert report.source == "pasted lines"
    assert statuses(report) == [
        (failure(3, "192.0.2.3"), regex.MATCHED, ("192.0.2.3",)),
        ("hello", regex.MISSED, ()),
    ]
    assert (report.truncated, report.counts) == (False, {"matched": 1, "ignored": 0, "missed": 1})


def test_jail_log_default_is_its_last_1000_lines(regex_host):
    lines = [f"line {n}" for n in range(1001)]
    logs(regex_host, lines)
    config = host_config(regex_host)
    client = DirectLink(config)
    report = regex.regex_test_request(config, client.send, jail="web", filter_name="web")
    assert [line.text for line in report.lines] == lines[1:]
    assert report.truncated is True
    # The agent's operation, asked without log_lines, takes the same default.
    wire = regex.op_regex_test(config, client, {"jail": "web", "filter": "web"})
    assert [line[1] for line in wire["lines"]] == lines[1:]


def test_jail_log_bounds_and_refusals(regex_host):
    web, second = logs(regex_host, ["a", "b"])
    # fail2ban-regex missing: what passes the checks comes back as a report naming the log.
    config = host_config(regex_host, fail2ban_regex=NO_REGEX)
    send = DirectLink(config).send
    request = regex.regex_test_request
    missing = "fail2ban-regex cannot be run: /nonexistent/fail2ban-regex"
    for log_lines in (1, regex.MAX_INPUT_LINES):
        assert request(config, send, jail="web", log_lines=log_lines, filter_name="web") == (
            regex.RegexReport(web, error=missing)
        )
    assert refused(request, config, send, jail="quiet", filter_name="web") == (
        "fail2ban reads no log file for quiet (the journal?)"
    )
    assert refused(request, config, send, jail="web", logpath="/etc/passwd") == (
        "web does not monitor that file"
    )
    assert refused(request, config, send, jail="../web") == "invalid jail name: '../web'"
    # A log fail2ban monitors but cannot be opened: a report, with the path and the reason.
    gone = str(regex_host.server.log_path("gone"))
    assert request(config, send, jail="gone", filter_name="web") == regex.RegexReport(
        gone, error=f"cannot read {gone}: No such file or directory"
    )


def test_jail_log_paths_are_what_fail2ban_reports(regex_host):
    web, second = logs(regex_host, [])
    send = DirectLink(host_config(regex_host)).send
    assert regex.jail_log_paths(send, "web") == [web, second]
    assert regex.jail_log_paths(send, "quiet") == []
    assert refused(regex.jail_log_paths, send, "a b") == "invalid jail name: 'a b'"


def test_jail_log_paths_keep_only_non_empty_text():
    # Replies no fail2ban sends: the jail's log paths are only ever non-empty text.
    asked = []

    def send(*command):
        asked.append(command)
        return ["/var/log/a.log", "", 5, None, b"/x", "/var/log/b.log"]

    assert regex.jail_log_paths(send, "sshd") == ["/var/log/a.log", "/var/log/b.log"]
    assert asked == [("get", "sshd", "logpath")]
    assert regex.jail_log_paths(lambda *command: None, "sshd") == []
    assert regex.jail_log_paths(lambda *command: "/var/log/a.log", "sshd") == []


def test_every_argument_reaches_the_filter_test(regex_host):
    # fail2ban-regex missing: an argument that was dropped on the way would not be refused,
    # and the call would end in the "cannot be run" report instead.
    config = host_config(regex_host, fail2ban_regex=NO_REGEX)
    client = DirectLink(config)
    for arguments, message in (
        ({"filter_name": "../web"}, NAME_MESSAGE),
        ({"mode": "a b"}, "a filter mode is letters, digits, '_' and '-'"),
        ({"draft": regex.RegexDraft(failregex="a\x1bb")}, "failregex contains a control character"),
        ({"timeout": 121.0}, "timeout must be between 0 and 120 s"),
        ({"time_zone": "a b"}, "a time zone is a name such as Europe/Paris"),
    ):
        arguments = {"filter_name": "web", **arguments}
        assert refused(regex.regex_test_request, config, client.send, lines="x", **arguments) == (
            message
        )
        request = regex.RegexRequest(lines="x", **arguments)
        assert refused(client.regex_test, request) == message
    assert refused(client.regex_test, regex.RegexRequest(lines="x")) == (
        "name a filter, or give a draft failregex"
    )
    assert refused(client.regex_test, regex.RegexRequest(jail="quiet", filter_name="web")) == (
        "fail2ban reads no log file for quiet (the journal?)"
    )
    for request in (
        regex.RegexRequest(lines="x", draft=regex.RegexDraft(failregex="^x <HOST>$")),
        regex.RegexRequest(jail="web", log_lines=1, filter_name="web"),
    ):
        assert client.regex_test(request).error == (
            "fail2ban-regex cannot be run: /nonexistent/fail2ban-regex"
        )


def test_operation_passes_every_argument_on(regex_host):
    config = host_config(regex_host, fail2ban_regex=NO_REGEX)
    client = DirectLink(config)
    op = regex.op_regex_test
    assert refused(op, config, client, {"path": 1, "file": 2}) == "unexpected arguments: file, path"
    assert refused(op, config, client, {"k" * 300: 1}) == f"unexpected arguments: {'k' * 200}"
    pasted = {"lines": "x\n", "filter": "web"}
    for arguments, message in (
        ({"ignoreregex": "a\x1bb"}, "ignoreregex contains a control character"),
        ({"datepattern": "a\u2028b"}, "datepattern contains a control character"),
        ({"timeout": 121}, "timeout must be between 0 and 120 s"),
        ({"jail": "web", "lines": None, "log_lines": 0}, "log_lines must be between 1 and 5000"),
    ):
        assert refused(op, config, client, {**pasted, **arguments}) == message
    web = str(regex_host.server.log_path("web"))
    missing = "fail2ban-regex cannot be run: /nonexistent/fail2ban-regex"
    for arguments in (
        {"lines": "x\n", "failregex": "^x <HOST>$"},
        {"lines": "x\n", "filter": "web", "timeout": 5},
        {"jail": "web", "filter": "web"},
    ):
        assert op(config, client, arguments)["error"] == missing
    assert op(config, client, {"jail": "web", "filter": "web"})["source"] == web


def test_time_zone_and_draft_reach_fail2ban_regex_through_the_agent(regex_host, regex_agent):
    regex_agent.start()
    lines = [failure(5, "192.0.2.5"), f"{failure(6, '192.0.2.6')} ok", "2020-01-02 03:04:07 other"]
    request = regex.RegexRequest(
        lines="".join(f"{line}\n" for line in lines),
        draft=regex.RegexDraft(
            failregex=r"AUTH FAIL user=\S+ from <HOST>( ok)?$",
            ignoreregex=r" ok$",
            datepattern="{^LN-BEG}%%Y-%%m-%%d %%H:%%M:%%S",
        ),
        time_zone="Pacific/Chatham",
    )
    stamp = datetime(2020, 1, 2, 3, 4, 5, tzinfo=ZoneInfo("Pacific/Chatham")).timestamp()
    link = AgentLink(regex_agent.address, timeout=10.0)
    try:
        for report in (
            link.regex_test(request),
            DirectLink(host_config(regex_host)).regex_test(request),
        ):
            assert report.error is None
            assert statuses(report) == [
                (lines[0], regex.MATCHED, ("192.0.2.5",)),
                (lines[1], regex.IGNORED, ()),
                (lines[2], regex.MISSED, ()),
            ]
            # Read in the zone asked for, and dated by the draft's own datepattern.
            assert report.lines[0].time == stamp
            assert report.lines[0].undated is False
        web, second = logs(regex_host, ["a", failure(8, "192.0.2.8")], ["b"])
        report = link.regex_test(regex.RegexRequest(jail="web", log_lines=1, filter_name="web"))
        assert (report.source, statuses(report), report.truncated) == (
            web,
            [(failure(8, "192.0.2.8"), regex.MATCHED, ("192.0.2.8",))],
            True,
        )
        with pytest.raises(InvalidArgument) as error:
            link.regex_test(regex.RegexRequest(jail="quiet", filter_name="web"))
        assert str(error.value) == "fail2ban reads no log file for quiet (the journal?)"
    finally:
        link.close()


def test_direct_link_reads_the_log_and_the_lines_asked_for(regex_host):
    web, second = logs(regex_host, [failure(9, "192.0.2.9"), "a", "b"], ["c", "d"])
    link = DirectLink(host_config(regex_host))
    report = link.regex_test(regex.RegexRequest(jail="web", log_lines=2, filter_name="web"))
    assert (report.source, [line.text for line in report.lines]) == (web, ["a", "b"])
    report = link.regex_test(
        regex.RegexRequest(jail="web", logpath=second, log_lines=1, filter_name="web")
    )
    assert (report.source, [line.text for line in report.lines]) == (second, ["d"])
    report = link.regex_test(
        regex.RegexRequest(lines=f"{failure(9, '192.0.2.9')}\n", filter_name="web")
    )
    assert statuses(report) == [(failure(9, "192.0.2.9"), regex.MATCHED, ("192.0.2.9",))]


def test_file_without_a_size_is_still_read_within_the_byte_cap():
    # /proc files report a size of 0 (as a pipe would): only the window is read.
    lines, truncated = regex.file_tail("/proc/self/maps", lines=1000, max_bytes=300)
    assert 0 < len("\n".join(lines).encode()) <= 300
    assert truncated is False


def test_fail2ban_regex_that_cannot_be_run_or_says_too_much_is_a_report(
    regex_host, tmp_path, monkeypatch
):
    unrunnable = tmp_path / "fail2ban-regex"
    unrunnable.write_text("#!/bin/sh\n")
    unrunnable.chmod(0o644)  # not executable, even for root
    config = host_config(regex_host, fail2ban_regex=(str(unrunnable),))
    report = regex.regex_test(config, lines=["x"], source="s", filter_name="web")
    assert report == regex.RegexReport(
        "s", error=f"fail2ban-regex cannot be run: [Errno 13] Permission denied: '{unrunnable}'"
    )
    # The output cap (16 MB, far more than 1 MB of lines ever gives), lowered to a few bytes.
    monkeypatch.setattr(regex, "MAX_OUTPUT_BYTES", 10)
    report = regex.regex_test(host_config(regex_host), lines=["x"], source="s", filter_name="web")
    assert report == regex.RegexReport("s", error="fail2ban-regex's output exceeded the cap")


def test_why_fail2ban_regex_failed_is_its_error_lines_or_its_last_line(regex_host):
    config = host_config(regex_host)
    garbled = regex_host.conf / "filter.d" / "garbled.conf"
    garbled.write_text("failregex = x <HOST>\n")  # no section header

    def error(config: HostConfig = config, **arguments: Any) -> str | None:
        return regex.regex_test(config, lines=["x"], source="s", **arguments).error

    # From the first line fail2ban-regex starts with ERROR or "Wrong config": 4 lines at most.
    broken = error(draft=regex.RegexDraft(failregex="^(unclosed <HOST>"))
    assert broken.startswith("ERROR: Unable to compile regular expression '^(unclosed ")
    assert broken.endswith("':\nmissing ), unterminated subpattern at position 1")
    assert broken.count("\n") == 1
    assert error(filter_name="garbled") == (
        "Wrong config file: File contains no section headers.\n"
        f"file: '{garbled}', line: 1\n"
        "'failregex = x <HOST>\\n'\n"
        "ERROR: failed to load filter garbled"
    )
    talkative = ("/bin/sh", "-c", "printf 'ERROR: 1\\n2\\n3\\n4\\n5\\n'; exit 255", "sh")
    assert error(host_config(regex_host, fail2ban_regex=talkative), filter_name="web") == (
        "ERROR: 1\n2\n3\n4"
    )
    # No such line: the last line of what it said (a traceback's), or its exit code.
    assert error(draft=regex.RegexDraft(failregex="%(undefined <HOST>")) == (
        "configparser.InterpolationSyntaxError: bad interpolation variable reference "
        "'%(undefined <HOST>'"
    )
    silent = host_config(regex_host, fail2ban_regex=("/bin/false",))
    assert error(silent, filter_name="web") == "exit code 1"


def test_a_program_that_exits_0_without_fail2ban_regexs_results_is_a_failure(regex_host):
    # A configured command that is no fail2ban-regex: it says nothing, or its usage.
    for command, error in (
        (("/bin/true",), "exit code 0"),
        (
            ("/bin/sh", "-c", "echo usage: fail2ban-regex LOG REGEX", "sh"),
            "usage: fail2ban-regex LOG REGEX",
        ),
    ):
        config = host_config(regex_host, fail2ban_regex=command)
        report = regex.regex_test(config, lines=["x"], source="s", filter_name="web")
        assert report == regex.RegexReport("s", error=error)


def test_an_undated_match_is_found_by_its_text_with_its_leading_blanks(regex_host):
    # fail2ban's warning quotes the line as read: its leading blanks are part of the text.
    line = "  no date from 192.0.2.4"
    draft = regex.RegexDraft(failregex=r"^\s*no date from <HOST>$")
    report = regex.regex_test(host_config(regex_host), lines=[line], source="s", draft=draft)
    assert report.error is None
    (tested,) = report.lines
    assert (tested.text, tested.status, tested.hosts) == (line, regex.MATCHED, ("192.0.2.4",))
    assert (tested.undated, tested.time) == (True, None)
    assert report.truncated is False  # not asked: the lines given were all the lines


def test_a_filter_only_in_a_local_file_is_found(regex_host):
    (regex_host.conf / "filter.d" / "only-local.local").write_text("[Definition]\nfailregex = x\n")
    # fail2ban-regex missing: past the filter's lookup, the run itself is what fails.
    config = host_config(regex_host, fail2ban_regex=NO_REGEX)
    report = regex.regex_test(config, lines=["x"], source="s", filter_name="only-local")
    assert report.error == "fail2ban-regex cannot be run: /nonexistent/fail2ban-regex"
    assert refused(regex.regex_test, config, lines=["x"], source="s", filter_name="nowhere") == (
        f"no filter 'nowhere' in {regex_host.conf / 'filter.d'}"
    )


# --- What a real agent never sends ----------------------------------------------------------------
def test_malformed_regex_test_reply_is_a_protocol_error():
    for value in ("report", {"lines": [["1", "t", "matched", [], None, False]]}):
        with ScriptedAgent(answering(value)) as agent:
            link = AgentLink(agent.address, timeout=10.0)
            try:
                with pytest.raises(ProtocolError) as error:
                    link.regex_test(regex.RegexRequest(lines="x", filter_name="sshd"))
            finally:
                link.close()
        assert str(error.value) == "the agent's regex_test reply is malformed"
        assert agent.requests[0]["op"] == "regex_test"
        assert agent.requests[0]["args"] == regex.RegexRequest(lines="x", filter_name="sshd").wire()


def test_regex_test_waits_for_the_reload_timeout_not_the_command_timeout():
    release = threading.Event()

    def answer(request: dict[str, Any], nth: int) -> Any:
        # Later than the reload timeout allows, sooner than the command timeout would.
        release.wait(REPLY_MARGIN + 3.0)
        return CLOSE if release.is_set() else regex.RegexReport("x").wire()

    with ScriptedAgent(answer) as agent:
        link = AgentLink(agent.address, timeout=30.0, reload_timeout=0.5)
        try:
            with pytest.raises(AgentUnreachable) as lost:
                link.regex_test(regex.RegexRequest(lines="x", filter_name="sshd"))
        finally:
            release.set()
            link.close()
    assert lost.value.reason == f"no answer within {0.5 + REPLY_MARGIN:g} s"
