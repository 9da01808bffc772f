"""The configuration editor's host side (jails.agent.configfiles) pinned down to what a caller
sees: which paths and changes are refused and with which message, and the exact form of what
passes (the path fail2ban's directory gets, the bytes written, the digest returned).

Written for `make mutation MUTANTS='jails.agent.configfiles*'` (issue 17): these checks run in
this process, so each mutant of an argument check is judged without starting fail2ban.
"""

from __future__ import annotations

import hashlib

import pytest

from jails.agent import configfiles
from jails.agent.configfiles import ConfigPath
from jails.agent.operations import HostConfig
from jails.fail2ban import InvalidArgument

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
