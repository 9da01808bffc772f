"""The enabled host rows every page reads, kept per process while the hosts' stamp holds.

Every page asks "is this a fleet?" and most need the local host's row: one query per
request (about 0.5 ms of the worker's CPU and one of PostgreSQL's on the hot /jails/ page)
for rows that change when an administrator edits a host, or when a fleet page records a
host going down or coming back. So the rows are kept in RuntimeState.pages under the
hosts' version stamp (jails.stamps: a file in the var dir, read on every use for about
10 µs), and every write of a Host row, by any process, writes a new stamp:

- `save()` and `delete()` (the pages, the admin, `manage.py hosts`, get_or_create): the
  post_save and post_delete signals;
- `QuerySet.update()`, `bulk_create()`, `bulk_update()` (reachability, host keys):
  HostQuerySet sends `hosts_bulk_written`.

The stamp is written at once and again when the transaction commits: at once, so this
process's next read inside the same transaction sees the change; at commit, so another
process that read the rows between the two (still the old ones: the write was not
committed) drops them. Each read builds fresh Host instances from the kept values: a
request may change its own copies (reachability_record does) without touching others'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models.signals import post_delete, post_save

from jails.hosts.models import Host, hosts_bulk_written
from jails.stamps import stamp_bump, stamp_path, stamp_read
from jails.state import RuntimeState, runtime_state

HOSTS_STAMP = "hosts"
_ENABLED_KEY = ("hosts", "enabled")


def hosts_stamp(state: RuntimeState) -> Path | None:
    """The file whose token changes with every write of a Host row."""
    return stamp_path(state.settings.var_dir, HOSTS_STAMP)


def _enabled_values() -> tuple[list[str], tuple[tuple[Any, ...], ...]]:
    names = [field.attname for field in Host._meta.concrete_fields]
    return names, tuple(Host.objects.filter(enabled=True).values_list(*names))


def hosts_enabled_rows(state: RuntimeState) -> list[Host]:
    """Every enabled host, by name; from the database only when the hosts' stamp moved."""
    stamp = stamp_read(hosts_stamp(state))  # before the rows: see PageCache.stamped
    names, rows = state.pages.stamped(_ENABLED_KEY, stamp, _enabled_values)
    return [Host.from_db(DEFAULT_DB_ALIAS, names, row) for row in rows]


def hosts_changed(state: RuntimeState) -> None:
    """A Host row was written: every process reads the rows again (now and at commit)."""
    path = hosts_stamp(state)
    if path is None:
        return
    stamp_bump(path)
    transaction.on_commit(lambda: stamp_bump(path), robust=True)


def _host_written(sender: Any, **kwargs: Any) -> None:
    hosts_changed(runtime_state())


def signals_connect() -> None:
    """Bump the stamp on every write of a Host row (HostsConfig.ready)."""
    post_save.connect(_host_written, sender=Host, dispatch_uid="hosts-rows-saved")
    post_delete.connect(_host_written, sender=Host, dispatch_uid="hosts-rows-deleted")
    hosts_bulk_written.connect(_host_written, sender=Host, dispatch_uid="hosts-rows-bulk")
