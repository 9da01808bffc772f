"""`manage.py f2bconfig show|edit|test|history|diff|restore` against a real private fail2ban
and its own configuration directory (through the same services as the pages)."""
# Fixtures imported by name from tests/configuration/config_host.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from jails.configuration.models import ConfigVersion
from jails.models import AuditEntry
from tests.configuration.config_host import (  # noqa: F401 (fixtures)
    MODES,
    config_agent_server,
    config_host,
    config_runtime,
    config_server,
)

pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]


def f2bconfig(*args: str, stdin: str | None = None, monkeypatch=None) -> str:
    out = io.StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    call_command("f2bconfig", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def keep_state(monkeypatch):
    # The command reloads the runtime state from the database; tests point it at the
    # fixture's server, so that load is skipped here.
    monkeypatch.setattr("jails.management.base.runtime_load", lambda state: None)


@MODES
def test_show_json_lists_every_jail(config_runtime, config_host, keep_state):
    data = json.loads(f2bconfig("show", "--json"))
    assert {j["name"] for j in data["jails"]} == {"alpha", "beta", "sshd"}
    one = f2bconfig("show", "alpha")
    assert "maxretry = 3    # jail.conf:" in one


@MODES
def test_edit_from_file_then_history_diff_restore(
    config_runtime, config_host, keep_state, tmp_path
):
    source = tmp_path / "alpha.local"
    source.write_text("[alpha]\nmaxretry = 8\n")
    out = f2bconfig("edit", "jail.d/alpha.local", "--from", str(source), "--reason", "cli")
    assert "Saved jail.d/alpha.local" in out
    assert config_host.get("alpha", "maxretry") == 8
    source.write_text("[alpha]\nmaxretry = 2\n")
    f2bconfig("edit", "jail.d/alpha.local", "--from", str(source))
    assert config_host.get("alpha", "maxretry") == 2
    history = json.loads(f2bconfig("history", "jail.d/alpha.local", "--json"))
    assert [v["source"] for v in history] == ["site", "site"]
    old, new = history[1]["id"], history[0]["id"]
    diff = json.loads(f2bconfig("diff", str(old), str(new), "--json"))["diff"]
    assert "-maxretry = 8" in diff and "+maxretry = 2" in diff
    f2bconfig("restore", str(old))
    assert config_host.get("alpha", "maxretry") == 8
    entry = AuditEntry.objects.filter(action="config_restore").get()
    assert entry.source == "command" and entry.ok is True


def test_edit_from_stdin_and_refusal(config_runtime, config_host, keep_state, monkeypatch):
    out = f2bconfig(
        "edit", "jail.d/beta.local", stdin="[beta]\nmaxretry = 7\n", monkeypatch=monkeypatch
    )
    assert "Saved" in out
    assert config_host.get("beta", "maxretry") == 7
    with pytest.raises(CommandError, match="fail2ban refused"):
        f2bconfig(
            "edit",
            "filter.d/beta.local",
            stdin="[Definition]\nfailregex = ^(<HOST>\n",
            monkeypatch=monkeypatch,
        )
    assert not (config_host.conf / "filter.d" / "beta.local").exists()
    with pytest.raises(CommandError, match="live directly in"):
        f2bconfig("edit", "../jail.local", stdin="x", monkeypatch=monkeypatch)


def test_test_dry_run_writes_nothing(config_runtime, config_host, keep_state, tmp_path):
    assert "OK" in f2bconfig("test")
    bad = tmp_path / "bad.local"
    bad.write_text(f"[alpha]\nlogpath = {config_host.server.logs_dir}/missing.log\n")
    with pytest.raises(CommandError, match="refused"):
        f2bconfig("test", "jail.d/alpha.local", "--from", str(bad))
    good = tmp_path / "good.local"
    good.write_text("[alpha]\nmaxretry = 4\n")
    assert "OK" in f2bconfig("test", "jail.d/alpha.local", "--from", str(good))
    assert not (config_host.conf / "jail.d" / "alpha.local").exists()
    assert config_host.get("alpha", "maxretry") == 3
    assert not ConfigVersion.objects.filter(source="site").exists()
