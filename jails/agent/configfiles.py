"""fail2ban's configuration files: read them as fail2ban does, change them without breaking it.

Host-side (root in production), so every path a caller names is checked here before anything
is opened: only `jail.local`, `fail2ban.local` and files named `[A-Za-z0-9._-]+.(local|conf)`
directly in `jail.d/`, `filter.d/`, `action.d/` (reads may also see the shipped top-level
`.conf` files); no symlink is followed, no NUL, no percent-encoding, at most 256 KB of UTF-8.

Reading uses fail2ban's own configuration reader (`fail2ban.client.jailsreader`), run by the
Python that fail2ban itself runs on (READER_SCRIPT, in a subprocess): INI semantics,
`[INCLUDES]`, `%(var)s` interpolation, `.d/` directories and `.local` overrides are exactly
fail2ban's, never a re-implementation.

A change (config_apply) takes the safe path: stage a copy of the whole directory with the
change → `fail2ban-client -c STAGING -t` plus fail2ban's own regex compiler over the staged
jails → atomic write (temp file + rename, same owner and mode) → reload what changed →
verify within VERIFY_SECONDS that each affected jail runs with the new values (maxretry,
findtime, bantime, log paths, ignoreip as networks, action names) → otherwise
put the previous files back, reload again and report exactly what failed. A file whose hash
is not the one the caller saw is never overwritten (optimistic concurrency): the caller gets
its current content back instead.

Nothing Django in here: standard library and jails.fail2ban only.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jails.fail2ban import (
    AgentRefused,
    Fail2banClient,
    Fail2banError,
    InvalidArgument,
    ReloadFailed,
)

from . import operations
from .operations import HostConfig

MAX_FILE_BYTES = 256 * 1024
MAX_PATH_LENGTH = 200
MAX_CHANGES = 8  # files in one change: a jail and its filter, a version restore, ...
EDIT_DIRS = ("jail.d", "filter.d", "action.d")
TOP_LOCAL_FILES = ("jail.local", "fail2ban.local")
# Shipped top-level files the pages may show (never written).
TOP_READ_PATTERN = re.compile(r"(jail|fail2ban|paths-[A-Za-z0-9_-]+)\.(conf|local)\Z")
# A leading dot is refused on top of the pattern: no hidden files, no `..` games.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\.(local|conf)\Z")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}\Z")

# The Python that runs fail2ban on a Debian host (its package is in /usr/lib/python3/
# dist-packages); an unpacked package next to a wrapper client is put on its path.
FAIL2BAN_PYTHON = "/usr/bin/python3"
READ_TIMEOUT = 60.0  # the whole of Debian's configuration: about 1 s on a loaded machine
TEST_TIMEOUT = 60.0
VERIFY_SECONDS = 10.0  # the bound: each affected jail runs the new values by then
VERIFY_INTERVAL = 0.1
MAX_OUTPUT = operations.MAX_OUTPUT


# --- paths ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigPath:
    """A checked path inside the configuration directory: `directory` is "" or one of EDIT_DIRS."""

    directory: str
    name: str

    @property
    def relative(self) -> str:
        return f"{self.directory}/{self.name}" if self.directory else self.name


def path_check(path: Any, *, write: bool = False) -> ConfigPath:
    """The checked form of a caller's path; InvalidArgument for anything outside the rules."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH_LENGTH:
        raise InvalidArgument("a configuration path must be a short relative path")
    # Refused before anything is split or opened: NUL, encoded characters (`%2e%2e`),
    # backslashes, absolute paths and any `.`/`..` component.
    if "\x00" in path or "%" in path or "\\" in path or path.startswith("/"):
        raise InvalidArgument("a configuration path may not contain NUL, %, \\ or start with /")
    parts = path.split("/")
    if len(parts) == 1:
        name = parts[0]
        allowed = name in TOP_LOCAL_FILES or (not write and TOP_READ_PATTERN.match(name))
        if not allowed:
            raise InvalidArgument(
                "only jail.local and fail2ban.local can be written at the top level"
                if write
                else f"{name[:60]!r} is not a configuration file jailadmin reads"
            )
        return ConfigPath("", name)
    if len(parts) != 2 or parts[0] not in EDIT_DIRS:
        raise InvalidArgument(f"configuration files live directly in {', '.join(EDIT_DIRS)}")
    directory, name = parts
    if not NAME_PATTERN.match(name):
        raise InvalidArgument("a file name must match [A-Za-z0-9._-]+.(local|conf)")
    return ConfigPath(directory, name)


def _hasher() -> Any:
    # Imported on first use: hashlib loads OpenSSL's libcrypto (about 3.7 MB resident), which
    # an agent that never edits configuration should not carry (its idle memory is bounded).
    import hashlib

    return hashlib.sha256()


def _sha256(data: bytes) -> str:
    hasher = _hasher()
    hasher.update(data)
    return str(hasher.hexdigest())


def sha256_text(content: str) -> str:
    return _sha256(content.encode("utf-8"))


@contextlib.contextmanager
def _directory(config: HostConfig, directory: str, *, create: bool = False) -> Iterator[int]:
    """A descriptor of the config dir (or one of its EDIT_DIRS, never through a symlink);
    `create`: make a missing EDIT_DIR (a fresh install may have no jail.d/)."""
    root = os.open(config.config_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if not directory:
            yield root
            return
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(directory, 0o755, dir_fd=root)
        try:
            fd = os.open(
                directory,
                os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                dir_fd=root,
            )
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise InvalidArgument(f"{directory} is not a plain directory: {exc.strerror}") from None
        try:
            yield fd
        finally:
            os.close(fd)
    finally:
        os.close(root)


@dataclass(frozen=True)
class FileState:
    """A file as it is on disk now (content None: it does not exist)."""

    content: bytes | None
    mode: int = 0o644
    uid: int = -1
    gid: int = -1

    @property
    def sha256(self) -> str | None:
        return None if self.content is None else _sha256(self.content)


def _read_at(dir_fd: int, name: str) -> FileState:
    try:
        fd = os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except FileNotFoundError:
        return FileState(None)
    except OSError as exc:
        # ELOOP: the name is a symbolic link, which is never followed.
        raise InvalidArgument(f"{name} cannot be opened safely: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidArgument(f"{name} is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise InvalidArgument(f"{name} is larger than {MAX_FILE_BYTES // 1024} KB")
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            if sum(map(len, chunks)) > MAX_FILE_BYTES:
                raise InvalidArgument(f"{name} is larger than {MAX_FILE_BYTES // 1024} KB")
    finally:
        os.close(fd)
    return FileState(b"".join(chunks), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)


def _file_state(config: HostConfig, path: ConfigPath) -> FileState:
    try:
        with _directory(config, path.directory) as dir_fd:
            return _read_at(dir_fd, path.name)
    except FileNotFoundError:
        return FileState(None)


def _decode(data: bytes, relative: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"{relative} is not UTF-8") from None


def file_read(config: HostConfig, *, path: Any) -> dict[str, Any]:
    """One configuration file: {path, exists, content, sha256, size}."""
    checked = path_check(path)
    state = _file_state(config, checked)
    content = None if state.content is None else _decode(state.content, checked.relative)
    return {
        "path": checked.relative,
        "exists": state.content is not None,
        "content": content,
        "sha256": state.sha256,
        "size": None if state.content is None else len(state.content),
    }


def files_list(config: HostConfig) -> dict[str, Any]:
    """Every readable configuration file with its hash, and a fingerprint of them all."""
    files: dict[str, str] = {}
    fingerprint = _hasher()
    for directory in ("", *EDIT_DIRS):
        try:
            with _directory(config, directory) as dir_fd:
                names = sorted(os.listdir(dir_fd))
                for name in names:
                    try:
                        checked = path_check(f"{directory}/{name}" if directory else name)
                        state = _read_at(dir_fd, checked.name)
                    except InvalidArgument:
                        continue  # a directory, a symlink, a file outside the rules: not ours
                    if state.content is None:
                        continue
                    digest = _sha256(state.content)
                    files[checked.relative] = digest
                    fingerprint.update(f"{checked.relative}\0{digest}\n".encode())
        except FileNotFoundError:
            continue
    return {"files": files, "fingerprint": fingerprint.hexdigest()}


# --- fail2ban's own reader ----------------------------------------------------------------------
# Run by fail2ban's Python with the config directories as arguments; prints one JSON object
# per directory. Private helpers of fail2ban's parser (_getIncludes, _getSharedSCPWI) give
# the files in fail2ban's read order, each parsed by fail2ban; that is what the origins of
# the settings come from.
# The line of a setting: a scan of the one file fail2ban's parsers say sets it (shared by both
# scripts below).
READER_LINES = r"""
import glob, json, logging, os, re, sys
logging.disable(logging.CRITICAL)
from fail2ban.version import version
from fail2ban.server.failregex import FailRegex, Regex

HEADER = re.compile(r"^\[([^\]]+)\]")
KEY = re.compile(r"^([^\s=:#;\[][^=:]*?)\s*[=:]")

def lines_of(path, cache):
    if path not in cache:
        found = {}
        section = None
        try:
            with open(path, encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    m = HEADER.match(line)
                    if m:
                        section = m.group(1).strip()
                        continue
                    m = KEY.match(line)
                    if m and section is not None:
                        found[(section, m.group(1).strip().lower())] = number
        except (OSError, UnicodeDecodeError):
            pass
        cache[path] = found
    return cache[path]

def parsed_files(cfg, names):
    # fail2ban's read order of `names` with their [INCLUDES], each file parsed by fail2ban.
    names = [n for n in names if os.path.exists(n)]
    parsed = []
    for name in cfg._getIncludes(names):
        parser, ok = cfg._getSharedSCPWI(name)
        if ok:
            parsed.append((name, parser.get_defaults(), parser.get_sections()))
    return parsed
"""

READER_SCRIPT = (
    READER_LINES
    + r"""
from fail2ban.client.jailsreader import JailsReader
from fail2ban.client.jailreader import JailReader
from fail2ban.server.mytime import MyTime

SKIP = {"INCLUDES", "DEFAULT"}

def read(basedir):
    share = {}
    reader = JailsReader(share_config=share, basedir=basedir)
    if not reader.read():
        return {"error": "fail2ban found no readable jail configuration in " + basedir}
    cfg = reader._cfg
    base = os.path.join(basedir, "jail")
    names = [base + ".conf"] + sorted(glob.glob(base + ".d/*.conf"))
    names += [base + ".local"] + sorted(glob.glob(base + ".d/*.local"))
    parsed = parsed_files(cfg, names)
    rel = lambda p: os.path.relpath(p, basedir)
    lines = {}
    def origin(section, key):
        for name, defaults, sections in reversed(parsed):
            if key in sections.get(section, {}):
                return [rel(name), lines_of(name, lines).get((section, key)), section]
        for name, defaults, sections in reversed(parsed):
            if key in defaults:
                return [rel(name), lines_of(name, lines).get(("DEFAULT", key)), "DEFAULT"]
        return None
    jails = []
    for section in reader.sections():
        if section in SKIP or "?" in section:
            continue
        jail = JailReader(section, force_enable=True, share_config=share, use_config=cfg)
        entry = {"name": section, "enabled": False, "options": {}, "origins": {},
                 "stream": [], "expected": {}, "errors": []}
        try:
            ok = jail.getOptions()
            opts = jail.options or {}
            entry["enabled"] = bool(opts.get("enabled", False))
            if opts.get("config-error"):
                entry["errors"].append(str(opts["config-error"]))
            for key, value in sorted(opts.items()):
                if key == "config-error" or key.startswith("known/"):
                    continue
                entry["options"][key] = value if isinstance(value, (bool, int)) else str(value)
                entry["origins"][key] = origin(section, key.lower())
            if ok:
                stream = jail.convert(allow_no_files=True)
                entry["stream"] = [[str(w) for w in c] for c in stream]
        except Exception as exc:
            entry["errors"].append("%s: %s" % (type(exc).__name__, exc))
        expected = {"logpath": [], "ignoreip": [], "actions": []}
        pref = None
        for command in entry["stream"]:
            if command[:1] == ["config-error"]:
                entry["errors"].append(command[1])
            if len(command) < 4 or command[0] != "set":
                continue
            option, value = command[2], command[3]
            try:
                if option == "addignoreip":
                    expected["ignoreip"].extend(command[3:])
                elif option == "addaction":
                    expected["actions"].append(value)
                elif option == "maxretry":
                    expected["maxretry"] = int(value)
                elif option in ("findtime", "bantime"):
                    expected[option] = int(MyTime.str2seconds(value))
                elif option == "addlogpath":
                    expected["logpath"].append(value)
                elif option == "prefregex":
                    pref = Regex(value, useDns="no")
                elif option == "addfailregex":
                    FailRegex(value, prefRegex=pref, useDns="no")
                elif option == "addignoreregex":
                    Regex(value, useDns="no")
            except Exception as exc:
                entry["errors"].append("%s %r: %s" % (option, value[:200], exc))
        entry["expected"] = expected
        jails.append(entry)
    return {"version": version, "files": [rel(n) for n, _, _ in parsed], "jails": jails}

out = {}
for basedir in sys.argv[1:]:
    try:
        out[basedir] = read(basedir)
    except Exception as exc:
        out[basedir] = {"error": "%s: %s" % (type(exc).__name__, exc)}
sys.stdout.write(json.dumps(out))
"""
)

# One filter or action (argv: config dir, "filter.d" or "action.d", name) as fail2ban's own
# FilterReader/ActionReader reads it: its [Definition] options (every one, %(var)s
# interpolated; <tags> stay, a jail fills them) and its [Init] values, each with the file,
# line and section it comes from. A filter's regexes also go through fail2ban's compiler.
DEFINITION_SCRIPT = (
    READER_LINES
    + r"""
from fail2ban.client.filterreader import FilterReader
from fail2ban.client.actionreader import ActionReader

def definition(basedir, directory, name):
    out = {"version": version, "directory": directory, "name": name,
           "files": [], "options": [], "errors": []}
    kind = FilterReader if directory == "filter.d" else ActionReader
    reader = kind(name, "jail", {}, share_config={}, basedir=basedir)
    if not reader.read():
        out["errors"].append("fail2ban found no readable %s/%s" % (directory, name))
        return out
    cfg = reader._cfg
    base = os.path.join(basedir, directory, name)
    parsed = parsed_files(cfg, [base + ".conf"] + sorted(glob.glob(base + ".d/*.conf"))
                          + [base + ".local"] + sorted(glob.glob(base + ".d/*.local")))
    rel = lambda p: os.path.relpath(p, basedir)
    out["files"] = [rel(n) for n, _, _ in parsed]
    lines = {}
    def origin(section, key):
        # `key?family=inet6` lives in the conditional section `[Init?family=inet6]`.
        if "?" in key:
            key, condition = key.split("?", 1)
            section = section + "?" + condition
        for file, defaults, sections in reversed(parsed):
            if key in sections.get(section, {}):
                return [rel(file), lines_of(file, lines).get((section, key)), section]
        for file, defaults, sections in reversed(parsed):
            if key in defaults:
                return [rel(file), lines_of(file, lines).get(("DEFAULT", key)), "DEFAULT"]
        return None
    def add(section, key, value):
        if key == "__name__" or key.startswith("known/"):
            return
        value = "" if value is None else str(value)
        out["options"].append({"section": section, "name": key, "value": value,
                               "origin": origin(section, key)})
    if kind is FilterReader:
        reader.applyAutoOptions("auto")
    try:
        reader.getOptions({}, all=True)
        values = dict(reader._opts)
    except Exception as exc:
        out["errors"].append("%s: %s" % (type(exc).__name__, exc))
        values = {}
        if reader.has_section("Definition"):
            values = {k: cfg.get("Definition", k, raw=True)
                      for k in reader.options("Definition")}
    for key, value in values.items():
        add("Definition", key, value)
    if reader.has_section("Init"):
        for key in reader.options("Init"):
            try:
                value = reader.get("Init", key)
            except Exception:
                value = reader.get("Init", key, raw=True)
            add("Init", key, value)
    if kind is FilterReader and not out["errors"]:
        try:
            pref = None
            for command in reader.convert():
                option, value = command[2], command[3]
                values = value if isinstance(value, list) else [value]
                for one in values:
                    if option == "prefregex":
                        pref = Regex(one, useDns="no")
                    elif option == "addfailregex":
                        FailRegex(one, prefRegex=pref, useDns="no")
                    elif option == "addignoreregex":
                        Regex(one, useDns="no")
        except Exception as exc:
            out["errors"].append("%s: %s" % (type(exc).__name__, exc))
    return out

try:
    result = definition(*sys.argv[1:4])
except Exception as exc:
    result = {"errors": ["%s: %s" % (type(exc).__name__, exc)], "options": [], "files": []}
sys.stdout.write(json.dumps(result))
"""
)


def _fail2ban_environment(config: HostConfig) -> dict[str, str]:
    """reload's environment, plus PYTHONPATH when fail2ban is an unpacked package whose
    wrapper client sits in <root>/bin (as var/fail2ban here); a system install needs none."""
    env = operations.reload_environment(os.environ)
    client = config.fail2ban_client[0] if config.fail2ban_client else ""
    found = client if "/" in client else shutil.which(client, path=env.get("PATH"))
    if found:
        packages = Path(found).resolve().parent.parent / "usr" / "lib" / "python3" / "dist-packages"
        if (packages / "fail2ban" / "__init__.py").is_file():
            env["PYTHONPATH"] = str(packages)
    return env


def _reader_run(
    config: HostConfig, directories: Sequence[str], *, script: str = READER_SCRIPT
) -> dict[str, Any]:
    argv = [FAIL2BAN_PYTHON, "-s", "-c", script, *directories]
    try:
        result = subprocess.run(  # noqa: S603 (fixed script, our own directories, no shell)
            argv,
            env=_fail2ban_environment(config),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=READ_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReloadFailed(f"fail2ban's configuration reader did not run: {exc}") from None
    if result.returncode != 0:
        raise ReloadFailed(
            "fail2ban's configuration reader failed", operations.output_tail(result.stderr)
        )
    try:
        value = json.loads(result.stdout)
    except ValueError:
        raise ReloadFailed("fail2ban's configuration reader printed no JSON") from None
    if not isinstance(value, dict):
        raise ReloadFailed("fail2ban's configuration reader printed no JSON")
    return value


def config_read(config: HostConfig, *, if_changed_from: str | None = None) -> dict[str, Any]:
    """Every jail (enabled or not) as fail2ban reads it, with each setting's file and line.

    `if_changed_from`: the fingerprint of a copy the caller holds; while the files still
    have it, only {"fingerprint", "unchanged": True, "files"} comes back (no reader run).
    """
    if if_changed_from is not None and not (
        isinstance(if_changed_from, str) and SHA256_PATTERN.match(if_changed_from)
    ):
        raise InvalidArgument("if_changed_from must be a fingerprint")
    listing = files_list(config)
    if if_changed_from == listing["fingerprint"]:
        return {**listing, "unchanged": True}
    directory = os.path.realpath(config.config_dir)
    read = _reader_run(config, [directory]).get(directory)
    if not isinstance(read, dict):
        raise ReloadFailed("fail2ban's configuration reader gave no answer")
    # The command streams (every regex of every filter) are what config_apply compares;
    # the pages show the options, so the streams stay here.
    for jail in read.get("jails") or []:
        if isinstance(jail, dict):
            jail.pop("stream", None)
    return {**listing, "unchanged": False, "config": read}


DEFINITION_DIRS = ("filter.d", "action.d")


def definition_read(config: HostConfig, *, directory: Any, name: Any) -> dict[str, Any]:
    """One filter or action as fail2ban reads it (DEFINITION_SCRIPT): {version, directory,
    name, files (read order), options [{section, name, value, origin}], errors}.

    Read on demand, one per page: all of Debian's 156 definitions take 0.2–0.5 s more, and
    kept with the jails they would make every /config/ page load a much larger snapshot.
    """
    if directory not in DEFINITION_DIRS:
        raise InvalidArgument(f"definitions live in {' or '.join(DEFINITION_DIRS)}")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("a definition needs a name")
    # The name as a file name of the directory: the same checks as every other path.
    paths = [path_check(f"{directory}/{name}.{suffix}") for suffix in ("conf", "local")]
    if all(_file_state(config, path).content is None for path in paths):
        raise InvalidArgument(f"there is no {directory}/{name}.conf or .local")
    root = os.path.realpath(config.config_dir)
    value = _reader_run(config, [root, directory, name], script=DEFINITION_SCRIPT)
    if not isinstance(value.get("options"), list):
        raise ReloadFailed("fail2ban's definition reader gave no answer")
    return value


# --- the safe path ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    path: ConfigPath
    content: bytes
    expected_sha256: str | None  # None: the file must not exist yet


def changes_check(changes: Any, *, minimum: int = 1) -> list[Change]:
    """The caller's changes, every one checked before anything is read or written."""
    if not isinstance(changes, list) or not minimum <= len(changes) <= MAX_CHANGES:
        raise InvalidArgument(f"changes must be a list of {minimum} to {MAX_CHANGES} files")
    checked: list[Change] = []
    seen: set[str] = set()
    for change in changes:
        if not isinstance(change, Mapping) or set(change) - {"path", "content", "expected_sha256"}:
            raise InvalidArgument("a change is {path, content, expected_sha256}")
        path = path_check(change.get("path"), write=True)
        if path.relative in seen:
            raise InvalidArgument(f"{path.relative} is changed twice")
        seen.add(path.relative)
        content = change.get("content")
        if not isinstance(content, str):
            raise InvalidArgument("content must be text")
        data = _utf8(content)
        if len(data) > MAX_FILE_BYTES:
            raise InvalidArgument(
                f"{path.relative} would be larger than {MAX_FILE_BYTES // 1024} KB"
            )
        if "\x00" in content:
            raise InvalidArgument("a configuration file may not contain NUL")
        expected = change.get("expected_sha256")
        if expected is not None and not (
            isinstance(expected, str) and SHA256_PATTERN.match(expected)
        ):
            raise InvalidArgument("expected_sha256 must be a SHA-256 hex digest or null")
        checked.append(Change(path, data, expected))
    return checked


def _utf8(content: str) -> bytes:
    try:
        return content.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from a JSON \ud800 escape
        raise InvalidArgument("content must be valid UTF-8 text") from None


@contextlib.contextmanager
def _config_lock(config: HostConfig) -> Iterator[None]:
    """One change at a time per configuration directory, across processes (gunicorn's
    workers in direct mode, the agent's threads): an advisory lock on the directory itself."""
    try:
        fd = os.open(config.config_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ReloadFailed(
            f"cannot open fail2ban's configuration directory {config.config_dir}: {exc.strerror}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_atomic(
    config: HostConfig, path: ConfigPath, data: bytes | None, like: FileState
) -> None:
    """Replace (or, data None, remove) one file: a temp file beside it, then a rename, so
    fail2ban never reads half a file; owner and mode are the old file's."""
    with _directory(config, path.directory, create=data is not None) as dir_fd:
        if data is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path.name, dir_fd=dir_fd)
            return
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISLNK(os.stat(path.name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                raise InvalidArgument(f"{path.relative} is a symbolic link")
        temp = f".{path.name}.jailadmin-{os.getpid()}-{time.monotonic_ns()}"
        fd = os.open(
            temp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dir_fd,
        )
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fchmod(fd, like.mode)
                if like.uid >= 0 and (like.uid, like.gid) != (os.geteuid(), os.getegid()):
                    os.fchown(fd, like.uid, like.gid)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        os.fsync(dir_fd)


def _stage(config: HostConfig, changes: Sequence[Change], into: str) -> str:
    staged = os.path.join(into, "conf")
    # symlinks=True: a link inside the config dir is copied as a link, never followed into
    # a copy of whatever it points at.
    shutil.copytree(config.config_dir, staged, symlinks=True)
    for change in changes:
        target = Path(staged, change.path.relative)
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(change.content)
    return staged


def _config_test(config: HostConfig, directory: str) -> tuple[bool, str]:
    argv = [*config.fail2ban_client, "-c", directory, "-t"]
    try:
        result = subprocess.run(  # noqa: S603 (fixed argv, our own staging directory)
            argv,
            env=operations.reload_environment(os.environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TEST_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"fail2ban-client -t did not run: {exc}"
    output = operations.output_tail(result.stdout + result.stderr)
    return result.returncode == 0, _without_noise(output)


def _without_noise(output: str) -> str:
    # fail2ban warns about `syslogsocket` on every run; the message that matters is below it.
    return "\n".join(line for line in output.splitlines() if "syslogsocket" not in line)


def _jails_by_name(read: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    jails = read.get("jails")
    if not isinstance(jails, list):
        return {}
    return {str(j.get("name")): j for j in jails if isinstance(j, Mapping)}


def _affected(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Jails whose effective configuration (fail2ban's command stream) or state changes."""
    old, new = _jails_by_name(before), _jails_by_name(after)
    affected = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        was = bool(a and a.get("enabled"))
        now = bool(b and b.get("enabled"))
        if was != now or (now and (a or {}).get("stream") != (b or {}).get("stream")):
            affected.append(name)
    return affected


def _jail_list(client: Fail2banClient) -> set[str]:
    status = dict(client.send("status"))
    return {n.strip() for n in str(status.get("Jail list", "")).split(",") if n.strip()}


def _jail_mismatches(
    client: Fail2banClient, name: str, jail: Mapping[str, Any] | None
) -> list[str]:
    """What differs between the running jail and the configuration that should be live."""
    enabled = bool(jail and jail.get("enabled"))
    running = name in _jail_list(client)
    if not enabled:
        return [f"jail {name} is still running"] if running else []
    if not running:
        return [f"jail {name} is not running"]
    assert jail is not None
    expected = jail.get("expected") or {}
    problems = []
    for option in ("maxretry", "findtime", "bantime"):
        if option in expected:
            live = client.send("get", name, option)
            if int(live) != int(expected[option]):
                problems.append(f"{name} {option} is {live}, expected {expected[option]}")
    wanted = sorted(expected.get("logpath") or [])
    if wanted:
        live_paths = sorted(str(p) for p in client.send("get", name, "logpath") or [])
        if live_paths != wanted:
            problems.append(f"{name} reads {live_paths}, expected {wanted}")
    if "ignoreip" in expected:
        # fail2ban normalises entries (127.0.0.1/8 comes back as 127.0.0.0/8, a single
        # address without a prefix): compare the networks, not the strings.
        want_ignore = _networks(expected["ignoreip"])
        live_ignore = _networks(client.send("get", name, "ignoreip") or [])
        if live_ignore != want_ignore:
            problems.append(f"{name} ignores {sorted(live_ignore)}, expected {sorted(want_ignore)}")
    if "actions" in expected:
        want_actions = sorted(str(a) for a in expected["actions"])
        live_actions = sorted(str(a) for a in client.send("get", name, "actions") or [])
        if live_actions != want_actions:
            problems.append(f"{name} runs actions {live_actions}, expected {want_actions}")
    return problems


def _networks(entries: Sequence[Any]) -> set[str]:
    """ignoreip entries as networks; a host name (fail2ban resolves it when it checks an
    address) stays a name."""
    found = set()
    for entry in entries:
        text = str(entry).strip()
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            found.add(text.lower())
            continue
        # fail2ban keeps an IPv4-mapped IPv6 address (::ffff:192.0.2.1) as the IPv4 address.
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen == 128:
            mapped = network.network_address.ipv4_mapped
            if mapped is not None:
                network = ipaddress.ip_network(mapped)
        found.add(str(network))
    return found


def _verify(
    client: Fail2banClient, jails: Mapping[str, Mapping[str, Any]], names: Sequence[str]
) -> list[str]:
    """Poll until every named jail matches its configuration, at most VERIFY_SECONDS."""
    deadline = time.monotonic() + VERIFY_SECONDS
    while True:
        try:
            problems = [
                p for name in names for p in _jail_mismatches(client, name, jails.get(name))
            ]
        except (Fail2banError, ValueError, TypeError) as exc:
            problems = [f"fail2ban did not answer as expected: {exc}"]
        if not problems or time.monotonic() >= deadline:
            return problems
        time.sleep(VERIFY_INTERVAL)


def _reload(
    config: HostConfig,
    affected: Sequence[str],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
) -> str:
    # `reload JAIL` restarts one running jail (or stops one now disabled); a jail that is not
    # running yet ("does not exist" to the server) only comes up with a full reload.
    old, new = _jails_by_name(before), _jails_by_name(after)
    # fail2ban's reload drops an action that a running jail did not have before (its
    # Actions.reload removes what the reload did not "touch", and a new action is never
    # marked): found by verifying `get J actions`. `--restart` stops the jails first, so
    # they start with exactly the configured actions. Only for a running jail that stays
    # enabled: a new jail starts fresh anyway, and a full `--restart` restarts every jail.
    restart = any(
        (old.get(name) or {}).get("enabled")
        and (new.get(name) or {}).get("enabled")
        and _actions_of(old.get(name)) != _actions_of(new.get(name))
        for name in affected
    )
    if len(affected) == 1 and (old.get(affected[0]) or {}).get("enabled"):
        return operations.reload(config, jail=affected[0], restart=restart)
    return operations.reload(config, jail=None, restart=restart)


def _actions_of(jail: Mapping[str, Any] | None) -> list[str]:
    expected = (jail or {}).get("expected") or {}
    return sorted(str(a) for a in expected.get("actions") or [])


def config_apply(
    config: HostConfig, client: Fail2banClient | None, *, changes: Any, dry_run: bool = False
) -> dict[str, Any]:
    """Write `changes` through the safe path (module docstring); the outcome as data.

    {"ok": True, "written": [{path, sha256, previous_sha256}], "reloaded": [...]} or
    {"ok": False, "stage": "conflict"|"test"|"reload"|"verify", "message", "output",
     "rolled_back", "path"/"current" (conflict)}.
    """
    if not isinstance(dry_run, bool):
        raise InvalidArgument("dry_run must be true or false")
    # A dry run (`f2bconfig test`) stages and tests only; with no changes it tests the
    # configuration as it is.
    checked = changes_check(changes, minimum=0 if dry_run else 1)
    if not dry_run and not config.config_writes:
        raise AgentRefused(
            "this agent does not write fail2ban's configuration (--no-config-writes)"
        )
    with _config_lock(config):
        previous: dict[str, FileState] = {}
        for change in checked:
            state = _file_state(config, change.path)
            if state.sha256 != change.expected_sha256:
                current = state.content
                return {
                    "ok": False,
                    "stage": "conflict",
                    "path": change.path.relative,
                    "message": f"{change.path.relative} changed since it was read",
                    "current": {
                        "exists": current is not None,
                        "content": None if current is None else current.decode("utf-8", "replace"),
                        "sha256": state.sha256,
                    },
                    "rolled_back": False,
                    "output": "",
                }
            if state.content is not None and change.path.name.endswith(".conf"):
                raise InvalidArgument(
                    f"{change.path.relative} is a .conf file: override it in a .local instead"
                )
            previous[change.path.relative] = state
        with tempfile.TemporaryDirectory(prefix="jailadmin-stage-") as temp:
            staged = _stage(config, checked, temp)
            live = os.path.realpath(config.config_dir)
            reads = _reader_run(config, [live, staged])
            before, after = reads.get(live) or {}, reads.get(staged) or {}
            passed, output = _config_test(config, staged)
        if not passed:
            return _failed("test", "fail2ban-client -t refused the new configuration", output)
        if after.get("error"):
            return _failed("test", str(after["error"]), "")
        after_jails = _jails_by_name(after)
        affected = _affected(before, after)
        broken = [
            f"{name}: {error}"
            for name in affected
            if (after_jails.get(name) or {}).get("enabled")
            for error in (after_jails.get(name) or {}).get("errors") or []
        ]
        if broken:
            return _failed("test", "fail2ban would not start the jail", "\n".join(broken))
        if dry_run or client is None:
            return {"ok": True, "dry_run": True, "written": [], "reloaded": [], "output": output}
        written = []
        for change in checked:
            like = previous[change.path.relative]
            if like.content is None:
                like = FileState(None, 0o644, -1, -1)
            _write_atomic(config, change.path, change.content, like)
            written.append(
                {
                    "path": change.path.relative,
                    "sha256": _sha256(change.content),
                    "previous_sha256": previous[change.path.relative].sha256,
                }
            )
        if not affected:
            return {"ok": True, "written": written, "reloaded": [], "output": ""}
        stage, message, output = "reload", "", ""
        try:
            # Cleaned here, so a change rolled back at the verify stage shows it cleaned too.
            output = _without_noise(_reload(config, affected, before, after))
            problems = _verify(client, after_jails, affected)
            if not problems:
                return {"ok": True, "written": written, "reloaded": affected, "output": output}
            stage, message = "verify", "; ".join(problems)
        except ReloadFailed as exc:
            message, output = exc.summary, _without_noise(exc.output or "")
        # Roll back: the previous files, a full reload (a jail that failed to start has been
        # removed from the server; only a full reload brings it back), and a check.
        for change in checked:
            state = previous[change.path.relative]
            _write_atomic(config, change.path, state.content, state)
        restored = _restore(config, client, before, affected)
        return {
            **_failed(stage, message, output),
            "rolled_back": True,
            "restored": restored,
        }


def _restore(
    config: HostConfig, client: Fail2banClient, before: Mapping[str, Any], affected: Sequence[str]
) -> dict[str, Any]:
    try:
        operations.reload(config, jail=None)
    except ReloadFailed as exc:
        return {"ok": False, "message": f"the reload after restoring failed: {exc.summary}"}
    problems = _verify(client, _jails_by_name(before), affected)
    return {"ok": not problems, "message": "; ".join(problems)}


def _failed(stage: str, message: str, output: str) -> dict[str, Any]:
    return {"ok": False, "stage": stage, "message": message, "output": output, "rolled_back": False}


# --- the agent's operations (jails.agent.server.OPERATIONS) -------------------------------------
def _only(args: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(args) - allowed
    if unknown:
        raise InvalidArgument(f"unexpected arguments: {', '.join(sorted(unknown))[:200]}")


def op_config_read(config: HostConfig, client: Fail2banClient, args: Mapping[str, Any]) -> Any:
    """`config_read {if_changed_from?}`: the effective configuration (config_read)."""
    _only(args, frozenset({"if_changed_from"}))
    return config_read(config, if_changed_from=args.get("if_changed_from"))


def op_config_file(config: HostConfig, client: Fail2banClient, args: Mapping[str, Any]) -> Any:
    """`config_file {path}`: one file's content and hash (file_read)."""
    _only(args, frozenset({"path"}))
    return file_read(config, path=args.get("path"))


def op_config_definition(
    config: HostConfig, client: Fail2banClient, args: Mapping[str, Any]
) -> Any:
    """`config_definition {directory, name}`: one filter or action (definition_read)."""
    _only(args, frozenset({"directory", "name"}))
    return definition_read(config, directory=args.get("directory"), name=args.get("name"))


def op_config_apply(config: HostConfig, client: Fail2banClient, args: Mapping[str, Any]) -> Any:
    """`config_apply {changes}`: the safe path (config_apply)."""
    _only(args, frozenset({"changes", "dry_run"}))
    return config_apply(
        config, client, changes=args.get("changes"), dry_run=args.get("dry_run", False)
    )
