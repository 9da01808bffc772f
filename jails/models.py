"""jailadmin's own data: runtime settings, the audit log, and the access permissions."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Access(models.Model):
    """Holds the site's permissions (no table): who may read, operate or administer."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_fail2ban", _("Can see jails, bans, history and the dashboard")),
            ("operate_jails", _("Can ban, unban, whitelist and control jails")),
            ("administer_site", _("Can change settings, configuration and users")),
        ]

    def __str__(self) -> str:
        return "jailadmin access"


class SiteSettings(models.Model):
    """The runtime settings: one row, written by the setup wizard and /settings/."""

    class SessionCache(models.TextChoices):
        DATABASE = "database", _("This server's database")
        REDIS = "redis", "Redis"  # a product name: the same in every language
        MEMORY = "memory", _("Process memory (single process only)")

    singleton = models.PositiveSmallIntegerField(default=1, unique=True, editable=False)
    setup_complete = models.BooleanField(_("setup complete"), default=False)
    fail2ban_socket = models.CharField(_("fail2ban socket"), max_length=107)
    # "" talks to the socket above; "unix:/run/jailadmin/agent.sock" goes through the host
    # agent, which then owns the socket (its own --socket): the site needs no root access.
    fail2ban_agent = models.CharField(_("fail2ban agent"), max_length=120, blank=True, default="")
    display_time_zone = models.CharField(_("display time zone"), max_length=64, default="UTC")
    session_lifetime_seconds = models.PositiveIntegerField(
        _("session lifetime seconds"), default=8 * 3600
    )
    session_cache = models.CharField(
        _("session cache"),
        max_length=16,
        choices=SessionCache.choices,
        default=SessionCache.DATABASE,
    )
    redis_url = models.CharField(_("redis url"), max_length=255, blank=True)
    history_retention_days = models.PositiveIntegerField(_("history retention days"), default=365)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    # Bumped by every save through the settings service; each process polls it to notice
    # a change made by another worker (jails.runtime.SettingsWatcher).
    version = models.PositiveIntegerField(_("version"), default=0, editable=False)

    class Meta:
        verbose_name = _("site settings")
        verbose_name_plural = _("site settings")

    def __str__(self) -> str:
        return str(_("Site settings"))


class AuditEntry(models.Model):
    """One change anyone made, from the web, the admin, a command or a job."""

    class Source(models.TextChoices):
        WEB = "web", _("Web")
        ADMIN = "admin", _("Admin")
        COMMAND = "command", _("Command")
        JOB = "job", _("Job")

    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=_("user"),
    )
    actor = models.CharField(_("actor"), max_length=150, db_index=True)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    address = models.GenericIPAddressField(_("address"), null=True, blank=True)
    action = models.CharField(_("action"), max_length=64, db_index=True)
    # The fail2ban host the action went to (jails.hosts: Host.name); blank for what concerns
    # no host (a login, the settings).
    host = models.CharField(_("host"), max_length=63, blank=True, db_index=True)
    jail = models.CharField(_("jail"), max_length=64, blank=True, db_index=True)
    ips = models.JSONField(_("ips"), default=list, blank=True)
    ip_count = models.PositiveIntegerField(_("ip count"), default=0)
    parameters = models.JSONField(_("parameters"), default=dict, blank=True)
    # None: started, no result stored yet. An action's record is written before it runs
    # and completed after (jails.services.operations.audited); one still None later means
    # the process died mid-action or its result could not be stored.
    ok = models.BooleanField(_("ok"), null=True, default=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")

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
        verbose_name = _("live ban")
        verbose_name_plural = _("live bans")

    def __str__(self) -> str:
        return str(_("live ban"))


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

    name = models.CharField(_("name"), max_length=64, unique=True)
    next_run_at = models.DateTimeField(_("next run at"), null=True, blank=True)
    locked_by = models.CharField(_("locked by"), max_length=128, blank=True)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    last_started_at = models.DateTimeField(_("last started at"), null=True, blank=True)
    last_finished_at = models.DateTimeField(_("last finished at"), null=True, blank=True)
    last_ok = models.BooleanField(_("last ok"), null=True)
    # The runner's own English summary (like a log line): stored, so never translated.
    last_message = models.TextField(_("last message"), blank=True)
    run_count = models.PositiveBigIntegerField(_("run count"), default=0)
    # Runs that failed, counted like run_count: /metrics exposes both (a failure between two
    # scrapes would otherwise show only in last_ok, and only until the next run).
    failure_count = models.PositiveBigIntegerField(_("failure count"), default=0)

    class Meta:
        ordering = ["name"]
        verbose_name = _("scheduled job")
        verbose_name_plural = _("scheduled jobs")

    def __str__(self) -> str:
        return self.name


# --- Per-user preferences (jails.language) ----------------------------------------------------
class UserPreference(models.Model):
    """What one user chose for themselves: the language of the pages (issue 16).

    Read once per login into the session (jails.language), never once per request.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="preference",
        verbose_name=_("user"),
    )
    # "" follows the browser (Accept-Language), then the site's JAILADMIN_LANGUAGE.
    language = models.CharField(
        _("language"), max_length=16, blank=True, default="", choices=settings.LANGUAGES
    )

    class Meta:
        verbose_name = _("user preference")
        verbose_name_plural = _("user preferences")

    def __str__(self) -> str:
        return str(self.user)
