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
)
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
    }


def source_create(*, actor: Actor, content: str = "", **fields: Any) -> BlocklistSource:
    """A new source (URL or uploaded text); its first import waits for a confirmed preview."""
    with transaction.atomic():
        source = BlocklistSource(content=content, **fields)
        source.full_clean()
        source.save()
        audit_record(actor=actor, action="blocklist_add", parameters=_described(source))
    return source


def source_delete(state: RuntimeState, *, source: BlocklistSource, actor: Actor) -> int:
    """Remove a source; unban what it banned that nobody else holds. Returns how many."""
    previous = source_entries(source)
    applied = Applied()
    if previous:
        removed_unban(
            state,
            source=source,
            previous=previous,
            removed=list(previous),
            actor=importer_actor(actor, label=source.name),
            parameters={"source": source.name, "deleted": True},
            applied=applied,
        )
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
