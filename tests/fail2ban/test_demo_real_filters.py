"""The demo runs fail2ban's shipped filters and its attacker writes real-world log lines.

Everything here runs against a real private fail2ban server started with the demo's own
configuration in a temp directory (never var/).
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from django.core.management import call_command

from jails.demo import (
    ATTACKED_JAILS,
    BENIGN_NETWORK,
    FilterFacts,
    demo_server,
    load_material,
    parse_sample_log,
    write_burst,
)
from jails.fail2ban.server import PrivateServer, find_fail2ban, shipped_filter_dir
from tests.conftest import SERVER_TZ, wait_until

# One attacker per jail, from the documentation ranges.
ATTACKERS = {
    "sshd": "192.0.2.10",
    "nginx-http-auth": "198.51.100.20",
    "postfix": "203.0.113.30",
    "dovecot": "2001:db8::40",
}
# Polling backend: a line is read within about a second; generous for a loaded machine.
BAN_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def demo() -> PrivateServer:
    try:
        find_fail2ban()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    base = Path(tempfile.mkdtemp(prefix="ja-demo-", dir="/tmp"))
    # Non-UTC on purpose: syslog stamps carry no zone and must be written in the server's.
    server = demo_server(base, tz=SERVER_TZ)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _banned(server: PrivateServer, jail: str) -> list[str]:
    return [str(ip) for ip in server.client().send("get", jail, "banip")]


def test_demo_configuration_passes_fail2bans_own_test(demo: PrivateServer):
    result = subprocess.run(
        [*demo.configure_command(), "-t"],
        env=demo.install.env(tz=demo.tz),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: configuration test is successful" in result.stdout + result.stderr


def test_demo_jails_run_the_shipped_filters(demo: PrivateServer):
    shipped = shipped_filter_dir(demo.install)
    client = demo.client()
    for spec in ATTACKED_JAILS:
        conf = demo.conf_dir / "filter.d" / f"{spec.filter}.conf"
        assert conf.read_bytes() == (shipped / f"{spec.filter}.conf").read_bytes()
        regexes = [str(r) for r in client.send("get", spec.name, "failregex")]
        assert regexes, spec.name
        assert not any("AUTH FAIL" in r for r in regexes), spec.name
    assert (demo.conf_dir / "filter.d" / "common.conf").is_file()
    sshd = [str(r) for r in client.send("get", "sshd", "failregex")]
    # The package's sshd filter: many regexes, multi-line (ids of the connection) included.
    assert len(sshd) > 10
    assert any("Too many authentication failures" in r for r in sshd)
    assert any("Failed" in r and "for (?P<cond_inv>invalid user )?" in r for r in sshd)
    assert any(
        "password mismatch" in str(r) for r in client.send("get", "nginx-http-auth", "failregex")
    )


def test_demo_attacker_lines_are_banned_by_each_real_filter(demo: PrivateServer):
    material = load_material(demo.install, demo.jails)
    rng = random.Random(8)
    for spec in ATTACKED_JAILS:
        write_burst(
            demo,
            material,
            jail=spec.name,
            ip=ATTACKERS[spec.name],
            failures=spec.maxretry,
            benign=3,
            rng=rng,
        )

    def all_banned() -> bool:
        return all(ATTACKERS[j.name] in _banned(demo, j.name) for j in ATTACKED_JAILS)

    wait_until(all_banned, timeout=BAN_TIMEOUT, interval=0.2)
    for spec in ATTACKED_JAILS:
        banned = _banned(demo, spec.name)
        # Only the attacker: the ordinary lines mixed in come from the LAN and are no failure.
        assert banned == [ATTACKERS[spec.name]], (spec.name, banned)
        log = demo.log_path(spec.name).read_text()
        assert "AUTH FAIL" not in log
        assert ATTACKERS[spec.name] in log


def test_every_attacker_line_is_a_failure_alone_and_benign_lines_never(demo: PrivateServer):
    """fail2ban-regex finds each template's address, IPv4 and IPv6, and no LAN address."""
    regex_tool = Path(demo.install.client).with_name("fail2ban-regex")
    material = load_material(demo.install, demo.jails)
    now = datetime.now().astimezone()
    with tempfile.TemporaryDirectory(prefix="ja-demo-rx-", dir="/tmp") as scratch:
        for spec in ATTACKED_JAILS:
            mat = material[spec.name]
            expected, lines = [], []
            for n, template in enumerate(mat.failures, start=1):
                for ip in (f"198.51.100.{n}", f"2001:db8::{n:x}"):
                    expected.append(ip)
                    lines.append(template.render(ip=ip, when=now, pid=2000 + len(lines)))
            lan = [str(BENIGN_NETWORK[10 + n]) for n in range(len(mat.benign))]
            for ip, template in zip(lan, mat.benign, strict=True):
                lines.append(template.render(ip=ip, when=now, pid=9000 + len(lines)))
            log = Path(scratch) / f"{spec.name}.log"
            log.write_text("".join(lines))
            result = subprocess.run(
                [
                    str(regex_tool),
                    "-o",
                    "ip",
                    str(log),
                    str(demo.conf_dir / "filter.d" / f"{spec.filter}.conf"),
                ],
                env=demo.install.env(),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, result.stderr[-2000:]
            found = result.stdout.split()
            assert sorted(set(found)) == sorted(expected), spec.name
            assert mat.benign, spec.name
            assert not set(lan) & set(found)


def test_demo_attacker_uses_many_sample_lines_redated_and_readdressed(demo: PrivateServer):
    material = load_material(demo.install, demo.jails)
    # Enough variety to look like a real host: the package's samples, not one line each.
    assert {name: len(m.failures) >= 5 for name, m in material.items()} == dict.fromkeys(
        (j.name for j in ATTACKED_JAILS), True
    )
    when = datetime(2026, 3, 4, 5, 6, 7)
    sshd = {t.render(ip="192.0.2.1", when=when, pid=4242) for t in material["sshd"].failures}
    assert all(line.startswith("Mar  4 05:06:07 ") for line in sshd)
    assert any("Failed password for invalid user" in line for line in sshd)
    assert all("192.0.2.1" in line for line in sshd)
    nginx = material["nginx-http-auth"].failures[0].render(ip="2001:db8::1", when=when, pid=1)
    assert nginx.startswith("2026/03/04 05:06:07 [error] ")
    assert "client: 2001:db8::1, server:" in nginx


def test_sample_log_parsing_keeps_only_lines_that_fail_alone_in_the_default_mode():
    text = "\n".join(
        [
            '# failJSON: { "time": "2005-01-01T00:00:01", "match": true, "host": "1.2.3.4" }',
            "Jan  1 00:00:01 h sshd[1]: Failed password for root from 1.2.3.4 port 22 ssh2",
            '# failJSON: { "time": "2005-01-01T00:00:02", "match": true, "host": "example.com" }',
            "Jan  1 00:00:02 h sshd[2]: Failed password for root from example.com",
            "",
            '# failJSON: { "match": false }',
            "Jan  1 00:00:03 h sshd[3]: User root not allowed because account is locked",
            '# failJSON: { "time": "2005-01-01T00:00:03", "match": true, "host": "1.2.3.5" }',
            "Jan  1 00:00:03 h sshd[3]: Received disconnect from 1.2.3.5: 11: Bye [preauth]",
            "",
            '# failJSON: { "time": "2005-01-01T00:00:04", "match": true, "host": "1.2.3.6" }',
            "Jan  1 00:00:04 [sshd]: User root from 1.2.3.6 not allowed because in DenyUsers",
            '# filterOptions: [{"mode": "aggressive"}]',
            '# failJSON: { "time": "2005-01-01T00:00:05", "match": true, "host": "1.2.3.7" }',
            "Jan  1 00:00:05 h sshd[5]: Connection closed by 1.2.3.7 [preauth]",
            '# filterOptions: [{}, {"mode": "aggressive"}]',
            '# failJSON: { "time": "2005-01-01T00:00:06", "match": true, "host": "1.2.3.8" }',
            "Jan  1 00:00:06 h sshd[6]: Invalid user ftp from 1.2.3.8 port 4242",
        ]
    )
    facts = FilterFacts(name="sshd", mode="normal", multiline=True)
    templates = parse_sample_log(text, facts=facts)
    when = datetime(2026, 1, 2, 3, 4, 5)
    rendered = [t.render(ip="192.0.2.9", when=when, pid=77) for t in templates]
    # Kept: the plain failure and the one of the block that also runs in the default mode.
    # Dropped: a host name, a match owed to the line before, no pid in a multi-line filter,
    # and a line that matches only in aggressive mode.
    assert rendered == [
        "Jan  2 03:04:05 demo sshd[77]: Failed password for root from 192.0.2.9 port 22 ssh2\n",
        "Jan  2 03:04:05 demo sshd[77]: Invalid user ftp from 192.0.2.9 port 4242\n",
    ]


def test_demo_attack_command_writes_sample_lines_that_get_banned(demo: PrivateServer, settings):
    # The command builds the demo server from the settings: the same zone as the fixture's.
    settings.JAILADMIN_FAIL2BAN_TIME_ZONE = SERVER_TZ
    before = {j.name: demo.log_path(j.name).stat().st_size for j in ATTACKED_JAILS}
    call_command(
        "demo_fail2ban",
        "attack",
        "--dir",
        str(demo.base_dir),
        "--bursts",
        "40",
        "--interval",
        "0",
        "--seed",
        "5",
        stdout=io.StringIO(),
    )
    grown = {
        j.name for j in ATTACKED_JAILS if demo.log_path(j.name).stat().st_size > before[j.name]
    }
    assert grown == {j.name for j in ATTACKED_JAILS}
    # 40 bursts of 1-6 lines with repeat offenders: some addresses reach their jail's limit.
    wait_until(
        lambda: any(set(_banned(demo, j.name)) - set(ATTACKERS.values()) for j in ATTACKED_JAILS),
        timeout=BAN_TIMEOUT,
        interval=0.2,
    )
