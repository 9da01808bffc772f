"""The ban history's own tables: the archive of bans and the summaries kept beside it."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import models
from django.utils.translation import gettext_lazy as _

# fail2ban forgets bans (unban, `unban --all`, dbpurgeage); these tables keep them. BanEvent is
# the archive itself; BanRollup, IPSummary, NetworkSummary and LastSeenRollup are summaries the
# sync keeps in step with it so the dashboard never aggregates a year of events per request.
ROLLUP_ALL = "*"  # BanRollup.jail / country_code / host value: "every jail", "… country", "… host"
# The host a ban was archived from (jails.hosts: Host.name); bans archived before the fleet
# existed, and every ban of a single-host site, are the local host's.
LOCAL_HOST = "local"


class BanEvent(models.Model):
    """One ban as fail2ban recorded it, kept after fail2ban has forgotten it."""

    class Origin(models.TextChoices):
        JAIL = "jail", _("Jail detection")
        MANUAL = "manual", _("Manual ban")
        BLOCKLIST = "blocklist", _("Blocklist import")

    # A database default too: rows written by plain SQL (bench/seed_history.py, an older
    # script) are the local host's.
    host = models.CharField(
        max_length=63,
        default=LOCAL_HOST,
        db_default=LOCAL_HOST,
        verbose_name=_("host"),
        help_text=_("The fail2ban host that banned it."),
    )
    jail = models.CharField(_("jail"), max_length=64)
    ip = models.CharField(
        _("IP address"),
        max_length=49,
        help_text=_("Canonical address (or CIDR network, if one was banned)."),
    )
    network = models.CharField(
        _("network"), max_length=49, help_text=_("The address's /24 (IPv4) or /64 (IPv6).")
    )
    timeofban = models.BigIntegerField(
        _("time of ban"), help_text=_("Start of the ban, Unix seconds (fail2ban's).")
    )
    bantime = models.BigIntegerField(
        _("ban time"), help_text=_("Ban duration in seconds; -1 is permanent.")
    )
    bancount = models.PositiveIntegerField(_("ban count"), default=1)
    failures = models.PositiveIntegerField(_("failures"), default=0)
    matches = models.TextField(
        _("matched log lines"), blank=True, help_text=_("Matched log lines (attacker-controlled).")
    )
    origin = models.CharField(
        _("origin"), max_length=16, choices=Origin.choices, default=Origin.JAIL
    )
    banned_by = models.CharField(_("banned by"), max_length=150, blank=True)
    country_code = models.CharField(_("country code"), max_length=2, blank=True)
    country_name = models.CharField(_("country"), max_length=64, blank=True)
    asn = models.PositiveBigIntegerField(_("AS number"), null=True, blank=True)
    as_name = models.CharField(_("AS name"), max_length=255, blank=True)
    archived_at = models.DateTimeField(_("archived at"), auto_now_add=True)

    class Meta:
        verbose_name = _("ban event")
        verbose_name_plural = _("ban events")
        ordering = ["-timeofban", "-id"]
        constraints = [
            # Address first: it also serves every per-address lookup. Host last: two hosts
            # with the same jail ban the same address in the same second as two bans.
            models.UniqueConstraint(
                fields=["ip", "jail", "timeofban", "host"], name="ban_event_ip_jail_time_host_uniq"
            )
        ]
        indexes = [
            # Covers the window scans that rank addresses and networks.
            models.Index(fields=["timeofban", "ip", "network"], name="ban_event_time_ip"),
            models.Index(fields=["network", "timeofban"], name="ban_event_net_time"),
            # A dashboard or list filtered by host (a fleet) reads that host's window.
            models.Index(fields=["host", "timeofban", "ip", "network"], name="ban_event_host_time"),
            models.Index(
                fields=["jail", "timeofban", "country_code", "origin", "ip", "network"],
                name="ban_event_jail_time",
            ),
            models.Index(
                fields=["country_code", "timeofban", "jail", "origin", "ip", "network"],
                name="ban_event_country_time",
            ),
            models.Index(
                fields=["origin", "timeofban", "jail", "country_code", "ip", "network"],
                name="ban_event_origin_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.jail} {self.ip} @{self.timeofban}"

    @property
    def banned_at(self) -> datetime:
        return datetime.fromtimestamp(self.timeofban, tz=UTC)

    @property
    def match_lines(self) -> list[str]:
        return self.matches.splitlines() if self.matches else []


class BanRollup(models.Model):
    """Ban counts per period (hour, day, month; UTC, or all time), host, jail, country, origin.

    ``host``, ``jail`` or ``country_code`` equal to ROLLUP_ALL holds the total over that
    dimension (every row exists once per host and once for ROLLUP_ALL), so a
    dashboard query reads one small slice. Hourly rows exist only with country ROLLUP_ALL.
    TOTAL rows (period 0) count the whole archive: a window that holds most of it is answered
    as the total minus the small part outside it.
    """

    class Grain(models.IntegerChoices):
        HOUR = 1, _("hour")
        DAY = 2, _("day")
        MONTH = 3, _("month")
        TOTAL = 4, _("all time")

    grain = models.PositiveSmallIntegerField(choices=Grain.choices)
    period = models.BigIntegerField(help_text=_("Start of the period, Unix seconds (UTC)."))
    host = models.CharField(max_length=63, default=ROLLUP_ALL, db_default=ROLLUP_ALL)
    jail = models.CharField(max_length=64)
    country_code = models.CharField(max_length=2)
    origin = models.CharField(max_length=16)
    bans = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "host", "jail", "country_code", "period", "origin"],
                name="ban_rollup_host_key_uniq",
            )
        ]
        indexes = [
            models.Index(
                fields=["grain", "host", "country_code", "period"], name="ban_rollup_host_country"
            ),
            models.Index(fields=["grain", "host", "jail", "period"], name="ban_rollup_host_jail"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.grain}:{self.period} {self.host} {self.jail} {self.country_code} {self.origin}"
        )


class IPSummary(models.Model):
    """Every archived address: first and last ban, how many, on how many days, where from."""

    ip = models.CharField(max_length=49, unique=True)
    network = models.CharField(max_length=49, db_index=True)
    first_seen = models.BigIntegerField()
    last_seen = models.BigIntegerField(db_index=True)
    bans = models.PositiveIntegerField(db_index=True)
    days = models.PositiveIntegerField(default=1, help_text=_("Distinct UTC days with a ban."))
    country_code = models.CharField(max_length=2, blank=True, db_index=True)
    country_name = models.CharField(max_length=64, blank=True)
    asn = models.PositiveBigIntegerField(null=True, blank=True)
    as_name = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name = _("IP summary")
        verbose_name_plural = _("IP summaries")

    def __str__(self) -> str:
        return self.ip


class NetworkSummary(models.Model):
    """Every archived /24 (IPv4) or /64 (IPv6): bans, distinct addresses, first and last ban."""

    network = models.CharField(max_length=49, unique=True)
    first_seen = models.BigIntegerField()
    last_seen = models.BigIntegerField(db_index=True)
    bans = models.PositiveIntegerField(db_index=True)
    ips = models.PositiveIntegerField(default=1)

    class Meta:
        verbose_name_plural = _("network summaries")

    def __str__(self) -> str:
        return self.network


class LastSeenRollup(models.Model):
    """How many archived addresses had their latest ban on each UTC day, per country.

    IPSummary's ``last_seen`` and ``country_code`` counted by day, so "addresses banned since
    T" reads a row per day instead of every address. ``country_code`` ROLLUP_ALL is the total.
    """

    day = models.BigIntegerField(help_text=_("Start of the UTC day, Unix seconds."))
    country_code = models.CharField(max_length=2)
    ips = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["country_code", "day"], name="last_seen_rollup_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.country_code}: {self.ips}"


class HistorySource(models.Model):
    """How far the archive has read one host's fail2ban database (a rowid cursor, checked each
    sync). Per host: every Debian host keeps its database at the same path."""

    host = models.CharField(max_length=63, default=LOCAL_HOST, db_default=LOCAL_HOST)
    dbfile = models.CharField(max_length=1024)
    last_rowid = models.BigIntegerField(default=0)
    last_jail = models.CharField(max_length=64, blank=True)
    last_ip = models.CharField(max_length=64, blank=True)
    last_timeofban = models.BigIntegerField(default=0)
    archived_total = models.BigIntegerField(default=0)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["host", "dbfile"], name="history_source_host_dbfile")
        ]

    def __str__(self) -> str:
        return f"{self.host}:{self.dbfile}"
