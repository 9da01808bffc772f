"""The history's filter form: window and filters shared by the dashboard and `/history/`."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from django import forms
from django.utils.translation import gettext, gettext_lazy, pgettext_lazy

from jails.fail2ban import InvalidArgument
from jails.fail2ban.validation import JAIL_NAME_RE, parse_ip_or_network
from jails.history.models import BanEvent
from jails.history.selectors import archive as history_selectors
from jails.hosts.models import HOST_NAME_PATTERN

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# Lazy: the labels are read per request, in the request's language.
WINDOWS: dict[str, tuple[StrOrPromise, float | None]] = {
    "24h": (gettext_lazy("24 hours"), 1),
    "7d": (gettext_lazy("7 days"), 7),
    "30d": (gettext_lazy("30 days"), 30),
    "365d": (gettext_lazy("365 days"), 365),
    "all": (gettext_lazy("Everything"), None),
    "custom": (gettext_lazy("Custom"), None),
}
MAX_CUSTOM_DAYS = 3660
_COUNTRY_RE = re.compile(r"^[A-Za-z]{2}$")
_HOST_RE = re.compile(f"^{HOST_NAME_PATTERN}$")


class HistoryFilterForm(forms.Form):
    """Window and filters shared by the dashboard and the history list (GET parameters)."""

    # Labels: the page names a field whose value it refuses ("Country: Use a two-letter…").
    window = forms.ChoiceField(
        label=gettext_lazy("Window"),
        choices=[(k, label) for k, (label, _) in WINDOWS.items()],
        required=False,
    )
    start = forms.DateField(required=False, label=pgettext_lazy("start date", "From"))
    end = forms.DateField(required=False, label=pgettext_lazy("end date", "To"))
    jail = forms.CharField(label=gettext_lazy("Jail"), required=False, max_length=64)
    host = forms.CharField(label=gettext_lazy("Host"), required=False, max_length=63)
    country = forms.CharField(label=gettext_lazy("Country"), required=False, max_length=2)
    origin = forms.ChoiceField(
        label=gettext_lazy("Origin"),
        choices=[("", gettext_lazy("Any origin")), *BanEvent.Origin.choices],
        required=False,
    )
    q = forms.CharField(required=False, max_length=64, label=gettext_lazy("Address or network"))
    sort = forms.CharField(label=gettext_lazy("Order"), required=False, max_length=16)

    def clean_jail(self) -> str:
        jail = self.cleaned_data["jail"].strip()
        if jail and not JAIL_NAME_RE.fullmatch(jail):
            raise forms.ValidationError(gettext("Not a jail name."))
        return jail

    def clean_host(self) -> str:
        host = self.cleaned_data["host"].strip()
        if host and not _HOST_RE.fullmatch(host):
            raise forms.ValidationError(gettext("Not a host name."))
        return host

    def clean_country(self) -> str:
        country = self.cleaned_data["country"].strip()
        if country and not _COUNTRY_RE.fullmatch(country):
            raise forms.ValidationError(gettext("Use a two-letter country code."))
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
                raise forms.ValidationError(
                    gettext("A custom window needs a start and an end date.")
                )
            if end < start:
                raise forms.ValidationError(gettext("The end date is before the start date."))
            if (end - start).days > MAX_CUSTOM_DAYS:
                raise forms.ValidationError(
                    gettext("At most %(days)d days, please.") % {"days": MAX_CUSTOM_DAYS}
                )
        return data
