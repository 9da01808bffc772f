"""Blocklist sources, what each import run did, and what each source holds in its jail."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.utils.translation import gettext_lazy as _

from jails.hosts.models import LOCAL_HOST

DEFAULT_JAIL = "blocklist"


class BlocklistSource(models.Model):
    """An external address list imported into one jail: from a URL, or an uploaded file."""

    class Schedule(models.TextChoices):
        MANUAL = "manual", _("Manual only")
        HOURLY = "hourly", _("Hourly")
        SIX_HOURS = "6h", _("Every 6 hours")
        DAILY = "daily", _("Daily")
        WEEKLY = "weekly", _("Weekly")

    name = models.SlugField(_("name"), max_length=64, unique=True)
    url = models.URLField(max_length=2000, blank=True, help_text=_("http:// or https://"))
    # An uploaded list is kept here, so a re-import and a preview read the same text.
    content = models.TextField(blank=True, editable=False)
    jail = models.CharField(_("jail"), max_length=64, default=DEFAULT_JAIL)
    schedule = models.CharField(
        _("schedule"), max_length=8, choices=Schedule.choices, default=Schedule.DAILY
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    allow_private = models.BooleanField(
        _("allow private"),
        default=False,
        help_text=_("Fetch from private addresses; ban private and reserved ranges."),
    )
    # Nothing is banned until someone has looked at a preview and confirmed the first import.
    confirmed = models.BooleanField(default=False, editable=False)
    # Where the list is imported (jails.hosts): every enabled host, the hosts chosen, or (none
    # chosen: every source before the fleet, and any single-host site) the local host alone.
    all_hosts = models.BooleanField(
        default=False,
        verbose_name=_("every enabled host"),
        help_text=_("Import on every enabled host, hosts added later included."),
    )
    hosts = models.ManyToManyField(
        "hosts.Host",
        blank=True,
        related_name="blocklist_sources",
        verbose_name=_("hosts"),
        help_text=_("Import on these hosts (none chosen: the local host only)."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # Conditional requests: an unchanged list costs one request and no work.
    etag = models.CharField(max_length=512, blank=True, editable=False)
    last_modified = models.CharField(max_length=128, blank=True, editable=False)
    content_hash = models.CharField(max_length=64, blank=True, editable=False)
    last_run_at = models.DateTimeField(_("last run at"), null=True, blank=True, editable=False)
    next_run_at = models.DateTimeField(_("next run at"), null=True, blank=True, editable=False)
    consecutive_failures = models.PositiveIntegerField(
        _("consecutive failures"), default=0, editable=False
    )
    # The per-source lock (a lease, like jails.jobs'): one import of a source at a time,
    # whether the runner, a page or a command started it.
    locked_by = models.CharField(max_length=128, blank=True, editable=False)
    locked_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = _("blocklist source")
        verbose_name_plural = _("blocklist sources")

    def __str__(self) -> str:
        return self.name

    @property
    def interval(self) -> timedelta | None:
        return SCHEDULE_INTERVALS.get(self.schedule)


SCHEDULE_INTERVALS: dict[str, timedelta] = {
    BlocklistSource.Schedule.HOURLY: timedelta(hours=1),
    BlocklistSource.Schedule.SIX_HOURS: timedelta(hours=6),
    BlocklistSource.Schedule.DAILY: timedelta(days=1),
    BlocklistSource.Schedule.WEEKLY: timedelta(weeks=1),
}


class ImportRun(models.Model):
    """One import (or an attempt) on one host: what was fetched and what it did to the jail.

    An import on several hosts writes one run per host (fetched and parsed once, so the
    fetch's figures repeat): each host's counts, status and error are its own, and the
    pages, the admin and the commands list them like any run.
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        OK = "ok", _("Imported")
        UNCHANGED = "unchanged", _("Unchanged")
        FAILED = "failed", _("Failed")

    source = models.ForeignKey(
        BlocklistSource,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="runs",
        verbose_name=_("source"),
    )
    label = models.CharField(
        _("label"), max_length=200, help_text=_("The source's name, or the file imported")
    )
    jail = models.CharField(_("jail"), max_length=64)
    host = models.CharField(_("host"), max_length=63, default=LOCAL_HOST)  # jails.hosts Host.name
    trigger = models.CharField(_("trigger"), max_length=16)  # web, job, command
    actor = models.CharField(_("actor"), max_length=150, blank=True)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RUNNING
    )
    # Where a failed run failed: "fetch" (the list; every host's run says so, and no host
    # changed) or "host" (that host: unreachable, no such jail...). An unchanged list is
    # skipped only when no host's latest run failed there.
    failed_at = models.CharField(max_length=8, blank=True)
    http_status = models.PositiveIntegerField(_("http status"), null=True, blank=True)
    bytes = models.PositiveBigIntegerField(_("bytes"), default=0)
    lines = models.PositiveIntegerField(_("lines"), default=0)
    # after dedupe and collapsing
    entries = models.PositiveIntegerField(_("entries"), default=0)
    banned = models.PositiveIntegerField(_("banned"), default=0)
    already_banned = models.PositiveIntegerField(_("already banned"), default=0)
    unbanned = models.PositiveIntegerField(_("unbanned"), default=0)
    # left the list, kept: someone else bans it
    kept = models.PositiveIntegerField(_("kept"), default=0)
    invalid = models.PositiveIntegerField(_("invalid"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    duplicates = models.PositiveIntegerField(_("duplicates"), default=0)
    # reason -> count
    skipped_reasons = models.JSONField(_("skipped reasons"), default=dict, blank=True)
    # [{line, text, reason}]
    first_invalid = models.JSONField(_("first invalid"), default=list, blank=True)
    errors = models.TextField(_("errors"), blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("import run")
        verbose_name_plural = _("import runs")
        indexes = [models.Index(fields=["source", "-started_at"], name="import_run_source_time")]

    def __str__(self) -> str:
        return f"{self.label} {self.started_at:%Y-%m-%d %H:%M} {self.status}"


class SourceEntry(models.Model):
    """An entry of a source's latest list in its jail on one host, and whether it banned it.

    Per host: a host that failed an import or left the source's targets keeps what it holds
    there, and the next import on it unbans exactly what left the list since.

    `banned` is what makes an unban safe: an entry that leaves the list is unbanned only if
    this source banned it (not a person, not another source, not fail2ban's own detection).
    """

    source = models.ForeignKey(BlocklistSource, on_delete=models.CASCADE, related_name="entries")
    host = models.CharField(max_length=63, default=LOCAL_HOST)  # jails.hosts Host.name
    jail = models.CharField(max_length=64)
    address = models.CharField(max_length=64)
    banned = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "host", "address"], name="source_entry_host_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["jail", "address"], name="source_entry_jail_addr"),
            models.Index(fields=["source", "host"], name="source_entry_source_host"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id} {self.host} {self.address}"
