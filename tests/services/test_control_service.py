"""Ignore list, tuning and control against the real private fail2ban."""

from __future__ import annotations

import pytest

from jails.agent import operations as host_operations
from jails.fail2ban import InvalidArgument, UnknownJail
from jails.models import AuditEntry
from jails.services import control as control_service
from jails.services.audit import Actor
from jails.services.control import ReloadFailed
from tests.support.recording_proxy import RecordingProxy

# Every test that uses `runtime` runs directly against fail2ban and again through the agent.
RUNTIME_MODES = ("direct", "agent")
pytestmark = pytest.mark.django_db

ACTOR = Actor(name="tester", source="command")


def jail_names(f2b) -> set[str]:
    status = dict(f2b.client().send("status"))
    return {n.strip() for n in status["Jail list"].split(",") if n.strip()}


def audit() -> list[tuple[str, str, bool]]:
    return [(e.action, e.jail, e.ok) for e in AuditEntry.objects.order_by("id")]


# Ignore list --------------------------------------------------------------------------------------
def test_ignore_add_and_remove_change_fail2ban_and_are_audited(runtime, f2b):
    listed = control_service.ignore_add(runtime, jail="sshd", address="10.0.0.1/8", actor=ACTOR)
    assert listed == ["10.0.0.0/8"]
    assert f2b.client().send("get", "sshd", "ignoreip") == ["10.0.0.0/8"]
    control_service.ignore_add(runtime, jail="sshd", address="2001:DB8::1", actor=ACTOR)
    control_service.ignore_remove(runtime, jail="sshd", address="10.0.0.0/8", actor=ACTOR)
    assert f2b.client().send("get", "sshd", "ignoreip") == ["2001:db8::1"]
    assert audit() == [
        ("ignore_add", "sshd", True),
        ("ignore_add", "sshd", True),
        ("ignore_remove", "sshd", True),
    ]


def test_ignore_remove_missing_entry_is_a_clear_error(runtime, f2b):
    with pytest.raises(InvalidArgument, match="not on the ignore list"):
        control_service.ignore_remove(runtime, jail="sshd", address="10.0.0.1", actor=ACTOR)
    assert audit() == [("ignore_remove", "sshd", False)]


def test_ignore_add_refuses_host_names_before_sending(runtime_at, f2b):
    with RecordingProxy(str(f2b.socket_path)) as proxy:
        state = runtime_at(proxy.path, recorded_by=proxy)
        with pytest.raises(InvalidArgument):
            control_service.ignore_add(state, jail="sshd", address="example.com", actor=ACTOR)
    assert proxy.commands == []
    assert f2b.client().send("get", "sshd", "ignoreip") == []


def test_ignore_list_runtime_change_is_lost_on_reload(runtime, f2b):
    control_service.ignore_add(runtime, jail="sshd", address="192.0.2.1", actor=ACTOR)
    control_service.server_reload(runtime, actor=ACTOR)
    assert f2b.client().send("get", "sshd", "ignoreip") == []


# Tune ---------------------------------------------------------------------------------------------
def test_jail_tune_sets_durations_and_count(runtime, f2b):
    changes = control_service.jail_tune(
        runtime, jail="sshd", actor=ACTOR, bantime="1d", findtime="30m", maxretry="7"
    )
    assert [(c.key, c.old, c.new) for c in changes] == [
        ("bantime", 600, 86400),
        ("findtime", 600, 1800),
        ("maxretry", 3, 7),
    ]
    client = f2b.client()
    assert [client.send("get", "sshd", k) for k in ("bantime", "findtime", "maxretry")] == [
        86400,
        1800,
        7,
    ]
    [entry] = AuditEntry.objects.all()
    assert entry.parameters["changes"] == {
        "bantime": [600, 86400],
        "findtime": [600, 1800],
        "maxretry": [3, 7],
    }


def test_jail_tune_permanent_bantime(runtime, f2b):
    control_service.jail_tune(runtime, jail="postfix", actor=ACTOR, bantime="-1")
    assert f2b.client().send("get", "postfix", "bantime") == -1


def test_jail_tune_only_sends_what_changes(runtime_at, f2b):
    with RecordingProxy(str(f2b.socket_path)) as proxy:
        state = runtime_at(proxy.path, recorded_by=proxy)
        changes = control_service.jail_tune(
            state, jail="sshd", actor=ACTOR, bantime="10m", maxretry="4"
        )
    assert [c.key for c in changes] == ["maxretry"]
    sets = [c for c in proxy.commands if c[0] == "set"]
    assert sets == [["set", "sshd", "maxretry", "4"]]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bantime", "10 minutes"),
        ("bantime", "0"),
        ("findtime", "-1"),
        ("maxretry", "0"),
        ("maxretry", "3.5"),
        ("bantime", "1h; set sshd action"),
        ("findtime", "99999999999w"),
    ],
)
def test_jail_tune_invalid_value_sends_nothing(runtime_at, f2b, field, value):
    with RecordingProxy(str(f2b.socket_path)) as proxy:
        state = runtime_at(proxy.path, recorded_by=proxy)
        with pytest.raises(InvalidArgument):
            control_service.jail_tune(state, jail="sshd", actor=ACTOR, **{field: value})
    assert [c for c in proxy.commands if c[0] == "set"] == []
    assert audit() == [("tune", "sshd", False)]


# Idle, stop, start, reload ------------------------------------------------------------------------
def test_jail_idle_set_pauses_detection(runtime, f2b):
    control_service.jail_idle_set(runtime, jail="nginx-http-auth", idle=True, actor=ACTOR)
    # 1.0.2 has no `get J idle`: prove it by behaviour. An idle jail ignores its log.
    f2b.append_failures("nginx-http-auth", ["192.0.2.61"], count=5)
    f2b.append_failures("postfix", ["192.0.2.62"], count=6)
    from tests.conftest import wait_until

    wait_until(lambda: "192.0.2.62" in f2b.client().send("get", "postfix", "banip"))
    assert f2b.client().send("get", "nginx-http-auth", "banip") == []
    control_service.jail_idle_set(runtime, jail="nginx-http-auth", idle=False, actor=ACTOR)
    assert audit() == [("idle", "nginx-http-auth", True), ("idle", "nginx-http-auth", True)]


def test_jail_stop_then_start_brings_it_back_through_reload(runtime, f2b):
    control_service.jail_stop(runtime, jail="postfix", actor=ACTOR)
    assert "postfix" not in jail_names(f2b)
    result = control_service.jail_start(runtime, jail="postfix", actor=ACTOR)
    assert result.via_reload
    assert "postfix" in jail_names(f2b)
    assert audit() == [("stop", "postfix", True), ("start", "postfix", True)]


def test_jail_start_of_running_jail_uses_start_command(runtime, f2b):
    result = control_service.jail_start(runtime, jail="sshd", actor=ACTOR)
    assert not result.via_reload


def test_jail_start_unknown_jail_fails_after_reload(runtime, f2b):
    with pytest.raises(UnknownJail):
        control_service.jail_start(runtime, jail="notconfigured", actor=ACTOR)
    assert audit() == [("start", "notconfigured", False)]


def test_server_reload_keeps_bans_and_restores_configured_values(runtime, f2b):
    f2b.client().send("set", "sshd", "banip", "203.0.113.40")
    f2b.client().send("set", "sshd", "maxretry", "9")
    control_service.server_reload(runtime, actor=ACTOR, jail="sshd")
    assert f2b.client().send("get", "sshd", "maxretry") == 3
    assert f2b.client().send("get", "sshd", "banip") == ["203.0.113.40"]
    assert audit() == [("reload", "sshd", True)]


def test_server_reload_failure_shows_output_and_is_audited(runtime_at, tmp_path):
    state = runtime_at(config_dir=str(tmp_path / "missing"))
    with pytest.raises(ReloadFailed) as caught:
        control_service.server_reload(state, actor=ACTOR)
    assert "exit code" in str(caught.value) and caught.value.output
    [entry] = AuditEntry.objects.all()
    assert not entry.ok and "reload failed" in entry.error


def test_server_reload_missing_client_is_a_clear_error(runtime_at):
    state = runtime_at(fail2ban_client="/nonexistent/f2b-client")
    with pytest.raises(ReloadFailed, match="fail2ban-client not found"):
        control_service.server_reload(state, actor=ACTOR)


# Direct mode only: the site builds this argv only when it runs fail2ban-client itself.
@pytest.mark.parametrize("runtime", ["direct"], indirect=True)
def test_reload_command_is_built_from_the_state_settings(runtime):
    argv = control_service.reload_command(runtime, jail="sshd")
    assert argv[-6:] == [
        "-c",
        runtime.settings.fail2ban_config_dir,
        "-s",
        runtime.settings.fail2ban_socket,
        "reload",
        "sshd",
    ]
    with pytest.raises(InvalidArgument):
        control_service.reload_command(runtime, jail="-x")


# The reload subprocess gets an allow-listed environment, none of the site's secrets.
SECRETS = {
    "JAILADMIN_SECRET_KEY": "secret-key-that-must-not-leak",
    "JAILADMIN_ADMIN_PASSWORD": "admin-password-that-must-not-leak",
    "JAILADMIN_DATABASE_URL": "postgres://site:db-password-that-must-not-leak@db/site",
    "JAILADMIN_REDIS_URL": "redis://:redis-password-that-must-not-leak@127.0.0.1:6379/0",
    "DJANGO_SETTINGS_MODULE": "jailadmin.settings",
    "PYTHONPATH": "/nonexistent/our-interpreters-path",
}


def test_server_reload_passes_no_secret_to_fail2ban_client(runtime_at, f2b, tmp_path, monkeypatch):
    import json
    import sys

    # Set before runtime_at starts its agent: in agent mode the agent inherits them all and
    # its own reload must drop them, as the site's does.
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    dump = tmp_path / "environment.json"
    # A fail2ban-client that records the environment it was given, then runs the real one.
    wrapper = tmp_path / "fail2ban-client"
    wrapper.write_text(
        f"#!{sys.executable} -I\n"
        "import json, os, sys\n"
        f"with open({str(dump)!r}, 'w') as f: json.dump(dict(os.environ), f)\n"
        f"os.execv({f2b.install.client!r}, [{f2b.install.client!r}, *sys.argv[1:]])\n"
    )
    wrapper.chmod(0o755)
    state = runtime_at(fail2ban_client=str(wrapper))
    f2b.client().send("set", "sshd", "maxretry", "9")

    control_service.server_reload(state, actor=ACTOR, jail="sshd")

    seen = json.loads(dump.read_text())
    assert set(seen) <= set(host_operations.RELOAD_ENVIRONMENT)
    assert seen["TZ"] == "Asia/Kolkata" and seen["PATH"]
    for value in SECRETS.values():
        assert value not in json.dumps(seen)
    # The real reload still works with that environment: the configured value is back.
    assert f2b.client().send("get", "sshd", "maxretry") == 3
    assert audit() == [("reload", "sshd", True)]


def test_reload_environment_keeps_only_the_allow_list():
    env = host_operations.reload_environment({"PATH": "/bin", "LANG": "C.UTF-8", **SECRETS})
    assert env == {"PATH": "/bin", "LANG": "C.UTF-8"}
    assert host_operations.reload_environment({})["PATH"]  # a PATH even when we have none
