"""The configuration editor's host side (jails.agent.configfiles) pinned down to what a caller
sees: which paths and changes are refused and with which message, and the exact form of what
passes (the path fail2ban's directory gets, the bytes written, the digest returned).

Written for `make mutation MUTANTS='jails.agent.configfiles*'` (issue 17): these checks run in
this process, so each mutant of an argument check is judged without starting fail2ban. The
definitions (one filter or action as fail2ban's own reader reads it) are read for real, in
this process (DirectLink) and through a real agent (AgentLink); a scripted agent only answers
later than the link's command timeout. The safe path (config_apply: every key of its reply,
the write, the reload of what changed, the check of the running jails, the rollback) runs
against a real private fail2ban (tests/configuration/config_host.py).
"""
# Fixtures imported by name from tests/configuration/config_host.py are redefined as arguments.
# ruff: noqa: F811

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jails.agent import configfiles
from jails.agent.client import REPLY_MARGIN, AgentLink
from jails.agent.configfiles import ConfigPath
from jails.agent.link import DirectLink
from jails.agent.operations import HostConfig
from jails.fail2ban import AgentRefused, AgentUnreachable, InvalidArgument, ReloadFailed
from jails.fail2ban.server import find_fail2ban
from tests.agent.test_agent_client_mutants import CLOSE, ScriptedAgent
from tests.configuration.config_host import (  # noqa: F401 (fixtures)
    ConfigHost,
    config_host,
    config_server,
)
from tests.support.agent_process import AgentProcess

SHA = "0" * 64


def refused(function, *args, **kwargs) -> str:
    with pytest.raises(InvalidArgument) as error:
        function(*args, **kwargs)
    return str(error.value)


# --- Paths ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "write", "checked", "relative"),
    [
        ("jail.local", True, ConfigPath("", "jail.local"), "jail.local"),
        ("fail2ban.local", True, ConfigPath("", "fail2ban.local"), "fail2ban.local"),
        ("jail.conf", False, ConfigPath("", "jail.conf"), "jail.conf"),
        ("paths-debian.conf", False, ConfigPath("", "paths-debian.conf"), "paths-debian.conf"),
        ("fail2ban.conf", False, ConfigPath("", "fail2ban.conf"), "fail2ban.conf"),
        ("jail.d/a.local", True, ConfigPath("jail.d", "a.local"), "jail.d/a.local"),
        ("filter.d/x_y-z.1.conf", True, ConfigPath("filter.d", "x_y-z.1.conf"), None),
        ("action.d/9.local", False, ConfigPath("action.d", "9.local"), "action.d/9.local"),
    ],
)
def test_paths_that_pass(path, write, checked, relative):
    assert configfiles.path_check(path, write=write) == checked
    assert checked.relative == (relative or path)


def test_path_length_bound():
    name = "n" * (configfiles.MAX_PATH_LENGTH - len("jail.d/.local")) + ".local"
    assert configfiles.path_check(f"jail.d/{name}").name == name
    assert refused(configfiles.path_check, f"jail.d/n{name}") == (
        "a configuration path must be a short relative path"
    )
    for bad in ("", None, 7, b"jail.local"):
        assert refused(configfiles.path_check, bad) == (
            "a configuration path must be a short relative path"
        )


@pytest.mark.parametrize(
    "path", ["jail.d/a\x00.local", "jail.d/%2e%2e.local", "jail.d\\a.local", "/etc/jail.local"]
)
def test_nul_percent_backslash_and_absolute_paths_are_refused(path):
    assert refused(configfiles.path_check, path) == (
        "a configuration path may not contain NUL, %, \\ or start with /"
    )


def test_top_level_files():
    # Read: the shipped top-level files; write: only the two .local files.
    assert refused(configfiles.path_check, "jail.conf", write=True) == (
        "only jail.local and fail2ban.local can be written at the top level"
    )
    assert refused(configfiles.path_check, "paths-common.conf", write=True) == (
        "only jail.local and fail2ban.local can be written at the top level"
    )
    assert refused(configfiles.path_check, "shadow") == (
        "'shadow' is not a configuration file jailadmin reads"
    )
    long_name = "x" * 70
    assert refused(configfiles.path_check, long_name) == (
        f"'{'x' * 60}' is not a configuration file jailadmin reads"
    )
    for name in ("jail.conf.bak", "xjail.conf", "paths-.conf", "paths-a b.conf", "jail.txt"):
        assert "is not a configuration file jailadmin reads" in refused(
            configfiles.path_check, name
        )


@pytest.mark.parametrize(
    "path", ["jail.d/sub/a.local", "other.d/a.local", "a/b", "jail.d/a.local/"]
)
def test_only_the_three_directories_one_level_deep(path):
    assert refused(configfiles.path_check, path) == (
        "configuration files live directly in jail.d, filter.d, action.d"
    )


@pytest.mark.parametrize(
    "name", [".hidden.local", "a.loca", "a.conf.bak", "a b.local", "a.local\n", "", "é.local"]
)
def test_file_names_in_the_directories(name):
    assert refused(configfiles.path_check, f"filter.d/{name}") == (
        "a file name must match [A-Za-z0-9._-]+.(local|conf)"
    )


# --- Changes --------------------------------------------------------------------------------------
def change(path="jail.d/a.local", content="[sshd]\n", expected=None, **extra):
    return {"path": path, "content": content, "expected_sha256": expected, **extra}


def test_changes_pass_with_their_bytes_and_expected_digest():
    digest = hashlib.sha256(b"x").hexdigest()
    checked = configfiles.changes_check(
        [change(), change("filter.d/f.local", "é\n", digest)], minimum=1
    )
    assert checked == [
        configfiles.Change(ConfigPath("jail.d", "a.local"), b"[sshd]\n", None),
        configfiles.Change(ConfigPath("filter.d", "f.local"), "é\n".encode(), digest),
    ]
    assert configfiles.changes_check([], minimum=0) == []
    eight = [change(f"jail.d/{n}.local") for n in range(configfiles.MAX_CHANGES)]
    assert len(configfiles.changes_check(eight)) == 8


def test_change_list_bounds():
    message = "changes must be a list of 1 to 8 files"
    assert refused(configfiles.changes_check, []) == message
    nine = [change(f"jail.d/{n}.local") for n in range(9)]
    assert refused(configfiles.changes_check, nine) == message
    assert refused(configfiles.changes_check, (change(),)) == message
    assert refused(configfiles.changes_check, nine, minimum=0) == (
        "changes must be a list of 0 to 8 files"
    )


def test_each_change_is_checked():
    check = configfiles.changes_check
    assert refused(check, ["jail.d/a.local"]) == "a change is {path, content, expected_sha256}"
    assert refused(check, [change(mode="0777")]) == "a change is {path, content, expected_sha256}"
    assert refused(check, [change("jail.conf")]) == (
        "only jail.local and fail2ban.local can be written at the top level"
    )
    assert refused(check, [change(), change()]) == "jail.d/a.local is changed twice"
    assert refused(check, [change(content=b"x")]) == "content must be text"
    assert refused(check, [change(content="\ud800")]) == "content must be valid UTF-8 text"
    assert refused(check, [change(content="a\x00b")]) == (
        "a configuration file may not contain NUL"
    )
    for bad in ("0" * 63, "0" * 65, "A" * 64, 5, "g" * 64):
        assert refused(check, [change(expected=bad)]) == (
            "expected_sha256 must be a SHA-256 hex digest or null"
        )
    # A missing expected_sha256 is null: the file must not exist yet.
    assert check([{"path": "jail.d/a.local", "content": ""}])[0].expected_sha256 is None
    assert check([change(expected=SHA)])[0].expected_sha256 == SHA


def test_size_bound_is_in_utf8_bytes():
    at_cap = "é" * (configfiles.MAX_FILE_BYTES // 2)
    assert len(configfiles.changes_check([change(content=at_cap)])[0].content) == 256 * 1024
    assert refused(configfiles.changes_check, [change(content=at_cap + "x")]) == (
        "jail.d/a.local would be larger than 256 KB"
    )


def test_sha256_text_is_the_digest_of_the_utf8_bytes():
    assert configfiles.sha256_text("é") == hashlib.sha256("é".encode()).hexdigest()


# --- Reading files --------------------------------------------------------------------------------
@pytest.fixture
def conf(tmp_path):
    for directory in configfiles.EDIT_DIRS:
        (tmp_path / directory).mkdir()
    return HostConfig(config_dir=str(tmp_path))


def test_file_read_gives_path_content_digest_and_size(conf, tmp_path):
    (tmp_path / "jail.d" / "a.local").write_bytes("[sshd]\nenabled = é\n".encode())
    data = "[sshd]\nenabled = é\n".encode()
    assert configfiles.file_read(conf, path="jail.d/a.local") == {
        "path": "jail.d/a.local",
        "exists": True,
        "content": "[sshd]\nenabled = é\n",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    (tmp_path / "jail.local").write_bytes(b"")
    assert configfiles.file_read(conf, path="jail.local") == {
        "path": "jail.local",
        "exists": True,
        "content": "",
        "sha256": hashlib.sha256(b"").hexdigest(),
        "size": 0,
    }


def test_file_read_of_a_missing_file_or_directory(conf, tmp_path):
    missing = {"exists": False, "content": None, "sha256": None, "size": None}
    assert configfiles.file_read(conf, path="jail.d/none.local") == {
        "path": "jail.d/none.local",
        **missing,
    }
    (tmp_path / "action.d").rmdir()
    assert configfiles.file_read(conf, path="action.d/a.conf") == {
        "path": "action.d/a.conf",
        **missing,
    }


def test_file_read_refuses_what_is_not_a_plain_utf8_file_within_the_cap(conf, tmp_path):
    jail_d = tmp_path / "jail.d"
    (jail_d / "link.local").symlink_to(jail_d / "target.local")
    (jail_d / "target.local").write_text("x")
    assert refused(configfiles.file_read, conf, path="jail.d/link.local") == (
        "link.local cannot be opened safely: Too many levels of symbolic links"
    )
    (jail_d / "dir.local").mkdir()
    assert refused(configfiles.file_read, conf, path="jail.d/dir.local") == (
        "dir.local is not a regular file"
    )
    (jail_d / "big.local").write_bytes(b"x" * (configfiles.MAX_FILE_BYTES + 1))
    assert refused(configfiles.file_read, conf, path="jail.d/big.local") == (
        "big.local is larger than 256 KB"
    )
    (jail_d / "cap.local").write_bytes(b"x" * configfiles.MAX_FILE_BYTES)
    assert configfiles.file_read(conf, path="jail.d/cap.local")["size"] == 256 * 1024
    (jail_d / "latin1.local").write_bytes(b"caf\xe9\n")
    assert refused(configfiles.file_read, conf, path="jail.d/latin1.local") == (
        "jail.d/latin1.local is not UTF-8"
    )
    (tmp_path / "filter.d").rmdir()
    (tmp_path / "filter.d").symlink_to(jail_d)
    assert refused(configfiles.file_read, conf, path="filter.d/target.local").startswith(
        "filter.d is not a plain directory: "
    )


def test_files_list_hashes_our_files_only_and_fingerprints_them_in_order(conf, tmp_path):
    (tmp_path / "jail.local").write_bytes(b"j")
    (tmp_path / "jail.conf").write_bytes(b"c")
    (tmp_path / "README").write_bytes(b"not ours")
    (tmp_path / "jail.d" / "b.local").write_bytes(b"b")
    (tmp_path / "jail.d" / "a.conf").write_bytes(b"a")
    (tmp_path / "jail.d" / ".hidden.local").write_bytes(b"h")
    (tmp_path / "jail.d" / "sub.local").mkdir()
    (tmp_path / "jail.d" / "link.local").symlink_to(tmp_path / "jail.local")
    (tmp_path / "action.d" / "x.conf").write_bytes(b"x")
    (tmp_path / "filter.d").rmdir()  # a missing directory is simply empty
    expected = {
        "jail.conf": b"c",
        "jail.local": b"j",
        "jail.d/a.conf": b"a",
        "jail.d/b.local": b"b",
        "action.d/x.conf": b"x",
    }
    listed = configfiles.files_list(conf)
    digests = {path: hashlib.sha256(data).hexdigest() for path, data in expected.items()}
    assert listed["files"] == digests
    assert list(listed["files"]) == list(expected)
    fingerprint = hashlib.sha256()
    for path, digest in digests.items():
        fingerprint.update(f"{path}\0{digest}\n".encode())
    assert listed["fingerprint"] == fingerprint.hexdigest()


# --- Definitions: fail2ban's own reader, in this process and through a real agent ---------------
INSTALL = find_fail2ban()
DEFINITION_FILES = {
    "filter.d/demo-common.conf": "[DEFAULT]\n_prefix = demo\n",
    "filter.d/demo.conf": (
        "[INCLUDES]\nbefore = demo-common.conf\n"
        "[Definition]\nfailregex = ^%(_prefix)s fail from <HOST>$\nignoreregex =\n"
    ),
    "filter.d/demo.local": "[Definition]\nignoreregex = ^ok <HOST>$\n",
    "filter.d/broken.local": "[Definition]\nfailregex = ^(unclosed <HOST>\n",
    "action.d/note.conf": "[Definition]\nactionban = echo <ip> >> <file>\n[Init]\nfile = /tmp/x\n",
    "jail.conf": (
        "[DEFAULT]\nbackend = polling\n"
        "[demo]\nenabled = true\nfilter = demo\nlogpath = /dev/null\nmaxretry = 2\n"
    ),
}


def option(section: str, name: str, value: str, origin: list[Any] | None) -> dict[str, Any]:
    return {"section": section, "name": name, "value": value, "origin": origin}


@pytest.fixture(scope="module")
def definitions_conf(tmp_path_factory) -> HostConfig:
    root = tmp_path_factory.mktemp("definitions")
    for directory in configfiles.EDIT_DIRS:
        (root / directory).mkdir()
    for relative, text in DEFINITION_FILES.items():
        (root / relative).write_text(text)
    return HostConfig(config_dir=str(root), fail2ban_client=(INSTALL.client,))


@pytest.fixture(scope="module")
def definitions_agent(f2b_server, definitions_conf) -> Iterator[AgentProcess]:
    options = ["--config-dir", definitions_conf.config_dir, "--fail2ban-client", INSTALL.client]
    with AgentProcess(str(f2b_server.socket_path), options=options) as agent:
        yield agent


@pytest.fixture(params=["direct", "agent"])
def definition_link(request, definitions_conf) -> Iterator[DirectLink | AgentLink]:
    """The definitions' config dir read in this process, or only through the agent."""
    if request.param == "direct":
        yield DirectLink(definitions_conf)
        return
    agent = request.getfixturevalue("definitions_agent")
    agent.start()
    link = AgentLink(agent.address, timeout=10.0)
    yield link
    link.close()


def definition(link, directory: str, name: str) -> dict[str, Any]:
    value = dict(link.config_definition(directory=directory, name=name))
    assert value.pop("version").startswith(f"{INSTALL.version}.")
    return value


@pytest.mark.fail2ban
def test_definition_options_come_with_their_file_line_and_section(definition_link):
    # fail2ban's read order ([INCLUDES] before, .conf, .local); %(_prefix)s interpolated.
    assert definition(definition_link, "filter.d", "demo") == {
        "directory": "filter.d",
        "name": "demo",
        "files": ["filter.d/demo-common.conf", "filter.d/demo.conf", "filter.d/demo.local"],
        "options": [
            option(
                "Definition", "ignoreregex", "^ok <HOST>$", ["filter.d/demo.local", 2, "Definition"]
            ),
            option(
                "Definition",
                "failregex",
                "^demo fail from <HOST>$",
                ["filter.d/demo.conf", 4, "Definition"],
            ),
        ],
        "errors": [],
    }
    # An action's [Init] values too; <tags> stay, a jail fills them.
    assert definition(definition_link, "action.d", "note") == {
        "directory": "action.d",
        "name": "note",
        "files": ["action.d/note.conf"],
        "options": [
            option(
                "Definition",
                "actionban",
                "echo <ip> >> <file>",
                ["action.d/note.conf", 2, "Definition"],
            ),
            option("Init", "file", "/tmp/x", ["action.d/note.conf", 4, "Init"]),
        ],
        "errors": [],
    }


@pytest.mark.fail2ban
def test_definition_of_a_local_only_filter_fail2ban_cannot_compile(definition_link):
    broken = definition(definition_link, "filter.d", "broken")
    assert (broken["files"], broken["options"]) == (
        ["filter.d/broken.local"],
        [
            option(
                "Definition",
                "failregex",
                "^(unclosed <HOST>",
                ["filter.d/broken.local", 2, "Definition"],
            )
        ],
    )
    [error] = broken["errors"]
    assert error.startswith("RegexException: Unable to compile regular expression '^(unclosed ")
    assert error.endswith("missing ), unterminated subpattern at position 1")


@pytest.mark.fail2ban
def test_definition_refusals_reach_the_caller_with_their_message(definition_link):
    for directory, name, message in (
        ("jail.d", "demo", "definitions live in filter.d or action.d"),
        ("filter.d", "", "a definition needs a name"),
        ("filter.d", 5, "a definition needs a name"),
        ("filter.d", None, "a definition needs a name"),
        ("filter.d", "nothing", "there is no filter.d/nothing.conf or .local"),
        ("filter.d", "../demo", "configuration files live directly in jail.d, filter.d, action.d"),
        ("filter.d", ".demo", "a file name must match [A-Za-z0-9._-]+.(local|conf)"),
    ):
        with pytest.raises(InvalidArgument) as error:
            definition_link.config_definition(directory=directory, name=name)
        assert str(error.value) == message


@pytest.mark.fail2ban
def test_agent_config_definition_takes_a_directory_and_a_name_only(definitions_agent):
    definitions_agent.start()
    link = AgentLink(definitions_agent.address, timeout=10.0)
    try:
        args = {"directory": "filter.d", "name": "demo", "path": "/etc/shadow"}
        with pytest.raises(InvalidArgument) as error:
            link._call("config_definition", args)
    finally:
        link.close()
    assert str(error.value) == "unexpected arguments: path"


def test_unexpected_argument_names_are_quoted_up_to_200_characters():
    # A refusal echoes what a caller sent: bounded, however long the names.
    with pytest.raises(InvalidArgument) as error:
        configfiles.op_config_read(HostConfig(), None, {"b" * 150: 1, "a" * 150: 2})
    assert str(error.value) == "unexpected arguments: " + ("a" * 150 + ", " + "b" * 150)[:200]


def test_definition_reader_without_options_is_a_reload_failure(
    definitions_conf, tmp_path, monkeypatch
):
    # fail2ban's reader always answers with a list of options; a reader that does not is not
    # taken for an empty definition.
    reader = tmp_path / "python3"
    reader.write_text("#!/bin/sh\necho '{\"errors\": []}'\n")
    reader.chmod(0o755)
    monkeypatch.setattr(configfiles, "FAIL2BAN_PYTHON", str(reader))
    with pytest.raises(ReloadFailed) as error:
        configfiles.definition_read(definitions_conf, directory="filter.d", name="demo")
    assert str(error.value) == "fail2ban's definition reader gave no answer"


def test_config_definition_waits_for_the_reload_timeout_not_the_command_timeout():
    release = threading.Event()

    def answer(request: dict[str, Any], nth: int) -> Any:
        # Later than the reload timeout allows, sooner than the command timeout would.
        release.wait(REPLY_MARGIN + 3.0)
        return CLOSE if release.is_set() else {"options": []}

    with ScriptedAgent(answer) as agent:
        link = AgentLink(agent.address, timeout=30.0, reload_timeout=0.5)
        try:
            with pytest.raises(AgentUnreachable) as lost:
                link.config_definition(directory="filter.d", name="sshd")
        finally:
            release.set()
            link.close()
    assert lost.value.reason == f"no answer within {0.5 + REPLY_MARGIN:g} s"
    assert [(r["op"], r["args"]) for r in agent.requests] == [
        ("config_definition", {"directory": "filter.d", "name": "sshd"})
    ]


# --- The jails as fail2ban's reader reads them ----------------------------------------------------
def test_config_read_runs_fail2bans_reader_unless_the_fingerprint_is_unchanged(
    definitions_conf, monkeypatch
):
    listing = configfiles.files_list(definitions_conf)
    read = configfiles.config_read(definitions_conf)
    assert {key: read[key] for key in ("files", "fingerprint", "unchanged")} == {
        **listing,
        "unchanged": False,
    }
    assert read["config"]["files"] == ["jail.conf"]
    [jail] = read["config"]["jails"]
    assert (jail["name"], jail["enabled"], jail["errors"]) == ("demo", True, [])
    assert jail["options"]["maxretry"] == 2
    assert jail["origins"]["maxretry"] == ["jail.conf", 7, "demo"]
    assert "stream" not in jail  # fail2ban's command stream stays on the host
    # The caller's copy is current: no reader runs at all (there is none to run here).
    monkeypatch.setattr(configfiles, "FAIL2BAN_PYTHON", "/nonexistent/python3")
    unchanged = configfiles.config_read(definitions_conf, if_changed_from=listing["fingerprint"])
    assert unchanged == {**listing, "unchanged": True}
    with pytest.raises(ReloadFailed) as error:
        configfiles.config_read(definitions_conf, if_changed_from=SHA)
    assert str(error.value) == (
        "fail2ban's configuration reader did not run: "
        "[Errno 2] No such file or directory: '/nonexistent/python3'"
    )
    for fingerprint in ("0" * 63, "A" * 64, 5, ""):
        assert refused(configfiles.config_read, definitions_conf, if_changed_from=fingerprint) == (
            "if_changed_from must be a fingerprint"
        )


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (
            "echo 'first' >&2; echo ' Traceback: boom ' >&2; exit 3",
            "fail2ban's configuration reader failed\nfirst\n Traceback: boom",
        ),
        ("echo 'not json'", "fail2ban's configuration reader printed no JSON"),
        ("echo '[1]'", "fail2ban's configuration reader printed no JSON"),
        ("echo '{}'", "fail2ban's configuration reader gave no answer"),
        ("echo '{\"%s\": []}'", "fail2ban's configuration reader gave no answer"),
    ],
)
def test_config_read_when_the_reader_misbehaves(
    definitions_conf, tmp_path, monkeypatch, script, message
):
    # fail2ban's reader never does any of this: a script in its place does.
    reader = tmp_path / "python3"
    directory = os.path.realpath(definitions_conf.config_dir)
    reader.write_text("#!/bin/sh\n" + (script % directory if "%s" in script else script) + "\n")
    reader.chmod(0o755)
    monkeypatch.setattr(configfiles, "FAIL2BAN_PYTHON", str(reader))
    with pytest.raises(ReloadFailed) as error:
        configfiles.config_read(definitions_conf)
    assert str(error.value) == message


def test_config_read_gives_up_on_a_reader_that_hangs(definitions_conf, tmp_path, monkeypatch):
    reader = tmp_path / "python3"
    reader.write_text("#!/bin/sh\nexec sleep 60\n")
    reader.chmod(0o755)
    monkeypatch.setattr(configfiles, "FAIL2BAN_PYTHON", str(reader))
    monkeypatch.setattr(configfiles, "READ_TIMEOUT", 0.5)
    with pytest.raises(ReloadFailed) as error:
        configfiles.config_read(definitions_conf)
    message = str(error.value)
    assert message.startswith(
        f"fail2ban's configuration reader did not run: Command '['{reader}', "
    )
    assert message.endswith("' timed out after 0.5 seconds")


def test_fail2ban_next_to_a_client_found_on_the_path_is_the_one_that_reads(
    definitions_conf, monkeypatch
):
    # An unpacked fail2ban beside its wrapper client (as var/fail2ban here): its package goes
    # on the reader's path, whether the client is named by its path or found on PATH.
    monkeypatch.setenv("PATH", f"{Path(INSTALL.client).parent}:{os.environ['PATH']}")
    on_path = dataclasses.replace(definitions_conf, fail2ban_client=("fail2ban-client", "-v"))
    read = configfiles.definition_read(on_path, directory="filter.d", name="demo")
    assert read["files"] == [
        "filter.d/demo-common.conf",
        "filter.d/demo.conf",
        "filter.d/demo.local",
    ]
    if Path("/usr/lib/python3/dist-packages/fail2ban").exists():
        return  # a system fail2ban: the reader finds it without any help
    for nowhere in ((), ("no-such-fail2ban-client",), ("/nonexistent/bin/fail2ban-client",)):
        config = dataclasses.replace(definitions_conf, fail2ban_client=nowhere)
        with pytest.raises(ReloadFailed) as error:
            configfiles.definition_read(config, directory="filter.d", name="demo")
        message = str(error.value)
        assert message.startswith("fail2ban's configuration reader failed\nTraceback")
        assert message.endswith("ModuleNotFoundError: No module named 'fail2ban'")


def test_agent_operation_apply_is_a_real_change_unless_asked_for_a_dry_run(definitions_conf):
    read_only = dataclasses.replace(definitions_conf, config_writes=False)
    changes = [change("jail.d/new.local", "[demo]\nmaxretry = 3\n")]
    # dry_run left out: a change, which this agent refuses before reading anything.
    with pytest.raises(AgentRefused) as error:
        configfiles.op_config_apply(read_only, None, {"changes": changes})
    assert str(error.value) == (
        "this agent does not write fail2ban's configuration (--no-config-writes)"
    )
    assert refused(
        configfiles.op_config_apply, read_only, None, {"changes": changes, "dry_run": 1}
    ) == ("dry_run must be true or false")


def test_the_reader_leaves_out_the_users_site_packages_but_not_the_systems(
    definitions_conf, tmp_path, monkeypatch
):
    # Debian's fail2ban lives in the system's dist-packages: `-s` leaves out only a user's
    # site directory (a `pip install --user` shadowing a module), `-S` would hide fail2ban.
    reader = tmp_path / "python3"
    given = tmp_path / "argv"
    reader.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" > {given}\necho '{{}}'\n")
    reader.chmod(0o755)
    monkeypatch.setattr(configfiles, "FAIL2BAN_PYTHON", str(reader))
    with pytest.raises(ReloadFailed):
        configfiles.config_read(definitions_conf)
    argv = given.read_text().split("\0")
    assert argv[:3] == ["-s", "-c", configfiles.READER_SCRIPT]


# --- Writing one file -----------------------------------------------------------------------------
def test_a_file_rewritten_keeps_its_owner_and_mode_and_leaves_no_temporary_file(conf, tmp_path):
    jail_d = tmp_path / "jail.d"
    path = ConfigPath("jail.d", "a.local")
    # Owned by another user, and by root with another group (the tests run as root).
    for uid, gid in ((1234, 5678), (0, 5678)):
        (jail_d / "a.local").write_bytes(b"old\n")
        os.chown(jail_d / "a.local", uid, gid)
        os.chmod(jail_d / "a.local", 0o640)
        like = configfiles._file_state(conf, path)
        configfiles._write_atomic(conf, path, b"new\n", like)
        info = (jail_d / "a.local").stat()
        assert ((jail_d / "a.local").read_bytes(), info.st_uid, info.st_gid) == (
            b"new\n",
            uid,
            gid,
        )
        assert oct(info.st_mode & 0o7777) == oct(0o640)
        assert os.listdir(jail_d) == ["a.local"]
    # data None removes the file (a rolled-back new file); removing it twice is no error.
    configfiles._write_atomic(conf, path, None, configfiles.FileState(None))
    configfiles._write_atomic(conf, path, None, configfiles.FileState(None))
    assert os.listdir(jail_d) == []


def test_a_write_onto_a_symlink_or_a_directory_changes_nothing(conf, tmp_path, monkeypatch):
    jail_d = tmp_path / "jail.d"
    (tmp_path / "target").write_text("kept\n")
    (jail_d / "link.local").symlink_to(tmp_path / "target")
    new = configfiles.FileState(None, 0o644)
    # The checks are relative to the directory's descriptor, not the working directory.
    monkeypatch.chdir(tmp_path)
    assert refused(
        configfiles._write_atomic, conf, ConfigPath("jail.d", "link.local"), b"x", new
    ) == ("jail.d/link.local is a symbolic link")
    (jail_d / "dir.local").mkdir()
    with pytest.raises(IsADirectoryError):
        configfiles._write_atomic(conf, ConfigPath("jail.d", "dir.local"), b"x", new)
    assert (tmp_path / "target").read_text() == "kept\n"
    assert sorted(os.listdir(jail_d)) == ["dir.local", "link.local"]


def test_a_fifo_is_refused_without_waiting_for_a_writer(conf, tmp_path):
    fifo = tmp_path / "jail.d" / "fifo.local"
    os.mkfifo(fifo)
    outcome: list[str] = []
    reader = threading.Thread(
        target=lambda: outcome.append(
            refused(configfiles.file_read, conf, path="jail.d/fifo.local")
        )
    )
    reader.start()
    reader.join(30.0)
    blocked = reader.is_alive()
    if blocked:  # stuck in open() until a writer comes: release it
        with open(fifo, "wb"):
            pass
        reader.join()
    assert (blocked, outcome) == (False, ["fifo.local is not a regular file"])


def test_output_without_fail2bans_syslogsocket_warnings():
    noise = "2026-01-01 fail2ban.configreader [1]: WARNING 'syslogsocket' not defined"
    output = f"{noise}\nERROR first\n{noise}\nsecond"
    assert configfiles._without_noise(output) == "ERROR first\nsecond"
    assert configfiles._without_noise("OK") == "OK"


def test_a_conflict_gives_back_the_current_content_even_when_it_is_not_utf8(conf, tmp_path):
    (tmp_path / "jail.d" / "a.local").write_bytes(b"caf\xe9\n")
    current = hashlib.sha256(b"caf\xe9\n").hexdigest()
    # A conflict is found before anything is staged: no fail2ban is needed for it.
    assert configfiles.config_apply(conf, None, changes=[change(expected=SHA)]) == {
        "ok": False,
        "stage": "conflict",
        "path": "jail.d/a.local",
        "message": "jail.d/a.local changed since it was read",
        "current": {"exists": True, "content": "caf\ufffd\n", "sha256": current},
        "rolled_back": False,
        "output": "",
    }
    assert (tmp_path / "jail.d" / "a.local").read_bytes() == b"caf\xe9\n"


def test_refusals_before_anything_is_staged(conf, tmp_path):
    (tmp_path / "jail.d" / "a.conf").write_bytes(b"[sshd]\n")
    shipped = hashlib.sha256(b"[sshd]\n").hexdigest()
    assert refused(
        configfiles.config_apply, conf, None, changes=[change("jail.d/a.conf", "x", shipped)]
    ) == ("jail.d/a.conf is a .conf file: override it in a .local instead")
    missing = tmp_path / "missing"
    with pytest.raises(ReloadFailed) as error:
        configfiles.config_apply(HostConfig(config_dir=str(missing)), None, changes=[change()])
    assert str(error.value) == (
        f"cannot open fail2ban's configuration directory {missing}: No such file or directory"
    )


# --- The safe path against a real fail2ban --------------------------------------------------------
def host_config(host: ConfigHost, **changes: Any) -> HostConfig:
    server = host.server
    assert server.install is not None
    config = HostConfig(
        socket=str(server.socket_path),
        config_dir=str(server.conf_dir),
        fail2ban_client=(server.install.client,),
    )
    return dataclasses.replace(config, **changes)


def apply(host: ConfigHost, *changes: dict[str, Any], **options: Any) -> dict[str, Any]:
    config = host_config(host, **options.pop("config", {}))
    return configfiles.config_apply(config, host.server.client(), changes=list(changes), **options)


def written(path: str, content: str, previous: str | None = None) -> dict[str, Any]:
    return {
        "path": path,
        "sha256": hashlib.sha256(content.encode()).hexdigest(),
        "previous_sha256": previous,
    }


@pytest.mark.fail2ban
def test_dry_run_tests_the_configuration_and_writes_nothing(config_host):
    reply = {
        "ok": True,
        "dry_run": True,
        "written": [],
        "reloaded": [],
        "output": "OK: configuration test is successful",
    }
    # No change at all: the configuration as it is.
    assert apply(config_host, dry_run=True) == reply
    assert (
        apply(config_host, change("jail.d/alpha.local", "[alpha]\nmaxretry = 9\n"), dry_run=True)
        == reply
    )
    assert not (config_host.conf / "jail.d" / "alpha.local").exists()
    assert config_host.get("alpha", "maxretry") == 3


@pytest.mark.fail2ban
def test_a_filter_fail2ban_cannot_compile_is_refused_before_anything_is_written(config_host):
    # `fail2ban-client -t` lets it through; fail2ban's own regex compiler, run over the staged
    # jails, names the jail and the regex.
    broken = change("filter.d/alpha.local", "[Definition]\nfailregex = ^(x <HOST>\n")
    outcome = apply(config_host, broken)
    output = outcome.pop("output")
    assert outcome == {
        "ok": False,
        "stage": "test",
        "message": "fail2ban would not start the jail",
        "rolled_back": False,
    }
    assert output.startswith("alpha: addfailregex '^(x ")
    assert output.endswith("missing ), unterminated subpattern at position 1"), output
    assert not (config_host.conf / "filter.d" / "alpha.local").exists()
    assert config_host.get("alpha", "maxretry") == 3


@pytest.mark.fail2ban
def test_a_staged_configuration_fail2bans_reader_cannot_read_is_refused(
    config_host, tmp_path, monkeypatch
):
    # `fail2ban-client -t` passes; the reader reports an error for the staged copy (its 5th
    # argument), as it does for a directory without jail.conf.
    reader = tmp_path / "python3"
    reader.write_text(
        '#!/bin/sh\nprintf \'{"%s": {"jails": []}, "%s": {"error": "no jails in %s"}}\' '
        '"$4" "$5" "$5"\n'
    )
    reader.chmod(0o755)
    monkeypatch.setattr(configfiles, "FAIL2BAN_PYTHON", str(reader))
    outcome = apply(config_host, change("jail.d/alpha.local", "[alpha]\nmaxretry = 9\n"))
    message = outcome.pop("message")
    assert message.startswith("no jails in /") and message.endswith("/conf")
    assert outcome == {"ok": False, "stage": "test", "output": "", "rolled_back": False}
    assert not (config_host.conf / "jail.d" / "alpha.local").exists()


@pytest.mark.fail2ban
def test_a_change_no_jail_uses_is_written_as_a_new_0644_file_without_a_reload(config_host):
    content = "# notes only\n"
    assert apply(config_host, change("jail.d/notes.local", content)) == {
        "ok": True,
        "written": [written("jail.d/notes.local", content)],
        "reloaded": [],
        "output": "",
    }
    info = (config_host.conf / "jail.d" / "notes.local").stat()
    assert (oct(info.st_mode & 0o7777), info.st_uid) == (oct(0o644), os.geteuid())
    assert os.listdir(config_host.conf / "jail.d") == ["notes.local"]


@pytest.mark.fail2ban
def test_a_change_to_one_running_jail_reloads_that_jail_only(config_host):
    jail_d = config_host.conf / "jail.d"
    jail_d.mkdir(exist_ok=True)
    # Changed on disk by someone else, not reloaded: a reload of alpha alone leaves it so.
    (jail_d / "beta.local").write_text("[beta]\nmaxretry = 9\n")
    content = "[alpha]\nmaxretry = 7\nignoreip = 127.0.0.1/8 Host.Example\n"
    assert apply(config_host, change("jail.d/alpha.local", content)) == {
        "ok": True,
        "written": [written("jail.d/alpha.local", content)],
        "reloaded": ["alpha"],
        "output": "OK",
    }
    assert config_host.get("alpha", "maxretry") == 7
    assert config_host.get("beta", "maxretry") == 4


@pytest.mark.fail2ban
def test_an_action_added_to_running_jails_runs_with_the_ones_they_had(config_host):
    # fail2ban's plain reload would drop the new action: the jails are restarted instead.
    actions = "action = jailadmin-record\n         jailadmin-record[actname=second]\n"
    alpha = f"[alpha]\n{actions}"
    outcome = apply(config_host, change("jail.d/alpha.local", alpha))
    assert outcome["ok"], outcome
    assert outcome["reloaded"] == ["alpha"]
    assert sorted(config_host.get("alpha", "actions")) == ["jailadmin-record", "second"]
    both = f"[beta]\n{actions}[sshd]\n{actions}"
    outcome = apply(config_host, change("jail.local", both))
    assert outcome["ok"], outcome
    assert outcome["reloaded"] == ["beta", "sshd"]
    for jail in ("alpha", "beta", "sshd"):
        assert sorted(config_host.get(jail, "actions")) == ["jailadmin-record", "second"]


@pytest.mark.fail2ban
def test_a_reload_that_does_not_finish_is_rolled_back_and_says_so(config_host):
    jail_d = config_host.conf / "jail.d"
    jail_d.mkdir(exist_ok=True)
    (jail_d / "beta.local").write_text("[beta]\nmaxretry = 6\n")
    previous = hashlib.sha256(b"[beta]\nmaxretry = 6\n").hexdigest()
    # Too short for fail2ban-client to start: neither reload reaches the server.
    timeout = {"reload_timeout": 0.001}
    changes = (
        change("jail.d/beta.local", "[beta]\nmaxretry = 8\n", previous),
        change("jail.d/alpha.local", "[alpha]\nmaxretry = 8\n"),
    )
    assert apply(config_host, *changes, config=timeout) == {
        "ok": False,
        "stage": "reload",
        "message": "reload did not finish within 0.001 s",
        "output": "",
        "rolled_back": True,
        "restored": {
            "ok": False,
            "message": "the reload after restoring failed: reload did not finish within 0.001 s",
        },
    }
    # The previous file back, the new one gone, no temporary file left.
    assert os.listdir(jail_d) == ["beta.local"]
    assert (jail_d / "beta.local").read_text() == "[beta]\nmaxretry = 6\n"
    assert (config_host.get("alpha", "maxretry"), config_host.get("beta", "maxretry")) == (3, 4)


@pytest.mark.fail2ban
def test_an_ipv4_mapped_address_to_ignore_is_taken_for_the_ipv4_address(config_host):
    # fail2ban stores ::ffff:192.0.2.1 as 192.0.2.1 (a prefix keeps it IPv6): the check
    # after the reload compares it so, rather than rolling a good change back.
    content = "[alpha]\nignoreip = ::ffff:192.0.2.1 ::ffff:198.51.100.7/128\n"
    outcome = apply(config_host, change("jail.d/alpha.local", content))
    assert outcome["ok"], outcome
    assert outcome["reloaded"] == ["alpha"]
    assert configfiles._networks(config_host.get("alpha", "ignoreip")) == configfiles._networks(
        ["192.0.2.1", "198.51.100.7"]
    )


# --- What "the jail runs the new values" means ----------------------------------------------------
def test_ignoreip_entries_compare_as_fail2ban_stores_them():
    assert configfiles._networks(
        ["127.0.0.1/8", " 10.0.0.1 ", "2001:db8::1/64", "::ffff:0:0/96", "Host.Example"]
    ) == {"127.0.0.0/8", "10.0.0.1/32", "2001:db8::/64", "::ffff:0:0/96", "host.example"}
    assert configfiles._networks([]) == set()


@pytest.mark.fail2ban
def test_jail_mismatches_name_every_difference_from_the_running_jail(config_host):
    client = config_host.server.client()
    logpath = str(config_host.server.log_path("alpha"))
    live = {
        "maxretry": 3,
        "findtime": 600,
        "bantime": 600,
        "logpath": [logpath],
        "ignoreip": [],
        "actions": ["jailadmin-record"],
    }

    def mismatches(name: str, expected: dict[str, Any] | None, enabled: bool = True):
        jail = None if expected is None else {"enabled": enabled, "expected": expected}
        return configfiles._jail_mismatches(client, name, jail)

    assert mismatches("alpha", live) == []
    assert mismatches("alpha", {}) == []
    assert mismatches("alpha", {"ignoreip": ["127.0.0.1/8"]}) == [
        "alpha ignores [], expected ['127.0.0.0/8']"
    ]
    assert mismatches(
        "alpha",
        {
            "maxretry": 4,
            "findtime": 60,
            "bantime": 3600,
            "logpath": ["/var/log/other.log"],
            "ignoreip": ["10.0.0.1"],
            "actions": ["second"],
        },
    ) == [
        "alpha maxretry is 3, expected 4",
        "alpha findtime is 600, expected 60",
        "alpha bantime is 600, expected 3600",
        f"alpha reads ['{logpath}'], expected ['/var/log/other.log']",
        "alpha ignores [], expected ['10.0.0.1/32']",
        "alpha runs actions ['jailadmin-record'], expected ['second']",
    ]
    assert mismatches("alpha", live, enabled=False) == ["jail alpha is still running"]
    assert mismatches("alpha", None) == ["jail alpha is still running"]
    assert mismatches("gamma", live) == ["jail gamma is not running"]
    assert mismatches("gamma", None) == []
