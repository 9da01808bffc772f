"""The fail2ban hosts this site manages.

The local host (fail2ban's socket or the local agent, as the runtime settings say) is a
row like the others, created by the first migration with the name "local"; a site with no
other row looks exactly like a single-host install. Other hosts are reached through their
own fail2ban socket or agent socket on this machine (containers, tests) or, the usual case,
over OpenSSH, where a key that can do nothing but run the agent (a forced command) opens a
`--stdio` session (jails.agent.ssh).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models
from django.dispatch import Signal
from django.utils.translation import gettext_lazy as _

# A host's name appears in URLs (/hosts/<name>/jails/<jail>/) and commands (--host NAME).
HOST_NAME_PATTERN = r"[a-z0-9][a-z0-9.-]{0,62}"
LOCAL_HOST = "local"

# Sent after a write that bypasses post_save/post_delete (QuerySet.update, bulk_create,
# bulk_update): pages keep the host rows per process while the hosts' stamp holds
# (jails.hosts.services.rows), so every write must move it, whatever path it took.
hosts_bulk_written = Signal()


class HostQuerySet(models.QuerySet["Host"]):
    """Host rows; the bulk writes announce themselves (hosts_bulk_written)."""

    def update(self, **kwargs: object) -> int:
        count = super().update(**kwargs)
        hosts_bulk_written.send(sender=self.model)
        return count

    def bulk_create(self, objs: Iterable[Host], *args: Any, **kwargs: Any) -> list[Host]:
        created = super().bulk_create(objs, *args, **kwargs)
        hosts_bulk_written.send(sender=self.model)
        return created

    def bulk_update(
        self, objs: Iterable[Host], fields: Iterable[str], *args: Any, **kwargs: Any
    ) -> int:
        count = super().bulk_update(objs, fields, *args, **kwargs)
        hosts_bulk_written.send(sender=self.model)
        return count


class Host(models.Model):
    class Kind(models.TextChoices):
        LOCAL = "local", _("This machine (the site's fail2ban setting)")
        SOCKET = "socket", _("fail2ban socket on this machine")
        AGENT = "agent", _("jailadmin agent socket on this machine")
        SSH = "ssh", _("jailadmin agent over SSH")

    name = models.CharField(
        _("name"),
        max_length=63,
        unique=True,
        validators=[
            RegexValidator(
                f"^{HOST_NAME_PATTERN}$",
                _("Use lower-case letters, digits, dots and dashes."),
            )
        ],
    )
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, default=Kind.SSH)
    # socket: /run/fail2ban/fail2ban.sock; agent: unix:/run/jailadmin/agent.sock;
    # ssh: user@host:port (port optional, 22). Unused for the local host.
    address = models.CharField(_("address"), max_length=255, blank=True)
    # SSH only. The site's private key for this host (OpenSSH format; never rendered back),
    # its public half (what goes into the host's authorized_keys with the forced command),
    # and the host's own public key as confirmed by an administrator ("ssh-ed25519 AAAA…").
    ssh_private_key = models.TextField(_("SSH private key"), blank=True)
    ssh_public_key = models.TextField(_("SSH public key"), blank=True)
    ssh_host_key = models.TextField(_("SSH host key"), blank=True)
    # fail2ban reports ban times in its host's local time; blank: JAILADMIN_FAIL2BAN_TIME_ZONE.
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    note = models.TextField(_("note"), blank=True)
    # Groups limited to this host: a group with hosts grants its permissions on those hosts
    # only; a group without hosts grants them everywhere (jails.hosts.permissions).
    groups = models.ManyToManyField(
        Group, verbose_name=_("groups"), blank=True, related_name="hosts"
    )
    # Reachability, written when it changes (not on every request): pages show
    # "unreachable since …" with the last error.
    unreachable_since = models.DateTimeField(_("unreachable since"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    last_seen = models.DateTimeField(_("last seen"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = HostQuerySet.as_manager()

    class Meta:
        verbose_name = _("host")
        verbose_name_plural = _("hosts")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_local(self) -> bool:
        return self.kind == self.Kind.LOCAL
