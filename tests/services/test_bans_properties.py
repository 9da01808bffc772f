"""Property tests: arbitrary strings at every input; only valid, normalised values reach fail2ban.

A recording proxy sits between the code and the real (quiet) private fail2ban server, so
every command is executed for real and also checked here: it is on the allow-list, each
address in it is valid and already in canonical form, each jail is a live jail, each
number is a plain integer; and the addresses that were sent are exactly normalised
forms of the input's valid lines.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jails.fail2ban.commands import PROBE_JAIL, check_command
from jails.fail2ban.errors import Fail2banError, InvalidArgument
from jails.fail2ban.validation import normalise_ip
from jails.services import bans as ban_service
from jails.services import control as control_service
from jails.services.audit import Actor
from jails.services.operations import COMMENT_MARKERS, entries_parse, entry_parse
from tests.conftest import point_state_at
from tests.support.fixtures_bans import QUIET_JAILS, quiet_f2b, quiet_server  # noqa: F401
from tests.support.recording_proxy import RecordingProxy

pytestmark = pytest.mark.django_db

LIVE = {jail.name for jail in QUIET_JAILS}
ACTOR = Actor(name="prop", source="command")
EXAMPLES = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SET_IP_KEYS = {"banip", "unbanip", "addignoreip", "delignoreip"}
NUMBER_KEYS = {"bantime", "findtime", "maxretry"}

nasty = st.sampled_from(
    [
        "",
        " ",
        "--all",
        "-1",
        "<F2B_END_COMMAND>",
        "1.2.3.4<F2B_END_COMMAND>",
        "1.2.3.4\x00",
        "1.2.3.4\n5.6.7.8",
        "1.2.3.4 5.6.7.8",
        "::ffff:1.2.3.4",
        "1.2.3.4/33",
        "1.2.3.4/-1",
        "0.0.0.0/0",
        "fe80::1%eth0",
        "999.1.1.1",
        "example.com",
        "1.2.3.4; set bulk action",
        "１.２.３.４",
        "01.02.03.04",
        "2001:DB8::/32",
    ]
)
addresses = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses().map(lambda ip: str(ip).upper()),
    st.tuples(st.ip_addresses(v=4), st.integers(-2, 40)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.tuples(st.ip_addresses(v=6), st.integers(0, 130)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.ip_addresses().map(lambda ip: f"  {ip}\t"),
)
ip_text = st.one_of(addresses, nasty, st.text(max_size=40))
jail_text = st.one_of(
    st.sampled_from([*sorted(LIVE), "--all", "nosuch", "bulk ", "bulk\x00", "~jailadmin-probe"]),
    st.text(max_size=20),
)
duration_text = st.one_of(
    st.from_regex(r"\s*-?\d{1,14}\s*[smhdwSMHDW]?\s*", fullmatch=True),
    st.sampled_from(["-1", "0", "10m", "1h", "1d", "2w", "1 h", "1.5h", "1e3", "٣", "-0"]),
    st.text(max_size=12),
)


def assert_safe(command: list[str]) -> None:
    """One command as it arrived at the socket: allow-listed, canonical, live jails only."""
    assert isinstance(command, list) and all(isinstance(word, str) for word in command)
    check_command(command)  # raises if the allow-list would refuse it
    verb, args = command[0], command[1:]
    # The capability probe (run once per process) asks about a jail that cannot exist.
    probe = command == ["status", "--all", "short"] or (verb == "get" and args[:1] == [PROBE_JAIL])
    if verb in ("get", "set", "status", "stop", "start") and args and not probe:
        assert args[0] in LIVE, command
    ip_args: list[str] = []
    if len(args) >= 2 and (
        (verb == "set" and args[1] in SET_IP_KEYS) or (verb == "get" and args[1] == "banned")
    ):
        ip_args = args[2:]
    elif verb in ("unban", "banned") and args != ["--all"]:
        ip_args = args
    for value in ip_args:
        assert normalise_ip(value, allow_network=True) == value, command
        ipaddress.ip_network(value, strict=True)
    if verb == "set" and len(args) == 3 and args[1] in NUMBER_KEYS:
        assert re.fullmatch(r"-1|\d{1,12}", args[2]), command


def sent_addresses(commands: list, key: str) -> list[str]:
    return [value for c in commands if c[0] == "set" and c[2] == key for value in c[3:]]


@pytest.fixture
def proxy(quiet_f2b):  # noqa: F811
    with RecordingProxy(str(quiet_f2b.socket_path)) as recording:
        point_state_at(recording.path, timeout=10)
        yield recording


@EXAMPLES
@given(lines=st.lists(ip_text, max_size=15), jail=jail_text, confirmed=st.booleans())
def test_ips_ban_sends_only_valid_normalised_addresses(proxy, lines, jail, confirmed):
    from jails.apps import runtime_state

    proxy.clear()
    report = ban_service.ips_ban(
        runtime_state(), jail=jail, lines=lines, actor=ACTOR, confirmed=confirmed, batch_size=4
    )
    for command in proxy.commands:
        assert_safe(command)
    valid = {entry.address for entry in entries_parse(lines)} - {""}
    sent = sent_addresses(proxy.commands, "banip")
    assert set(sent) <= valid
    assert len(sent) == len(set(sent))  # each address once, duplicates folded
    if jail not in LIVE:
        assert sent == [] and not report.ok
    banned_lines = [line.address for line in report.lines if line.status == "banned"]
    assert sorted(banned_lines) == sorted(sent)


@EXAMPLES
@given(lines=st.lists(ip_text, max_size=10), jail=st.one_of(st.none(), jail_text))
def test_ips_unban_sends_only_valid_normalised_addresses(proxy, lines, jail):
    from jails.apps import runtime_state

    proxy.clear()
    ban_service.ips_unban(runtime_state(), jail=jail, lines=lines, actor=ACTOR)
    for command in proxy.commands:
        assert_safe(command)
    valid = {entry.address for entry in entries_parse(lines)} - {""}
    sent = sent_addresses(proxy.commands, "unbanip") + [
        value for c in proxy.commands if c[0] == "unban" for value in c[1:]
    ]
    assert set(sent) <= valid and "--all" not in sent


@EXAMPLES
@given(value=ip_text, jail=jail_text, add=st.booleans())
def test_ignore_list_changes_send_only_valid_entries(proxy, value, jail, add):
    from jails.apps import runtime_state

    proxy.clear()
    service = control_service.ignore_add if add else control_service.ignore_remove
    with contextlib.suppress(Fail2banError):
        service(runtime_state(), jail=jail, address=value, actor=ACTOR)
    for command in proxy.commands:
        assert_safe(command)
    changes = [c for c in proxy.commands if c[0] == "set"]
    if changes:
        [change] = changes
        assert change[3] == entry_parse(value).address


@EXAMPLES
@given(bantime=duration_text, findtime=duration_text, maxretry=duration_text, jail=jail_text)
def test_tune_sends_only_validated_whole_numbers(proxy, bantime, findtime, maxretry, jail):
    from jails.apps import runtime_state

    proxy.clear()
    try:
        changes = control_service.jail_tune(
            runtime_state(),
            jail=jail,
            actor=ACTOR,
            bantime=bantime,
            findtime=findtime,
            maxretry=maxretry,
        )
    except Fail2banError:
        changes = None
    for command in proxy.commands:
        assert_safe(command)
    sets = [c for c in proxy.commands if c[0] == "set"]
    if changes is None:
        assert sets == []  # refused input: nothing changed in fail2ban
    else:
        assert [(c[2], int(c[3])) for c in sets] == [(c.key, c.new) for c in changes]
        for key, value in (("bantime", bantime), ("findtime", findtime)):
            if key in {c.key for c in changes}:
                assert (
                    int({c[2]: c[3] for c in sets}[key])
                    == control_service.tune_parse(**{key: value})[key]
                )


@EXAMPLES
@given(address=ip_text)
def test_where_queries_only_canonical_addresses(proxy, address):
    from jails.apps import runtime_state

    proxy.clear()
    try:
        ban_service.ip_where(runtime_state(), address=address)
    except Fail2banError:
        assert proxy.commands == []
    for command in proxy.commands:
        assert_safe(command)


@settings(EXAMPLES, max_examples=60)
@given(ip=ip_text, bantime=duration_text, jail=jail_text, path=ip_text)
def test_web_forms_never_fail_and_only_send_safe_commands(proxy, logged_in_client, ip, bantime,
                                                          jail, path):  # fmt: skip
    proxy.clear()
    responses = [
        logged_in_client.post("/jails/bulk/ban/", {"ip": ip, "confirm": "yes"}),
        logged_in_client.post("/jails/bulk/ignore/", {"op": "add", "ip": ip}),
        logged_in_client.post("/jails/bulk/tune/", {"bantime": bantime, "confirm": "yes"}),
        logged_in_client.post("/jails/bulk/bulk-ban/", {"text": f"{ip}\n{path}"}),
        logged_in_client.post("/ip/203.0.113.1/ban/", {"jail": jail, "confirm": "yes"}),
        logged_in_client.get("/ip/" + quote(path, safe="") + "/"),
        logged_in_client.get("/ip/", {"q": path}),
    ]
    for response in responses:
        assert response.status_code < 500
    for command in proxy.commands:
        assert_safe(command)


# entries_parse's fast path for bare canonical dotted quads must change nothing ------------
def entries_parse_reference(lines: list[str], *, allow_network: bool) -> list:
    """entries_parse without its fast path: every line cut at a comment, stripped, parsed."""
    entries = []
    for number, line in enumerate(lines, start=1):
        text = line
        for marker in COMMENT_MARKERS:
            text = text.split(marker, 1)[0]
        text = text.strip()
        if text:
            entries.append(entry_parse(text, number=number, allow_network=allow_network))
    return entries


bulk_line = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=4).map(lambda ip: f"{ip} # {ip}"),
    st.ip_addresses(v=4).map(lambda ip: f"{ip};x"),
    st.ip_addresses(v=4).map(lambda ip: f"{ip}\r"),
    st.ip_addresses(v=4).map(
        lambda ip: ".".join(f"{int(octet):02d}" for octet in str(ip).split("."))
    ),
    st.sampled_from(["", "#", "; comment", "   ", "\t1.2.3.4", "1.2.3.4.", "256.1.1.1"]),
    ip_text,
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(bulk_line, max_size=30), allow_network=st.booleans())
def test_entries_parse_fast_path_agrees_with_the_full_parse(lines, allow_network):
    assert entries_parse(lines, allow_network=allow_network) == entries_parse_reference(
        lines, allow_network=allow_network
    )


@settings(max_examples=50, deadline=None)
@given(lines=st.lists(st.ip_addresses(v=4).map(str), min_size=4, max_size=12))
def test_entries_parse_over_the_limit_is_refused_on_the_fast_path_too(lines):
    with pytest.raises(InvalidArgument, match="too many addresses"):
        entries_parse(lines, max_entries=3)
