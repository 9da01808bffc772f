"""The filter tester and "why not banned?" through the service and the pages, in both modes.

Direct: fail2ban-regex runs in this process. Agent: only through a real agent (the site's
own config dir and fail2ban-client point nowhere), so the host side really is the agent's.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.urls import reverse

from jails.agent.regex import IGNORED, MATCHED, MISSED
from jails.configuration.services import filtertest
from jails.fail2ban import InvalidArgument, UnknownJail
from jails.fail2ban.server import JailSpec, PrivateServer, find_fail2ban
from tests.conftest import runtime_install
from tests.support.agent_process import AgentProcess, server_options

pytestmark = [pytest.mark.fail2ban, pytest.mark.django_db]

RUNTIME_MODES = ("direct", "agent")
SAMPLES = (
    Path(find_fail2ban().server).parent.parent
    / "usr/lib/python3/dist-packages/fail2ban/tests/files/logs"
)

FAILED = "Feb 25 14:34:1{second} belka sshd[31602]: Failed password for invalid user {user} from "
SSHD_LINES = (
    FAILED.format(second=0, user="ROOT")
    + "192.0.2.1 port 1 ssh2\n"
    + FAILED.format(second=1, user="<script>x</script>\x1b[31m")
    + "192.0.2.2 port 1 ssh2\n"
    + "Feb 25 14:34:12 belka sshd[31602]: Server listening on 0.0.0.0 port 22.\n"
)


# --- A private fail2ban with fail2ban's shipped sshd and nginx-http-auth filters ------------------
@pytest.fixture(scope="module")
def shipped_server() -> Iterator[PrivateServer]:
    base = Path(tempfile.mkdtemp(prefix="jf-", dir="/tmp"))
    server = PrivateServer(
        base,
        (JailSpec("sshd", filter="sshd"), JailSpec("nginx-http-auth", filter="nginx-http-auth")),
    )
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def shipped_agent(shipped_server: PrivateServer) -> Iterator[AgentProcess]:
    agent = AgentProcess(str(shipped_server.socket_path), options=server_options(shipped_server))
    try:
        agent.start()
        yield agent
    finally:
        agent.cleanup()


@pytest.fixture(params=RUNTIME_MODES)
def shipped(request, shipped_server):
    """A state reaching the shipped-filter server directly, or only through its agent."""
    agent = request.getfixturevalue("shipped_agent") if request.param == "agent" else None
    return runtime_install(shipped_server, agent=agent)


def test_filter_test_pasted_lines_with_the_jails_filter(shipped):
    result = filtertest.filter_test(shipped, lines=SSHD_LINES, filter_name="sshd")
    assert result.error is None
    assert [line.status for line in result.lines] == [MATCHED, MATCHED, MISSED]
    first = result.lines[0]
    assert first.hosts == ("192.0.2.1",)
    # Split around the host for highlighting, nothing lost.
    assert first.host == "192.0.2.1" and first.after == " port 1 ssh2"
    assert first.before + first.host + first.after == SSHD_LINES.split("\n")[0]
    assert result.report.counts == {MATCHED: 2, IGNORED: 0, MISSED: 1}


def test_filter_test_draft_ignoreregex_on_the_jails_filter(shipped):
    result = filtertest.filter_test(
        shipped, lines=SSHD_LINES, filter_name="sshd", ignoreregex=r"from 192\.0\.2\.2 "
    )
    assert [line.status for line in result.lines] == [MATCHED, IGNORED, MISSED]


def test_filter_test_broken_draft_is_a_result_not_an_error(shipped):
    result = filtertest.filter_test(shipped, lines=SSHD_LINES, failregex="^(broken <HOST>")
    assert result.error and "unterminated subpattern" in result.error
    assert result.lines == ()


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sshd/../x", "nope"])
def test_filter_test_refuses_paths_and_unknown_filters(shipped, name):
    with pytest.raises(InvalidArgument):
        filtertest.filter_test(shipped, lines=SSHD_LINES, filter_name=name)


def test_filter_test_nginx_sample_hosts(shipped):
    # The first section of fail2ban's own nginx-http-auth sample: the hosts its failJSON names.
    sample = (SAMPLES / "nginx-http-auth").read_text().split("# filterOptions:")[1].split("\n")
    expected, lines = [], []
    for before, line in zip(sample, sample[1:], strict=False):
        if before.startswith("# failJSON:") and not line.startswith("#"):
            fail = json.loads(before.removeprefix("# failJSON:"))
            if fail["match"] and "host" in fail:
                expected.append((fail["host"],))
                lines.append(line)
    assert len(lines) >= 4
    result = filtertest.filter_test(shipped, lines="\n".join(lines), filter_name="nginx-http-auth")
    assert [line.hosts for line in result.lines] == expected


# --- The jail's own log (the session server, toy filter), both modes -----------------------------
def test_filter_test_last_lines_of_a_jails_log(runtime, f2b):
    f2b.append_failures("sshd", ["203.0.113.71"], count=2)
    with f2b.log_path("sshd").open("a") as log:
        log.write("2026-11-30 10:00:00 AUTH OK user=alice from 203.0.113.72\n")
    result = filtertest.filter_test(runtime, jail="sshd", log_lines=3)
    assert result.error is None
    assert result.report.source == str(f2b.log_path("sshd"))
    assert [line.status for line in result.lines] == [MATCHED, MATCHED, MISSED]
    assert result.lines[0].hosts == ("203.0.113.71",)


def test_filter_test_jail_log_only_what_fail2ban_monitors(runtime, f2b):
    with pytest.raises(UnknownJail):
        filtertest.filter_test(runtime, jail="no-such-jail", log_lines=10)
    with pytest.raises(InvalidArgument):
        filtertest.filter_test(runtime, jail="../sshd", log_lines=10)
    link = runtime.jail_service.client
    from jails.agent.regex import RegexRequest

    # The host side refuses a log file fail2ban does not monitor for the jail.
    with pytest.raises(InvalidArgument, match="does not monitor"):
        link.regex_test(RegexRequest(jail="sshd", logpath="/etc/shadow", filter_name="sshd"))
    with pytest.raises(InvalidArgument, match="log_lines"):
        link.regex_test(RegexRequest(jail="sshd", log_lines=10**6, filter_name="sshd"))


def test_ban_explain_counts_failures_against_maxretry(runtime, f2b):
    # postfix: maxretry 5 in 1 h. Two failures are not enough; an "AUTH OK" line is no failure.
    f2b.append_failures("postfix", ["198.51.100.91"], count=2)
    with f2b.log_path("postfix").open("a") as log:
        log.write("2026-11-30 10:00:00 AUTH OK user=alice from 198.51.100.91\n")
    explanation = filtertest.ban_explain(runtime, jail="postfix", address="198.51.100.91")
    assert (explanation.maxretry, explanation.findtime) == (5, 3600)
    assert len(explanation.matched) >= 2
    assert explanation.recent >= 2 and explanation.busiest < 5
    assert any("AUTH OK" in line.before for line in explanation.unmatched)
    assert not explanation.banned
    assert any("a ban needs maxretry = 5" in reason for reason in explanation.reasons)


def test_ban_explain_nothing_in_the_log(runtime, f2b):
    explanation = filtertest.ban_explain(runtime, jail="sshd", address="2001:db8::dead")
    assert explanation.matched == () and explanation.unmatched == ()
    assert explanation.reasons[0] == "No line read from the jail's log mentions it."


def test_busiest_window_counts_within_findtime():
    assert filtertest.busiest_window([0, 10, 20, 700, 705], 600) == 3
    assert filtertest.busiest_window([], 600) == 0


# --- Pages ---------------------------------------------------------------------------------------
def test_filter_test_pages_are_for_operators(role_client, runtime):
    viewer = role_client("viewer")
    assert viewer.get(reverse("jails:configuration:filter-test")).status_code == 403
    assert viewer.post(reverse("jails:configuration:filter-test"), {}).status_code == 403
    assert viewer.get(reverse("jails:configuration:ban-explain")).status_code == 403
    operator = role_client("operator")
    page = operator.get(reverse("jails:configuration:filter-test") + "?jail=sshd")
    assert page.status_code == 200
    assert b'value="sshd"' in page.content
    assert operator.get(reverse("jails:configuration:ban-explain")).status_code == 200


def test_filter_test_page_escapes_lines_and_highlights_the_host(role_client, shipped):
    client = role_client("operator", csrf=True)
    page = client.get(reverse("jails:configuration:filter-test"))
    token = (
        re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    )
    form = {"source": "pasted", "lines": SSHD_LINES, "filter": "sshd", "csrfmiddlewaretoken": token}
    response = client.post(reverse("jails:configuration:filter-test"), form)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>x</script>" not in body
    # The result shows control characters as text (the form gives the input back as typed).
    assert "\x1b" not in body.split('id="filter-test-result"')[1]
    assert (
        "user &lt;script&gt;x&lt;/script&gt;\\x1b[31m from <mark>192.0.2.2</mark> port 1 ssh2"
        in body
    )
    assert "<mark>192.0.2.1</mark>" in body
    assert "Server listening on 0.0.0.0 port 22." in body
    # Without the CSRF token: refused.
    del form["csrfmiddlewaretoken"]
    assert client.post(reverse("jails:configuration:filter-test"), form).status_code == 403


def test_filter_test_page_htmx_partial_and_errors(role_client, shipped):
    client = role_client("operator")
    url = reverse("jails:configuration:filter-test")
    headers = {"HX-Request": "true", "HX-Target": "filter-test-result"}
    broken = {"source": "pasted", "lines": "x 1.2.3.4\n", "failregex": "^(x <HOST>"}
    response = client.post(url, broken, headers=headers)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="filter-test-result"')
    assert "unterminated subpattern" in body
    # A form error (no lines pasted) is shown, not a 500.
    response = client.post(url, {"source": "pasted", "filter": "sshd"}, headers=headers)
    assert "Paste the log lines to test." in response.content.decode()
    traversal = {"source": "pasted", "lines": "x\n", "filter": "../../etc/passwd"}
    assert "name" in client.post(url, traversal, headers=headers).content.decode()


def test_ban_explain_page(role_client, runtime, f2b):
    f2b.append_failures("postfix", ["198.51.100.92"], count=1)
    client = role_client("operator")
    url = reverse("jails:configuration:ban-explain")
    response = client.get(url, {"jail": "postfix", "address": "198.51.100.92"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "<mark>198.51.100.92</mark>" in body
    assert "a ban needs maxretry = 5" in body
    bad = client.get(url, {"jail": "postfix", "address": "not-an-ip"})
    assert "Not an IP address." in bad.content.decode()
    unknown = client.get(url, {"jail": "nope", "address": "192.0.2.1"})
    assert "No such jail" in unknown.content.decode()
