"""Fleet fixtures: five simulated hosts behind one real sshd (issue 12).

- `fleet_sshd` (session): a PrivateSshd on 127.0.0.1:<free port> (tests/support/sshd.py).
- `fleet_servers` (session): five private fail2ban servers with no-op actions, started at
  once (FLEET_JAILS: "sshd" and "web").
- `ssh_hosts` (per test): the five hosts h1..h5, each an SshHost (name, destination,
  private_key, public_key, host_key, server), with sshd running and every server reset. Each
  host's key forces THE agent of this checkout (`python -m jails.agent --stdio`) in front
  of its own server, so the site reaches them exactly as it reaches remote hosts.
- `ssh_host_rows(ssh_hosts)`: jails.hosts.models.Host rows (kind ssh) for them (needs `db`).
- `web_hosts` (per test): the local host and two quiet servers web1, web2 as socket hosts.

A test that stops sshd or changes its host key must leave it as it found it (or use
`fleet_sshd.restart()`); `ssh_hosts` restarts a stopped sshd.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db.backends.signals import connection_created

from jails.agent.client import AgentLink
from jails.agent.ssh import SshTarget, key_pair_generate, ssh_link_build
from jails.fail2ban.server import JailSpec, PrivateServer
from tests.support.sshd import PrivateSshd, agent_command

FLEET_SIZE = 5
FLEET_JAILS = (
    JailSpec("sshd", maxretry=3, findtime="10m", bantime="1h"),
    JailSpec("web", maxretry=2, findtime="5m", bantime="1h"),
)
# The same zone as the session's server (tests/conftest.py SERVER_TZ): the test settings'
# JAILADMIN_FAIL2BAN_TIME_ZONE, which a Host row with no time_zone falls back on.
FLEET_TZ = "Asia/Kolkata"
# Reply timeout for the test links: the agent's cold start over ssh is about 1 s here and
# several times that on a loaded 1-core box.
LINK_TIMEOUT = 20.0


@dataclass(frozen=True)
class SshHost:
    """One simulated host: how the site reaches it, and the fail2ban behind it."""

    name: str  # "h1".."h5"
    destination: str  # "root@127.0.0.1:PORT"
    private_key: str  # the site's key for it (OpenSSH PEM)
    public_key: str  # "ssh-ed25519 AAAA… jailadmin-h1" (in sshd's authorized_keys)
    host_key: str  # sshd's host key, "ssh-ed25519 AAAA…" (as an administrator confirmed it)
    server: PrivateServer

    def target(self, *, host_key: str | None = None, private_key: str | None = None) -> SshTarget:
        """The SshTarget the site builds for this host (another key or host key if given)."""
        return SshTarget.from_destination(
            self.destination,
            alias=f"jailadmin-{self.name}",
            private_key=self.private_key if private_key is None else private_key,
            host_key=self.host_key if host_key is None else host_key,
        )

    def link(
        self, runtime_dir: str | Path, *, timeout: float = LINK_TIMEOUT, **target: Any
    ) -> AgentLink:
        """An AgentLink over ssh to this host (close it when done: it owns ssh processes)."""
        return ssh_link_build(self.target(**target), timeout=timeout, runtime_dir=str(runtime_dir))


def _parallel(fn: Any, items: Sequence[Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=len(items) or 1) as pool:
        return list(pool.map(fn, items))


def quiet_servers(
    prefix: str, names: Sequence[str], jails: Sequence[JailSpec], **options: Any
) -> Iterator[dict[str, PrivateServer]]:
    """Private fail2ban servers with no-op actions, one per name, started in parallel, stopped
    and removed after: the body of a module-scoped fixture (`yield from quiet_servers(…)`)."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    servers = {
        name: PrivateServer(base / name, jails, record_actions=False, **options) for name in names
    }
    try:
        _parallel(lambda server: server.start(), list(servers.values()))
        yield servers
    finally:
        _parallel(lambda server: server.stop(), list(servers.values()))
        shutil.rmtree(base, ignore_errors=True)


def server_ready(server: PrivateServer) -> PrivateServer:
    """`server` running (a test may have stopped it) and reset: no bans, its own settings."""
    if not server.is_running():
        server.start()
    server.reset()
    return server


# web_servers / web_hosts: two quiet hosts beside the local one (the session's server), for
# the per-host commands and /metrics. Both jails on every host; two failures ban in sshd.
WEB_JAILS = (JailSpec("sshd", maxretry=2, bantime="1h"), JailSpec("web", bantime="1h"))


@pytest.fixture(scope="module")
def web_servers() -> Iterator[dict[str, PrivateServer]]:
    """web1 and web2: quiet private fail2ban servers, for the module."""
    yield from quiet_servers("jw-", ["web1", "web2"], WEB_JAILS)


@pytest.fixture
def web_hosts(f2b: PrivateServer, web_servers: dict[str, PrivateServer]) -> dict[str, Any]:
    """local (the session's server, the state's own socket), web1 and web2 (reset, as enabled
    rows of kind socket): {name: PrivateServer}. Needs `db`."""
    return socket_hosts_add(f2b, web_servers)


def socket_hosts_add(
    f2b: PrivateServer, servers: dict[str, PrivateServer]
) -> dict[str, PrivateServer]:
    """The site's state on `f2b` (the local host) and each of `servers` (reset) as an enabled
    host row of kind socket: {name: PrivateServer}, local included. Needs `db`."""
    from jails.hosts.models import LOCAL_HOST, Host
    from tests.conftest import runtime_install

    for server in servers.values():
        server_ready(server)
    runtime_install(f2b, agent=None)
    for name, server in servers.items():
        Host.objects.create(name=name, kind=Host.Kind.SOCKET, address=str(server.socket_path))
    return {LOCAL_HOST: f2b, **servers}


@pytest.fixture(scope="session")
def fleet_sshd() -> Iterator[PrivateSshd]:
    """One private sshd for the session (the hosts' keys are added by `ssh_hosts`)."""
    sshd = PrivateSshd(Path(tempfile.mkdtemp(prefix="jsd-", dir="/tmp")))
    try:
        sshd.start()
        yield sshd
    finally:
        sshd.cleanup()


@pytest.fixture(scope="session")
def fleet_servers() -> Iterator[list[PrivateServer]]:
    """Five private fail2ban servers (no-op actions), started in parallel."""
    names = [f"h{index}" for index in range(1, FLEET_SIZE + 1)]
    for servers in quiet_servers("jfl-", names, FLEET_JAILS, tz=FLEET_TZ):
        yield list(servers.values())


@pytest.fixture(scope="session")
def fleet_hosts(fleet_sshd: PrivateSshd, fleet_servers: list[PrivateServer]) -> list[SshHost]:
    """The five hosts, keys made and forced in sshd's authorized_keys (not reset: ssh_hosts)."""
    hosts = []
    for index, server in enumerate(fleet_servers, start=1):
        name = f"h{index}"
        private_key, public_key = key_pair_generate(f"jailadmin-{name}")
        fleet_sshd.add_key(public_key, agent_command(server))
        hosts.append(
            SshHost(
                name=name,
                destination=fleet_sshd.destination(),
                private_key=private_key,
                public_key=public_key,
                host_key=fleet_sshd.host_key_line(),
                server=server,
            )
        )
    return hosts


@pytest.fixture
def ssh_hosts(fleet_sshd: PrivateSshd, fleet_hosts: list[SshHost]) -> list[SshHost]:
    """The five hosts h1..h5 with sshd up and every fail2ban reset (no bans, jails as set)."""
    fleet_sshd.start()  # a no-op unless a test stopped it
    _parallel(lambda host: host.server.reset(), fleet_hosts)
    return fleet_hosts


def ssh_host_rows(ssh_hosts: Sequence[SshHost], **fields: Any) -> list[Any]:
    """jails.hosts.models.Host rows (kind ssh, enabled) for the hosts; `fields` override."""
    from jails.hosts.models import Host

    return [
        Host.objects.create(
            name=host.name,
            kind=Host.Kind.SSH,
            address=host.destination,
            ssh_private_key=host.private_key,
            ssh_public_key=host.public_key,
            ssh_host_key=host.host_key,
            **fields,
        )
        for host in ssh_hosts
    ]


@pytest.fixture
def ssh_host_records(db: Any, ssh_hosts: list[SshHost]) -> list[Any]:
    """ssh_host_rows(ssh_hosts): the five hosts as enabled Host rows (the site is a fleet)."""
    return ssh_host_rows(ssh_hosts)


@pytest.fixture(autouse=True)
def _fleet_links_closed() -> Iterator[None]:
    """After each test, close the fleet links of the state the test ended with: their pooled
    ssh connections are processes, which must not outlive the test that opened them."""
    yield
    from django.apps import apps

    if not apps.ready:
        return
    fleet = getattr(apps.get_app_config("jails").state, "fleet", None)
    if fleet is None:
        return
    with fleet.lock:
        services = [service for _, service in fleet.services.values()]
    for service in services:
        service.client.close()


@pytest.fixture
def db_threads() -> Iterator[list[str]]:
    """The names of the threads that opened a database connection while the test ran."""
    opened: list[str] = []

    def note(sender: object, **kwargs: object) -> None:
        opened.append(threading.current_thread().name)

    connection_created.connect(note)
    try:
        yield opened
    finally:
        connection_created.disconnect(note)
