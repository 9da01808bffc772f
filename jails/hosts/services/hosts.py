"""Managing the hosts: adding, changing, removing, checking them, and confirming SSH host keys.

What the /hosts/ pages, the admin and `manage.py hosts` share. Every change is audited
("host-add", "host-change", "host-remove", "host-key-confirm") and no record, message or
return value here ever carries a host's private key: only its public half and fingerprints.

An SSH host is never contacted with its key before an administrator has confirmed the host's
own key (the transport refuses, jails.agent.ssh): `host_keys_fetch` shows what the host
presents, `host_key_confirm` scans again and stores only the key whose fingerprint the
administrator compared; a host whose key changed is refused until someone confirms again.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError, RestrictedError
from django.utils.translation import gettext, gettext_noop, ngettext

from jails.agent import ssh
from jails.agent.link import MAX_UNIX_PATH, agent_address_check
from jails.blocklists.models import BlocklistSource, ImportRun, SourceEntry
from jails.configuration.models import ConfigSnapshot, ConfigVersion
from jails.fail2ban import Fail2banError, InvalidArgument
from jails.history.models import BanEvent, BanRollup, HistorySource
from jails.hosts.models import LOCAL_HOST, Host
from jails.hosts.services import fleet
from jails.models import AuditEntry
from jails.services import jails as jail_service
from jails.services.audit import Actor, audit_record
from jails.state import RuntimeState

# Where the install steps put the agent bundle on a host: the forced command runs it from here.
AGENT_INSTALL_PATH = ssh.AGENT_PATH
# Scanning a host's key is one TCP connection and a key exchange.
SCAN_TIMEOUT = 10.0
# The key type the transport prefers when a host presents several.
PREFERRED_KEY_TYPE = "ssh-ed25519"


# Names that are a page of their own under /hosts/ (/hosts/add/), never a host's.
RESERVED_NAMES = frozenset({"add"})


class HostRefused(Exception):
    """A change the site will not make, with the reason an administrator reads (in the
    request's language: it is shown, never audited)."""


# --- validation ---------------------------------------------------------------------------------
def address_check(kind: str, address: str) -> str:
    """The address for a host of `kind`, checked; InvalidArgument with the reason if not.

    The reasons written here are in the request's language (form errors); those of the
    agent's own checks (jails.agent, Django-free) stay English."""
    address = address.strip()
    if kind == Host.Kind.SOCKET:
        if not address.startswith("/"):
            raise InvalidArgument(
                gettext("a fail2ban socket is an absolute path, like /run/fail2ban/fail2ban.sock")
            )
        if len(address.encode()) > MAX_UNIX_PATH or "\x00" in address:
            raise InvalidArgument(
                gettext("the socket path is longer than %(limit)d bytes") % {"limit": MAX_UNIX_PATH}
            )
        return address
    if kind == Host.Kind.AGENT:
        if not address:
            raise InvalidArgument(
                gettext("give the agent's address, like unix:/run/jailadmin/agent.sock")
            )
        return agent_address_check(address)
    if kind == Host.Kind.SSH:
        return ssh.destination_check(address)
    if kind == Host.Kind.LOCAL:
        raise InvalidArgument(gettext("there is one local host (the site's own fail2ban setting)"))
    raise InvalidArgument(gettext("unknown kind %(kind)r") % {"kind": kind})


def time_zone_check(time_zone: str) -> str:
    """A time zone name the host's fail2ban reports in ("" = the site's fail2ban time zone)."""
    time_zone = time_zone.strip()
    if not time_zone:
        return ""
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(
            gettext("unknown time zone %(zone)r (e.g. Europe/Berlin, UTC)") % {"zone": time_zone}
        ) from None
    return time_zone


def name_check(name: str) -> str:
    """A new host's name (the model checks its pattern); InvalidArgument if reserved."""
    name = name.strip()
    if name in RESERVED_NAMES:
        raise InvalidArgument(
            gettext("%(name)r is the name of a page under /hosts/: choose another") % {"name": name}
        )
    return name


def _fingerprint_or_blank(line: str) -> str:
    try:
        return ssh.fingerprint(line) if line.strip() else ""
    except InvalidArgument:
        return "(not a valid key)"


def host_key_fingerprint(host: Host) -> str:
    """The confirmed host key's SHA256 fingerprint, or "" while none is confirmed."""
    return _fingerprint_or_blank(host.ssh_host_key)


def _described(host: Host) -> dict[str, Any]:
    """A host as the audit log records it: never its private key."""
    described: dict[str, Any] = {
        "host": host.name,
        "kind": host.kind,
        "address": host.address,
        "time_zone": host.time_zone,
        "enabled": host.enabled,
    }
    if host.ssh_public_key:
        described["key_fingerprint"] = _fingerprint_or_blank(host.ssh_public_key)
    if host.ssh_host_key:
        described["host_key_fingerprint"] = _fingerprint_or_blank(host.ssh_host_key)
    return described


def _saved(host: Host, *, exclude: list[str] | None = None) -> None:
    try:
        host.full_clean(exclude=exclude)
    except ValidationError as exc:
        messages = [f"{name}: {'; '.join(errors)}" for name, errors in exc.message_dict.items()]
        raise InvalidArgument(" ".join(messages)) from None
    host.save()


# --- adding, changing, removing -----------------------------------------------------------------
def host_create(
    *, name: str, kind: str, address: str, time_zone: str = "", note: str = "", actor: Actor
) -> Host:
    """A new host; an SSH host gets its own key pair (its public half goes on the host)."""
    host = Host(
        name=name_check(name),
        kind=kind,
        address=address_check(kind, address),
        time_zone=time_zone_check(time_zone),
        note=note,
    )
    if kind == Host.Kind.SSH:
        host.ssh_private_key, host.ssh_public_key = ssh.key_pair_generate(f"jailadmin-{host.name}")
    with transaction.atomic():
        _saved(host)
        audit_record(actor=actor, action="host-add", host=host.name, parameters=_described(host))
    return host


def host_update(
    state: RuntimeState,
    *,
    host: Host,
    actor: Actor,
    address: str | None = None,
    time_zone: str | None = None,
    note: str | None = None,
    enabled: bool | None = None,
) -> Host:
    """Change a host's address, time zone, note or enabled flag (never its keys; the local
    host's address and zone are the site's fail2ban setting, not changed here).

    A new SSH destination may be another machine: its confirmed host key is dropped, so the
    new one is fetched and confirmed before the site talks to it."""
    before = _described(host)
    if address is not None and not host.is_local:
        address = address_check(host.kind, address)
        if address != host.address and host.kind == Host.Kind.SSH:
            host.ssh_host_key = ""
        host.address = address
    if time_zone is not None and not host.is_local:
        # The local host's zone is the site's fail2ban setting (JAILADMIN_FAIL2BAN_TIME_ZONE).
        host.time_zone = time_zone_check(time_zone)
    if note is not None:
        host.note = note
    if enabled is not None:
        host.enabled = enabled
    with transaction.atomic():
        _saved(host)
        after = _described(host)
        changed = {key: value for key, value in after.items() if before.get(key) != value}
        changed.update({key: None for key in before if key not in after})
        if note is not None and "note" not in changed:
            changed["note_changed"] = True
        audit_record(
            actor=actor,
            action="host-change",
            host=host.name,
            parameters={"host": host.name, "changes": changed},
        )
    link_forget(state, host)
    return host


def link_forget(state: RuntimeState, host: Host) -> None:
    """Close this process's link to `host` (a changed or removed row builds a new one)."""
    fleet_state = state.fleet
    with fleet_state.lock:
        built = fleet_state.services.pop(host.pk, None) if host.pk is not None else None
    if built is not None:
        built[1].client.close()


@dataclass(frozen=True)
class Removal:
    """What removing a host keeps and what it removes, as counts an administrator reads.

    Kept: history (rows that record what happened on the host carry its name and stay: the
    archive, its statistics, configuration versions, blocklist import runs, audit records).
    Removed: live bookkeeping that only makes sense while the site manages the host, and
    would be wrong for another host added later under the same name (the history sync's
    cursor, the cached configuration, the blocklist entries the site holds there).
    `disabled_sources`: blocklists that imported into this host alone; with no host chosen a
    source falls back to the local host, so they are disabled rather than retargeted."""

    host: str
    kept: tuple[tuple[str, int], ...]
    removed: tuple[tuple[str, int], ...]
    disabled_sources: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "kept": dict(self.kept),
            "removed": dict(self.removed),
            "disabled_sources": list(self.disabled_sources),
        }

    # The labels above stay English (they are the audit record's keys); pages show these.
    @property
    def kept_lines(self) -> list[str]:
        """Each count as a page shows it ("3 archived bans"), in the request's language."""
        return [removal_line(label, count) for label, count in self.kept]

    @property
    def removed_lines(self) -> list[str]:
        return [removal_line(label, count) for label, count in self.removed]


def removal_line(label: str, count: int) -> str:
    """One of Removal's counts as a page shows it ("1 archived ban", "3 archived bans"), in
    the request's language."""
    lines = {
        # Translators: the counts of what removing a host keeps or removes, shown as a list.
        "archived bans": ngettext("%(count)d archived ban", "%(count)d archived bans", count),
        "ban statistics rows": ngettext(
            "%(count)d ban statistics row", "%(count)d ban statistics rows", count
        ),
        "configuration versions": ngettext(
            "%(count)d configuration version", "%(count)d configuration versions", count
        ),
        "blocklist import runs": ngettext(
            "%(count)d blocklist import run", "%(count)d blocklist import runs", count
        ),
        "audit records": ngettext("%(count)d audit record", "%(count)d audit records", count),
        "blocklist entries held on it": ngettext(
            "%(count)d blocklist entry held on it",
            "%(count)d blocklist entries held on it",
            count,
        ),
        "blocklists choosing it": ngettext(
            "%(count)d blocklist choosing it", "%(count)d blocklists choosing it", count
        ),
        "groups limited to it": ngettext(
            "%(count)d group limited to it", "%(count)d groups limited to it", count
        ),
        # The host's cached copies of its configuration (ConfigSnapshot rows).
        "cached configuration": ngettext(
            "%(count)d cached configuration snapshot",
            "%(count)d cached configuration snapshots",
            count,
        ),
        "history sync cursors": ngettext(
            "%(count)d history sync cursor", "%(count)d history sync cursors", count
        ),
    }
    line = lines.get(label)
    return line % {"count": count} if line is not None else f"{count} {label}"


def _only_here_sources(host: Host) -> list[BlocklistSource]:
    """The enabled blocklist sources that import into `host` and no other host."""
    sources = BlocklistSource.objects.filter(hosts=host, all_hosts=False, enabled=True)
    return [source for source in sources if source.hosts.count() == 1]


def host_removal(host: Host) -> Removal:
    """What `host_remove` would keep and remove now (for the confirmation)."""
    name = host.name
    kept = (
        ("archived bans", BanEvent.objects.filter(host=name).count()),
        ("ban statistics rows", BanRollup.objects.filter(host=name).count()),
        ("configuration versions", ConfigVersion.objects.filter(host=name).count()),
        ("blocklist import runs", ImportRun.objects.filter(host=name).count()),
        ("audit records", AuditEntry.objects.filter(host=name).count()),
    )
    removed = (
        ("blocklist entries held on it", SourceEntry.objects.filter(host=name).count()),
        ("blocklists choosing it", BlocklistSource.objects.filter(hosts=host).count()),
        ("groups limited to it", host.groups.count() if host.pk else 0),
        ("cached configuration", ConfigSnapshot.objects.filter(host=name).count()),
        ("history sync cursors", HistorySource.objects.filter(host=name).count()),
    )
    only_here = tuple(source.name for source in _only_here_sources(host)) if host.pk else ()
    return Removal(host=name, kept=kept, removed=removed, disabled_sources=only_here)


def host_remove(state: RuntimeState, *, host: Host, actor: Actor) -> Removal:
    """Remove a host (the local host cannot be removed: disable it instead).

    Its history stays under its name; its live bookkeeping goes with it (see Removal)."""
    if host.is_local or host.name == LOCAL_HOST:
        raise HostRefused(gettext("The local host cannot be removed; disable it instead."))
    described = _described(host)
    link_forget(state, host)
    name = host.name
    try:
        with transaction.atomic():
            removal = host_removal(host)
            for source in _only_here_sources(host):
                source.enabled = False
                source.save(update_fields=["enabled"])
            SourceEntry.objects.filter(host=name).delete()
            ConfigSnapshot.objects.filter(host=name).delete()
            HistorySource.objects.filter(host=name).delete()
            host.delete()
            audit_record(
                actor=actor,
                action="host-remove",
                host=name,
                parameters={**described, **removal.as_dict()},
            )
    except (ProtectedError, RestrictedError) as exc:
        raise HostRefused(
            gettext("%(host)s is still referred to and was not removed: %(error)s")
            % {"host": host.name, "error": exc}
        ) from None
    return removal


# --- the host's SSH key -------------------------------------------------------------------------
@dataclass(frozen=True)
class ScannedKey:
    """One public key the host presented, as an administrator compares it."""

    line: str
    fingerprint: str

    @property
    def key_type(self) -> str:
        return self.line.split(" ", 1)[0]


@dataclass(frozen=True)
class KeyScan:
    """What the host presents now, next to what the site has confirmed before."""

    keys: tuple[ScannedKey, ...]
    confirmed_fingerprint: str = ""

    @property
    def changed(self) -> bool:
        """A key was confirmed before and the host no longer presents it."""
        return bool(self.confirmed_fingerprint) and all(
            key.fingerprint != self.confirmed_fingerprint for key in self.keys
        )

    @property
    def unchanged(self) -> bool:
        return bool(self.confirmed_fingerprint) and not self.changed

    def preferred(self) -> ScannedKey | None:
        ordered = sorted(self.keys, key=lambda key: key.key_type != PREFERRED_KEY_TYPE)
        return ordered[0] if ordered else None


def _ssh_target(host: Host) -> ssh.SshTarget:
    if host.kind != Host.Kind.SSH:
        raise HostRefused(
            gettext("%(host)s is not reached over SSH: it has no host key.") % {"host": host.name}
        )
    return ssh.SshTarget.from_destination(
        host.address,
        alias=f"jailadmin-host-{host.pk}",
        private_key=host.ssh_private_key,
        host_key=host.ssh_host_key,
    )


def host_keys_fetch(*, host: Host, timeout: float = SCAN_TIMEOUT) -> KeyScan:
    """The keys the host presents now (ssh-keyscan), with their fingerprints."""
    target = _ssh_target(host)
    try:
        lines = ssh.host_keys_scan(target.host, target.port, timeout=timeout)
    except (Fail2banError, OSError) as exc:
        raise HostRefused(
            gettext("Could not fetch %(host)s's key: %(error)s") % {"host": host.name, "error": exc}
        ) from None
    if not lines:
        raise HostRefused(
            gettext("%(host)s (%(address)s) presented no key we can use.")
            % {"host": host.name, "address": host.address}
        )
    keys = tuple(ScannedKey(line=line, fingerprint=ssh.fingerprint(line)) for line in lines)
    return KeyScan(keys=keys, confirmed_fingerprint=host_key_fingerprint(host))


def host_key_confirm(
    state: RuntimeState,
    *,
    host: Host,
    actor: Actor,
    fingerprint: str | None = None,
    timeout: float = SCAN_TIMEOUT,
) -> ScannedKey:
    """Scan again and store the host's key whose fingerprint is `fingerprint`.

    `fingerprint` None accepts the preferred key the host presents (a command's `--yes`).
    Refused when the host does not present that key now: what an administrator compared is
    what is stored, never whatever the host answers at the second look."""
    scan = host_keys_fetch(host=host, timeout=timeout)
    if fingerprint is None:
        chosen = scan.preferred()
    else:
        chosen = next((key for key in scan.keys if key.fingerprint == fingerprint.strip()), None)
    if chosen is None:
        presented = ", ".join(key.fingerprint for key in scan.keys)
        raise HostRefused(
            gettext(
                "%(host)s does not present the key %(fingerprint)s (it presents %(presented)s); "
                "nothing was stored."
            )
            % {"host": host.name, "fingerprint": fingerprint, "presented": presented}
        )
    previous = scan.confirmed_fingerprint
    host.ssh_host_key = chosen.line
    with transaction.atomic():
        Host.objects.filter(pk=host.pk).update(ssh_host_key=chosen.line)
        audit_record(
            actor=actor,
            action="host-key-confirm",
            host=host.name,
            parameters={
                "host": host.name,
                "fingerprint": chosen.fingerprint,
                "previous_fingerprint": previous or None,
            },
        )
    link_forget(state, host)
    return chosen


# --- checking -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HostCheck:
    """What one host answered: who runs there and its jails, or the error in plain words."""

    host: Host
    ok: bool
    agent_version: str | None = None
    fail2ban_version: str | None = None
    jails: tuple[str, ...] = ()
    error: str = ""
    checked: bool = True  # False: not asked (disabled, or its SSH host key not confirmed)
    timed_out: bool = False
    seconds: float = 0.0
    # `error` as the page says it, in the request's language ("" : `error` as it is);
    # `error` itself stays English for --json and the host's row.
    translated_error: str = ""

    @property
    def error_text(self) -> str:
        return self.translated_error or self.error

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host.name,
            "kind": self.host.kind,
            "address": self.host.address,
            "enabled": self.host.enabled,
            "checked": self.checked,
            "ok": self.ok,
            "agent_version": self.agent_version,
            "fail2ban_version": self.fail2ban_version,
            "jails": list(self.jails),
            "error": self.error or None,
            "unreachable_since": self.host.unreachable_since,
            "last_seen": self.host.last_seen,
        }


@dataclass(frozen=True)
class _Answer:
    agent_version: str | None
    fail2ban_version: str | None
    jails: tuple[str, ...] = field(default=())


def _ask(scoped: RuntimeState) -> _Answer:
    """The handshake (agent and fail2ban versions) and the live jail list."""
    info = scoped.jail_service.client.hello()
    jails = tuple(jail_service.jail_names_list(scoped))
    return _Answer(info.agent_version, info.fail2ban_version, jails)


def _not_asked(host: Host) -> str:
    """Why `host` is not contacted at all, or "" when it may be (English: gettext() it for
    a page; gettext_noop puts the texts in the catalogue)."""
    if not host.enabled:
        return gettext_noop("disabled")
    if host.kind == Host.Kind.SSH and not host.ssh_host_key:
        return gettext_noop(
            "its SSH host key is not confirmed yet: fetch it and compare the fingerprint"
        )
    return ""


def hosts_ordered(hosts: list[Host] | None = None) -> list[Host]:
    """Every host (or `hosts`), the local host first, then by name."""
    rows = list(Host.objects.all()) if hosts is None else hosts
    return sorted(rows, key=lambda host: (not host.is_local, host.name))


def hosts_check(state: RuntimeState, *, hosts: list[Host], deadline: float) -> list[HostCheck]:
    """Ask `hosts` in parallel, each within `deadline` seconds; the reachability is recorded.

    A disabled host, and an SSH host whose key is not confirmed, are not contacted."""
    asked: list[Host] = []
    scopes: list[fleet.HostScope] = []
    results: dict[str, HostCheck] = {}
    for host in hosts:
        reason = _not_asked(host)
        if reason:
            results[host.name] = HostCheck(
                host=host,
                ok=False,
                error=reason,
                checked=False,
                translated_error=gettext(reason),
            )
            continue
        try:
            scopes.append(fleet.scope(state, host))
        except (Fail2banError, ValueError, OSError) as exc:
            # A row the transport cannot even be built for (a bad destination typed in
            # the admin): that host's error, not the page's.
            results[host.name] = HostCheck(host=host, ok=False, error=str(exc))
            continue
        asked.append(host)
    # An explicit check: asked even within a failed host's cool-down (fleet_map's breaker).
    for outcome in fleet.fleet_map(scopes, _ask, deadline=deadline, retry_now=True):
        answer = outcome.value
        results[outcome.name] = HostCheck(
            host=outcome.host,
            ok=outcome.ok and answer is not None,
            agent_version=answer.agent_version if answer else None,
            fail2ban_version=answer.fail2ban_version if answer else None,
            jails=answer.jails if answer else (),
            error=outcome.error,
            timed_out=outcome.timed_out,
            seconds=outcome.seconds,
            translated_error=outcome.error_text if outcome.error else "",
        )
    return [results[host.name] for host in hosts]


def host_check(state: RuntimeState, *, host: Host, deadline: float) -> HostCheck:
    """Connect to one host now (the handshake) and report what answers, or why not."""
    (check,) = hosts_check(state, hosts=[host], deadline=deadline)
    return check


# --- installing the agent -----------------------------------------------------------------------
@dataclass(frozen=True)
class InstallSteps:
    """Exactly what an administrator does to let the site reach an SSH host."""

    authorized_keys_file: str
    authorized_keys_line: str
    on_site: tuple[str, ...]
    on_host: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "authorized_keys_file": self.authorized_keys_file,
            "authorized_keys_line": self.authorized_keys_line,
            "on_site": list(self.on_site),
            "on_host": list(self.on_host),
        }


def install_steps(host: Host) -> InstallSteps:
    """The agent bundle's copy commands and the authorized_keys line, for `host`."""
    target = _ssh_target(host)
    if not host.ssh_public_key:
        raise HostRefused(
            gettext("%(host)s has no key pair (add it again to get one).") % {"host": host.name}
        )
    line = ssh.authorized_keys_line(host.ssh_public_key, command=ssh.AGENT_COMMAND)
    home = "/root" if target.user == "root" else f"~{target.user}"
    keys_file = f"{home}/.ssh/authorized_keys"
    login = f"{target.user}@{target.host}"
    port = [] if target.port == 22 else ["-P", str(target.port)]
    upload = shlex.join(["scp", *port, "agent.pyz", f"{login}:/tmp/jailadmin-agent.pyz"])
    on_site = (
        ".venv/bin/python manage.py agent_bundle agent.pyz --force",
        upload,
    )
    install_dir = AGENT_INSTALL_PATH.rsplit("/", 1)[0]
    on_host = (
        f"install -d -m 0755 {install_dir}",
        f"install -m 0644 /tmp/jailadmin-agent.pyz {AGENT_INSTALL_PATH}",
        f"/usr/bin/python3 -I {AGENT_INSTALL_PATH} --version",
        f"install -d -m 0700 {home}/.ssh",
        f"echo {shlex.quote(line)} >> {keys_file}",
    )
    return InstallSteps(
        authorized_keys_file=keys_file,
        authorized_keys_line=line,
        on_site=on_site,
        on_host=on_host,
    )
