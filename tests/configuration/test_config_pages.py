"""The /config/ pages against a real private fail2ban and its own configuration directory:
roles, the forms, conflicts shown as a diff, versions, restore, every byte of file text escaped,
and "also keep in the configuration" on the jail page's ignore list."""
# Fixtures imported by name from tests/configuration/config_host.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

import pytest
from django.urls import reverse

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


def url(name: str, *args) -> str:
    return reverse(f"jails:configuration:{name}", args=args)


def file_url(path: str) -> str:
    return url("file") + f"?path={path}"


@MODES
def test_index_lists_every_jail_with_origin(config_runtime, config_host, role_client):
    (config_host.conf / "jail.d").mkdir(exist_ok=True)
    (config_host.conf / "jail.d" / "off.local").write_text("[off]\nenabled = false\n")
    client = role_client("viewer")
    response = client.get(url("index"))
    assert response.status_code == 200
    body = response.content.decode()
    for name in ("alpha", "beta", "sshd", "off"):
        assert url("jail", name) in body
    assert "jail.conf:" in body  # the origin of each shown setting, with its line
    page = client.get(url("jail", "alpha")).content.decode()
    assert "jail.conf" in page and "[DEFAULT]" in page
    # A viewer sees no form that changes anything.
    assert 'id="jail-settings-form"' not in page
    assert client.post(url("jail", "alpha"), {"maxretry": "9"}).status_code == 403
    assert client.post(url("jail-toggle", "alpha"), {"enabled": "false"}).status_code == 403


@MODES
def test_a_toggle_that_names_no_state_changes_nothing(config_runtime, config_host, role_client):
    """Only the page's Activate/Deactivate buttons toggle: an empty POST (a stray form, a
    crawler, the access tests) once deactivated the jail."""
    client = role_client("administrator")
    for data in ({}, {"enabled": "yes"}):
        assert client.post(url("jail-toggle", "alpha"), data).status_code == 400
    assert not (config_host.conf / "jail.d" / "alpha.local").exists()
    names = {
        n.strip() for n in dict(config_host.server.client().send("status"))["Jail list"].split(",")
    }
    assert "alpha" in names


@MODES
def test_operator_changes_common_settings(config_runtime, config_host, role_client):
    client = role_client("operator")
    page = client.get(url("jail", "alpha")).content.decode()
    assert 'id="jail-settings-form"' in page
    current = client.get(url("jail", "alpha")).context["form"].initial
    data = {**{k: v for k, v in current.items() if v is not None}, "maxretry": "6"}
    data["reason"] = "fewer tries"
    response = client.post(url("jail", "alpha"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert config_host.get("alpha", "maxretry") == 6
    assert (config_host.conf / "jail.d" / "alpha.local").read_text() == "[alpha]\nmaxretry = 6\n"
    follow = client.get(response["Location"]).content.decode()
    assert "Saved jail.d/alpha.local" in follow
    version = ConfigVersion.objects.get(path="jail.d/alpha.local", source="site")
    assert version.reason == "fewer tries" and version.actor == client.user.username
    # A jail's action (shell commands as root on a ban) is the administrators'.
    refused = client.post(url("jail", "alpha"), {**data, "action": "jailadmin-record[x=1]"})
    assert refused.status_code == 400
    assert "administrators only" in refused.content.decode()
    # Raw files are the administrators': the operator may read but not save.
    assert client.post(file_url("jail.d/alpha.local"), {"content": "[x]\n"}).status_code == 403


@MODES
def test_raw_editor_conflict_shows_diff(config_runtime, config_host, role_client):
    client = role_client("administrator")
    (config_host.conf / "jail.local").write_text("[alpha]\nmaxretry = 3\n")
    shown = client.get(file_url("jail.local"))
    sha = shown.context["form"].initial["sha256"]
    (config_host.conf / "jail.local").write_text("[alpha]\nmaxretry = 4\n")  # someone else
    response = client.post(
        file_url("jail.local"), {"content": "[alpha]\nmaxretry = 5\n", "sha256": sha}
    )
    assert response.status_code == 409
    body = response.content.decode()
    assert "changed on disk" in body
    assert "-maxretry = 4" in body and "+maxretry = 5" in body
    assert (config_host.conf / "jail.local").read_text() == "[alpha]\nmaxretry = 4\n"


@MODES
def test_raw_editor_refused_change_is_shown(config_runtime, config_host, role_client):
    client = role_client("administrator")
    response = client.post(
        file_url("filter.d/beta.local"),
        {"content": "[Definition]\nfailregex = ^(<HOST>\n", "sha256": ""},
    )
    assert response.status_code == 409
    assert "fail2ban refused the configuration" in response.content.decode()
    assert not (config_host.conf / "filter.d" / "beta.local").exists()


def test_file_text_is_escaped(config_runtime, config_host, role_client):
    hostile = "[alpha]\n# <script>alert(1)</script> &amp; \"'\n"
    (config_host.conf / "jail.d").mkdir(exist_ok=True)
    (config_host.conf / "jail.d" / "alpha.local").write_text(hostile)
    for role in ("viewer", "administrator"):
        body = role_client(role, username=role).get(file_url("jail.d/alpha.local")).content.decode()
        assert "<script>alert(1)" not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;amp;" in body
    # The index builds its rows in Python (format_html): values are escaped there too.
    (config_host.conf / "jail.d" / "evil.local").write_text(
        '[evil]\nenabled = false\nbackend = <img src=x onerror="alert(1)">\n'
    )
    index = role_client("viewer", username="v2").get(url("index")).content.decode()
    assert "<img src=x" not in index
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in index


@pytest.mark.parametrize(
    "path", ["../../etc/passwd", "/etc/passwd", "jail.d/%2e%2e%2fx.local", "jail.d/a\x00.local"]
)
def test_file_page_refuses_traversal(config_runtime, config_host, role_client, path):
    client = role_client("administrator")
    response = client.get(url("file"), {"path": path})
    assert response.status_code == 400
    assert "Refused" in response.content.decode()
    assert client.post(url("file") + "?" + "path=x", {"content": "x"}).status_code == 400


def test_history_diff_and_restore(config_runtime, config_host, role_client):
    client = role_client("administrator")
    for text in ("[alpha]\nmaxretry = 5\n", "[alpha]\nmaxretry = 9\n"):
        current = client.get(file_url("jail.d/alpha.local")).context["form"].initial["sha256"]
        response = client.post(
            file_url("jail.d/alpha.local"), {"content": text, "sha256": current, "reason": "t"}
        )
        assert response.status_code == 302, response.content.decode()[:2000]
    versions = list(ConfigVersion.objects.filter(path="jail.d/alpha.local").order_by("id"))
    assert [v.content for v in versions] == ["[alpha]\nmaxretry = 5\n", "[alpha]\nmaxretry = 9\n"]
    history = client.get(url("history"), {"path": "jail.d/alpha.local"}).content.decode()
    assert f"#{versions[0].pk}" in history and "Restore" in history
    diff = client.get(url("diff"), {"a": versions[0].pk, "b": versions[1].pk}).content.decode()
    assert "-maxretry = 5" in diff and "+maxretry = 9" in diff
    # An operator may not restore; an administrator restores through the safe path.
    operator = role_client("operator")
    assert operator.post(url("restore", versions[0].pk)).status_code == 403
    response = client.post(url("restore", versions[0].pk))
    assert response.status_code == 302
    assert config_host.get("alpha", "maxretry") == 5
    assert AuditEntry.objects.filter(action="config_restore", ok=True).count() == 1


def test_ignore_list_kept_in_configuration(config_runtime, config_host, role_client):
    client = role_client("operator")
    response = client.post(
        reverse("jails:jail-ignore", args=["beta"]),
        {"op": "add", "ip": "192.0.2.55", "persist": "1"},
    )
    assert response.status_code in (200, 302)
    assert "192.0.2.55" in config_host.get("beta", "ignoreip")
    assert "192.0.2.55" in (config_host.conf / "jail.d" / "beta.local").read_text()
    config_host.server.reload()
    config_host.server.wait_ready()
    assert "192.0.2.55" in config_host.get("beta", "ignoreip")
    # Without the box the change stays a runtime one, lost on reload.
    client.post(reverse("jails:jail-ignore", args=["beta"]), {"op": "add", "ip": "192.0.2.56"})
    assert "192.0.2.56" in config_host.get("beta", "ignoreip")
    config_host.server.reload()
    config_host.server.wait_ready()
    assert "192.0.2.56" not in config_host.get("beta", "ignoreip")


def test_filters_and_actions_pages(config_runtime, config_host, role_client):
    client = role_client("viewer")
    filters = client.get(url("filters")).content.decode()
    assert "filter.d/sshd.conf" in filters and url("jail", "sshd") in filters
    actions = client.get(url("actions")).content.decode()
    assert "action.d/iptables.conf" in actions and "only administrators" in actions


def test_new_jail_and_filter_are_administrators_only(config_runtime, config_host, role_client):
    operator = role_client("operator")
    assert operator.get(url("jail-new")).status_code == 403
    assert operator.post(url("filter-new"), {"name": "x"}).status_code == 403
    admin = role_client("administrator")
    response = admin.post(
        url("filter-new"),
        {"name": "app-login", "failregex": r"^\s*BAD LOGIN from <HOST>$", "datepattern": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert (config_host.conf / "filter.d" / "app-login.local").is_file()
