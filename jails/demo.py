"""The demo: a private fail2ban server that looks like a real host, and a synthetic attacker.

Used by `manage.py demo_fail2ban` (and so by `make run` on a host without fail2ban).
The jails run fail2ban's own shipped filters (sshd, nginx-http-auth, postfix, dovecot);
the attacker appends real-world log lines to their log files: the sample lines fail2ban's
package ships for its own filter tests, re-dated to now and re-addressed. The demo
actions are no-ops, so nothing is blocked and no packet is sent anywhere.
"""

from __future__ import annotations

import configparser
import ipaddress
import json
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jails.fail2ban.server import (
    MAX_SOCKET_PATH,
    Fail2banInstall,
    JailSpec,
    PrivateServer,
    package_roots,
    shipped_filter_dir,
)

DEMO_JAILS = (
    JailSpec("sshd", maxretry=3, findtime="10m", bantime="10m", filter="sshd"),
    JailSpec(
        "nginx-http-auth", maxretry=4, findtime="10m", bantime="30m", filter="nginx-http-auth"
    ),
    JailSpec("postfix", maxretry=5, findtime="1h", bantime="1h", filter="postfix"),
    JailSpec("dovecot", maxretry=5, findtime="1h", bantime="1h", filter="dovecot"),
    JailSpec(
        "recidive",
        maxretry=2,
        findtime="1d",
        bantime="1w",
        options={"bantime.increment": "true", "bantime.factor": "2"},
    ),
)
# The jails the attacker writes to: the ones with a shipped filter.
ATTACKED_JAILS = tuple(j for j in DEMO_JAILS if j.filter)
DEMO_HOSTNAME = "demo"
# Benign traffic comes from the LAN (private: no country on the map, never banned).
BENIGN_NETWORK = ipaddress.ip_network("192.168.1.0/24")

# Prefixes spread over the registries, so the demo's map and country figures show something.
_V4_PREFIXES = (
    5,
    31,
    41,
    45,
    58,
    61,
    77,
    91,
    103,
    109,
    118,
    125,
    177,
    181,
    185,
    186,
    190,
    196,
    201,
    212,
)
_V6_PREFIXES = ("2a01:4f8", "2400:cb00", "2800:3f0", "2c0f:fb50", "2001:db8", "2a02:598")

# The date formats of the sample lines the attacker can re-date (fail2ban's default
# `{^LN-BEG}` datepatterns read all three); lines in other formats (TAI64N...) are skipped.
_DATES = {
    "syslog": re.compile(r"^[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?= )"),
    "nginx": re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?= )"),
    "iso": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?(?= )"),
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])")
# `host sshd[123]:` after the date: a syslog hostname and the daemon with its pid.
_SYSLOG_HOST = re.compile(r"^ (?P<host>[\w.-]+) (?=[\w/.-]+(?:\[\d+\])?:)")
_PID = re.compile(r"(?<=\[)\d+(?=\]:)")
_IP_MARK = "\x00"
_PID_MARK = "\x01"

# Ordinary traffic of each service, from a LAN address ({ip}): none of these is a failure.
_BENIGN = {
    "sshd": (
        "Mmm dd HH:MM:SS demo sshd[{pid}]: Accepted publickey for deploy from {ip} port 50522 ssh2:"
        " ED25519 SHA256:4Jp1Xq0bq8tq4bX7xk1wq0sNh9mTq3wC5o3m2d1s0aY",
        "Mmm dd HH:MM:SS demo sshd[{pid}]: pam_unix(sshd:session): session opened for user deploy"
        "(uid=1000) by (uid=0)",
        "Mmm dd HH:MM:SS demo sshd[{pid}]: Received disconnect from {ip} port 50522:11:"
        " disconnected by user",
    ),
    "nginx-http-auth": (
        'YYYY/mm/dd HH:MM:SS [error] 812#812: *{pid} open() "/var/www/html/favicon.ico" failed'
        " (2: No such file or directory), client: {ip}, server: demo.example.org, request:"
        ' "GET /favicon.ico HTTP/1.1", host: "demo.example.org"',
    ),
    "postfix": (
        "Mmm dd HH:MM:SS demo postfix/smtpd[{pid}]: connect from mail.example.org[{ip}]",
        "Mmm dd HH:MM:SS demo postfix/smtpd[{pid}]: disconnect from mail.example.org[{ip}]"
        " ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7",
    ),
    "dovecot": (
        "Mmm dd HH:MM:SS demo dovecot[{pid}]: imap-login: Login: user=<alice>, method=PLAIN,"
        " rip={ip}, lip=192.168.1.2, mpid=4242, TLS, session=<k3Xq0bq8tq4>",
    ),
}


@dataclass(frozen=True)
class LogTemplate:
    """One log line with its date, address and pid taken out, ready to be written again."""

    date_format: str  # a key of _DATES
    rest: str  # the line after its date; _IP_MARK where the address goes, _PID_MARK the pid

    def render(self, *, ip: str, when: datetime, pid: int) -> str:
        return (
            _format_date(self.date_format, when)
            + self.rest.replace(_IP_MARK, ip).replace(_PID_MARK, str(pid))
            + "\n"
        )


def _format_date(date_format: str, when: datetime) -> str:
    # Month names by table: strftime's %b follows the process locale, syslog's does not.
    if date_format == "syslog":
        return f"{_MONTHS[when.month - 1]} {when.day:2d} {when:%H:%M:%S}"
    if date_format == "nginx":
        return when.strftime("%Y/%m/%d %H:%M:%S")
    return when.isoformat(timespec="microseconds")


def sample_logs_dir(install: Fail2banInstall) -> Path:
    """The sample logs fail2ban ships for its own filter tests (one file per filter)."""
    for root in package_roots(install):
        for candidate in sorted((root / "usr" / "lib").glob("python3*/dist-packages")):
            logs = candidate / "fail2ban" / "tests" / "files" / "logs"
            if logs.is_dir():
                return logs
    raise FileNotFoundError(f"fail2ban's sample logs not found for {install.server}")


@dataclass(frozen=True)
class FilterFacts:
    """What the attacker needs to know about a shipped filter to pick sample lines for it."""

    name: str
    mode: str  # sample lines are annotated per mode; the jails run the filter's default
    multiline: bool  # ties lines together by their prefix (F-MLFID), as sshd does


def filter_facts(filter_file: Path) -> FilterFacts:
    """The default mode of a shipped filter and whether it is a multi-line filter."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.read(filter_file)
    return FilterFacts(
        name=filter_file.stem,
        mode=parser.get("Definition", "mode", fallback="").strip(),
        multiline="<F-MLFID>" in parser.get("Definition", "prefregex", fallback=""),
    )


def _runs_in_default_mode(options: object, *, filter_name: str, mode: str) -> bool:
    """Whether a `# filterOptions:` block applies to the filter as the jail runs it."""
    for opts in options if isinstance(options, list) else [options]:
        if not isinstance(opts, dict):
            continue
        opts = dict(opts)
        condition = opts.pop("test.condition", None)
        if condition is not None and condition != f"name=={filter_name!r}":
            continue
        if not opts or opts == {"mode": mode}:
            return True
    return False


def parse_sample_log(text: str, *, facts: FilterFacts) -> list[LogTemplate]:
    """The sample lines that fail on their own in the filter's default mode, as templates."""
    templates = []
    applies = True  # lines before any `# filterOptions:` run with the default options
    expected: dict[str, object] | None = None
    # A match right after a non-matching line of the same block may owe its result to that
    # line (sshd's "account is locked" ... "Received disconnect"): not a line that stands alone.
    after_miss = False
    for line in text.splitlines():
        if not line.strip():
            after_miss = False
            continue
        if line.startswith("# filterOptions:"):
            options = json.loads(line.split(":", 1)[1])
            applies = _runs_in_default_mode(options, filter_name=facts.name, mode=facts.mode)
            continue
        if line.startswith("# failJSON:"):
            try:
                expected = json.loads(line.split(":", 1)[1])
            except json.JSONDecodeError:
                expected = None
            continue
        if line.startswith("#"):
            continue
        spec, expected = expected, None
        if applies and spec is not None and not after_miss and _fails_alone(spec):
            template = _template(line, host=str(spec["host"]))
            # A multi-line filter tells connections apart by their pid: the attacker gives
            # every line its own, so a line without one would be tied to the others.
            if template is not None and (_PID_MARK in template.rest or not facts.multiline):
                templates.append(template)
        after_miss = spec is not None and spec.get("match") is False
    return templates


def _fails_alone(spec: Mapping[str, object]) -> bool:
    # A constraint, attempt count, user list or description of a multi-line match means the
    # line's result depends on the lines around it; desc "inject..." lines are attacks on the
    # filter itself, not what a real host logs.
    if spec.get("match") is not True or not spec.get("time"):
        return False
    if {"constraint", "attempts", "users"} & spec.keys():
        return False
    desc = str(spec.get("desc", "")).lower()
    if any(word in desc for word in ("inject", "multiline", "multi-line")):
        return False
    try:
        ipaddress.ip_address(str(spec.get("host", "")))
    except ValueError:
        return False  # a host name: the demo has no DNS (usedns = no)
    return True


def _split_date(line: str) -> tuple[str, str] | None:
    """(date format, the line after its date), or None for a date the attacker can't write."""
    for date_format, pattern in _DATES.items():
        if match := pattern.match(line):
            return date_format, line[match.end() :]
    return None


def _template(line: str, *, host: str) -> LogTemplate | None:
    if (dated := _split_date(line)) is None:
        return None
    date_format, rest = dated
    bounded = re.compile(r"(?<![\w.:])" + re.escape(host) + r"(?![\w:]|\.\d)")
    rest, found = bounded.subn(_IP_MARK, rest)
    # Another address left in the line (or the host inside ::ffff:...) would make the line
    # about two hosts; keep the lines that name only the attacker.
    if not found or host in rest or _IPV4.search(rest):
        return None
    if date_format != "nginx" and (named := _SYSLOG_HOST.match(rest)):
        rest = f" {DEMO_HOSTNAME} " + rest[named.end() :]
    rest = _PID.sub(_PID_MARK, rest, count=1)
    return LogTemplate(date_format, rest)


def _benign_template(line: str) -> LogTemplate:
    date_format, placeholder = (
        ("nginx", "YYYY/mm/dd HH:MM:SS")
        if line.startswith("YYYY")
        else ("syslog", "Mmm dd HH:MM:SS")
    )
    rest = line[len(placeholder) :].replace("{ip}", _IP_MARK).replace("{pid}", _PID_MARK)
    return LogTemplate(date_format, rest)


@dataclass(frozen=True)
class JailMaterial:
    """What the attacker writes to one jail's log: failure lines and ordinary lines."""

    failures: tuple[LogTemplate, ...]
    benign: tuple[LogTemplate, ...]


def load_material(install: Fail2banInstall, jails: Iterable[JailSpec]) -> dict[str, JailMaterial]:
    """Each jail's templates, from the package's sample logs for the jail's filter."""
    logs = sample_logs_dir(install)
    filters = shipped_filter_dir(install)
    material = {}
    for jail in jails:
        if jail.filter is None:
            continue
        facts = filter_facts(filters / f"{jail.filter}.conf")
        text = (logs / jail.filter).read_text(encoding="utf-8", errors="replace")
        failures = parse_sample_log(text, facts=facts)
        if not failures:
            raise RuntimeError(f"no usable sample lines for the {jail.filter} filter in {logs}")
        benign = tuple(_benign_template(line) for line in _BENIGN.get(jail.filter, ()))
        material[jail.name] = JailMaterial(tuple(failures), benign)
    return material


def demo_directory(var_dir: Path) -> Path:
    """`var/demo`, or a short path under /tmp when var/ is too deep for a Unix socket."""
    preferred = var_dir / "demo"
    if len(str(preferred / "run" / "f2b.sock")) <= MAX_SOCKET_PATH:
        return preferred
    return Path("/tmp") / "jailadmin-demo"


def demo_server(directory: Path, *, tz: str | None = None) -> PrivateServer:
    """The demo server's description (not started)."""
    # Polling: Debian's fail2ban only recommends python3-pyinotify, and the unpacked package
    # runs on the system's python3 without it; polling works everywhere (about 1 s to a ban).
    return PrivateServer(directory, DEMO_JAILS, backend="polling", tz=tz)


def random_attacker(rng: random.Random) -> str:
    """A random address from one of the demo prefixes (about one in five IPv6)."""
    if rng.random() < 0.2:
        prefix = rng.choice(_V6_PREFIXES)
        groups = ":".join(f"{rng.randrange(0x10000):x}" for _ in range(3))
        return f"{prefix}::{groups}"
    octets = (
        rng.choice(_V4_PREFIXES),
        rng.randrange(256),
        rng.randrange(256),
        rng.randrange(1, 255),
    )
    return ".".join(str(o) for o in octets)


def write_burst(
    server: PrivateServer,
    material: Mapping[str, JailMaterial],
    *,
    jail: str,
    ip: str,
    failures: int,
    rng: random.Random,
    benign: int = 0,
) -> None:
    """Append `failures` failure lines from `ip` (and `benign` ordinary lines) to a jail's log."""
    # The server reads syslog stamps (no zone) in its own local time zone.
    zone = ZoneInfo(server.tz) if server.tz else None
    now = datetime.now(zone).astimezone(zone)
    templates = material[jail]
    lines = [
        rng.choice(templates.failures).render(ip=ip, when=now, pid=rng.randrange(1000, 65000))
        for _ in range(failures)
    ]
    for _ in range(benign if templates.benign else 0):
        neighbour = str(BENIGN_NETWORK[rng.randrange(10, 250)])
        line = rng.choice(templates.benign).render(
            ip=neighbour, when=now, pid=rng.randrange(1000, 65000)
        )
        lines.insert(rng.randrange(len(lines) + 1), line)
    with server.log_path(jail).open("a", encoding="utf-8") as log:
        log.writelines(lines)


def attack(
    server: PrivateServer,
    *,
    interval: float,
    should_stop: Callable[[], bool],
    seed: int | None = None,
    bursts: int | None = None,
    addresses: Callable[[random.Random], str] = random_attacker,
) -> int:
    """Write bursts of real-world log lines until `should_stop()` (or `bursts` written)."""
    assert server.install is not None
    material = load_material(server.install, server.jails)
    rng = random.Random(seed)
    regulars = [addresses(rng) for _ in range(12)]  # repeat offenders
    written = 0
    while not should_stop() and (bursts is None or written < bursts):
        jail = rng.choice(sorted(material))
        ip = rng.choice(regulars) if rng.random() < 0.3 else addresses(rng)
        write_burst(
            server,
            material,
            jail=jail,
            ip=ip,
            failures=rng.randint(1, 6),
            benign=rng.choice((0, 0, 1, 2)),
            rng=rng,
        )
        written += 1
        time.sleep(interval)
    return written
