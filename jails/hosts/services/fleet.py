"""The fleet: which hosts there are, a state scoped to each, and asking several at once.

Every service in jails.services (and the domain apps) talks to `state.jail_service`, the
host of the state's snapshot. A fleet page or command does not fork those services: it
scopes the state to a host (host_state: the same state with that host's link, capability
cache, time zone and name in its snapshot) and calls them as before. The local host keeps
the snapshot's own link, so a single-host site behaves exactly as it did.

Pages that cover several hosts ask them in parallel (fleet_map), each with a deadline: a
slow or dead host is reported as unreachable with its error, never slows the others.

A host that failed to answer (or missed the deadline) is not asked again by this process
for JAILADMIN_HOST_RETRY seconds (its breaker, in RuntimeState.fleet): pages show it as
unreachable at once, with its last error and when it is tried next. The call that missed
the deadline goes on on its own thread and is the one probe: while it runs nobody asks
the host, and when it ends its answer (or failure) opens or closes the breaker.
After the cool-down, the next caller asks the host again.

Changes on several hosts (fleet_change) run in parallel under the same deadline; their
audit records are written on the calling thread, before (intent) and after (result): the
worker threads only talk to fail2ban.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from datetime import timedelta
from queue import SimpleQueue
from typing import Any, Generic, TypeVar

from django.db import connections
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from jails.agent.link import HostLink, link_build
from jails.fail2ban.errors import Fail2banError, Fail2banUnreachable, ProtocolError
from jails.hosts.models import LOCAL_HOST, Host
from jails.state import (
    FleetState,
    HostBreaker,
    JailServiceState,
    RuntimeState,
    host_config,
    jail_service_build,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
D = TypeVar("D")

# last_seen is written at most this often per host (not on every page).
LAST_SEEN_EVERY = timedelta(minutes=1)

# Worker threads are kept for the next page: starting one thread per host per page (and
# waiting for each to start) cost 1-2 ms of the site's CPU on a 10-host /jails/. Idle ones
# beyond this many end; they are daemon threads, so a process never waits for them to exit.
IDLE_WORKERS_MAX = 32
IDLE_WORKER_NAME = "fleet-idle"
_Job = tuple[Callable[[], None], str]


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
    # Not asked: the host failed or missed the deadline a moment ago (its breaker is open);
    # `error` then says what the last error was and when the host is tried next.
    skipped: bool = False
    # What `error` is made of, so a page can say it in its own language (`error_text`):
    # `error` itself stays English (it goes into the host's row, audit records and --json).
    last_error: str = ""  # skipped: the breaker's error
    retry_in: int | None = None  # skipped: seconds to the next try (None: once the call ends)
    deadline: float | None = None  # timed out (not skipped): the deadline it missed

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def error_text(self) -> str:
        """`error` in the request's language, for a page; the host's or the transport's own
        text (the last error itself) passes through as it is."""
        if self.skipped:
            if self.retry_in is None:
                return gettext("last error: %(error)s; next try once its earlier request ends") % {
                    "error": self.last_error
                }
            # Translators: "s" is the unit symbol for seconds, the same for one and many in
            # English; write the unit as your language does, with its plural forms if any.
            return ngettext(
                "last error: %(error)s; next try in %(seconds)d s",
                "last error: %(error)s; next try in %(seconds)d s",
                self.retry_in,
            ) % {"error": self.last_error, "seconds": self.retry_in}
        if self.timed_out and self.deadline is not None:
            return gettext("no answer within %(seconds)s s") % {"seconds": f"{self.deadline:g}"}
        return self.error

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
    state: RuntimeState,
    *,
    names: Iterable[str] | None = None,
    allowed: set[str] | None = None,
    hosts: Sequence[Host] | None = None,
) -> list[HostScope]:
    """The enabled hosts (only `names` if given, only `allowed` if not None), each scoped.

    `hosts`: every enabled row, already read (in any order), instead of a query of its own.
    HostUnknown for a name in `names` that is not an enabled host."""
    hosts = hosts_enabled() if hosts is None else sorted(hosts, key=lambda host: host.name)
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


def _unreachable(exc: BaseException | None) -> bool:
    """A failure to reach the host (down, hung, garbage), not a refusal by a host that answered."""
    return isinstance(exc, Fail2banUnreachable | ProtocolError)


@dataclass
class _Attempt:
    """One call to one host, as its breaker sees it (`ended` is guarded by fleet.lock)."""

    fleet: FleetState
    host_pk: int
    service: JailServiceState
    retry: float  # the cool-down after a failure (0: no breaker)
    ended: bool = field(default=False)


def _skipped(host: Host, breaker: HostBreaker, now: float) -> HostOutcome[Any]:
    retry_in = None if breaker.busy else max(math.ceil(breaker.retry_at - now), 1)
    when = "once its earlier request ends" if retry_in is None else f"in {retry_in} s"
    return HostOutcome(
        host,
        error=f"last error: {breaker.error}; next try {when}",
        timed_out=breaker.timed_out,
        skipped=True,
        last_error=breaker.error,
        retry_in=retry_in,
    )


def _admit(item: HostScope, *, retry_now: bool) -> _Attempt | HostOutcome[Any]:
    """The attempt to make on the host, or the outcome of not asking it (breaker open)."""
    state = item.state
    fleet = state.fleet
    service = state.snapshot.jail_service
    # The site's own fail2ban is always asked: it is next to the site (a failure is quick and
    # says something new each time), and a single-host site keeps answering as it always did.
    retry = 0.0 if item.host.is_local else state.settings.host_retry
    assert item.host.pk is not None
    attempt = _Attempt(fleet, item.host.pk, service, retry)
    if retry <= 0:
        return attempt
    now = time.monotonic()
    with fleet.lock:
        breaker = fleet.breakers.get(attempt.host_pk)
        if breaker is not None and breaker.service is not service:
            # The row's connection changed since (a new link): its old failure says nothing.
            del fleet.breakers[attempt.host_pk]
            breaker = None
        if breaker is None:
            return attempt
        if breaker.busy or (not retry_now and now < breaker.retry_at):
            return _skipped(item.host, breaker, now)
        breaker.busy = True  # this call tries it again: others still skip it meanwhile
    return attempt


def _settle(attempt: _Attempt, failure: BaseException | None) -> None:
    """The call ended (on its own thread, maybe long after the deadline): open or close."""
    if attempt.retry <= 0:
        return
    fleet = attempt.fleet
    now = time.monotonic()
    with fleet.lock:
        attempt.ended = True
        breaker = fleet.breakers.get(attempt.host_pk)
        if breaker is not None and breaker.service is not attempt.service:
            return  # the host's link was rebuilt meanwhile: that one has its own record
        if _unreachable(failure):
            assert failure is not None
            fleet.breakers[attempt.host_pk] = HostBreaker(
                attempt.service, _describe(failure), timed_out=False, retry_at=now + attempt.retry
            )
        elif failure is None or isinstance(failure, Fail2banError):
            # It answered (a refusal is an answer too): shown normally from now on.
            fleet.breakers.pop(attempt.host_pk, None)
        elif breaker is not None:
            breaker.busy = False  # our bug, not the host's: the breaker stays as it was


def _missed(attempt: _Attempt, error: str) -> None:
    """The caller stopped waiting at the deadline; the call goes on and settles later."""
    if attempt.retry <= 0:
        return
    fleet = attempt.fleet
    with fleet.lock:
        if attempt.ended:
            return  # it ended just now and has settled its breaker itself
        fleet.breakers[attempt.host_pk] = HostBreaker(
            attempt.service,
            error,
            timed_out=True,
            retry_at=time.monotonic() + attempt.retry,
            busy=True,
        )


def _run(fn: Callable[[RuntimeState], T], scoped: RuntimeState) -> T:
    try:
        return fn(scoped)
    finally:
        # The thread may have touched the database (a service's queries) and ends here: close
        # its connections now. close_old_connections() would keep one open for CONN_MAX_AGE
        # (PostgreSQL: 60 s), and a connection whose thread is gone is never reused — leaked
        # until the server runs out of connection slots.
        connections.close_all()


def _attempted(
    fn: Callable[[RuntimeState], T],
    attempt: _Attempt,
    failure_of: Callable[[T], BaseException | None] | None,
) -> Callable[[RuntimeState], T]:
    """fn, telling the host's breaker how the call ended (whenever that is)."""

    def call(scoped: RuntimeState) -> T:
        try:
            value = fn(scoped)
        except BaseException as exc:
            _settle(attempt, exc)
            raise
        _settle(attempt, failure_of(value) if failure_of is not None else None)
        return value

    return call


def _worker(fleet: FleetState, jobs: SimpleQueue[_Job]) -> None:
    """A fleet worker thread: runs each call put on its queue, then offers itself again."""
    while True:
        job, name = jobs.get()
        threading.current_thread().name = name  # which host it is asking, for logs and tests
        job()
        threading.current_thread().name = IDLE_WORKER_NAME
        with fleet.lock:
            if fleet.workers_pid != os.getpid() or len(fleet.idle_workers) >= IDLE_WORKERS_MAX:
                return
            fleet.idle_workers.append(jobs)


def _start(fn: Callable[[RuntimeState], T], scoped: RuntimeState, *, name: str) -> Future[T]:
    """fn(scoped) on a daemon thread of its own (an idle worker, else a new one); its result
    or exception in the future. A call that hangs keeps its thread: the next page asks for
    another one, so a hung host never delays the others."""
    future: Future[T] = Future()

    def job() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(_run(fn, scoped))
        except BaseException as exc:  # handed to the caller through the future
            future.set_exception(exc)

    fleet = scoped.fleet
    pid = os.getpid()
    with fleet.lock:
        if fleet.workers_pid != pid:
            # A forked child (a gunicorn worker) inherits the list but not the threads.
            fleet.idle_workers.clear()
            fleet.workers_pid = pid
        jobs = fleet.idle_workers.pop() if fleet.idle_workers else None
    if jobs is None:
        jobs = SimpleQueue()
        threading.Thread(target=_worker, args=(fleet, jobs), name=name, daemon=True).start()
    jobs.put((job, name))
    return future


def _answered(
    host: Host,
    value: T,
    failure_of: Callable[[T], BaseException | None] | None,
    seconds: float,
) -> HostOutcome[T]:
    """A host's answer; one that carries a failure to reach it (a change's report) keeps the
    value and says why the host is unreachable, so its row records that too."""
    failure = failure_of(value) if failure_of is not None else None
    error = _describe(failure) if _unreachable(failure) and failure is not None else ""
    return HostOutcome(host, value, error=error, seconds=seconds)


def fleet_map(
    scopes: Sequence[HostScope],
    fn: Callable[[RuntimeState], T],
    *,
    deadline: float,
    record: bool = True,
    retry_now: bool = False,
    failure_of: Callable[[T], BaseException | None] | None = None,
) -> list[HostOutcome[T]]:
    """fn(scoped state) on every host at once; each host's value or error, in `scopes` order.

    A host that has not answered within `deadline` seconds is reported as timed out and left
    to finish (or fail) on its own thread: the caller never waits longer than the deadline.
    One host asks on the calling thread. `record`: write reachability changes to the rows.

    A host whose breaker is open (it failed or missed the deadline less than
    JAILADMIN_HOST_RETRY seconds ago) is not asked: its outcome is `skipped`, with the last
    error. `retry_now` (an explicit check: the hosts page, the notification rules) asks it
    anyway, unless a call to it is still running. `failure_of(value)`: the failure a value
    carries instead of raising it (a change's report), for the breaker and the rows.
    """
    if not scopes:
        return []
    started = time.monotonic()
    outcomes: dict[int, HostOutcome[T]] = {}
    attempts: dict[int, _Attempt] = {}
    for index, item in enumerate(scopes):
        admitted = _admit(item, retry_now=retry_now)
        if isinstance(admitted, HostOutcome):
            outcomes[index] = admitted
        else:
            attempts[index] = admitted
    calls = {index: _attempted(fn, attempt, failure_of) for index, attempt in attempts.items()}
    if len(calls) == 1 and len(scopes) == 1:
        only = scopes[0]
        try:
            value = calls[0](only.state)
            outcomes[0] = _answered(only.host, value, failure_of, time.monotonic() - started)
        except Exception as exc:  # every failure of one host is that host's outcome
            outcomes[0] = HostOutcome(
                only.host, error=_describe(exc), seconds=time.monotonic() - started
            )
    elif calls:
        # One daemon thread per host (_start), not a ThreadPoolExecutor: an executor's threads are
        # joined when the interpreter exits, so a command would wait for a hung host's
        # connection timeout after printing everything else.
        futures: dict[Future[T], int] = {
            _start(call, scopes[index].state, name=f"fleet-{scopes[index].name}"): index
            for index, call in calls.items()
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
                    outcomes[index] = _answered(host, future.result(), failure_of, seconds)
                else:
                    outcomes[index] = HostOutcome(host, error=_describe(failure), seconds=seconds)
        for future in pending:
            index = futures[future]
            error = f"no answer within {deadline:g} s"
            _missed(attempts[index], error)
            outcomes[index] = HostOutcome(
                scopes[index].host,
                error=error,
                timed_out=True,
                seconds=time.monotonic() - started,
                deadline=deadline,
            )
    ordered = [outcomes[index] for index in range(len(scopes))]
    if record:
        reachability_record(ordered)
    return ordered


def fleet_change(
    scopes: Sequence[HostScope],
    fn: Callable[[RuntimeState], T],
    *,
    deadline: float,
    audit: Callable[[HostScope], AbstractContextManager[D]],
    finish: Callable[[D, HostOutcome[T]], None],
    failure_of: Callable[[T], BaseException | None] | None = None,
    record: bool = True,
) -> list[HostOutcome[T]]:
    """A change on several hosts at once: fleet_map's parallel calls under its deadline,
    with each host's audit record kept on this thread.

    `audit(scope)` opens the host's record (its intent is stored before anything is sent);
    `fn` talks to the host only, on a worker thread (no database: SQLite locks the table
    for a writer, and audit rows must not race); `finish(draft, outcome)` fills the record
    with what the host answered, or that it did not answer in time (the change may still
    have happened there), or that it was not asked. A record that cannot be opened stops
    the whole change before any host is asked (an action is never unaudited).
    """
    with ExitStack() as stack:
        drafts = [stack.enter_context(audit(item)) for item in scopes]
        outcomes = fleet_map(scopes, fn, deadline=deadline, record=record, failure_of=failure_of)
        for draft, outcome in zip(drafts, outcomes, strict=True):
            finish(draft, outcome)
    return outcomes


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
            if outcome.skipped:
                pass  # not asked: its last error (on the row) is still the last one
            elif host.last_error != outcome.error:
                changes["last_error"] = outcome.error[:2000]
        if changes:
            Host.objects.filter(pk=host.pk).update(**changes)
            for field_name, value in changes.items():
                setattr(host, field_name, value)
