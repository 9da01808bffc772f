"""Controlling jails at run time: ignore list, ban time and friends, idle, stop, start, reload.

Runtime changes live in the running fail2ban only: a reload re-reads the configuration
and undoes them (the configuration editor is what makes them permanent). ``reload`` runs
fail2ban-client on the host (jails.agent.operations.reload), through the state's link.
"""

from __future__ import annotations

from dataclasses import dataclass

from jails.agent import operations
from jails.fail2ban import CommandRejected, InvalidArgument, UnknownJail

# ReloadFailed lives with the other typed errors now (the agent raises it too); the name
# stays importable from here for the code that imported it from here.
from jails.fail2ban import ReloadFailed as ReloadFailed
from jails.fail2ban.validation import parse_count, parse_duration, validate_jail_name
from jails.services import jails as jail_service
from jails.services.audit import Actor
from jails.services.operations import audited, entry_parse
from jails.state import RuntimeState, host_config

MAX_MAXRETRY = 1_000_000


# Ignore list ---
def _ignore_list(state: RuntimeState, jail: str) -> list[str]:
    return [str(ip) for ip in state.jail_service.client.send("get", jail, "ignoreip") or ()]


def ignore_list_get(state: RuntimeState, *, jail: str) -> list[str]:
    """The jail's ignore list as fail2ban holds it now."""
    jail_service.jail_require(state, name=jail)
    return _ignore_list(state, jail)


def ignore_add(state: RuntimeState, *, jail: str, address: str, actor: Actor) -> list[str]:
    """Add an address or network to the jail's ignore list; return the new list."""
    with audited(actor=actor, action="ignore_add", jail=jail, host=state.snapshot.host) as draft:
        entry = _checked_entry(address)
        draft.ips = [entry]
        jail_service.jail_require(state, name=jail)
        if entry in _ignore_list(state, jail):
            draft.parameters = {"already_listed": True}
            return _ignore_list(state, jail)
        reply = state.jail_service.client.send("set", jail, "addignoreip", entry)
        return [str(ip) for ip in reply or ()]


def ignore_remove(state: RuntimeState, *, jail: str, address: str, actor: Actor) -> list[str]:
    """Remove an address or network from the jail's ignore list; return the new list."""
    with audited(actor=actor, action="ignore_remove", jail=jail, host=state.snapshot.host) as draft:
        entry = _checked_entry(address)
        draft.ips = [entry]
        jail_service.jail_require(state, name=jail)
        if entry not in _ignore_list(state, jail):
            # fail2ban answers a missing entry with a bare "list.remove(x)" error.
            raise InvalidArgument(f"{entry} is not on the ignore list of {jail}")
        reply = state.jail_service.client.send("set", jail, "delignoreip", entry)
        return [str(ip) for ip in reply or ()]


def _checked_entry(address: str) -> str:
    entry = entry_parse(address)
    if not entry.valid:
        raise InvalidArgument(f"{entry.text!r} is {entry.error}")
    return entry.address


# Tune ---
TUNE_KEYS = ("bantime", "findtime", "maxretry")


@dataclass(frozen=True)
class TuneChange:
    key: str
    old: int
    new: int


def tune_parse(
    *, bantime: str | None = None, findtime: str | None = None, maxretry: str | None = None
) -> dict[str, int]:
    """Validate the given values (blank or None: leave unchanged) into whole numbers."""
    values: dict[str, int] = {}
    if bantime:
        values["bantime"] = parse_duration(bantime, allow_permanent=True)
    if findtime:
        values["findtime"] = parse_duration(findtime, allow_permanent=False)
    if maxretry:
        count = parse_count(maxretry, name="maxretry", minimum=1)
        if count > MAX_MAXRETRY:
            raise InvalidArgument(f"maxretry must be at most {MAX_MAXRETRY}")
        values["maxretry"] = count
    return values


def jail_tune_preview(
    state: RuntimeState, *, jail: str, values: dict[str, int]
) -> list[TuneChange]:
    """What would change (reads only): the values that differ from the jail's current ones."""
    jail_service.jail_require(state, name=jail)
    changes = []
    with state.jail_service.client.connection() as conn:
        for key in TUNE_KEYS:
            if key in values:
                old = int(conn.send("get", jail, key))
                if old != values[key]:
                    changes.append(TuneChange(key, old, values[key]))
    return changes


def jail_tune(
    state: RuntimeState,
    *,
    jail: str,
    actor: Actor,
    bantime: str | None = None,
    findtime: str | None = None,
    maxretry: str | None = None,
) -> list[TuneChange]:
    """Set bantime/findtime/maxretry (durations like 10m, 1h, 1d, -1); return what changed."""
    with audited(actor=actor, action="tune", jail=jail, host=state.snapshot.host) as draft:
        draft.parameters = {
            "requested": {
                k: v
                for k, v in (("bantime", bantime), ("findtime", findtime), ("maxretry", maxretry))
                if v not in (None, "")
            }
        }
        validate_jail_name(jail)
        values = tune_parse(bantime=bantime, findtime=findtime, maxretry=maxretry)
        if not values:
            raise InvalidArgument("give at least one of bantime, findtime or maxretry")
        changes = jail_tune_preview(state, jail=jail, values=values)
        done = []
        try:
            with state.jail_service.client.connection() as conn:
                for change in changes:
                    conn.send("set", jail, change.key, str(change.new))
                    done.append(change)
        finally:
            draft.parameters["changes"] = {c.key: [c.old, c.new] for c in done}
        return changes


# Idle, stop, start ---
def jail_idle_set(state: RuntimeState, *, jail: str, idle: bool, actor: Actor) -> None:
    """Pause (idle on) or resume (idle off) a jail's log monitoring; its bans stay."""
    with audited(actor=actor, action="idle", jail=jail, host=state.snapshot.host) as draft:
        draft.parameters = {"idle": idle}
        jail_service.jail_require(state, name=jail)
        state.jail_service.client.send("set", jail, "idle", "on" if idle else "off")


def jail_stop(state: RuntimeState, *, jail: str, actor: Actor) -> None:
    """Stop a jail: fail2ban unbans its addresses and forgets the jail until a reload."""
    with audited(actor=actor, action="stop", jail=jail, host=state.snapshot.host):
        jail_service.jail_require(state, name=jail)
        state.jail_service.client.send("stop", jail)


@dataclass(frozen=True)
class StartResult:
    jail: str
    via_reload: bool  # a stopped jail only comes back through a reload of the server
    output: str = ""


def jail_start(state: RuntimeState, *, jail: str, actor: Actor) -> StartResult:
    """Start a jail: `start J` if fail2ban still has it, else reload the server's configuration."""
    with audited(actor=actor, action="start", jail=jail, host=state.snapshot.host) as draft:
        validate_jail_name(jail)
        if jail in jail_service.jail_names_list(state):
            state.jail_service.client.send("start", jail)
            draft.parameters = {"via_reload": False}
            return StartResult(jail, via_reload=False)
        # fail2ban 1.0.2 removes a stopped jail entirely: `start J` and `reload J` both answer
        # "does not exist"; only a reload of the whole configuration brings it back.
        draft.parameters = {"via_reload": True}
        output = _run_reload(state, jail=None)
        if jail not in jail_service.jail_names_list(state):
            raise UnknownJail(["start", jail], jail)
        return StartResult(jail, via_reload=True, output=output)


# Reload ---
def reload_command(state: RuntimeState, *, jail: str | None) -> list[str]:
    """The argv of `fail2ban-client -c CONF -s SOCK reload [JAIL]` for this state's settings."""
    return operations.reload_argv(host_config(state.settings), jail=jail)


def _run_reload(state: RuntimeState, *, jail: str | None) -> str:
    # Through the link: in agent mode only the agent, as root, may run fail2ban-client.
    if jail is not None:
        validate_jail_name(jail)
    return state.jail_service.client.reload(jail=jail)


@dataclass(frozen=True)
class ReloadResult:
    jail: str | None
    output: str


def server_reload(state: RuntimeState, *, actor: Actor, jail: str | None = None) -> ReloadResult:
    """Reload fail2ban's configuration (one jail, or the whole server). Bans are kept."""
    with audited(actor=actor, action="reload", jail=jail or "", host=state.snapshot.host) as draft:
        if jail is not None:
            jail_service.jail_require(state, name=jail)
        output = _run_reload(state, jail=jail)
        draft.parameters = {"output": output[-1000:]}
        return ReloadResult(jail, output)


def describe_error(exc: Exception) -> str:
    """A short operator-facing sentence for a failed action."""
    if isinstance(exc, UnknownJail):
        return f"fail2ban has no jail named {exc.jail}"
    if isinstance(exc, CommandRejected):
        return f"fail2ban refused the command: {exc.message or exc.remote_type}"
    return str(exc)
