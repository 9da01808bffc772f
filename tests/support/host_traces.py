"""What a host leaves in the site's database, for the tests of removing a host (issue 12).

`traces_make(name)` writes one row of each kind that names a host (history, statistics,
configuration versions and snapshot, blocklist runs and entries, the history cursor, an
audit record); `traces_count(name)` counts them per model, so a test asserts exactly which
kinds a removal keeps and which it removes, and that another host's rows are untouched.
"""

from __future__ import annotations

from django.utils import timezone

from jails.blocklists.models import BlocklistSource, ImportRun, SourceEntry
from jails.configuration.models import ConfigSnapshot, ConfigVersion
from jails.history.models import BanEvent, BanRollup, HistorySource
from jails.models import AuditEntry

KEPT = ("BanEvent", "BanRollup", "ConfigVersion", "ImportRun", "AuditEntry")
REMOVED = ("SourceEntry", "ConfigSnapshot", "HistorySource")
MODELS = {
    "BanEvent": BanEvent,
    "BanRollup": BanRollup,
    "ConfigVersion": ConfigVersion,
    "ImportRun": ImportRun,
    "AuditEntry": AuditEntry,
    "SourceEntry": SourceEntry,
    "ConfigSnapshot": ConfigSnapshot,
    "HistorySource": HistorySource,
}


def traces_make(name: str, source: BlocklistSource) -> None:
    """One row of each kind for host `name` (`source`: the blocklist its entry belongs to)."""
    BanEvent.objects.create(
        host=name, jail="sshd", ip="192.0.2.7", network="192.0.2.0/24", timeofban=1, bantime=60
    )
    BanRollup.objects.create(
        grain=BanRollup.Grain.TOTAL, period=0, host=name, jail="sshd", country_code="*", origin="*"
    )
    ConfigVersion.objects.create(host=name, path="jail.local", content="[x]\n", source="site")
    ConfigSnapshot.objects.create(host=name, fingerprint=f"fp-{name}", data={})
    HistorySource.objects.create(host=name, dbfile="/var/lib/fail2ban/fail2ban.sqlite3")
    ImportRun.objects.create(
        source=source,
        label=source.name,
        jail="sshd",
        host=name,
        trigger="job",
        started_at=timezone.now(),
    )
    SourceEntry.objects.create(source=source, host=name, jail="sshd", address="198.51.100.1")
    AuditEntry.objects.create(actor="system", source="job", action="ban", host=name)


def traces_count(name: str) -> dict[str, int]:
    return {label: model.objects.filter(host=name).count() for label, model in MODELS.items()}
