"""Every saved version of every fail2ban configuration file the site has seen."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from jails.hosts.models import LOCAL_HOST


class ConfigVersion(models.Model):
    """One version of one file (path relative to fail2ban's configuration directory).

    Written by the site when it saves a file, and when it reads a file whose content is not
    the latest version it holds: then the change was made outside the site.
    """

    class Source(models.TextChoices):
        SITE = "site", _("Saved from the site")
        OUTSIDE = "outside", _("Changed outside the site")
        FOUND = "found", _("First seen")
        DELETED = "deleted", _("Removed outside the site")

    # The host whose file this is (jails.hosts.Host.name; every host has its own jail.local).
    # A name, not a foreign key: the versions outlive a host that is removed from the site.
    host = models.CharField(_("host"), max_length=63, default=LOCAL_HOST)
    path = models.CharField(_("path"), max_length=200)
    # Empty with exists=False: the file did not exist (before the site created it).
    content = models.TextField(_("content"), blank=True)
    exists = models.BooleanField(_("exists"), default=True)
    sha256 = models.CharField(max_length=64, blank=True)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=_("user"),
    )
    actor = models.CharField(_("actor"), max_length=150, blank=True)
    reason = models.CharField(_("reason"), max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("config version")
        verbose_name_plural = _("config versions")
        indexes = [
            models.Index(
                fields=["host", "path", "-created_at", "-id"], name="config_version_host_path"
            )
        ]

    def __str__(self) -> str:
        return f"{self.host}:{self.path} {self.sha256[:12]} ({self.get_source_display()})"


class ConfigSnapshot(models.Model):
    """The last effective configuration fail2ban's reader produced, by files' fingerprint:
    the /config/ pages ask the host only whether the files changed, not for a new read.
    One per host: two hosts asked in turn must not evict each other's."""

    host = models.CharField(_("host"), max_length=63, default=LOCAL_HOST)
    fingerprint = models.CharField(_("fingerprint"), max_length=64)
    data = models.JSONField(_("data"))
    read_at = models.DateTimeField(_("read at"), auto_now=True)

    class Meta:
        verbose_name = _("config snapshot")
        verbose_name_plural = _("config snapshots")
        constraints = [
            models.UniqueConstraint(fields=["host", "fingerprint"], name="config_snapshot_host")
        ]

    def __str__(self) -> str:
        read = f"{self.read_at:%Y-%m-%d %H:%M:%S}"
        return f"{self.host} configuration {self.fingerprint[:12]} read {read}"
