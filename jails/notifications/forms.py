"""Forms for channels and rules: validate, then hand plain values to the services."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.core.validators import validate_email
from django.utils.translation import gettext, gettext_lazy

from jails.notifications.models import Channel, Rule
from jails.notifications.services.delivery import apprise_url_valid


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.replace("\n", ",").split(",") if item.strip()]


class ChannelForm(forms.Form):
    name = forms.SlugField(max_length=64, label=gettext_lazy("Name"))
    kind = forms.ChoiceField(choices=Channel.Kind.choices, label=gettext_lazy("Kind"))
    target = forms.CharField(
        required=False,
        max_length=2000,
        label=gettext_lazy("Recipients or URL"),
        help_text=gettext_lazy("Email: addresses separated by commas. Webhook: its http(s) URL."),
    )
    apprise_url = forms.CharField(
        required=False,
        max_length=2000,
        label="Apprise URL",
        # Never rendered back: it carries the chat service's token.
        widget=forms.PasswordInput(render_value=False),
        help_text=gettext_lazy("Chat: e.g. ntfys://ntfy.sh/topic, tgram://token/chat, slack://…"),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind, target = data.get("kind"), (data.get("target") or "").strip()
        if kind == Channel.Kind.EMAIL:
            addresses = _split(target)
            if not addresses:
                self.add_error("target", gettext("Give at least one address."))
            for address in addresses:
                try:
                    validate_email(address)
                except forms.ValidationError:
                    self.add_error(
                        "target",
                        gettext("%(address)s is not an email address.")
                        % {"address": repr(address)},
                    )
            data["target"] = ", ".join(addresses)
        elif kind == Channel.Kind.WEBHOOK:
            parts = urlsplit(target)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                self.add_error("target", gettext("Give an http:// or https:// URL."))
            data["target"] = target
        elif kind == Channel.Kind.APPRISE:
            url = (data.get("apprise_url") or "").strip()
            if not url or not apprise_url_valid(url):
                self.add_error("apprise_url", gettext("Apprise does not recognise this URL."))
            data["target"], data["apprise_url"] = "", url
        return data


class RuleForm(forms.Form):
    name = forms.SlugField(max_length=64, label=gettext_lazy("Name"))
    kind = forms.ChoiceField(choices=Rule.Kind.choices, label=gettext_lazy("Kind"))
    channels = forms.ModelMultipleChoiceField(
        queryset=Channel.objects.order_by("name"), required=False, label=gettext_lazy("Channels")
    )
    rate_limit_minutes = forms.IntegerField(
        min_value=0,
        max_value=7 * 24 * 60,
        initial=15,
        label=gettext_lazy("At most one message per (minutes)"),
    )
    threshold = forms.IntegerField(
        min_value=1, required=False, initial=100, label=gettext_lazy("Burst: more than N bans")
    )
    minutes = forms.IntegerField(
        min_value=1,
        max_value=24 * 60,
        required=False,
        initial=10,
        label=gettext_lazy("Burst: within M minutes / Unreachable: for K minutes"),
    )
    per_jail = forms.BooleanField(required=False, label=gettext_lazy("Burst: count per jail"))
    days = forms.IntegerField(
        min_value=1,
        max_value=365,
        required=False,
        initial=7,
        label=gettext_lazy("Repeat: within D days"),
    )
    min_jails = forms.IntegerField(
        min_value=0,
        max_value=100,
        required=False,
        initial=0,
        label=gettext_lazy("Repeat: or in this many jails"),
    )
    countries = forms.CharField(
        required=False,
        label=gettext_lazy("Origin: country codes"),
        help_text=gettext_lazy("e.g. CN, RU (comma-separated)"),
    )
    networks = forms.CharField(
        required=False,
        label=gettext_lazy("Origin: networks"),
        help_text=gettext_lazy("e.g. 203.0.113.0/24, 2001:db8::/32"),
    )
    period = forms.ChoiceField(
        choices=[("daily", gettext_lazy("Daily")), ("weekly", gettext_lazy("Weekly"))],
        required=False,
        label=gettext_lazy("Digest"),
    )

    def clean_countries(self) -> list[str]:
        codes = [code.upper() for code in _split(self.cleaned_data.get("countries") or "")]
        for code in codes:
            if len(code) != 2 or not code.isalpha():
                raise forms.ValidationError(
                    gettext("%(code)s is not a two-letter country code.") % {"code": repr(code)}
                )
        return codes

    def clean_networks(self) -> list[str]:
        networks = []
        for text in _split(self.cleaned_data.get("networks") or ""):
            try:
                networks.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError:
                raise forms.ValidationError(
                    gettext("%(network)s is not a network.") % {"network": repr(text)}
                ) from None
        return networks

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (
            data.get("kind") == Rule.Kind.ORIGIN
            and not data.get("countries")
            and not data.get("networks")
        ):
            self.add_error("countries", gettext("Give countries or networks to watch."))
        return data

    def params(self) -> dict[str, Any]:
        """The parameters of the chosen kind (the service drops the others)."""
        data = self.cleaned_data
        values = {
            "threshold": data.get("threshold"),
            "minutes": data.get("minutes"),
            "per_jail": bool(data.get("per_jail")),
            "days": data.get("days"),
            "min_jails": data.get("min_jails"),
            "countries": data.get("countries") or [],
            "networks": data.get("networks") or [],
            "period": data.get("period") or "daily",
        }
        return {key: value for key, value in values.items() if value is not None}
