"""The host side's own checks on every path and content a caller sends (jails.agent.configfiles):
traversal, symlinks, NUL, encoded dots, size and encoding, shipped .conf files. Refused before
anything is read or written, in-process and through a real agent."""
# Fixtures imported by name from tests/configuration/config_host.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

import hashlib
import os

import pytest

from jails.agent import configfiles
from jails.agent.client import AgentLink
from jails.agent.operations import HostConfig
from jails.fail2ban import AgentRefused, InvalidArgument
from tests.configuration.config_host import (  # noqa: F401 (fixtures)
    config_agent_server,
    config_host,
    config_server,
)
from tests.support.agent_process import AgentProcess, server_options

pytestmark = [pytest.mark.fail2ban]

TRAVERSALS = [
    "../etc/passwd",
    "jail.d/../../etc/shadow",
    "/etc/passwd",
    "jail.d/../jail.local",
    "filter.d/..",
    "filter.d/.hidden.local",
    "filter.d/%2e%2e/x.local",
    "%2e%2e/jail.local",
    "jail.d/x.local\x00.conf",
    "jail.d\\..\\x.local",
    "jail.d/sub/x.local",
    "other.d/x.local",
    "jail.d/x.txt",
    "jail.d/",
    "",
    "x" * 300,
]


@pytest.fixture
def conf(tmp_path):
    root = tmp_path / "conf"
    for name in ("jail.d", "filter.d", "action.d"):
        (root / name).mkdir(parents=True)
    (root / "jail.conf").write_text("[DEFAULT]\nbantime = 10m\n")
    (root / "filter.d" / "sshd.conf").write_text("[Definition]\nfailregex = x <HOST>\n")
    (tmp_path / "secret").write_text("root's secret\n")
    return root


def config_of(root) -> HostConfig:
    return HostConfig(config_dir=str(root))


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_check_refuses_traversal(path):
    with pytest.raises(InvalidArgument):
        configfiles.path_check(path, write=True)


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_refused_before_anything_is_read_or_written(conf, path):
    before = sorted(str(p) for p in conf.parent.rglob("*"))
    with pytest.raises(InvalidArgument):
        configfiles.file_read(config_of(conf), path=path)
    with pytest.raises(InvalidArgument):
        configfiles.config_apply(
            config_of(conf),
            None,  # never reached: the paths are checked first
            changes=[{"path": path, "content": "x", "expected_sha256": None}],
        )
    assert sorted(str(p) for p in conf.parent.rglob("*")) == before


def test_allowed_paths():
    assert configfiles.path_check("jail.local", write=True).relative == "jail.local"
    assert configfiles.path_check("fail2ban.local", write=True).relative == "fail2ban.local"
    assert configfiles.path_check("filter.d/my-app_2.local", write=True).name == "my-app_2.local"
    assert configfiles.path_check("action.d/new.conf", write=True).directory == "action.d"
    # Shipped top-level files are readable, never writable.
    assert configfiles.path_check("jail.conf").relative == "jail.conf"
    with pytest.raises(InvalidArgument):
        configfiles.path_check("jail.conf", write=True)
    with pytest.raises(InvalidArgument):
        configfiles.path_check("fail2ban.conf", write=True)


def test_symlinked_file_is_not_followed(conf):
    os.symlink(conf.parent / "secret", conf / "jail.d" / "evil.local")
    with pytest.raises(InvalidArgument, match="cannot be opened safely"):
        configfiles.file_read(config_of(conf), path="jail.d/evil.local")
    with pytest.raises(InvalidArgument):
        configfiles.config_apply(
            config_of(conf),
            None,
            changes=[{"path": "jail.d/evil.local", "content": "x", "expected_sha256": None}],
        )
    assert (conf.parent / "secret").read_text() == "root's secret\n"
    assert "jail.d/evil.local" not in configfiles.files_list(config_of(conf))["files"]


def test_symlinked_directory_is_not_followed(conf, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.local").write_text("[x]\n")
    (conf / "action.d").rmdir()
    os.symlink(elsewhere, conf / "action.d")
    with pytest.raises(InvalidArgument, match="not a plain directory"):
        configfiles.file_read(config_of(conf), path="action.d/x.local")
    with pytest.raises(InvalidArgument, match="not a plain directory"):
        configfiles.config_apply(
            config_of(conf),
            None,
            changes=[{"path": "action.d/x.local", "content": "[y]\n", "expected_sha256": None}],
        )
    assert (elsewhere / "x.local").read_text() == "[x]\n"


def test_content_limits(conf):
    config = config_of(conf)
    too_big = "#" * (configfiles.MAX_FILE_BYTES + 1)
    for content, message in [
        (too_big, "larger than"),
        ("a\x00b", "NUL"),
        ("\ud800", "UTF-8"),
        (17, "text"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            configfiles.config_apply(
                config,
                None,
                changes=[{"path": "jail.local", "content": content, "expected_sha256": None}],
            )
    assert not (conf / "jail.local").exists()


def test_non_utf8_file_is_refused(conf):
    (conf / "jail.local").write_bytes(b"[x]\nname = \xff\xfe\n")
    with pytest.raises(InvalidArgument, match="not UTF-8"):
        configfiles.file_read(config_of(conf), path="jail.local")


def test_existing_conf_is_never_overwritten(conf):
    content = (conf / "filter.d" / "sshd.conf").read_bytes()
    with pytest.raises(InvalidArgument, match="override it in a .local"):
        configfiles.config_apply(
            config_of(conf),
            None,
            changes=[
                {
                    "path": "filter.d/sshd.conf",
                    "content": "[Definition]\nfailregex =\n",
                    "expected_sha256": hashlib.sha256(content).hexdigest(),
                }
            ],
        )
    assert (conf / "filter.d" / "sshd.conf").read_bytes() == content


def test_file_read_reports_hash(conf):
    (conf / "jail.local").write_text("[sshd]\nenabled = true\n")
    read = configfiles.file_read(config_of(conf), path="jail.local")
    assert read["exists"] and read["content"] == "[sshd]\nenabled = true\n"
    assert read["sha256"] == hashlib.sha256(b"[sshd]\nenabled = true\n").hexdigest()
    missing = configfiles.file_read(config_of(conf), path="jail.d/none.local")
    assert (missing["exists"], missing["sha256"]) == (False, None)


@pytest.mark.parametrize(
    "path", ["../secret", "jail.d/%2e%2e/x.local", "jail.d/x.local\x00", "/etc/passwd"]
)
def test_agent_refuses_traversal(config_host, config_agent_server, path):
    config_agent_server.start()
    link = AgentLink(config_agent_server.address, timeout=10.0)
    try:
        with pytest.raises(InvalidArgument):
            link.config_file(path=path)
        with pytest.raises(InvalidArgument):
            link.config_apply(changes=[{"path": path, "content": "x", "expected_sha256": None}])
        # The connection stays usable after a refusal.
        assert link.config_file(path="jail.conf")["exists"] is True
    finally:
        link.close()
    assert config_host.running()


def test_agent_refuses_unknown_arguments(config_host, config_agent_server):
    config_agent_server.start()
    link = AgentLink(config_agent_server.address, timeout=10.0)
    try:
        with pytest.raises(InvalidArgument, match="unexpected arguments"):
            link._call("config_file", {"path": "jail.conf", "follow": True})
        with pytest.raises(InvalidArgument, match="fingerprint"):
            link.config_read(if_changed_from="../x")
    finally:
        link.close()


def test_agent_without_config_writes_reads_and_tests_only(config_host):
    options = [*server_options(config_host.server), "--no-config-writes"]
    with AgentProcess(str(config_host.server.socket_path), options=options) as agent:
        link = AgentLink(agent.address, timeout=10.0)
        try:
            change = {"path": "jail.d/alpha.local", "content": "[alpha]\n", "expected_sha256": None}
            with pytest.raises(AgentRefused, match="no-config-writes"):
                link.config_apply(changes=[change])
            assert link.config_apply(changes=[change], dry_run=True)["ok"] is True
            names = {j["name"] for j in link.config_read(if_changed_from=None)["config"]["jails"]}
            assert names == {"alpha", "beta", "sshd"}
        finally:
            link.close()
    assert not (config_host.conf / "jail.d" / "alpha.local").exists()
