"""Forms for the hosts pages: adding a host, editing one, confirming its SSH host key."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.utils.translation import gettext, gettext_lazy

from jails.fail2ban import InvalidArgument
from jails.hosts.models import HOST_NAME_PATTERN, Host
from jails.hosts.services.hosts import address_check, name_check, time_zone_check

ADDABLE_KINDS = [
    (Host.Kind.SSH.value, gettext_lazy("jailadmin agent over SSH (a remote host)")),
    (Host.Kind.SOCKET.value, Host.Kind.SOCKET.label),
    (Host.Kind.AGENT.value, Host.Kind.AGENT.label),
]
ADDRESS_HELP = gettext_lazy(
    "SSH: root@host.example.org:22 · fail2ban socket: /run/fail2ban/fail2ban.sock · "
    "agent: unix:/run/jailadmin/agent.sock"
)
TIME_ZONE_HELP = gettext_lazy(
    "The time zone the host's fail2ban reports ban times in; empty: the site's."
)


def _checked(check: Any, *args: str) -> str:
    try:
        return str(check(*args))
    except InvalidArgument as exc:
        raise forms.ValidationError(str(exc)) from None


class HostAddForm(forms.Form):
    name = forms.RegexField(
        regex=re.compile(f"^{HOST_NAME_PATTERN}$"),
        max_length=63,
        label=gettext_lazy("Name"),
        help_text=gettext_lazy(
            "Lower-case letters, digits, dots and dashes: it appears in URLs and commands."
        ),
        error_messages={
            "invalid": gettext_lazy("Use lower-case letters, digits, dots and dashes.")
        },
    )
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind"), choices=ADDABLE_KINDS, initial=Host.Kind.SSH.value
    )
    address = forms.CharField(
        max_length=255, label=gettext_lazy("Destination or address"), help_text=ADDRESS_HELP
    )
    time_zone = forms.CharField(
        max_length=64, required=False, label=gettext_lazy("Time zone"), help_text=TIME_ZONE_HELP
    )
    note = forms.CharField(
        label=gettext_lazy("Note"), widget=forms.Textarea(attrs={"rows": 2}), required=False
    )

    def clean_name(self) -> str:
        name = _checked(name_check, str(self.cleaned_data["name"]))
        if Host.objects.filter(name=name).exists():
            raise forms.ValidationError(
                gettext("There is already a host called %(name)s.") % {"name": name}
            )
        return name

    def clean_time_zone(self) -> str:
        return _checked(time_zone_check, str(self.cleaned_data.get("time_zone") or ""))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind, address = data.get("kind"), data.get("address")
        if kind and address:
            try:
                data["address"] = address_check(kind, address)
            except InvalidArgument as exc:
                self.add_error("address", str(exc))
        return data


class HostEditForm(forms.Form):
    """A host's address, time zone, note and enabled flag (its keys are never edited here)."""

    address = forms.CharField(
        max_length=255, label=gettext_lazy("Destination or address"), help_text=ADDRESS_HELP
    )
    time_zone = forms.CharField(
        max_length=64, required=False, label=gettext_lazy("Time zone"), help_text=TIME_ZONE_HELP
    )
    note = forms.CharField(
        label=gettext_lazy("Note"), widget=forms.Textarea(attrs={"rows": 2}), required=False
    )
    enabled = forms.BooleanField(
        label=gettext_lazy("Enabled"),
        required=False,
        help_text=gettext_lazy("A disabled host is not contacted and not shown on the pages."),
    )

    def __init__(self, *args: Any, host: Host, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "address": host.address,
                "time_zone": host.time_zone,
                "note": host.note,
                "enabled": host.enabled,
            },
        )
        super().__init__(*args, **kwargs)
        self.host = host
        if host.is_local:
            # The local host is the site's own fail2ban setting (/settings/, the
            # JAILADMIN_FAIL2BAN_* variables, its time zone included): nothing of it here.
            del self.fields["address"]
            del self.fields["time_zone"]
        elif host.kind == Host.Kind.SSH:
            self.fields["address"].help_text = gettext(
                "user@host:port. A new destination drops the confirmed host key: the new "
                "host's key is fetched and confirmed before the site talks to it."
            )

    def clean_time_zone(self) -> str:
        return _checked(time_zone_check, str(self.cleaned_data.get("time_zone") or ""))

    def clean_address(self) -> str:
        return _checked(address_check, self.host.kind, str(self.cleaned_data["address"]))


class KeyConfirmForm(forms.Form):
    """The fingerprint the administrator compared on the host (the key is scanned again)."""

    fingerprint = forms.RegexField(
        label=gettext_lazy("Fingerprint"), regex=re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
    )
