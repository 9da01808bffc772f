"""fail2ban's configuration through the host link: the effective configuration, one file,
a change through the safe path (jails.agent.configfiles), and the versions of every file.

The host (DirectLink in this process, or the agent) does every check on paths and the whole
stage → test → write → reload → verify → roll back sequence; this module decides who may ask,
records what happened (audit, ConfigVersion) and turns the host's answers into types.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils.translation import gettext

from jails.configuration.models import ConfigSnapshot, ConfigVersion
from jails.fail2ban import InvalidArgument, ProtocolError
from jails.services.audit import Actor
from jails.services.operations import audited
from jails.state import RuntimeState

ACTION_DIR = "action.d/"
MAX_AUDITED_DIFF = 200_000  # characters of an action definition's diff kept in the audit log


class ConfigPermissionDenied(Exception):
    """The actor may not change this file (action definitions: administrators only)."""


@dataclass(frozen=True)
class SettingOrigin:
    """Where an effective setting comes from: the last file in fail2ban's read order that sets
    it, the line in that file, and the section ("DEFAULT" when inherited)."""

    file: str
    line: int | None
    section: str


@dataclass(frozen=True)
class JailSetting:
    name: str
    value: str
    origin: SettingOrigin | None  # None: fail2ban's built-in default or the filter's


@dataclass(frozen=True)
class JailConfig:
    """One jail as fail2ban's reader sees it, enabled or not."""

    name: str
    enabled: bool
    settings: tuple[JailSetting, ...]
    errors: tuple[str, ...]

    def value(self, name: str, default: str = "") -> str:
        for setting in self.settings:
            if setting.name == name:
                return setting.value
        return default

    def origin(self, name: str) -> SettingOrigin | None:
        for setting in self.settings:
            if setting.name == name:
                return setting.origin
        return None

    @property
    def actions(self) -> list[str]:
        return [line.strip() for line in self.value("action").splitlines() if line.strip()]


@dataclass(frozen=True)
class EffectiveConfig:
    """The whole configuration: every jail, the files read for it, every file's hash."""

    fingerprint: str
    fail2ban_version: str
    read_order: tuple[str, ...]
    jails: tuple[JailConfig, ...]
    files: Mapping[str, str]  # path → sha256 of every configuration file
    error: str = ""

    def jail(self, name: str) -> JailConfig | None:
        return next((jail for jail in self.jails if jail.name == name), None)

    def names(self, directory: str) -> list[str]:
        """Filter or action names in `directory` ("filter.d"), from their .conf/.local files."""
        prefix = directory + "/"
        names = {
            path[len(prefix) :].rsplit(".", 1)[0] for path in self.files if path.startswith(prefix)
        }
        return sorted(names)


@dataclass(frozen=True)
class ConfigFile:
    path: str
    exists: bool
    content: str
    sha256: str | None


@dataclass(frozen=True)
class FileChange:
    """New content for one file, and the hash of the content the editor was shown."""

    path: str
    content: str
    expected_sha256: str | None


@dataclass(frozen=True)
class ApplyOutcome:
    """What the safe path did. On a conflict `current` is the file as it is now."""

    ok: bool
    stage: str = ""  # conflict, test, reload, verify ("" when ok)
    message: str = ""
    output: str = ""
    rolled_back: bool = False
    restored: bool = True
    reloaded: tuple[str, ...] = ()
    written: tuple[str, ...] = ()
    conflict_path: str = ""
    current: ConfigFile | None = None
    versions: tuple[int, ...] = field(default=())

    @property
    def summary(self) -> str:
        if self.ok:
            reloaded = ", ".join(self.reloaded) if self.reloaded else "no jail needed a reload"
            return f"Saved {', '.join(self.written)}; reloaded: {reloaded}."
        text = {
            "conflict": "Not saved: the file changed on disk since it was shown",
            "test": "Not saved: fail2ban refused the configuration",
            "reload": "Rolled back: the reload failed",
            "verify": "Rolled back: the jail did not come up with the new values",
        }.get(self.stage, "Not saved")
        text = f"{text}. {self.message}".strip()
        if self.rolled_back and not self.restored:
            text += " The previous files are back, but fail2ban did not come back as before."
        elif self.rolled_back:
            text += " The previous files are back and fail2ban runs them."
        return text

    @property
    def shown_summary(self) -> str:
        """`summary` in the request's language, for the pages: `summary` itself stays English
        because the audit record keeps it. `message` is the host's own text, passed through."""
        if self.ok:
            names = {"files": ", ".join(self.written), "jails": ", ".join(self.reloaded)}
            if self.reloaded:
                return gettext("Saved %(files)s; reloaded: %(jails)s.") % names
            return gettext("Saved %(files)s; reloaded: no jail needed a reload.") % names
        texts = {
            "conflict": gettext("Not saved: the file changed on disk since it was shown."),
            "test": gettext("Not saved: fail2ban refused the configuration."),
            "reload": gettext("Rolled back: the reload failed."),
            "verify": gettext("Rolled back: the jail did not come up with the new values."),
        }
        parts = [texts.get(self.stage) or gettext("Not saved."), self.message.rstrip()]
        if self.rolled_back and not self.restored:
            parts.append(
                gettext("The previous files are back, but fail2ban did not come back as before.")
            )
        elif self.rolled_back:
            parts.append(gettext("The previous files are back and fail2ban runs them."))
        return " ".join(part for part in parts if part)


# --- reading ------------------------------------------------------------------------------------
def _origin(value: Any) -> SettingOrigin | None:
    if not isinstance(value, list) or len(value) != 3:
        return None
    file, line, section = value
    return SettingOrigin(
        file=str(file), line=line if isinstance(line, int) else None, section=str(section)
    )


def _jail(value: Mapping[str, Any]) -> JailConfig:
    options = value.get("options") if isinstance(value.get("options"), dict) else {}
    origins = value.get("origins") if isinstance(value.get("origins"), dict) else {}
    assert isinstance(options, dict) and isinstance(origins, dict)
    settings = tuple(
        JailSetting(name=str(key), value=_text(options[key]), origin=_origin(origins.get(key)))
        for key in sorted(options)
    )
    errors = value.get("errors") if isinstance(value.get("errors"), list) else []
    assert isinstance(errors, list)
    return JailConfig(
        name=str(value.get("name", "")),
        enabled=value.get("enabled") is True,
        settings=settings,
        errors=tuple(str(e) for e in errors),
    )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _effective(
    fingerprint: str, files: Mapping[str, str], data: Mapping[str, Any]
) -> EffectiveConfig:
    jails = data.get("jails") if isinstance(data.get("jails"), list) else []
    order = data.get("files") if isinstance(data.get("files"), list) else []
    assert isinstance(jails, list) and isinstance(order, list)
    return EffectiveConfig(
        fingerprint=fingerprint,
        fail2ban_version=str(data.get("version", "")),
        read_order=tuple(str(f) for f in order),
        jails=tuple(_jail(j) for j in jails if isinstance(j, dict)),
        files=dict(files),
        error=str(data.get("error", "")),
    )


def _listing(reply: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    fingerprint, files = reply.get("fingerprint"), reply.get("files")
    if not isinstance(fingerprint, str) or not isinstance(files, dict):
        raise ProtocolError("the host's configuration listing is malformed")
    return fingerprint, {str(k): str(v) for k, v in files.items()}


def config_get(state: RuntimeState, *, actor: Actor | None = None) -> EffectiveConfig:
    """The effective configuration; fail2ban's reader runs only when a file changed.

    Files the site holds versions of and that changed since are recorded as changed outside
    the site (`actor` None: recorded without a name).
    """
    link = state.jail_service.client
    host = state.snapshot.host
    stored = ConfigSnapshot.objects.filter(host=host).order_by("-read_at").first()
    reply = link.config_read(if_changed_from=stored.fingerprint if stored else None)
    fingerprint, files = _listing(reply)
    if reply.get("unchanged") is True and stored is not None:
        data = stored.data
    else:
        data = reply.get("config")
        if not isinstance(data, dict):
            raise ProtocolError("the host's configuration is malformed")
        with transaction.atomic():
            ConfigSnapshot.objects.filter(host=host).exclude(fingerprint=fingerprint).delete()
            ConfigSnapshot.objects.update_or_create(
                host=host, fingerprint=fingerprint, defaults={"data": data}
            )
    _record_outside_changes(state, files)
    return _effective(fingerprint, files, data)


def _record_outside_changes(state: RuntimeState, files: Mapping[str, str]) -> None:
    """A file the site has a version of whose hash is no longer the latest version's."""
    latest: dict[str, tuple[str, bool]] = {}
    for path, sha256, exists in (
        ConfigVersion.objects.filter(host=state.snapshot.host)
        .order_by("path", "-created_at", "-id")
        .values_list("path", "sha256", "exists")
        .distinct()
    ):
        latest.setdefault(path, (sha256, exists))
    for path, (sha256, exists) in latest.items():
        now = files.get(path)
        if now == sha256 or (now is None and not exists):
            continue
        config_file_get(state, path=path)


def config_file_get(state: RuntimeState, *, path: str) -> ConfigFile:
    """One file as it is now; a content the site has not seen is recorded as a version."""
    reply = state.jail_service.client.config_file(path=path)
    current = _config_file(reply)
    latest = ConfigVersion.objects.filter(host=state.snapshot.host, path=current.path).first()
    if latest is None:
        if current.exists:
            _version_add(state, current, source=ConfigVersion.Source.FOUND)
    elif latest.sha256 != (current.sha256 or "") or latest.exists != current.exists:
        source = ConfigVersion.Source.OUTSIDE if current.exists else ConfigVersion.Source.DELETED
        _version_add(state, current, source=source)
    return current


def _config_file(reply: Mapping[str, Any]) -> ConfigFile:
    path, exists, content = reply.get("path"), reply.get("exists"), reply.get("content")
    sha256 = reply.get("sha256")
    if not isinstance(path, str) or not isinstance(exists, bool):
        raise ProtocolError("the host's configuration file reply is malformed")
    if exists and (not isinstance(content, str) or not isinstance(sha256, str)):
        raise ProtocolError("the host's configuration file reply is malformed")
    return ConfigFile(
        path=path,
        exists=exists,
        content=content if isinstance(content, str) else "",
        sha256=sha256 if isinstance(sha256, str) else None,
    )


def _version_add(
    state: RuntimeState,
    file: ConfigFile,
    *,
    source: str,
    actor: Actor | None = None,
    reason: str = "",
) -> ConfigVersion:
    return ConfigVersion.objects.create(
        host=state.snapshot.host,
        path=file.path,
        content=file.content,
        exists=file.exists,
        sha256=file.sha256 or "",
        source=source,
        user_id=actor.user_id if actor else None,
        actor=actor.name if actor else "",
        reason=reason[:500],
    )


@dataclass(frozen=True)
class DefinitionOption:
    """One option of a filter or action: its section ("Definition", "Init" or a conditional
    "Init?family=inet6"), its value after fail2ban's %(var)s interpolation, its origin."""

    section: str
    name: str
    value: str
    origin: SettingOrigin | None


@dataclass(frozen=True)
class Definition:
    """A filter (filter.d) or action (action.d) as fail2ban's own reader reads it."""

    directory: str
    name: str
    read_order: tuple[str, ...]
    options: tuple[DefinitionOption, ...]
    errors: tuple[str, ...]

    def value(self, name: str, section: str = "Definition") -> str | None:
        for option in self.options:
            if option.name == name and option.section == section:
                return option.value
        return None


def definition_get(state: RuntimeState, *, directory: str, name: str) -> Definition:
    """One filter or action with each option's file and line (read on demand by the host;
    InvalidArgument for a name that is not a definition there)."""
    reply = state.jail_service.client.config_definition(directory=directory, name=name)
    options = reply.get("options")
    files = reply.get("files")
    errors = reply.get("errors")
    if not isinstance(options, list) or not isinstance(files, list):
        raise ProtocolError("the host's definition reply is malformed")
    return Definition(
        directory=directory,
        name=name,
        read_order=tuple(str(f) for f in files),
        options=tuple(
            DefinitionOption(
                section=str(o.get("section", "")),
                name=str(o.get("name", "")),
                value=str(o.get("value", "")),
                origin=_origin(o.get("origin")),
            )
            for o in options
            if isinstance(o, dict)
        ),
        errors=tuple(str(e) for e in errors) if isinstance(errors, list) else (),
    )


# --- changing -----------------------------------------------------------------------------------
def config_files_save(
    state: RuntimeState,
    *,
    changes: Sequence[FileChange],
    actor: Actor,
    reason: str,
    administrator: bool,
    action: str = "config_edit",
    jail: str = "",
) -> ApplyOutcome:
    """Change files through the host's safe path; audit it and keep each saved version.

    Action definitions (action.d/: shell commands run as root) need `administrator`, and
    their audit record carries the full diff.
    """
    if not changes:
        raise InvalidArgument("nothing to save")
    if not administrator and any(c.path.startswith(ACTION_DIR) for c in changes):
        raise ConfigPermissionDenied("action definitions can be changed by administrators only")
    with audited(actor=actor, action=action, jail=jail, host=state.snapshot.host) as draft:
        before = {c.path: config_file_get(state, path=c.path) for c in changes}
        draft.parameters = {"paths": [c.path for c in changes], "reason": reason[:500]}
        diffs = {
            c.path: file_diff(before[c.path].content, c.content, c.path)
            for c in changes
            if c.path.startswith(ACTION_DIR)
        }
        if diffs:
            draft.parameters["diff"] = {p: d[:MAX_AUDITED_DIFF] for p, d in diffs.items()}
        reply = state.jail_service.client.config_apply(
            changes=[
                {"path": c.path, "content": c.content, "expected_sha256": c.expected_sha256}
                for c in changes
            ]
        )
        outcome = _outcome(reply)
        draft.parameters["stage"] = outcome.stage
        if not outcome.ok:
            draft.ok = False
            draft.error = outcome.summary
            if outcome.output:
                draft.parameters["output"] = outcome.output[-2000:]
            return outcome
        draft.parameters["reloaded"] = list(outcome.reloaded)
        versions = []
        for change in changes:
            saved = ConfigFile(
                path=before[change.path].path,
                exists=True,
                content=change.content,
                sha256=_written_sha(reply, change.path),
            )
            versions.append(
                _version_add(
                    state, saved, source=ConfigVersion.Source.SITE, actor=actor, reason=reason
                ).pk
            )
        return ApplyOutcome(**{**outcome.__dict__, "versions": tuple(versions)})


def _written_sha(reply: Mapping[str, Any], path: str) -> str:
    for item in reply.get("written") or []:
        if isinstance(item, dict) and item.get("path") == path:
            return str(item.get("sha256", ""))
    raise ProtocolError(f"the host did not report writing {path}")


def _outcome(reply: Mapping[str, Any]) -> ApplyOutcome:
    ok = reply.get("ok") is True
    restored = reply.get("restored")
    current = reply.get("current")
    written = reply.get("written") or []
    reloaded = reply.get("reloaded") or []
    return ApplyOutcome(
        ok=ok,
        stage="" if ok else str(reply.get("stage", "")),
        message=str(reply.get("message", "")),
        output=str(reply.get("output", "")),
        rolled_back=reply.get("rolled_back") is True,
        restored=not isinstance(restored, dict) or restored.get("ok") is True,
        reloaded=tuple(str(j) for j in reloaded if isinstance(j, str)),
        written=tuple(str(w.get("path")) for w in written if isinstance(w, dict)),
        conflict_path=str(reply.get("path", "")) if reply.get("stage") == "conflict" else "",
        current=(
            ConfigFile(
                path=str(reply.get("path", "")),
                exists=current.get("exists") is True,
                content=str(current.get("content") or ""),
                sha256=current.get("sha256") if isinstance(current.get("sha256"), str) else None,
            )
            if isinstance(current, dict)
            else None
        ),
    )


# --- versions -----------------------------------------------------------------------------------
def file_diff(old: str, new: str, path: str, *, old_label: str = "", new_label: str = "") -> str:
    """A unified diff of two versions of one file (plain text: the template escapes it)."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} {old_label}".strip(),
            tofile=f"{path} {new_label}".strip(),
        )
    )


def version_restore(
    state: RuntimeState, *, version_id: int, actor: Actor, administrator: bool
) -> ApplyOutcome:
    """Put an old version back through the same safe path as any edit (the state's host's
    versions only: another host's jail.local is not this one's past)."""
    version = ConfigVersion.objects.filter(pk=version_id, host=state.snapshot.host).first()
    if version is None:
        raise InvalidArgument("no such version")
    if not version.exists:
        raise InvalidArgument("that version records the file as absent; nothing to restore")
    current = config_file_get(state, path=version.path)
    return config_files_save(
        state,
        changes=[FileChange(version.path, version.content, current.sha256)],
        actor=actor,
        reason=f"restore version {version.pk} of {version.created_at:%Y-%m-%d %H:%M:%S}",
        administrator=administrator,
        action="config_restore",
    )


def config_test(state: RuntimeState, *, changes: Sequence[FileChange] = ()) -> ApplyOutcome:
    """Stage and test only (`fail2ban-client -t` and fail2ban's regex compiler): the
    configuration as it is, or with `changes`; nothing is written, nothing reloaded."""
    reply = state.jail_service.client.config_apply(
        changes=[
            {"path": c.path, "content": c.content, "expected_sha256": c.expected_sha256}
            for c in changes
        ],
        dry_run=True,
    )
    return _outcome(reply)
