"""The fleet: which hosts there are, a state scoped to each, and asking several at once.

Every service in jails.services (and the domain apps) talks to `state.jail_service`, the
host of the state's snapshot. A fleet page or command does not fork those services: it
scopes the state to a host (host_state: the same state with that host's link, capability
cache, time zone and name in its snapshot) and calls them as before. The local host keeps
the snapshot's own link, so a single-host site behaves exactly as it did.

Pages that cover several hosts ask them in parallel (fleet_map), each with a deadline: a
slow or dead host is reported as unreachable with its error, never slows the others.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Generic, TypeVar

from django.db import connections
from django.utils import timezone

from jails.agent.link import HostLink, link_build
from jails.fail2ban.errors import Fail2banError
from jails.hosts.models import LOCAL_HOST, Host
from jails.state import (
    FleetState,
    JailServiceState,
    RuntimeState,
    host_config,
    jail_service_build,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# last_seen is written at most this often per host (not on every page).
LAST_SEEN_EVERY = timedelta(minutes=1)


class HostUnknown(LookupError):
    """No enabled host of that name (pages answer 404, commands an error)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no enabled host named {name!r}")
        self.name = name


@dataclass(frozen=True)
class HostScope:
    """One host and the state scoped to it (pass `state` to any service)."""

    host: Host
    state: RuntimeState

    @property
    def name(self) -> str:
        return self.host.name


@dataclass(frozen=True)
class HostOutcome(Generic[T]):
    """What one host answered within the deadline: its value, or why not."""

    host: Host
    value: T | None = None
    error: str = ""
    timed_out: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def name(self) -> str:
        return self.host.name


# --- which hosts -------------------------------------------------------------------------------
def hosts_enabled() -> list[Host]:
    """Every enabled host, by name (one query)."""
    return list(Host.objects.filter(enabled=True).order_by("name"))


def is_fleet(hosts: Sequence[Host] | None = None) -> bool:
    """More than the local host: pages show a host column and host filters."""
    if hosts is None:
        return Host.objects.filter(enabled=True).exclude(kind=Host.Kind.LOCAL).exists()
    return any(not host.is_local for host in hosts)


def host_get(name: str) -> Host:
    """The enabled host called `name`; HostUnknown if there is none."""
    host = Host.objects.filter(name=name, enabled=True).first()
    if host is None:
        raise HostUnknown(name)
    return host


# --- one host's link ---------------------------------------------------------------------------
def _connection_key(state: RuntimeState, host: Host) -> Hashable:
    """What the host's link is built from: a change to any of these builds a new one."""
    settings = state.settings
    secret = hashlib.sha256(host.ssh_private_key.encode()).hexdigest()
    return (
        host.kind,
        host.address,
        secret,
        host.ssh_host_key,
        host.time_zone,
        settings.fail2ban_timeout,
        settings.fail2ban_time_zone,
        settings.fail2ban_config_dir,
        settings.fail2ban_client,
    )


def _fleet_runtime_dir(fleet: FleetState) -> str:
    """A private directory for this process's SSH key and known_hosts files (mode 0700)."""
    if not fleet.runtime_dir:
        fleet.runtime_dir = tempfile.mkdtemp(prefix="jailadmin-fleet-")
    return fleet.runtime_dir


def _link_build(state: RuntimeState, host: Host) -> HostLink:
    config = host_config(state.settings)
    if host.kind == Host.Kind.SOCKET:
        return link_build(agent="", config=replace(config, socket=host.address))
    if host.kind == Host.Kind.AGENT:
        return link_build(agent=host.address, config=config)
    if host.kind == Host.Kind.SSH:
        from jails.agent.ssh import SshTarget, ssh_link_build

        target = SshTarget.from_destination(
            host.address,
            alias=f"jailadmin-host-{host.pk}",
            private_key=host.ssh_private_key,
            host_key=host.ssh_host_key,
        )
        return ssh_link_build(
            target,
            timeout=config.timeout,
            runtime_dir=_fleet_runtime_dir(state.fleet),
        )
    raise ValueError(f"host {host.name!r} has an unknown kind {host.kind!r}")


def _service(state: RuntimeState, host: Host) -> JailServiceState:
    """The host's service state (link and capability cache), built once per connection."""
    if host.is_local:
        return state.snapshot.jail_service
    fleet = state.fleet
    key = _connection_key(state, host)
    assert host.pk is not None
    with fleet.lock:
        built = fleet.services.get(host.pk)
        if built is not None and built[0] == key:
            return built[1]
        service = jail_service_build(
            state.settings, client=_link_build(state, host), time_zone=host.time_zone
        )
        fleet.services[host.pk] = (key, service)
    if built is not None:
        built[1].client.close()  # the old connection's settings: let its sessions go
    return service


def host_state(state: RuntimeState, host: Host) -> RuntimeState:
    """`state`, scoped to `host`: every service called with it talks to that host."""
    snapshot = state.snapshot
    if host.is_local and snapshot.host == host.name:
        return state
    return replace(
        state, snapshot=replace(snapshot, jail_service=_service(state, host), host=host.name)
    )


def scope(state: RuntimeState, host: Host) -> HostScope:
    return HostScope(host=host, state=host_state(state, host))


def scopes_list(
    state: RuntimeState, *, names: Iterable[str] | None = None, allowed: set[str] | None = None
) -> list[HostScope]:
    """The enabled hosts (only `names` if given, only `allowed` if not None), each scoped.

    HostUnknown for a name in `names` that is not an enabled host."""
    hosts = hosts_enabled()
    if names is not None:
        wanted = list(dict.fromkeys(names))
        by_name = {host.name: host for host in hosts}
        missing = [name for name in wanted if name not in by_name]
        if missing:
            raise HostUnknown(missing[0])
        hosts = [by_name[name] for name in wanted]
    if allowed is not None:
        hosts = [host for host in hosts if host.name in allowed]
    return [scope(state, host) for host in hosts]


def local_host() -> Host:
    """The local host's row (created by the migration; recreated if someone deleted it)."""
    host, _ = Host.objects.get_or_create(name=LOCAL_HOST, defaults={"kind": Host.Kind.LOCAL})
    return host


# --- asking several hosts at once --------------------------------------------------------------
def _describe(exc: BaseException) -> str:
    if isinstance(exc, Fail2banError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _run(fn: Callable[[RuntimeState], T], scoped: RuntimeState) -> T:
    try:
        return fn(scoped)
    finally:
        # The thread may have touched the database (a service's queries) and ends here: close
        # its connections now. close_old_connections() would keep one open for CONN_MAX_AGE
        # (PostgreSQL: 60 s), and a connection whose thread is gone is never reused — leaked
        # until the server runs out of connection slots.
        connections.close_all()


def _start(fn: Callable[[RuntimeState], T], scoped: RuntimeState, *, name: str) -> Future[T]:
    """fn(scoped) on a daemon thread of its own; its result or exception in the future."""
    future: Future[T] = Future()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(_run(fn, scoped))
        except BaseException as exc:  # handed to the caller through the future
            future.set_exception(exc)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


def fleet_map(
    scopes: Sequence[HostScope],
    fn: Callable[[RuntimeState], T],
    *,
    deadline: float,
    record: bool = True,
) -> list[HostOutcome[T]]:
    """fn(scoped state) on every host at once; each host's value or error, in `scopes` order.

    A host that has not answered within `deadline` seconds is reported as timed out and left
    to finish (or fail) on its own thread: the caller never waits longer than the deadline.
    One host asks on the calling thread. `record`: write reachability changes to the rows.
    """
    if not scopes:
        return []
    started = time.monotonic()
    outcomes: dict[int, HostOutcome[T]] = {}
    if len(scopes) == 1:
        only = scopes[0]
        try:
            value = fn(only.state)
            outcomes[0] = HostOutcome(only.host, value, seconds=time.monotonic() - started)
        except Exception as exc:  # every failure of one host is that host's outcome
            outcomes[0] = HostOutcome(
                only.host, error=_describe(exc), seconds=time.monotonic() - started
            )
    else:
        # One daemon thread per host, not a ThreadPoolExecutor: an executor's threads are
        # joined when the interpreter exits, so a command would wait for a hung host's
        # connection timeout after printing everything else.
        futures: dict[Future[T], int] = {
            _start(fn, item.state, name=f"fleet-{item.name}"): index
            for index, item in enumerate(scopes)
        }
        pending = set(futures)
        end = started + deadline
        while pending:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            done, pending = wait(pending, timeout=remaining, return_when=FIRST_COMPLETED)
            for future in done:
                index = futures[future]
                host = scopes[index].host
                seconds = time.monotonic() - started
                failure = future.exception()
                if failure is None:
                    outcomes[index] = HostOutcome(host, future.result(), seconds=seconds)
                else:
                    outcomes[index] = HostOutcome(host, error=_describe(failure), seconds=seconds)
        for future in pending:
            index = futures[future]
            outcomes[index] = HostOutcome(
                scopes[index].host,
                error=f"no answer within {deadline:g} s",
                timed_out=True,
                seconds=time.monotonic() - started,
            )
    ordered = [outcomes[index] for index in range(len(scopes))]
    if record:
        reachability_record(ordered)
    return ordered


def reachability_record(outcomes: Iterable[HostOutcome[Any]]) -> None:
    """Write each host's reachability when it changed (and last_seen once a minute)."""
    now = timezone.now()
    for outcome in outcomes:
        host = outcome.host
        if outcome.ok:
            changes: dict[str, object] = {}
            if host.unreachable_since is not None or host.last_error:
                changes.update(unreachable_since=None, last_error="")
            if host.last_seen is None or now - host.last_seen >= LAST_SEEN_EVERY:
                changes["last_seen"] = now
        else:
            changes = {}
            if host.unreachable_since is None:
                changes["unreachable_since"] = now
            if host.last_error != outcome.error:
                changes["last_error"] = outcome.error[:2000]
        if changes:
            Host.objects.filter(pk=host.pk).update(**changes)
            for field_name, value in changes.items():
                setattr(host, field_name, value)
