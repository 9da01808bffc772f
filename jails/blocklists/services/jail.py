"""The dedicated jail a blocklist imports into, created through the configuration editor's
safe path (stage, `fail2ban-client -t`, write, reload, verify, roll back): this module only
decides what the two files say; jails.configuration.services does the rest, audit included.

On a fleet (jails.hosts) each host has its own fail2ban and configuration: which hosts lack
a jail is asked of all at once, and the jail is created host by host (its state scoped with
fleet.host_state), each with its own result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jails.blocklists.models import DEFAULT_JAIL
from jails.configuration.services.files import (
    ApplyOutcome,
    ConfigPermissionDenied,
    FileChange,
    config_file_get,
    config_files_save,
    config_get,
)
from jails.configuration.services.overrides import ini_set, jail_override_path
from jails.fail2ban import Fail2banError, InvalidArgument
from jails.fail2ban.validation import validate_jail_name
from jails.hosts.models import Host
from jails.hosts.services import fleet
from jails.services import jails as jail_service
from jails.services.audit import Actor
from jails.services.control import describe_error
from jails.state import RuntimeState

FILTER_NAME = "jailadmin-blocklist"
FILTER_PATH = f"filter.d/{FILTER_NAME}.local"
# fail2ban's reader refuses a jail whose log file does not exist ("Have not found any log
# file"), and the safe path writes configuration only, so it cannot create one. /dev/null
# exists on every host and never has a line; with the polling backend its mtime never
# changes, so the jail costs one stat a second (inotify would wake on every write to it).
LOGPATH = "/dev/null"
FILTER_VALUES: dict[str, str | None] = {
    # Never matches: the jail's bans come only from imports.
    "failregex": "^jailadmin-blocklist-never-matches <HOST>$",
}


def jail_values(jail: str) -> dict[str, str | None]:
    """The jail's settings, in the order the how-to shows them."""
    return {
        "enabled": "true",
        "filter": FILTER_NAME,
        "logpath": LOGPATH,
        "backend": "polling",
        # Permanent: an entry is lifted when it leaves its list, not by a timer.
        "bantime": "-1",
        # A set-based action keeps tens of thousands of entries cheap for the firewall.
        "banaction": "nftables-allports",
    }


@dataclass(frozen=True)
class JailFile:
    path: str
    content: str


def blocklist_jail_files(*, jail: str = DEFAULT_JAIL) -> tuple[JailFile, JailFile]:
    """The filter and the jail file, as the how-to shows them and the button writes them."""
    return (
        JailFile(FILTER_PATH, ini_set("", "Definition", FILTER_VALUES)),
        JailFile(jail_override_path(jail), ini_set("", jail, jail_values(jail))),
    )


def blocklist_jail_create(
    state: RuntimeState, *, jail: str = DEFAULT_JAIL, actor: Actor
) -> ApplyOutcome:
    """Create the blocklist jail (and its never-matching filter unless one exists) in one
    change through the configuration editor's safe path: all of it or nothing."""
    validate_jail_name(jail)
    config = config_get(state)
    if config.jail(jail) is not None:
        raise InvalidArgument(f"a jail named {jail} exists already in the configuration")
    path = jail_override_path(jail)
    current = config_file_get(state, path=path)
    changes = [FileChange(path, ini_set(current.content, jail, jail_values(jail)), current.sha256)]
    if FILTER_NAME not in config.names("filter.d"):
        filter_file = blocklist_jail_files(jail=jail)[0]
        changes.insert(0, FileChange(filter_file.path, filter_file.content, None))
    return config_files_save(
        state,
        changes=changes,
        actor=actor,
        reason=f"new blocklist jail {jail}",
        # Only the filter and the jail file: no action definition is written.
        administrator=False,
        action="config_jail_create",
        jail=jail,
    )


@dataclass(frozen=True)
class HostJailCreated:
    """What creating the jail did on one host: the safe path's outcome, or why it was not
    tried there (`refused`: the request is wrong for that host, e.g. the jail exists in its
    configuration; otherwise the host could not be asked)."""

    host: str
    outcome: ApplyOutcome | None = None
    error: str = ""
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome is not None and self.outcome.ok


def blocklist_jail_create_on_hosts(
    state: RuntimeState, *, jail: str, hosts: Sequence[Host], actor: Actor
) -> list[HostJailCreated]:
    """Create the blocklist jail on each host, in turn; one host's failure stops none of the
    others. In turn, not at once: each change writes file versions and audit records (one
    database writer), and a reload is rare enough that the wait is the operator's choice."""
    validate_jail_name(jail)  # a bad name is refused before any host is asked
    results = []
    for host in hosts:
        scoped = fleet.host_state(state, host)
        try:
            outcome = blocklist_jail_create(scoped, jail=jail, actor=actor)
        except (InvalidArgument, ConfigPermissionDenied) as exc:
            results.append(HostJailCreated(host.name, error=str(exc), refused=True))
        except Fail2banError as exc:
            results.append(HostJailCreated(host.name, error=describe_error(exc)))
        else:
            results.append(HostJailCreated(host.name, outcome=outcome))
    return results


@dataclass(frozen=True)
class JailsMissing:
    """Which wanted jails each host lacks (jail -> host names), and the hosts that could not
    be asked (host name -> why)."""

    missing: dict[str, list[str]]
    errors: dict[str, str]


def blocklist_jails_missing(
    state: RuntimeState, *, wanted: Mapping[str, set[str]], deadline: float
) -> JailsMissing:
    """Ask every host in `wanted` (host name -> the jails its sources import into) for its
    live jails at once, each within `deadline` seconds."""
    hosts = [host for host in fleet.hosts_enabled() if host.name in wanted]
    outcomes = fleet.fleet_map(
        [fleet.scope(state, host) for host in hosts],
        jail_service.jail_names_list,
        deadline=deadline,
    )
    missing: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    for outcome in outcomes:
        if not outcome.ok or outcome.value is None:
            errors[outcome.name] = outcome.error
            continue
        for jail in sorted(wanted[outcome.name] - set(outcome.value)):
            missing.setdefault(jail, []).append(outcome.name)
    return JailsMissing(missing=dict(sorted(missing.items())), errors=errors)
