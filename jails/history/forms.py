"""The history's filter form: window and filters shared by the dashboard and `/history/`."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from django import forms

from jails.fail2ban import InvalidArgument
from jails.fail2ban.validation import JAIL_NAME_RE, parse_ip_or_network
from jails.history.models import BanEvent
from jails.history.selectors import archive as history_selectors
from jails.hosts.models import HOST_NAME_PATTERN

WINDOWS: dict[str, tuple[str, float | None]] = {
    "24h": ("24 hours", 1),
    "7d": ("7 days", 7),
    "30d": ("30 days", 30),
    "365d": ("365 days", 365),
    "all": ("Everything", None),
    "custom": ("Custom", None),
}
MAX_CUSTOM_DAYS = 3660
_COUNTRY_RE = re.compile(r"^[A-Za-z]{2}$")
_HOST_RE = re.compile(f"^{HOST_NAME_PATTERN}$")


class HistoryFilterForm(forms.Form):
    """Window and filters shared by the dashboard and the history list (GET parameters)."""

    window = forms.ChoiceField(
        choices=[(k, label) for k, (label, _) in WINDOWS.items()], required=False
    )
    start = forms.DateField(required=False, label="From")
    end = forms.DateField(required=False, label="To")
    jail = forms.CharField(required=False, max_length=64)
    host = forms.CharField(required=False, max_length=63)
    country = forms.CharField(required=False, max_length=2)
    origin = forms.ChoiceField(
        choices=[("", "Any origin"), *BanEvent.Origin.choices], required=False
    )
    q = forms.CharField(required=False, max_length=64, label="Address or network")
    sort = forms.CharField(required=False, max_length=16)

    def clean_jail(self) -> str:
        jail = self.cleaned_data["jail"].strip()
        if jail and not JAIL_NAME_RE.fullmatch(jail):
            raise forms.ValidationError("Not a jail name.")
        return jail

    def clean_host(self) -> str:
        host = self.cleaned_data["host"].strip()
        if host and not _HOST_RE.fullmatch(host):
            raise forms.ValidationError("Not a host name.")
        return host

    def clean_country(self) -> str:
        country = self.cleaned_data["country"].strip()
        if country and not _COUNTRY_RE.fullmatch(country):
            raise forms.ValidationError("Use a two-letter country code.")
        return country.upper()

    def clean_q(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | Any | None:
        text = self.cleaned_data["q"].strip()
        if not text:
            return None
        try:
            target = parse_ip_or_network(text)
            history_selectors.search_condition(target)  # refuses networks too large to search
        except InvalidArgument as exc:
            raise forms.ValidationError(str(exc)) from None
        return target

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data  # what Form.clean() returned, typed as never None
        if data.get("start") and data.get("end"):
            data["window"] = "custom"  # dates given: they are the window
        if data.get("window") == "custom":
            start, end = data.get("start"), data.get("end")
            if not start or not end:
                raise forms.ValidationError("A custom window needs a start and an end date.")
            if end < start:
                raise forms.ValidationError("The end date is before the start date.")
            if (end - start).days > MAX_CUSTOM_DAYS:
                raise forms.ValidationError(f"At most {MAX_CUSTOM_DAYS} days, please.")
        return data
