"""Filters and actions as fail2ban's own FilterReader/ActionReader read them, each option with
the file, line and section it comes from ([INCLUDES] before/after, .conf, .local), directly
and through a real agent; and their pages (escaped, multi-line values kept)."""
# Fixtures imported by name from tests/configuration/config_host.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from jails.configuration.services import files as file_service
from jails.configuration.services.files import Definition, DefinitionOption
from jails.fail2ban import InvalidArgument
from tests.configuration.config_host import (  # noqa: F401 (fixtures)
    MODES,
    config_agent_server,
    config_host,
    config_runtime,
    config_server,
)

pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]


def _option(definition: Definition, name: str, section: str = "Definition") -> DefinitionOption:
    return next(o for o in definition.options if (o.name, o.section) == (name, section))


def _line(conf: Path, option: DefinitionOption) -> str:
    assert option.origin is not None and option.origin.line is not None
    return (conf / option.origin.file).read_text().splitlines()[option.origin.line - 1]


@MODES
def test_filter_options_with_their_origin(config_runtime, config_host):
    conf = config_host.conf
    (conf / "filter.d" / "sshd.local").write_text(
        "[Definition]\n# ours\nignoreregex = ^Accepted \\S+ for \\S+ from <HOST>\n"
    )
    sshd = file_service.definition_get(config_runtime, directory="filter.d", name="sshd")
    assert sshd.errors == ()
    # fail2ban's read order: the [INCLUDES] before, the .conf, then the .local.
    assert sshd.read_order == ("filter.d/common.conf", "filter.d/sshd.conf", "filter.d/sshd.local")
    failregex = _option(sshd, "failregex")
    assert (failregex.origin.file, failregex.origin.section) == ("filter.d/sshd.conf", "Definition")
    assert _line(conf, failregex).startswith("failregex")
    assert "\n" in failregex.value  # several regexes, one per line, as fail2ban holds them
    assert "%(" not in failregex.value  # interpolated by fail2ban (%(cmnfailre)s and so on)
    ignore = _option(sshd, "ignoreregex")
    assert ignore.value == "^Accepted \\S+ for \\S+ from <HOST>"
    assert (ignore.origin.file, ignore.origin.line) == ("filter.d/sshd.local", 3)
    # Inherited from the included common.conf's [DEFAULT], with its line.
    datepattern = _option(sshd, "datepattern")
    assert (datepattern.origin.file, datepattern.origin.section) == (
        "filter.d/common.conf",
        "DEFAULT",
    )
    assert _line(conf, datepattern).startswith("datepattern")
    assert _option(sshd, "mode").value == "normal"


@MODES
def test_action_options_and_init_values_with_their_origin(config_runtime, config_host):
    conf = config_host.conf
    (conf / "action.d" / "iptables.local").write_text("[Init]\nblocktype = DROP\n")
    action = file_service.definition_get(
        config_runtime, directory="action.d", name="iptables-multiport"
    )
    assert action.read_order == (
        "action.d/iptables.conf",
        "action.d/iptables.local",
        "action.d/iptables-multiport.conf",
    )
    # actionban comes from the included iptables.conf (`[INCLUDES] before`).
    ban = _option(action, "actionban")
    assert (ban.origin.file, ban.origin.section) == ("action.d/iptables.conf", "Definition")
    assert _line(conf, ban).startswith("actionban")
    assert "<iptables>" in ban.value  # tags stay: a jail fills them in
    blocktype = _option(action, "blocktype", "Init")
    assert blocktype.value == "DROP"
    assert (blocktype.origin.file, blocktype.origin.line) == ("action.d/iptables.local", 2)
    # A conditional section's value, from `[Init?family=inet6]`.
    inet6 = _option(action, "blocktype?family=inet6", "Init")
    assert inet6.origin.section == "Init?family=inet6"
    assert _line(conf, inet6).startswith("blocktype")


@MODES
def test_broken_filter_reports_fail2ban_error(config_runtime, config_host):
    (config_host.conf / "filter.d" / "broken.local").write_text(
        "[Definition]\nfailregex = ^(unclosed <HOST>\n"
    )
    broken = file_service.definition_get(config_runtime, directory="filter.d", name="broken")
    assert broken.value("failregex") == "^(unclosed <HOST>"
    assert any("regular expression" in e for e in broken.errors), broken.errors


@MODES
def test_definition_names_are_checked_by_the_host(config_runtime, config_host):
    (config_host.conf / "secret.conf").write_text("[Definition]\nfailregex = x\n")
    for directory, name in (
        ("filter.d", "../secret"),
        ("filter.d", "no-such-filter"),
        ("filter.d", ".hidden"),
        ("jail.d", "sshd"),
        ("filter.d", "sshd\x00"),
    ):
        with pytest.raises(InvalidArgument):
            file_service.definition_get(config_runtime, directory=directory, name=name)


@MODES
def test_definition_pages(config_runtime, config_host, role_client):
    (config_host.conf / "filter.d" / "alpha.local").write_text(
        "[Definition]\nignoreregex = ^<script>alert(1)</script> <HOST>\n"
        "              ^second line <HOST>\n"
    )
    client = role_client("viewer")
    listing = client.get(reverse("jails:configuration:filters")).content.decode()
    assert reverse("jails:configuration:filter", args=["alpha"]) in listing
    response = client.get(reverse("jails:configuration:filter", args=["alpha"]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "^&lt;script&gt;alert(1)&lt;/script&gt; &lt;HOST&gt;\n^second line" in body
    assert "filter.d/alpha.local:2" in body
    action = client.get(reverse("jails:configuration:action", args=["iptables"]))
    assert action.status_code == 200
    assert "actionban" in action.content.decode()
    missing = client.get(reverse("jails:configuration:filter", args=["no-such-filter"]))
    assert missing.status_code == 404
