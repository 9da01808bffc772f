"""jailadmin's own data: runtime settings, the audit log, and the access permissions."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Access(models.Model):
    """Holds the site's permissions (no table): who may read, operate or administer."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_fail2ban", "Can see jails, bans, history and the dashboard"),
            ("operate_jails", "Can ban, unban, whitelist and control jails"),
            ("administer_site", "Can change settings, configuration and users"),
        ]

    def __str__(self) -> str:
        return "jailadmin access"


class SiteSettings(models.Model):
    """The runtime settings: one row, written by the setup wizard and /settings/."""

    class SessionCache(models.TextChoices):
        DATABASE = "database", "This server's database"
        REDIS = "redis", "Redis"
        MEMORY = "memory", "Process memory (single process only)"

    singleton = models.PositiveSmallIntegerField(default=1, unique=True, editable=False)
    setup_complete = models.BooleanField(default=False)
    fail2ban_socket = models.CharField(max_length=107)
    # "" talks to the socket above; "unix:/run/jailadmin/agent.sock" goes through the host
    # agent, which then owns the socket (its own --socket): the site needs no root access.
    fail2ban_agent = models.CharField(max_length=120, blank=True, default="")
    display_time_zone = models.CharField(max_length=64, default="UTC")
    session_lifetime_seconds = models.PositiveIntegerField(default=8 * 3600)
    session_cache = models.CharField(
        max_length=16, choices=SessionCache.choices, default=SessionCache.DATABASE
    )
    redis_url = models.CharField(max_length=255, blank=True)
    history_retention_days = models.PositiveIntegerField(default=365)
    updated_at = models.DateTimeField(auto_now=True)
    # Bumped by every save through the settings service; each process polls it to notice
    # a change made by another worker (jails.runtime.SettingsWatcher).
    version = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        verbose_name = "site settings"
        verbose_name_plural = "site settings"

    def __str__(self) -> str:
        return "Site settings"


class AuditEntry(models.Model):
    """One change anyone made, from the web, the admin, a command or a job."""

    class Source(models.TextChoices):
        WEB = "web", "Web"
        ADMIN = "admin", "Admin"
        COMMAND = "command", "Command"
        JOB = "job", "Job"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor = models.CharField(max_length=150, db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    # The fail2ban host the action went to (jails.hosts: Host.name); blank for what concerns
    # no host (a login, the settings).
    host = models.CharField(max_length=63, blank=True, db_index=True)
    jail = models.CharField(max_length=64, blank=True, db_index=True)
    ips = models.JSONField(default=list, blank=True)
    ip_count = models.PositiveIntegerField(default=0)
    parameters = models.JSONField(default=dict, blank=True)
    # None: started, no result stored yet. An action's record is written before it runs
    # and completed after (jails.services.operations.audited); one still None later means
    # the process died mid-action or its result could not be stored.
    ok = models.BooleanField(null=True, default=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.jail}"


class LiveBan(models.Model):
    """No table: the Django admin's "Live bans" page shows fail2ban's current bans.

    It exists so the page has a place in the admin (jails.admin_bans); its rows come from
    fail2ban, never from the database.
    """

    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = "live ban"
        verbose_name_plural = "live bans"

    def __str__(self) -> str:
        return "live ban"


class SessionCacheEntry(models.Model):
    """The table behind the `database` session storage (Django's DatabaseCache layout).

    Declared as a model so that a migration creates it: no `createcachetable` step to forget.
    Only DatabaseCache reads and writes it.
    """

    cache_key = models.CharField(max_length=255, primary_key=True)
    value = models.TextField()
    expires = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "jailadmin_session_cache"
        default_permissions = ()

    def __str__(self) -> str:
        return self.cache_key


# --- Job runner (jails.jobs) ------------------------------------------------------------------
class ScheduledJob(models.Model):
    """A periodic job of `manage.py run_jobs`; the row doubles as its lock (a lease)."""

    name = models.CharField(max_length=64, unique=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    locked_by = models.CharField(max_length=128, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_ok = models.BooleanField(null=True)
    last_message = models.TextField(blank=True)
    run_count = models.PositiveBigIntegerField(default=0)
    # Runs that failed, counted like run_count: /metrics exposes both (a failure between two
    # scrapes would otherwise show only in last_ok, and only until the next run).
    failure_count = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
