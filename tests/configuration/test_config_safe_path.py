"""The configuration editor's safe path against a real private fail2ban and its own config dir,
directly and through a real agent: read as fail2ban reads it, refuse what fail2ban refuses,
roll back what does not come up, never overwrite a file changed since it was shown, versions."""
# Fixtures imported by name from tests/configuration/config_host.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

import pytest

from jails.configuration.models import ConfigVersion
from jails.configuration.services import files as file_service
from jails.configuration.services import overrides
from jails.configuration.services.files import ConfigPermissionDenied, FileChange
from jails.models import AuditEntry
from jails.services.audit import Actor
from tests.configuration.config_host import (  # noqa: F401 (fixtures)
    MODES,
    config_agent_server,
    config_host,
    config_runtime,
    config_server,
)

pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]

ADMIN = Actor(name="admin", source="web")


@MODES
def test_config_get_reads_every_jail_with_origins(config_runtime, config_host):
    # A disabled jail in a .local file: listed, with its settings' file and line.
    (config_host.conf / "jail.d").mkdir(exist_ok=True)
    (config_host.conf / "jail.d" / "gamma.local").write_text(
        "[gamma]\n# not running\nenabled = false\nfilter = sshd\nmaxretry = 9\n"
    )
    config = file_service.config_get(config_runtime)
    names = {jail.name: jail for jail in config.jails}
    assert set(names) == {"alpha", "beta", "sshd", "gamma"}
    assert [names[n].enabled for n in ("alpha", "beta", "sshd", "gamma")] == [
        True,
        True,
        True,
        False,
    ]
    gamma = names["gamma"]
    assert gamma.value("maxretry") == "9"
    origin = gamma.origin("maxretry")
    assert (origin.file, origin.line, origin.section) == ("jail.d/gamma.local", 5, "gamma")
    # Inherited from [DEFAULT] of jail.conf, with the line fail2ban read it from.
    backend = names["alpha"].origin("backend")
    assert (backend.file, backend.section) == ("jail.conf", "DEFAULT")
    assert (
        (config_host.conf / "jail.conf")
        .read_text()
        .splitlines()[backend.line - 1]
        .startswith("backend")
    )
    assert config.read_order[-1] == "jail.d/gamma.local"


@MODES
def test_edit_applies_reloads_and_verifies(config_runtime, config_host):
    outcome = overrides.jail_settings_save(
        config_runtime,
        jail="alpha",
        values={"maxretry": "7", "findtime": "20m"},
        expected_sha256=None,
        actor=ADMIN,
    )
    assert outcome.ok, outcome.summary
    assert outcome.reloaded == ("alpha",)
    assert config_host.get("alpha", "maxretry") == 7
    assert config_host.get("alpha", "findtime") == 1200
    text = (config_host.conf / "jail.d" / "alpha.local").read_text()
    assert text == "[alpha]\nmaxretry = 7\nfindtime = 20m\n"
    # The shipped jail.conf is untouched; the effective value now comes from the override.
    assert (config_host.conf / "jail.conf").read_bytes() == (
        config_host.pristine / "jail.conf"
    ).read_bytes()
    origin = file_service.config_get(config_runtime).jail("alpha").origin("maxretry")
    assert (origin.file, origin.line) == ("jail.d/alpha.local", 2)
    version = ConfigVersion.objects.get(path="jail.d/alpha.local")
    assert (version.source, version.actor, version.content) == ("site", "admin", text)
    entry = AuditEntry.objects.get(action="config_jail_settings")
    assert entry.ok is True and entry.jail == "alpha"
    assert entry.parameters["reloaded"] == ["alpha"]


@MODES
def test_broken_filter_is_refused_and_nothing_written(config_runtime, config_host):
    before = sorted(p.name for p in (config_host.conf / "filter.d").iterdir())
    outcome = file_service.config_files_save(
        config_runtime,
        changes=[
            FileChange("filter.d/alpha.local", "[Definition]\nfailregex = ^(x <HOST>\n", None)
        ],
        actor=ADMIN,
        reason="broken on purpose",
        administrator=True,
    )
    assert not outcome.ok
    assert outcome.stage == "test"
    assert "alpha" in outcome.output and "regular expression" in outcome.output
    assert sorted(p.name for p in (config_host.conf / "filter.d").iterdir()) == before
    assert "alpha" in config_host.running()
    assert not ConfigVersion.objects.filter(path="filter.d/alpha.local").exists()
    entry = AuditEntry.objects.get(action="config_edit")
    assert entry.ok is False and entry.parameters["stage"] == "test"


@MODES
def test_config_test_failure_is_refused(config_runtime, config_host):
    # A log path that does not exist: `fail2ban-client -t` itself refuses it.
    outcome = overrides.jail_settings_save(
        config_runtime,
        jail="beta",
        values={"logpath": "/nonexistent/jailadmin/beta.log"},
        expected_sha256=None,
        actor=ADMIN,
    )
    assert (outcome.ok, outcome.stage) == (False, "test")
    assert "Have not found any log file for beta" in outcome.output
    assert not (config_host.conf / "jail.d" / "beta.local").exists()


@MODES
def test_jail_that_does_not_come_up_is_rolled_back(config_runtime, config_host):
    # A directory as log path passes `-t` (it exists) but the server cannot open it: the
    # reload drops the jail; the previous file comes back and the jail runs as before.
    (config_host.conf / "jail.d").mkdir(exist_ok=True)
    override = config_host.conf / "jail.d" / "beta.local"
    override.write_text("[beta]\nmaxretry = 6\n")
    config_host.server.reload()
    config_host.server.wait_ready()
    assert config_host.get("beta", "maxretry") == 6
    current = file_service.config_file_get(config_runtime, path="jail.d/beta.local")
    outcome = overrides.jail_settings_save(
        config_runtime,
        jail="beta",
        values={"logpath": str(config_host.server.logs_dir), "maxretry": "2"},
        expected_sha256=current.sha256,
        actor=ADMIN,
    )
    assert not outcome.ok
    assert outcome.stage == "reload"
    assert outcome.rolled_back and outcome.restored
    assert "Is a directory" in outcome.output
    assert override.read_text() == "[beta]\nmaxretry = 6\n"
    assert "beta" in config_host.running()
    assert config_host.get("beta", "maxretry") == 6
    assert config_host.get("beta", "logpath") == [str(config_host.server.log_path("beta"))]
    assert "rolled back" in outcome.summary.lower()
    assert AuditEntry.objects.get(action="config_jail_settings").ok is False


@MODES
def test_file_changed_since_shown_is_not_overwritten(config_runtime, config_host):
    (config_host.conf / "jail.d").mkdir(exist_ok=True)
    path = config_host.conf / "jail.d" / "alpha.local"
    path.write_text("[alpha]\nmaxretry = 3\n")
    shown = file_service.config_file_get(config_runtime, path="jail.d/alpha.local")
    # Someone else saves first (another tab, or an editor on the host).
    first = file_service.config_files_save(
        config_runtime,
        changes=[FileChange("jail.d/alpha.local", "[alpha]\nmaxretry = 8\n", shown.sha256)],
        actor=ADMIN,
        reason="first",
        administrator=True,
    )
    assert first.ok, first.summary
    second = file_service.config_files_save(
        config_runtime,
        changes=[FileChange("jail.d/alpha.local", "[alpha]\nmaxretry = 9\n", shown.sha256)],
        actor=ADMIN,
        reason="second",
        administrator=True,
    )
    assert (second.ok, second.stage) == (False, "conflict")
    assert second.current is not None and "maxretry = 8" in second.current.content
    assert path.read_text() == "[alpha]\nmaxretry = 8\n"
    assert config_host.get("alpha", "maxretry") == 8


@MODES
def test_new_file_that_appeared_meanwhile_is_not_overwritten(config_runtime, config_host):
    (config_host.conf / "jail.d").mkdir(exist_ok=True)
    (config_host.conf / "jail.d" / "beta.local").write_text("[beta]\n# theirs\n")
    outcome = file_service.config_files_save(
        config_runtime,
        changes=[FileChange("jail.d/beta.local", "[beta]\nmaxretry = 2\n", None)],
        actor=ADMIN,
        reason="",
        administrator=True,
    )
    assert outcome.stage == "conflict"
    assert (config_host.conf / "jail.d" / "beta.local").read_text() == "[beta]\n# theirs\n"


@MODES
def test_version_restored_through_the_safe_path(config_runtime, config_host):
    for maxretry in (5, 11):
        current = file_service.config_file_get(config_runtime, path="jail.d/alpha.local")
        outcome = overrides.jail_settings_save(
            config_runtime,
            jail="alpha",
            values={"maxretry": str(maxretry)},
            expected_sha256=current.sha256,
            actor=ADMIN,
        )
        assert outcome.ok, outcome.summary
    assert config_host.get("alpha", "maxretry") == 11
    first = ConfigVersion.objects.filter(path="jail.d/alpha.local").order_by("id").first()
    assert "maxretry = 5" in first.content
    restored = file_service.version_restore(
        config_runtime, version_id=first.pk, actor=ADMIN, administrator=True
    )
    assert restored.ok, restored.summary
    assert config_host.get("alpha", "maxretry") == 5
    assert (config_host.conf / "jail.d" / "alpha.local").read_text() == first.content
    newest = ConfigVersion.objects.filter(path="jail.d/alpha.local").first()
    assert newest.content == first.content and newest.reason.startswith("restore version")
    diff = file_service.file_diff(first.content, "[alpha]\nmaxretry = 11\n", "x")
    assert "-maxretry = 5" in diff and "+maxretry = 11" in diff


@MODES
def test_outside_change_recorded_when_next_read(config_runtime, config_host):
    outcome = overrides.jail_settings_save(
        config_runtime, jail="alpha", values={"maxretry": "4"}, expected_sha256=None, actor=ADMIN
    )
    assert outcome.ok
    (config_host.conf / "jail.d" / "alpha.local").write_text("[alpha]\nmaxretry = 12\n")
    file_service.config_get(config_runtime)
    sources = list(
        ConfigVersion.objects.filter(path="jail.d/alpha.local").values_list("source", flat=True)
    )
    assert sources == ["outside", "site"]
    assert ConfigVersion.objects.filter(path="jail.d/alpha.local").first().content == (
        "[alpha]\nmaxretry = 12\n"
    )


@MODES
def test_ignore_list_persisted_survives_reload(config_runtime, config_host):
    outcome = overrides.ignore_persist(
        config_runtime, jail="beta", address="198.51.100.7", add=True, actor=ADMIN
    )
    assert outcome.ok, outcome.summary
    config_host.server.reload()  # fail2ban re-reads everything: the entry must come back
    config_host.server.wait_ready()
    assert "198.51.100.7" in config_host.get("beta", "ignoreip")
    removed = overrides.ignore_persist(
        config_runtime, jail="beta", address="198.51.100.7", add=False, actor=ADMIN
    )
    assert removed.ok
    config_host.server.reload()
    config_host.server.wait_ready()
    assert "198.51.100.7" not in config_host.get("beta", "ignoreip")


@MODES
def test_deactivate_and_activate(config_runtime, config_host):
    off = overrides.jail_enabled_set(config_runtime, jail="beta", enabled=False, actor=ADMIN)
    assert off.ok, off.summary
    assert "beta" not in config_host.running()
    assert file_service.config_get(config_runtime).jail("beta").enabled is False
    on = overrides.jail_enabled_set(config_runtime, jail="beta", enabled=True, actor=ADMIN)
    assert on.ok, on.summary
    assert "beta" in config_host.running()


@MODES
def test_create_filter_and_jail(config_runtime, config_host):
    made = overrides.filter_create(
        config_runtime,
        name="web-login",
        failregex=r"^\s*LOGIN FAILED from <HOST>$",
        ignoreregex="",
        datepattern="{^LN-BEG}%%Y-%%m-%%d %%H:%%M:%%S",
        actor=ADMIN,
        administrator=True,
    )
    assert made.ok, made.summary
    log = config_host.server.logs_dir / "web.log"
    log.touch()
    jail = overrides.jail_create(
        config_runtime,
        name="web",
        filter_name="web-login",
        logpath=str(log),
        settings={"maxretry": "2"},
        actor=ADMIN,
        administrator=True,
    )
    assert jail.ok, jail.summary
    assert "web" in config_host.running()
    assert config_host.get("web", "maxretry") == 2
    assert any("LOGIN FAILED" in r for r in config_host.get("web", "failregex"))


@MODES
def test_action_definitions_need_an_administrator(config_runtime, config_host):
    with pytest.raises(ConfigPermissionDenied):
        file_service.config_files_save(
            config_runtime,
            changes=[FileChange("action.d/iptables.local", "[Init]\nblocktype = DROP\n", None)],
            actor=ADMIN,
            reason="",
            administrator=False,
        )
    assert not (config_host.conf / "action.d" / "iptables.local").exists()
    outcome = file_service.config_files_save(
        config_runtime,
        changes=[FileChange("action.d/iptables.local", "[Init]\nblocktype = DROP\n", None)],
        actor=ADMIN,
        reason="drop instead of reject",
        administrator=True,
    )
    assert outcome.ok, outcome.summary
    entry = AuditEntry.objects.get(action="config_edit")
    assert "+blocktype = DROP" in entry.parameters["diff"]["action.d/iptables.local"]


def test_jail_action_needs_an_administrator(config_runtime, config_host):
    with pytest.raises(ConfigPermissionDenied):
        overrides.jail_settings_save(
            config_runtime,
            jail="alpha",
            values={"action": 'jailadmin-record[actionban="touch /tmp/pwned"]'},
            expected_sha256=None,
            actor=ADMIN,
            administrator=False,
        )
    assert not (config_host.conf / "jail.d" / "alpha.local").exists()


def test_simultaneous_edits_of_one_file_one_wins(config_host):
    # Two writers that both saw the same (absent) file at the same moment: the directory
    # lock and the hash check let exactly one write; the other gets the winner's content.
    from concurrent.futures import ThreadPoolExecutor

    from jails.agent import configfiles
    from jails.agent.operations import HostConfig

    server = config_host.server
    config = HostConfig(
        socket=str(server.socket_path),
        config_dir=str(server.conf_dir),
        fail2ban_client=(server.install.client,),
    )

    def edit(maxretry: int) -> dict:
        change = {
            "path": "jail.d/alpha.local",
            "content": f"[alpha]\nmaxretry = {maxretry}\n",
            "expected_sha256": None,
        }
        return configfiles.config_apply(config, server.client(), changes=[change])

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(edit, (6, 7)))
    assert sorted(r["ok"] for r in results) == [False, True]
    winner = next(r for r in results if r["ok"])
    loser = next(r for r in results if not r["ok"])
    assert loser["stage"] == "conflict"
    written = (config_host.conf / "jail.d" / "alpha.local").read_text()
    assert loser["current"]["content"] == written
    assert winner["written"][0]["sha256"] == loser["current"]["sha256"]
    assert config_host.get("alpha", "maxretry") == int(written.split("= ")[1])
