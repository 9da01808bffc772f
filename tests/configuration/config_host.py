"""Fixtures for the configuration editor's tests: a private fail2ban whose configuration
directory is the tests' own writable copy (fail2ban's shipped filter.d and action.d included),
reached directly or through a real agent.

Test modules import the fixtures they use (`from tests.configuration.config_host import ...`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from jails.fail2ban.server import JailSpec, PrivateServer, package_roots
from tests.conftest import runtime_install
from tests.support.agent_process import AgentProcess, server_options

# Two toy jails (the harness's own filter and log line) and one on fail2ban's shipped sshd
# filter; every jail reads its own log file under logs/.
CONFIG_JAILS = (
    JailSpec("alpha", maxretry=3, findtime="10m", bantime="10m"),
    JailSpec("beta", maxretry=4, findtime="10m", bantime="1h"),
    JailSpec("sshd", filter="sshd", maxretry=5, findtime="10m", bantime="10m"),
)


def shipped_action_dir(server: PrivateServer) -> Path:
    assert server.install is not None
    for root in package_roots(server.install):
        candidate = root / "etc" / "fail2ban" / "action.d"
        if (candidate / "iptables.conf").is_file():
            return candidate
    raise FileNotFoundError("fail2ban's action.d not found")


@dataclass
class ConfigHost:
    """The private server and a pristine copy of its configuration directory."""

    server: PrivateServer
    pristine: Path

    @property
    def conf(self) -> Path:
        return self.server.conf_dir

    def restore(self) -> None:
        """Put the configuration back as it was at start and reload if it had changed."""
        if _same_tree(self.pristine, self.conf):
            if self.server.is_running() and set(self.running()) >= {j.name for j in CONFIG_JAILS}:
                return
        else:
            if self.server.is_running():
                # fail2ban keeps a removed jail's bans in its database and restores them when a
                # jail of that name comes back (a permanent blocklist jail made by one test
                # would start the next one "already banned"): the start state had no bans.
                self.server.client().send("unban", "--all")
            shutil.rmtree(self.conf)
            shutil.copytree(self.pristine, self.conf, symlinks=True)
        if self.server.is_running():
            self.server.reload()
            self.server.wait_ready()
        else:
            self.server.start()

    def running(self) -> list[str]:
        status = dict(self.server.client().send("status"))
        return [n.strip() for n in str(status.get("Jail list", "")).split(",") if n.strip()]

    def get(self, jail: str, option: str):
        return self.server.client().send("get", jail, option)


def _same_tree(a: Path, b: Path) -> bool:
    files_a = {p.relative_to(a): p for p in a.rglob("*")}
    files_b = {p.relative_to(b): p for p in b.rglob("*")}
    if files_a.keys() != files_b.keys():
        return False
    return all(
        p.is_dir() == files_b[rel].is_dir()
        and (p.is_dir() or p.read_bytes() == files_b[rel].read_bytes())
        for rel, p in files_a.items()
    )


def config_host_run(
    prefix: str, jails: Sequence[JailSpec], *, shipped_actions: bool = False
) -> Iterator[ConfigHost]:
    """A private fail2ban on a configuration the tests may change, with a pristine copy to
    restore: the body of a module-scoped fixture (`yield from config_host_run(…)`)."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    server = PrivateServer(base, jails)
    if shipped_actions:
        # The shipped action.d beside the harness's own action: real definitions to edit.
        shutil.copytree(
            shipped_action_dir(server), server.conf_dir / "action.d", dirs_exist_ok=True
        )
    try:
        server.start()
        pristine = base / "pristine"
        shutil.copytree(server.conf_dir, pristine, symlinks=True)
        yield ConfigHost(server, pristine)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def config_agent_run(host: ConfigHost) -> Iterator[AgentProcess]:
    """A real agent in front of `host`'s server, able to reload it (`yield from`)."""
    agent = AgentProcess(str(host.server.socket_path), options=server_options(host.server))
    try:
        agent.start()
        yield agent
    finally:
        agent.cleanup()


@pytest.fixture(scope="module")
def config_server() -> Iterator[ConfigHost]:
    """One private fail2ban per test module, on a configuration the tests may change."""
    yield from config_host_run("jc-", CONFIG_JAILS, shipped_actions=True)


@pytest.fixture(scope="module")
def config_agent_server(config_server: ConfigHost) -> Iterator[AgentProcess]:
    yield from config_agent_run(config_server)


@pytest.fixture
def config_host(config_server: ConfigHost) -> ConfigHost:
    """The module's server with its configuration as it was at start, every jail running."""
    config_server.restore()
    return config_server


@pytest.fixture
def config_runtime(request: pytest.FixtureRequest, config_host: ConfigHost):
    """A fresh state reaching config_host directly, or (parametrised "agent") only through
    the agent: then the site's own socket, config dir and client point nowhere."""
    mode = getattr(request, "param", "direct")
    agent = None
    if mode == "agent":
        agent = request.getfixturevalue("config_agent_server")
        agent.start()
    return runtime_install(config_host.server, agent=agent)


MODES = pytest.mark.parametrize("config_runtime", ["direct", "agent"], indirect=True)
