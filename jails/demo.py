"""The demo: a private fail2ban server with realistic jail names and a synthetic attacker.

Used by `manage.py demo_fail2ban` (and so by `make run` on a host without fail2ban).
The attacker only appends lines to the demo jails' log files; the demo actions are
no-ops, so nothing is blocked and no packet is sent anywhere.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from jails.fail2ban.server import MAX_SOCKET_PATH, JailSpec, PrivateServer

DEMO_JAILS = (
    JailSpec("sshd", maxretry=3, findtime="10m", bantime="10m"),
    JailSpec("nginx-http-auth", maxretry=4, findtime="10m", bantime="30m"),
    JailSpec("postfix", maxretry=5, findtime="1h", bantime="1h"),
    JailSpec("dovecot", maxretry=5, findtime="1h", bantime="1h"),
    JailSpec(
        "recidive",
        maxretry=2,
        findtime="1d",
        bantime="1w",
        options={"bantime.increment": "true", "bantime.factor": "2"},
    ),
)

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


def demo_directory(var_dir: Path) -> Path:
    """`var/demo`, or a short path under /tmp when var/ is too deep for a Unix socket."""
    preferred = var_dir / "demo"
    if len(str(preferred / "run" / "f2b.sock")) <= MAX_SOCKET_PATH:
        return preferred
    return Path("/tmp") / "jailadmin-demo"


def demo_server(directory: Path, *, tz: str | None = None) -> PrivateServer:
    """The demo server's description (not started)."""
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


def attack(
    server: PrivateServer,
    *,
    interval: float,
    should_stop: Callable[[], bool],
    seed: int | None = None,
) -> int:
    """Write bursts of failure lines until `should_stop()`; returns the bursts written."""
    rng = random.Random(seed)
    regulars = [random_attacker(rng) for _ in range(12)]  # repeat offenders
    bursts = 0
    jail_names = [j.name for j in DEMO_JAILS if j.name != "recidive"]
    while not should_stop():
        jail = rng.choice(jail_names)
        ip = rng.choice(regulars) if rng.random() < 0.3 else random_attacker(rng)
        server.append_failures(jail, [ip], count=rng.randint(1, 6))
        bursts += 1
        time.sleep(interval)
    return bursts
