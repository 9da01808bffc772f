"""Changes built from forms: a jail's common settings, activate/deactivate, a persisted ignore
list, a new jail or filter. Each becomes new content for one `.local` file (never a shipped
`.conf`) and goes through the safe path in jails.configuration.services.files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from jails.configuration.services.files import (
    ApplyOutcome,
    ConfigPermissionDenied,
    FileChange,
    config_file_get,
    config_files_save,
    config_get,
)
from jails.fail2ban import InvalidArgument
from jails.fail2ban.validation import validate_jail_name
from jails.services.audit import Actor
from jails.state import RuntimeState

# The common settings of the form, in the order the form shows them.
COMMON_SETTINGS = (
    "enabled",
    "port",
    "filter",
    "logpath",
    "backend",
    "maxretry",
    "findtime",
    "bantime",
    "bantime.increment",
    "bantime.factor",
    "bantime.maxtime",
    "bantime.rndtime",
    "bantime.overalljails",
    "ignoreip",
    "action",
)
SECTION_HEADER = re.compile(r"^\[([^\]]+)\]\s*$")
KEY_LINE = re.compile(r"^([^\s=:#;\[][^=:]*?)\s*[=:]")
MULTILINE_SETTINGS = ("logpath", "action", "ignoreip", "failregex", "ignoreregex")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")


def jail_override_path(jail: str) -> str:
    """The site's override file for a jail: read last of all (jail.d/*.local), so it wins."""
    return f"jail.d/{validate_jail_name(jail)}.local"


def value_check(key: str, value: str) -> str:
    """A value for an INI entry: one line, except the settings fail2ban reads as lists (a
    newline elsewhere would start another key or a section); never a NUL."""
    if "\x00" in value:
        raise InvalidArgument(f"{key} may not contain NUL")
    if ("\n" in value or "\r" in value) and key not in MULTILINE_SETTINGS:
        raise InvalidArgument(f"{key} must be one line")
    return value.strip()


def ini_set(text: str, section: str, values: Mapping[str, str | None]) -> str:
    """`text` with `values` set in `[section]` (None removes the key); everything else, comments
    included, stays as it was. Multi-line values are written as continuation lines."""
    lines = text.splitlines()
    out: list[str] = []
    current: str | None = None
    pending = dict(values)
    skipping = False  # inside the continuation lines of a key being replaced

    def flush() -> None:
        for key, value in list(pending.items()):
            if value is not None:
                out.extend(_entry(key, value))
        pending.clear()

    for line in lines:
        header = SECTION_HEADER.match(line)
        if header:
            if current == section:
                _trim_blank(out)
                flush()
                out.append("")
            current = header.group(1).strip()
            skipping = False
            out.append(line)
            continue
        if skipping and line[:1] in (" ", "\t") and line.strip():
            continue
        skipping = False
        key = KEY_LINE.match(line)
        if current == section and key and key.group(1).strip() in values:
            name = key.group(1).strip()
            skipping = True
            if name in pending:
                value = pending.pop(name)
                if value is not None:
                    out.extend(_entry(name, value))
            continue
        out.append(line)
    if current == section:
        _trim_blank(out)
        flush()
    elif pending and any(v is not None for v in pending.values()):
        if out and out[-1].strip():
            out.append("")
        out.append(f"[{section}]")
        flush()
    return "\n".join(out).rstrip("\n") + "\n"


def _trim_blank(out: list[str]) -> None:
    while out and not out[-1].strip():
        out.pop()


def _entry(key: str, value: str) -> list[str]:
    first, *rest = value.splitlines() or [""]
    return [f"{key} = {first}".rstrip(), *(f"    {line.strip()}" for line in rest if line.strip())]


def jail_settings_save(
    state: RuntimeState,
    *,
    jail: str,
    values: Mapping[str, str | None],
    expected_sha256: str | None,
    actor: Actor,
    reason: str = "",
    administrator: bool = False,
    action: str = "config_jail_settings",
) -> ApplyOutcome:
    """Write the jail's common settings into its override file (jail.d/<jail>.local)."""
    unknown = set(values) - set(COMMON_SETTINGS)
    if unknown:
        raise InvalidArgument(f"not a common setting: {', '.join(sorted(unknown))}")
    if "action" in values and not administrator:
        # `action = name[actionban="…"]` overrides an action definition's shell commands
        # from the jail: the same power as editing action.d/, so the same role.
        raise ConfigPermissionDenied("a jail's action runs as root: administrators only")
    checked = {k: None if v is None else value_check(k, v) for k, v in values.items()}
    path = jail_override_path(jail)
    current = config_file_get(state, path=path)
    content = ini_set(current.content, jail, checked)
    return config_files_save(
        state,
        changes=[FileChange(path, content, expected_sha256)],
        actor=actor,
        reason=reason or f"{jail}: " + ", ".join(f"{k}={v}" for k, v in checked.items())[:400],
        administrator=administrator,
        action=action,
        jail=jail,
    )


def jail_enabled_set(
    state: RuntimeState, *, jail: str, enabled: bool, actor: Actor
) -> ApplyOutcome:
    """Activate or deactivate a jail in its override file."""
    if config_get(state).jail(jail) is None:
        raise InvalidArgument(f"there is no jail {jail} in the configuration")
    current = config_file_get(state, path=jail_override_path(jail))
    return jail_settings_save(
        state,
        jail=jail,
        values={"enabled": "true" if enabled else "false"},
        expected_sha256=current.sha256,
        actor=actor,
        reason=f"{'activate' if enabled else 'deactivate'} {jail}",
        action="config_jail_enable" if enabled else "config_jail_disable",
    )


def ignore_persist(
    state: RuntimeState, *, jail: str, address: str, add: bool, actor: Actor
) -> ApplyOutcome:
    """Keep an ignore-list change in the configuration, so it survives a reload: the jail's
    effective `ignoreip` (DEFAULT's included) with the address added or removed."""
    effective = config_get(state).jail(jail)
    if effective is None:
        raise InvalidArgument(f"there is no jail {jail} in the configuration")
    entries = effective.value("ignoreip").split()
    if add and address not in entries:
        entries.append(address)
    elif not add:
        entries = [entry for entry in entries if entry != address]
    current = config_file_get(state, path=jail_override_path(jail))
    return jail_settings_save(
        state,
        jail=jail,
        values={"ignoreip": " ".join(entries)},
        expected_sha256=current.sha256,
        actor=actor,
        reason=f"{'keep' if add else 'drop'} {address} on the ignore list of {jail}",
        action="config_ignore_add" if add else "config_ignore_remove",
    )


def jail_create(
    state: RuntimeState,
    *,
    name: str,
    filter_name: str,
    logpath: str,
    settings: Mapping[str, str],
    actor: Actor,
    administrator: bool,
) -> ApplyOutcome:
    """A new jail in its own jail.d/<name>.local (refused if the name is taken)."""
    validate_jail_name(name)
    if not NAME.match(filter_name):
        raise InvalidArgument("a filter name is letters, digits, '.', '_' and '-'")
    if config_get(state).jail(name) is not None:
        raise InvalidArgument(f"a jail named {name} exists already")
    path = jail_override_path(name)
    current = config_file_get(state, path=path)
    values: dict[str, str | None] = {
        "enabled": "true",
        "filter": filter_name,
        "logpath": value_check("logpath", logpath),
    }
    values.update({k: value_check(k, v) for k, v in settings.items() if v})
    content = ini_set(current.content, name, values)
    return config_files_save(
        state,
        changes=[FileChange(path, content, current.sha256)],
        actor=actor,
        reason=f"new jail {name}",
        administrator=administrator,
        action="config_jail_create",
        jail=name,
    )


def filter_create(
    state: RuntimeState,
    *,
    name: str,
    failregex: str,
    ignoreregex: str,
    datepattern: str,
    actor: Actor,
    administrator: bool,
) -> ApplyOutcome:
    """A new filter, filter.d/<name>.local (a new file: refused if it exists already)."""
    if not NAME.match(name):
        raise InvalidArgument("a filter name is letters, digits, '.', '_' and '-'")
    if not failregex.strip():
        raise InvalidArgument("a filter needs at least one failregex")
    path = f"filter.d/{name}.local"
    if config_get(state).names("filter.d").count(name):
        raise InvalidArgument(f"a filter named {name} exists already")
    values: dict[str, str | None] = {"failregex": failregex.strip()}
    if ignoreregex.strip():
        values["ignoreregex"] = ignoreregex.strip()
    if datepattern.strip():
        values["datepattern"] = value_check("datepattern", datepattern)
    content = ini_set("", "Definition", values)
    return config_files_save(
        state,
        changes=[FileChange(path, content, None)],
        actor=actor,
        reason=f"new filter {name}",
        administrator=administrator,
        action="config_filter_create",
    )
