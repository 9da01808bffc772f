"""The fail2ban hosts this site manages.

The local host (fail2ban's socket or the local agent, as the runtime settings say) is a
row like the others, created by the first migration with the name "local"; a site with no
other row looks exactly like a single-host install. Other hosts are reached through their
own fail2ban socket or agent socket on this machine (containers, tests) or, the usual case,
over OpenSSH, where a key that can do nothing but run the agent (a forced command) opens a
`--stdio` session (jails.agent.ssh).
"""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models

# A host's name appears in URLs (/hosts/<name>/jails/<jail>/) and commands (--host NAME).
HOST_NAME_PATTERN = r"[a-z0-9][a-z0-9.-]{0,62}"
LOCAL_HOST = "local"


class Host(models.Model):
    class Kind(models.TextChoices):
        LOCAL = "local", "This machine (the site's fail2ban setting)"
        SOCKET = "socket", "fail2ban socket on this machine"
        AGENT = "agent", "jailadmin agent socket on this machine"
        SSH = "ssh", "jailadmin agent over SSH"

    name = models.CharField(
        max_length=63,
        unique=True,
        validators=[
            RegexValidator(
                f"^{HOST_NAME_PATTERN}$",
                "Use lower-case letters, digits, dots and dashes.",
            )
        ],
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.SSH)
    # socket: /run/fail2ban/fail2ban.sock; agent: unix:/run/jailadmin/agent.sock;
    # ssh: user@host:port (port optional, 22). Unused for the local host.
    address = models.CharField(max_length=255, blank=True)
    # SSH only. The site's private key for this host (OpenSSH format; never rendered back),
    # its public half (what goes into the host's authorized_keys with the forced command),
    # and the host's own public key as confirmed by an administrator ("ssh-ed25519 AAAA…").
    ssh_private_key = models.TextField(blank=True)
    ssh_public_key = models.TextField(blank=True)
    ssh_host_key = models.TextField(blank=True)
    # fail2ban reports ban times in its host's local time; blank: JAILADMIN_FAIL2BAN_TIME_ZONE.
    time_zone = models.CharField(max_length=64, blank=True)
    enabled = models.BooleanField(default=True)
    note = models.TextField(blank=True)
    # Groups limited to this host: a group with hosts grants its permissions on those hosts
    # only; a group without hosts grants them everywhere (jails.hosts.permissions).
    groups = models.ManyToManyField(Group, blank=True, related_name="hosts")
    # Reachability, written when it changes (not on every request): pages show
    # "unreachable since …" with the last error.
    unreachable_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_local(self) -> bool:
        return self.kind == self.Kind.LOCAL
