"""The safe path's verification of `ignoreip` and a jail's actions, against a real private
fail2ban, directly and through a real agent: normalised entries are not mistaken for a
failure, and a change the running jail does not carry is rolled back like any other.

fail2ban applies these reliably on `reload JAIL`; what the check guards against is the jail
being changed under the site between reload and check (a second administrator, a tool on the
host). The rollback tests make that happen for real: the host's fail2ban-client is a wrapper
that runs the real client and, after a reload, sends one real command to the real server.
"""
# Fixtures imported by name from tests/configuration/config_host.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

import pytest

from jails.configuration.services import overrides
from jails.services.audit import Actor
from tests.configuration.config_host import (  # noqa: F401 (fixtures)
    MODES,
    ConfigHost,
    config_agent_server,
    config_host,
    config_runtime,
    config_server,
)
from tests.conftest import runtime_install
from tests.support.agent_process import AgentProcess

pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]

ADMIN = Actor(name="admin", source="web")
SECOND_ACTION = "jailadmin-record\njailadmin-record[name=second]"


@MODES
def test_ignoreip_normalised_by_fail2ban_is_verified(config_runtime, config_host):
    # fail2ban stores 127.0.0.1/8 as 127.0.0.0/8 and 2001:db8:0:0::1 as 2001:db8::1: the
    # check compares networks, so this correct change is kept, not rolled back.
    outcome = overrides.jail_settings_save(
        config_runtime,
        jail="beta",
        values={"ignoreip": "127.0.0.1/8 2001:db8:0:0::1 198.51.100.7"},
        expected_sha256=None,
        actor=ADMIN,
    )
    assert outcome.ok, outcome.summary
    assert outcome.reloaded == ("beta",)
    live = set(config_host.get("beta", "ignoreip"))
    assert {"127.0.0.0/8", "2001:db8::1", "198.51.100.7"} <= live
    assert "127.0.0.1/8" not in live


@MODES
def test_action_change_is_verified(config_runtime, config_host):
    outcome = overrides.jail_settings_save(
        config_runtime,
        jail="beta",
        values={"action": SECOND_ACTION},
        expected_sha256=None,
        actor=ADMIN,
        administrator=True,
    )
    assert outcome.ok, outcome.summary
    assert sorted(config_host.get("beta", "actions")) == [
        "jailadmin-record",
        "jailadmin-record-second",
    ]


def _interfering_client(config_host: ConfigHost, directory: Path, command: Sequence[str]) -> str:
    """A fail2ban-client that runs the real one and, after a successful reload, sends
    `command` to the server (its exit code ignored: on the rollback's reload the command
    may have nothing left to undo). `usr` beside its `bin` is the real package's, so the
    host still finds fail2ban's Python package from the client's path."""
    install = config_host.server.install
    assert install is not None
    real = Path(install.client)
    (directory / "bin").mkdir(parents=True)
    (directory / "usr").symlink_to(real.resolve().parent.parent / "usr")
    socket, conf = str(config_host.server.socket_path), str(config_host.conf)
    extra = " ".join(shlex.quote(part) for part in command)
    script = directory / "bin" / "fail2ban-client"
    script.write_text(
        "#!/bin/sh\n"
        f'{shlex.quote(str(real))} "$@"\n'
        "rc=$?\n"
        'case " $* " in *" reload"*)\n'
        f"  [ $rc -eq 0 ] && {shlex.quote(str(real))} -c {shlex.quote(conf)}"
        f" -s {shlex.quote(socket)} {extra}"
        " >/dev/null 2>&1\n"
        ";; esac\n"
        "exit $rc\n"
    )
    script.chmod(0o755)
    return str(script)


@pytest.fixture
def interfered(request: pytest.FixtureRequest, config_host: ConfigHost, tmp_path: Path):
    """(mode, command) → a runtime whose host reloads through _interfering_client, directly
    or through its own agent (stopped after the test)."""
    agents: list[AgentProcess] = []

    def build(mode: str, command: Sequence[str]):
        client = _interfering_client(config_host, tmp_path / "client", command)
        if mode == "direct":
            return runtime_install(config_host.server, agent=None, fail2ban_client=client)
        agent = AgentProcess(
            str(config_host.server.socket_path),
            options=["--config-dir", str(config_host.conf), "--fail2ban-client", client],
        )
        agents.append(agent)
        agent.start()
        return runtime_install(config_host.server, agent=agent)

    yield build
    for agent in agents:
        agent.cleanup()


def _rolled_back(outcome, config_host: ConfigHost, word: str) -> None:
    assert not outcome.ok
    assert outcome.stage == "verify", outcome.summary
    assert word in outcome.message
    assert outcome.rolled_back and outcome.restored, outcome.summary
    # The file is as before (absent) and the jail runs the previous configuration.
    assert not (config_host.conf / "jail.d" / "beta.local").exists()
    assert "beta" in config_host.running()


@pytest.mark.parametrize("mode", ["direct", "agent"])
def test_ignoreip_that_did_not_take_effect_is_rolled_back(interfered, config_host, mode):
    runtime = interfered(mode, ["set", "beta", "delignoreip", "198.51.100.7"])
    outcome = overrides.jail_settings_save(
        runtime,
        jail="beta",
        values={"ignoreip": "127.0.0.1/8 198.51.100.7"},
        expected_sha256=None,
        actor=ADMIN,
    )
    _rolled_back(outcome, config_host, "ignores")
    assert "198.51.100.7" in outcome.message
    assert "198.51.100.7" not in config_host.get("beta", "ignoreip")


@pytest.mark.parametrize("mode", ["direct", "agent"])
def test_action_that_did_not_take_effect_is_rolled_back(interfered, config_host, mode):
    runtime = interfered(mode, ["set", "beta", "delaction", "jailadmin-record-second"])
    outcome = overrides.jail_settings_save(
        runtime,
        jail="beta",
        values={"action": SECOND_ACTION},
        expected_sha256=None,
        actor=ADMIN,
        administrator=True,
    )
    _rolled_back(outcome, config_host, "actions")
    assert "jailadmin-record-second" in outcome.message
    assert config_host.get("beta", "actions") == ["jailadmin-record"]


def test_interfering_client_is_the_real_client(interfered, config_host):
    # The wrapper changes nothing but what it is told to, after a reload: a plain edit
    # through it is applied and verified as usual.
    runtime = interfered("direct", ["set", "alpha", "delignoreip", "192.0.2.250"])
    outcome = overrides.jail_settings_save(
        runtime, jail="beta", values={"maxretry": "8"}, expected_sha256=None, actor=ADMIN
    )
    assert outcome.ok, outcome.summary
    assert config_host.get("beta", "maxretry") == 8
