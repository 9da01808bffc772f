"""The log viewer: fail2ban's own log (its logtarget), level filter, search, follow, hostile
lines escaped; through the service and the page, directly and through the agent."""

from __future__ import annotations

import os
import re
import uuid
from html import unescape

import pytest
from django.urls import reverse

from jails.agent import logview
from jails.configuration.services import logs
from jails.fail2ban import InvalidArgument

pytestmark = [pytest.mark.fail2ban, pytest.mark.django_db]

RUNTIME_MODES = ("direct", "agent")
STAMP = "2026-12-01 10:00:00,000 fail2ban.server         [4242]: "


def append(f2b, data: bytes) -> None:
    """Lines into fail2ban's own log file, as if fail2ban had written them."""
    with open(f2b.server_log, "ab") as log:
        log.write(data)


def test_log_tail_reads_fail2bans_logtarget(runtime, f2b):
    append(f2b, f"{STAMP}INFO    tail-marker-1\n{STAMP}INFO    tail-marker-2\n".encode())
    tail = logs.log_tail(runtime, lines=2)
    assert tail.readable and tail.source == str(f2b.server_log)
    assert [line.text for line in tail.lines] == [
        f"{STAMP}INFO    tail-marker-1",
        f"{STAMP}INFO    tail-marker-2",
    ]
    assert [line.level for line in tail.lines] == ["INFO", "INFO"]
    inode = os.stat(f2b.server_log).st_ino
    assert tail.cursor == f"file:{inode}:{os.path.getsize(f2b.server_log)}"


def test_log_tail_level_filter_and_plain_search(runtime, f2b):
    marker = f"marker-{uuid.uuid4().hex[:8]}"  # the session's log keeps earlier tests' lines
    append(
        f2b,
        (
            f"{STAMP}INFO    {marker} info\n"
            f"{STAMP}WARNING {marker} warning\n"
            f"Traceback (most recent call last): {marker} continued\n"
            f"{STAMP}ERROR   {marker.upper()} error ({marker}.*)\n"
        ).encode(),
    )
    tail = logs.log_tail(runtime, lines=50, level="WARNING", search=marker)
    # A continuation line (a traceback) has its record's level; the search is case-blind.
    assert [(line.level, line.text.rsplit(" ", 1)[-1]) for line in tail.lines] == [
        ("WARNING", "warning"),
        ("WARNING", "continued"),
        ("ERROR", f"({marker}.*)"),
    ]
    # A plain substring, never a regular expression.
    regex_like = logs.log_tail(runtime, lines=50, search=f"({marker}.*)")
    assert [line.level for line in regex_like.lines] == ["ERROR"]
    with pytest.raises(InvalidArgument):
        logs.log_tail(runtime, lines=50, level="LOUD")
    with pytest.raises(InvalidArgument):
        logs.log_tail(runtime, lines=10**6)


def test_log_tail_follows_from_the_cursor(runtime, f2b):
    first = logs.log_tail(runtime, lines=1)
    assert logs.log_tail(runtime, cursor=first.cursor).lines == ()
    # Half a line is not returned until it is complete.
    append(f2b, f"{STAMP}NOTICE  follow-one\n{STAMP}NOTICE  follow-".encode())
    second = logs.log_tail(runtime, cursor=first.cursor)
    assert [line.text for line in second.lines] == [f"{STAMP}NOTICE  follow-one"]
    append(f2b, b"two\n")
    third = logs.log_tail(runtime, cursor=second.cursor)
    assert [line.text for line in third.lines] == [f"{STAMP}NOTICE  follow-two"]
    with pytest.raises(InvalidArgument, match="cursor"):
        logs.log_tail(runtime, cursor="file:../../etc/shadow:0")


def test_log_page_escapes_hostile_lines(role_client, runtime, f2b):
    append(
        f2b,
        STAMP.encode() + b"ERROR   hostile <script>alert(1)</script> \x1b[31mred\x1b[0m "
        b"\xff\xfe\x00 bad-utf8 \r overwritten\n",
    )
    client = role_client("operator")
    response = client.get(reverse("jails:configuration:logs"), {"q": "hostile", "lines": 5})
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>alert(1)" not in body
    assert "\x1b" not in body and "\x00" not in body and "\r overwritten" not in body
    assert "hostile &lt;script&gt;alert(1)&lt;/script&gt; \\x1b[31mred\\x1b[0m" in body
    assert "\ufffd\ufffd\\x00 bad-utf8 \\x0d overwritten" in body


def test_log_page_follows_by_htmx_poll(role_client, runtime, f2b):
    client = role_client("operator")
    page = client.get(reverse("jails:configuration:logs"), {"q": "poll-marker"})
    body = page.content.decode()
    match = re.search(r'id="log-follow" hx-get="([^"]+)" hx-trigger="every 2s"', body)
    assert match, body
    follow = unescape(match.group(1))
    assert follow.startswith(reverse("jails:configuration:log-follow"))
    append(f2b, f"{STAMP}INFO    poll-marker new\n{STAMP}INFO    not shown\n".encode())
    polled = client.get(follow, headers={"HX-Request": "true"})
    text = polled.content.decode()
    assert "poll-marker new" in text and "not shown" not in text
    assert "<html" not in text  # the partial alone: new lines and the next poller
    again = re.search(r'hx-get="([^"]+)"', text)
    assert again and unescape(again.group(1)) != follow
    assert "poll-marker new" not in client.get(unescape(again.group(1))).content.decode()


def test_log_pages_are_for_operators(role_client, runtime):
    viewer = role_client("viewer")
    assert viewer.get(reverse("jails:configuration:logs")).status_code == 403
    assert viewer.get(reverse("jails:configuration:log-follow")).status_code == 403


# --- The host side alone -------------------------------------------------------------------------
def test_file_read_starts_again_after_rotation_and_truncation(tmp_path):
    log = tmp_path / "fail2ban.log"
    log.write_bytes(b"one\ntwo\n")
    tail = logview.file_read(str(log), lines=10, level=None, search=None, cursor=None)
    assert [line.text for line in tail.lines] == ["one", "two"]
    # Truncated in place (copytruncate): from its top.
    log.write_bytes(b"three\n")
    after = logview.file_read(str(log), lines=10, level=None, search=None, cursor=tail.cursor)
    assert [line.text for line in after.lines] == ["three"]
    # Rotated (a new file under the name): from its top as well.
    log.rename(tmp_path / "fail2ban.log.1")
    log.write_bytes(b"four\n")
    rotated = logview.file_read(str(log), lines=10, level=None, search=None, cursor=after.cursor)
    assert [line.text for line in rotated.lines] == ["four"]


def test_file_read_caps_bytes_and_lines(tmp_path):
    log = tmp_path / "big.log"
    line = b"x" * 99 + b"\n"
    log.write_bytes(b"head\n" + line * (logview.MAX_BYTES // 100 + 100))
    tail = logview.file_read(
        str(log), lines=logview.MAX_LINES, level=None, search=None, cursor=None
    )
    assert tail.truncated and len(tail.lines) == logview.MAX_LINES
    assert all(entry.text == "x" * 99 for entry in tail.lines)
    long_line = logview.printable("y" * (logview.MAX_LINE_CHARS + 10))
    assert long_line.endswith("…") and len(long_line) == logview.MAX_LINE_CHARS + 1
    missing = logview.file_read(
        str(tmp_path / "nope"), lines=1, level=None, search=None, cursor=None
    )
    assert not missing.readable and "cannot read" in (missing.reason or "")


def test_journal_lines_and_cursor():
    output = (
        b'{"MESSAGE": "Server ready", "PRIORITY": "6", "__CURSOR": "s=1;i=a"}\n'
        b'{"MESSAGE": [60, 98, 62, 255, 27], "PRIORITY": "3", "__CURSOR": "s=1;i=b"}\n'
        b"not json\n"
    )
    lines, cursor = logview.journal_lines(output)
    assert [(line.text, line.level) for line in lines] == [
        ("Server ready", "INFO"),
        ("<b>\ufffd\\x1b", "ERROR"),
    ]
    assert cursor == "s=1;i=b"
    assert logview.journal_argv(lines=5, cursor="journal:s=1;i=b")[-2:] == [
        "--after-cursor",
        "s=1;i=b",
    ]
    with pytest.raises(InvalidArgument):
        logview.journal_argv(lines=5, cursor="journal:--since=yesterday x")
