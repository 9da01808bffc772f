"""Adding and removing blocklist sources (each audited; the admin edits them, audited too)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from jails.blocklists.models import BlocklistSource
from jails.blocklists.services.imports import (
    Applied,
    ImportRefused,
    importer_actor,
    removed_unban,
    source_entries,
    source_entries_hosts,
)
from jails.fail2ban import Fail2banError
from jails.hosts.models import Host
from jails.hosts.services import fleet
from jails.services.audit import Actor, audit_record
from jails.state import RuntimeState

MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # the same cap as a fetched list


def _described(source: BlocklistSource) -> dict[str, Any]:
    return {
        "name": source.name,
        "url": source.url or None,
        "uploaded": bool(source.content),
        "jail": source.jail,
        "schedule": source.schedule,
        "enabled": source.enabled,
        "allow_private": source.allow_private,
        "all_hosts": source.all_hosts,
        "hosts": sorted(source.hosts.values_list("name", flat=True)) if source.pk else [],
    }


def source_hosts_set(
    source: BlocklistSource, *, hosts: list[Host], all_hosts: bool, actor: Actor
) -> None:
    """Choose where the source imports (audited); the next import applies it there.

    A host taken off keeps what the source banned on it (and the record of it): the source
    no longer imports there, and removing the source still lifts those bans."""
    before = _described(source)
    with transaction.atomic():
        source.all_hosts = all_hosts
        source.save(update_fields=["all_hosts"])
        source.hosts.set(hosts)
        audit_record(
            actor=actor,
            action="blocklist_hosts",
            parameters={
                "name": source.name,
                "before": {"all_hosts": before["all_hosts"], "hosts": before["hosts"]},
                "all_hosts": all_hosts,
                "hosts": sorted(host.name for host in hosts),
            },
        )


def source_create(
    *, actor: Actor, content: str = "", hosts: list[Host] | None = None, **fields: Any
) -> BlocklistSource:
    """A new source (URL or uploaded text); its first import waits for a confirmed preview.

    `hosts`: where it imports (none: the local host, unless `all_hosts`)."""
    with transaction.atomic():
        source = BlocklistSource(content=content, **fields)
        source.full_clean()
        source.save()
        if hosts:
            source.hosts.set(hosts)
        audit_record(actor=actor, action="blocklist_add", parameters=_described(source))
    return source


def source_delete(state: RuntimeState, *, source: BlocklistSource, actor: Actor) -> int:
    """Remove a source; unban, on every host it holds entries on, what it banned that nobody
    else holds there. Returns how many."""
    applied = Applied()
    unbanned = kept = 0
    for name in source_entries_hosts(source):
        host = Host.objects.filter(name=name).first()
        if host is None:
            continue  # the host itself was removed: nothing left to unban there
        previous = source_entries(source, host=name)
        on_host = Applied()
        try:
            removed_unban(
                fleet.host_state(state, host),
                source=source,
                previous=previous,
                removed=list(previous),
                actor=importer_actor(actor, label=source.name),
                parameters={"source": source.name, "deleted": True},
                applied=on_host,
            )
        except Fail2banError as exc:
            on_host.errors.append(str(exc))
        unbanned += on_host.unbanned
        kept += on_host.kept
        applied.errors.extend(
            error if host.is_local else f"{name}: {error}" for error in on_host.errors
        )
    applied.unbanned, applied.kept = unbanned, kept
    if applied.errors:
        # Its record of what it banned is the only way to lift those bans later: kept.
        raise ImportRefused(f"{source.name} not removed: " + "; ".join(applied.errors))
    described = _described(source)
    with transaction.atomic():
        source.delete()
        audit_record(
            actor=actor,
            action="blocklist_delete",
            parameters={**described, "unbanned": applied.unbanned, "kept": applied.kept},
        )
    return applied.unbanned
