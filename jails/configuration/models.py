"""Every saved version of every fail2ban configuration file the site has seen."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from jails.hosts.models import LOCAL_HOST


class ConfigVersion(models.Model):
    """One version of one file (path relative to fail2ban's configuration directory).

    Written by the site when it saves a file, and when it reads a file whose content is not
    the latest version it holds: then the change was made outside the site.
    """

    class Source(models.TextChoices):
        SITE = "site", "Saved from the site"
        OUTSIDE = "outside", "Changed outside the site"
        FOUND = "found", "First seen"
        DELETED = "deleted", "Removed outside the site"

    # The host whose file this is (jails.hosts.Host.name; every host has its own jail.local).
    # A name, not a foreign key: the versions outlive a host that is removed from the site.
    host = models.CharField(max_length=63, default=LOCAL_HOST)
    path = models.CharField(max_length=200)
    # Empty with exists=False: the file did not exist (before the site created it).
    content = models.TextField(blank=True)
    exists = models.BooleanField(default=True)
    sha256 = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor = models.CharField(max_length=150, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
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

    host = models.CharField(max_length=63, default=LOCAL_HOST)
    fingerprint = models.CharField(max_length=64)
    data = models.JSONField()
    read_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["host", "fingerprint"], name="config_snapshot_host")
        ]

    def __str__(self) -> str:
        read = f"{self.read_at:%Y-%m-%d %H:%M:%S}"
        return f"{self.host} configuration {self.fingerprint[:12]} read {read}"
