"""The dedicated blocklist jail created from /blocklists/ and `manage.py blocklists
create-jail`, through the configuration editor's safe path, against a real private fail2ban
whose configuration directory is the tests' own writable copy (tests/configuration/config_host)."""
# Fixtures imported by name from tests/configuration/config_host.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from jails.blocklists.services.imports import file_import
from jails.blocklists.services.jail import FILTER_PATH, LOGPATH, blocklist_jail_files
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

LIST_URL = "jails:blocklists:list"
CREATE_URL = "jails:blocklists:jail-create"
# fail2ban refuses a filter without <HOST>: `-t` fails on it.
BROKEN_FILTER = "[Definition]\nfailregex = ^no host group here$\n"


@pytest.fixture
def keep_state(monkeypatch):
    # The command reloads the runtime state from the database; tests point it at the
    # fixture's server, so that load is skipped here.
    monkeypatch.setattr("jails.management.base.runtime_load", lambda state: None)


def blocklists(*args: str) -> str:
    out = io.StringIO()
    call_command("blocklists", *args, stdout=out)
    return out.getvalue()


@MODES
def test_jail_create_button_creates_a_running_jail_that_imports(
    config_runtime, config_host, role_client
):
    admin = role_client("administrator", csrf=True)
    page = admin.get(reverse(LIST_URL)).content.decode()
    assert "Create the <code>blocklist</code> jail" in page
    assert f'action="{reverse(CREATE_URL)}"' in page
    # The how-to shows exactly the files the button writes.
    for file in blocklist_jail_files(jail="blocklist"):
        assert f"# {file.path}" in page
    assert "blocklist" not in config_host.running()

    token = admin.cookies["csrftoken"].value
    assert admin.post(reverse(CREATE_URL), {"jail": "blocklist"}).status_code == 403  # no CSRF
    response = admin.post(
        reverse(CREATE_URL), {"jail": "blocklist", "csrfmiddlewaretoken": token}, follow=True
    )
    html = response.content.decode()
    assert response.status_code == 200, html[:2000]
    assert "Created the jail blocklist" in html
    assert "Create the <code>blocklist</code> jail" not in html  # the how-to is gone

    # fail2ban really runs it, with the how-to's settings.
    assert "blocklist" in config_host.running()
    assert config_host.get("blocklist", "bantime") == -1
    assert config_host.get("blocklist", "logpath") == [LOGPATH]
    for file in blocklist_jail_files(jail="blocklist"):
        assert (config_host.conf / file.path).read_text() == file.content
    audit = AuditEntry.objects.get(action="config_jail_create", jail="blocklist")
    assert audit.ok and audit.actor == admin.user.username
    assert audit.parameters["paths"] == [FILTER_PATH, "jail.d/blocklist.local"]

    # An import into it works.
    [run] = file_import(
        config_runtime,
        text="61.1.1.1\n61.2.0.0/16\n",
        jail="blocklist",
        label="test",
        actor=Actor(name="system", source="test"),
    )
    assert run.banned == 2, run.errors
    banned = {str(ip) for ip in config_host.get("blocklist", "banip")}
    assert banned == {"61.1.1.1", "61.2.0.0/16"}


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_jail_create_is_administrators_only(config_runtime, config_host, role_client, role):
    client = role_client(role)
    page = client.get(reverse(LIST_URL)).content.decode()
    assert "Create the <code>blocklist</code> jail" in page  # the how-to, without the button
    assert f'action="{reverse(CREATE_URL)}"' not in page
    assert client.post(reverse(CREATE_URL), {"jail": "blocklist"}).status_code == 403
    assert not (config_host.conf / "jail.d" / "blocklist.local").exists()
    assert not (config_host.conf / FILTER_PATH).exists()
    assert "blocklist" not in config_host.running()


def test_jail_create_failing_test_writes_nothing_and_shows_why(
    config_runtime, config_host, role_client
):
    # A filter of that name exists (the how-to's, by hand) but fail2ban refuses it: the site
    # keeps it, so `fail2ban-client -t` fails on the new jail.
    (config_host.conf / FILTER_PATH).write_text(BROKEN_FILTER)
    admin = role_client("administrator")
    response = admin.post(reverse(CREATE_URL), {"jail": "blocklist"})
    html = response.content.decode()
    assert response.status_code == 409
    assert "Not saved: fail2ban refused the configuration" in html
    assert "No failure-id group in &#x27;^no host group here$&#x27;" in html  # -t's output
    assert not (config_host.conf / "jail.d" / "blocklist.local").exists()
    assert (config_host.conf / FILTER_PATH).read_text() == BROKEN_FILTER  # not touched
    assert "blocklist" not in config_host.running()
    audit = AuditEntry.objects.get(action="config_jail_create", jail="blocklist")
    assert not audit.ok and audit.parameters["stage"] == "test"


def test_jail_create_refuses_an_existing_jail_a_bad_name_and_none(
    config_runtime, config_host, role_client
):
    admin = role_client("administrator")
    taken = admin.post(reverse(CREATE_URL), {"jail": "alpha"})
    assert taken.status_code == 400
    assert "a jail named alpha exists already" in taken.content.decode()
    bad = admin.post(reverse(CREATE_URL), {"jail": "../x"})
    assert bad.status_code == 400
    bare = admin.post(reverse(CREATE_URL))  # no jail named: nothing is created
    assert bare.status_code == 400
    assert "None was named" in bare.content.decode()
    assert not list((config_host.conf / "jail.d").glob("*.local"))


def test_command_create_jail_json(config_runtime, config_host, keep_state, role_client):
    admin = role_client("administrator")
    out = blocklists("create-jail", "--jail", "drop", "--as", admin.user.username, "--json")
    result = json.loads(out)
    assert result["ok"] is True, result
    assert result["written"] == [FILTER_PATH, "jail.d/drop.local"]
    assert "drop" in config_host.running()
    assert config_host.get("drop", "bantime") == -1
    audit = AuditEntry.objects.get(action="config_jail_create", jail="drop")
    assert audit.ok and audit.actor == admin.user.username

    # Again: the jail exists now, so it is refused (exit 1), and the JSON says why.
    out = io.StringIO()
    with pytest.raises(CommandError, match="exists already") as refused:
        call_command("blocklists", "create-jail", "--jail", "drop", "--json", stdout=out)
    assert refused.value.returncode == 1
    assert json.loads(out.getvalue())["stage"] == "refused"


def test_command_create_jail_needs_an_administrator(
    config_runtime, config_host, keep_state, role_client
):
    operator = role_client("operator")
    with pytest.raises(CommandError, match="administer permission") as denied:
        blocklists("create-jail", "--as", operator.user.username)
    assert denied.value.returncode == 2
    assert not (config_host.conf / "jail.d" / "blocklist.local").exists()


def test_command_create_jail_failing_test_exits_1_with_the_output(
    config_runtime, config_host, keep_state
):
    (config_host.conf / FILTER_PATH).write_text(BROKEN_FILTER)
    out = io.StringIO()
    with pytest.raises(CommandError, match="fail2ban refused") as failed:
        call_command("blocklists", "create-jail", "--json", stdout=out)
    assert failed.value.returncode == 1
    result = json.loads(out.getvalue())
    assert result["ok"] is False and result["stage"] == "test"
    assert "No failure-id group" in result["output"]
    assert not (config_host.conf / "jail.d" / "blocklist.local").exists()
