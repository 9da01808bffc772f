"""The configuration pages, filter tester, log viewer and `f2bconfig` per host (issue 12, item 4).

The local host is a private fail2ban with its own configuration directory (reached directly);
"h2" is a second private fail2ban with ITS own configuration directory, reached only through
a real jailadmin agent (a Host of kind "agent"): two hosts that both have jail.local and a jail
"alpha", so every test can tell whose file, whose version and whose fail2ban it touched. The
last test goes over the real sshd to the five simulated hosts (tests/hosts/conftest.py).
"""
# Fixtures imported by name from tests/configuration/config_host.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.urls import reverse

from jails.configuration.models import ConfigSnapshot, ConfigVersion
from jails.fail2ban.server import FAILURE_LINE, JailSpec
from jails.hosts.models import Host
from jails.models import AuditEntry
from tests.configuration.config_host import (  # noqa: F401 (fixtures)
    CONFIG_JAILS,
    ConfigHost,
    config_agent_run,
    config_host,
    config_host_run,
    config_server,
)
from tests.conftest import runtime_install, user_with_role
from tests.hosts.conftest import LINK_TIMEOUT, SshHost, ssh_host_rows
from tests.support.agent_process import AgentProcess

pytestmark = [pytest.mark.django_db, pytest.mark.fail2ban]

# h2 has the local host's jails and one of its own, with its own toy filter (filter.d/gamma.conf).
H2_JAILS = (*CONFIG_JAILS, JailSpec("gamma", maxretry=5, findtime="10m", bantime="10m"))
STAMP = "2026-12-01 10:00:00,000 fail2ban.server         [4242]: "
FAILING = FAILURE_LINE.format(when="2026-12-01 10:00:00", user="x", ip="198.51.100.23")


def url(name: str, *args: str, host: str | None = None) -> str:
    if host is None:
        return reverse(f"jails:configuration:{name}", args=args)
    return reverse(f"jails:host-configuration:{name}", args=(host, *args))


# --- the second host: its own fail2ban and configuration, behind a real agent -------------------
@pytest.fixture(scope="module")
def h2_server() -> Iterator[ConfigHost]:
    yield from config_host_run("jh2-", H2_JAILS)


@pytest.fixture(scope="module")
def h2_agent(h2_server: ConfigHost) -> Iterator[AgentProcess]:
    yield from config_agent_run(h2_server)


@pytest.fixture
def h2(h2_server: ConfigHost, h2_agent: AgentProcess) -> ConfigHost:
    """h2 as it was at start, and its Host row (kind agent): the site is now a fleet."""
    h2_server.restore()
    h2_agent.start()  # a no-op unless it stopped
    Host.objects.create(name="h2", kind=Host.Kind.AGENT, address=h2_agent.address)
    return h2_server


@pytest.fixture
def site(config_host: ConfigHost, h2: ConfigHost) -> tuple[ConfigHost, ConfigHost]:
    """The local host (config_host, direct) and h2 (through its agent)."""
    runtime_install(config_host.server, agent=None)
    return config_host, h2


def limited_user(django_user_model, *, role: str, host: str, username: str, also: str = ""):
    """A user whose `role` holds on `host` only (a group given that host); `also` globally."""
    group = Group.objects.create(name=f"{role} on {host}")
    group.permissions.set(Group.objects.get(name=role).permissions.all())
    Host.objects.get(name=host).groups.add(group)
    user = user_with_role(django_user_model, also or role, username=username)
    if not also:
        user.groups.set([group])
    else:
        user.groups.add(group)
    return user


# --- pages ---------------------------------------------------------------------------------------
def test_config_pages_are_about_their_host(site, role_client):
    local, h2 = site
    client = role_client("viewer")
    page = client.get(url("index", host="h2"))
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="config-host-name">h2<' in body
    assert '<option value="local">local</option>' in body
    assert '<option value="h2" selected>h2</option>' in body
    # h2's own jail, and every link stays on h2.
    assert url("jail", "gamma", host="h2") in body
    assert url("filters", host="h2") in body and url("file", host="h2") + "?path=" in body
    assert f'href="{url("filters")}"' not in body

    local_body = client.get(url("index")).content.decode()
    assert 'id="config-host-name">local<' in local_body
    assert "gamma" not in local_body

    assert client.get(url("filter", "gamma", host="h2")).status_code == 200
    assert client.get(url("filter", "gamma")).status_code == 404
    jail_page = client.get(url("jail", "gamma", host="h2")).content.decode()
    assert url("file", host="h2") + "?path=jail.conf" in jail_page
    assert client.get(url("index", host="nowhere")).status_code == 404
    # One effective-configuration snapshot per host: asking both in turn evicts neither.
    assert set(ConfigSnapshot.objects.values_list("host", flat=True)) == {"local", "h2"}


def test_single_host_site_shows_no_host(config_host, role_client):
    runtime_install(config_host.server, agent=None)
    body = role_client("viewer").get(url("index")).content.decode()
    assert "config-host" not in body and "Switch host" not in body


def test_common_settings_history_diff_restore_on_one_host(site, role_client):
    local, h2 = site
    operator = role_client("operator")
    form = operator.get(url("jail", "alpha", host="h2")).context["form"].initial
    data = {**{k: v for k, v in form.items() if v is not None}, "reason": "h2 only"}
    response = operator.post(url("jail", "alpha", host="h2"), {**data, "maxretry": "7"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == url("jail", "alpha", host="h2")
    assert h2.get("alpha", "maxretry") == 7
    assert (h2.conf / "jail.d" / "alpha.local").read_text() == "[alpha]\nmaxretry = 7\n"
    # The local host, which has the same jail and the same file names, is untouched.
    assert local.get("alpha", "maxretry") == 3
    assert not (local.conf / "jail.d" / "alpha.local").exists()
    entry = AuditEntry.objects.filter(action="config_jail_settings").get()
    assert entry.host == "h2"

    data = operator.get(url("jail", "alpha", host="h2")).context["form"].initial
    data = {**{k: v for k, v in data.items() if v is not None}, "reason": "again"}
    assert (
        operator.post(url("jail", "alpha", host="h2"), {**data, "maxretry": "8"}).status_code == 302
    )
    versions = list(ConfigVersion.objects.filter(path="jail.d/alpha.local", source="site"))
    assert [v.host for v in versions] == ["h2", "h2"]
    assert not ConfigVersion.objects.filter(host="local", path="jail.d/alpha.local").exists()
    new, old = versions

    history = operator.get(url("history", host="h2") + "?path=jail.d/alpha.local")
    assert history.status_code == 200
    assert f"#{old.pk}" in history.content.decode()
    assert operator.get(url("history") + "?path=jail.d/alpha.local").status_code == 404
    diff_query = f"?a={old.pk}&b={new.pk}"
    diff = operator.get(url("diff", host="h2") + diff_query)
    assert diff.status_code == 200 and "+maxretry = 8" in diff.content.decode()
    assert operator.get(url("diff") + diff_query).status_code == 404

    admin = role_client("administrator")
    admin_history = admin.get(url("history", host="h2") + "?path=jail.d/alpha.local")
    assert url("restore", str(old.pk), host="h2") in admin_history.content.decode()
    # h2's version cannot be restored while looking at the local host (its jail.local is not
    # h2's), and the local host's files stay as they are.
    assert admin.post(url("restore", str(old.pk))).status_code == 404
    assert not (local.conf / "jail.d" / "alpha.local").exists()
    restored = admin.post(url("restore", str(old.pk), host="h2"))
    assert restored.status_code == 302
    assert restored["Location"] == url("file", host="h2") + "?path=jail.d%2Falpha.local"
    assert (h2.conf / "jail.d" / "alpha.local").read_text() == "[alpha]\nmaxretry = 7\n"
    assert h2.get("alpha", "maxretry") == 7
    assert AuditEntry.objects.get(action="config_restore").host == "h2"


def test_raw_editor_saves_on_its_host(site, role_client):
    local, h2 = site
    admin = role_client("administrator")
    shown = admin.get(url("file", host="h2") + "?path=jail.local")
    assert shown.status_code == 200
    body = shown.content.decode()
    assert f'action="{url("file", host="h2")}?path=jail.local"' in body
    response = admin.post(
        url("file", host="h2") + "?path=jail.local",
        {"content": "[gamma]\nmaxretry = 9\n", "sha256": "", "reason": "raw"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert h2.get("gamma", "maxretry") == 9
    assert (h2.conf / "jail.local").read_text() == "[gamma]\nmaxretry = 9\n"
    assert not (local.conf / "jail.local").exists()
    assert ConfigVersion.objects.get(source="site").host == "h2"


def test_roles_are_checked_on_the_pages_host(site, role_client, django_user_model, client):
    # A viewer of the local host only.
    viewer = limited_user(django_user_model, role="viewer", host="local", username="v-local")
    client.force_login(viewer)
    assert client.get(url("index")).status_code == 200
    page = client.get(url("index")).content.decode()
    assert '<option value="local" selected>local</option>' in page
    # Not offered in the host choice, nor linked ("h2" alone can turn up in a CSRF token).
    assert 'value="h2"' not in page and "/hosts/h2/" not in page
    for denied in (
        url("index", host="h2"),
        url("jail", "alpha", host="h2"),
        url("filters", host="h2"),
    ):
        assert client.get(denied).status_code == 403, denied
    switch = client.get(url("host-switch") + "?to=h2&page=index")
    assert switch.status_code == 403

    # An operator on the local host only, who may view everywhere.
    operator = limited_user(
        django_user_model, role="operator", host="local", username="o-local", also="viewer"
    )
    client.force_login(operator)
    assert 'id="jail-settings-form"' in client.get(url("jail", "alpha")).content.decode()
    h2_page = client.get(url("jail", "alpha", host="h2"))
    assert h2_page.status_code == 200
    assert 'id="jail-settings-form"' not in h2_page.content.decode()
    refused = client.post(url("jail", "alpha", host="h2"), {"maxretry": "9"})
    assert refused.status_code == 403
    assert (
        client.post(url("jail-toggle", "alpha", host="h2"), {"enabled": "false"}).status_code == 403
    )
    assert client.get(url("filter-test", host="h2")).status_code == 403
    assert client.get(url("logs", host="h2")).status_code == 403
    assert client.get(url("filter-test")).status_code == 200
    assert site[1].get("alpha", "maxretry") == 3


def test_host_switcher_lands_on_the_same_page(site, role_client):
    client = role_client("viewer")
    page = client.get(url("jail", "alpha", host="h2")).content.decode()
    assert f'action="{url("host-switch", host="h2")}"' in page
    assert '<input type="hidden" name="page" value="jail">' in page
    assert '<input type="hidden" name="name" value="alpha">' in page

    def lands(query: str) -> str:
        response = client.get(url("host-switch", host="h2") + query)
        assert response.status_code == 302, query
        return response["Location"]

    assert lands("?to=local&page=jail&name=alpha") == url("jail", "alpha")
    assert lands("?to=h2&page=jail&name=alpha") == url("jail", "alpha", host="h2")
    assert lands("?to=h2&page=file&path=jail.local") == url("file", host="h2") + "?path=jail.local"
    # A version id is one host's: a diff lands on the file's history on the other host.
    assert lands("?to=local&page=diff&path=jail.local") == url("history") + "?path=jail.local"
    assert lands("?to=h2&page=restore") == url("index", host="h2")
    assert lands("?to=h2&page=jail&name=../x") == url("index", host="h2")
    assert client.get(url("host-switch") + "?to=nowhere&page=index").status_code == 404


def test_filter_tester_and_log_viewer_on_their_host(site, role_client):
    local, h2 = site
    client = role_client("operator")
    data = {"source": "pasted", "lines": FAILING, "filter": "gamma"}
    tested = client.post(url("filter-test", host="h2"), data)
    assert tested.status_code == 200
    assert "<strong>1</strong> matched" in tested.content.decode()
    # The local host has no filter gamma: the same test there matches nothing.
    assert (
        "<strong>1</strong> matched" not in client.post(url("filter-test"), data).content.decode()
    )

    marker = f"h2-marker-{uuid.uuid4().hex[:8]}"
    with open(h2.server.server_log, "a") as log:
        log.write(f"{STAMP}NOTICE  {marker}\n")
    shown = client.get(url("logs", host="h2") + f"?lines=50&q={marker}")
    body = shown.content.decode()
    assert marker in body
    assert url("log-follow", host="h2") + "?cursor=" in body
    assert any(marker in line.text for line in shown.context["tail"].lines)
    local_tail = client.get(url("logs") + f"?lines=50&q={marker}").context["tail"]
    assert local_tail.lines == ()
    follow_url = shown.context["follow_url"]
    with open(h2.server.server_log, "a") as log:
        log.write(f"{STAMP}NOTICE  {marker} followed\n")
    assert f"{marker} followed" in client.get(follow_url).content.decode()


# --- manage.py f2bconfig --host -------------------------------------------------------------
def f2bconfig(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("f2bconfig", *args, stdout=out)
    return out.getvalue()


def test_f2bconfig_on_a_host(site, tmp_path):
    local, h2 = site
    shown = json.loads(f2bconfig("--host", "h2", "show", "--json"))
    assert shown["host"] == "h2"
    assert "gamma" in [jail["name"] for jail in shown["jails"]]
    assert json.loads(f2bconfig("show", "--json"))["host"] == "local"

    source = tmp_path / "alpha.local"
    source.write_text("[alpha]\nmaxretry = 6\n")
    edited = json.loads(
        f2bconfig("edit", "jail.d/alpha.local", "--from", str(source), "--host", "h2", "--json")
    )
    assert edited["host"] == "h2" and edited["ok"]
    assert h2.get("alpha", "maxretry") == 6 and local.get("alpha", "maxretry") == 3
    assert AuditEntry.objects.get(action="config_edit").host == "h2"
    source.write_text("[alpha]\nmaxretry = 5\n")
    f2bconfig("--host", "h2", "edit", "jail.d/alpha.local", "--from", str(source))

    history = json.loads(f2bconfig("--host", "h2", "history", "jail.d/alpha.local", "--json"))
    assert [v["host"] for v in history] == ["h2", "h2"]
    assert f2bconfig("history", "jail.d/alpha.local") == "no versions\n"
    new, old = history[0]["id"], history[1]["id"]
    diff = json.loads(f2bconfig("--host", "h2", "diff", str(old), str(new), "--json"))
    assert diff["host"] == "h2" and "+maxretry = 5" in diff["diff"]
    with pytest.raises(CommandError, match="no such versions"):
        f2bconfig("diff", str(old), str(new))
    with pytest.raises(CommandError, match="no such version"):
        f2bconfig("restore", str(old))
    assert not (local.conf / "jail.d" / "alpha.local").exists()
    f2bconfig("--host", "h2", "restore", str(old))
    assert h2.get("alpha", "maxretry") == 6
    with pytest.raises(CommandError, match="no enabled host named 'nowhere'"):
        f2bconfig("--host", "nowhere", "show")


# --- over the real sshd -------------------------------------------------------------------------
@pytest.mark.slow
def test_config_over_ssh_on_h2_only(f2b, ssh_hosts: list[SshHost], role_client):
    ssh_host_rows(ssh_hosts)
    runtime_install(f2b, agent=None, host_deadline=LINK_TIMEOUT, fail2ban_timeout=LINK_TIMEOUT)
    h1, h2 = ssh_hosts[0], ssh_hosts[1]
    override = h2.server.conf_dir / "jail.d" / "web.local"
    only_h2 = h2.server.conf_dir / "filter.d" / "only-h2.conf"
    # fail2ban's own filter for the web jail, under another name, on h2 alone.
    shutil.copy(h2.server.conf_dir / "filter.d" / "web.conf", only_h2)
    try:
        operator = role_client("operator")
        initial = operator.get(url("jail", "web", host="h2")).context["form"].initial
        data = {**{k: v for k, v in initial.items() if v is not None}, "maxretry": "4"}
        response = operator.post(url("jail", "web", host="h2"), {**data, "reason": "over ssh"})
        assert response.status_code == 302, response.content.decode()[:2000]
        assert h2.server.client().send("get", "web", "maxretry") == 4
        assert override.read_text() == "[web]\nmaxretry = 4\n"
        assert h1.server.client().send("get", "web", "maxretry") == 2
        assert not (h1.server.conf_dir / "jail.d" / "web.local").exists()

        version = ConfigVersion.objects.get(path="jail.d/web.local", source="site")
        assert version.host == "h2"
        listed = operator.get(url("history", host="h2") + "?path=jail.d/web.local")
        assert listed.status_code == 200 and f"#{version.pk}" in listed.content.decode()
        assert operator.get(url("history", host="h1") + "?path=jail.d/web.local").status_code == 404

        data = {"source": "pasted", "lines": FAILING, "filter": "only-h2"}
        tested = operator.post(url("filter-test", host="h2"), data).content.decode()
        assert "<strong>1</strong> matched" in tested
        elsewhere = operator.post(url("filter-test", host="h1"), data).content.decode()
        assert "<strong>1</strong> matched" not in elsewhere

        marker = f"ssh-h2-{uuid.uuid4().hex[:8]}"
        with open(h2.server.server_log, "a") as log:
            log.write(f"{STAMP}NOTICE  {marker}\n")
        h2_tail = operator.get(url("logs", host="h2") + f"?q={marker}").context["tail"]
        assert [line.text for line in h2_tail.lines] == [f"{STAMP}NOTICE  {marker}"]
        assert h2_tail.source == str(h2.server.server_log)
        h1_tail = operator.get(url("logs", host="h1") + f"?q={marker}").context["tail"]
        assert h1_tail.lines == ()
    finally:
        only_h2.unlink(missing_ok=True)
        if override.exists():
            override.unlink()
            h2.server.reload()
            h2.server.wait_ready()
