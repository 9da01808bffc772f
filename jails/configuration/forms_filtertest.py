"""Forms of the filter tester, "why was this address not banned?" and the log viewer.

They check shapes and sizes for a friendly message; the host side (jails.agent.regex,
jails.agent.logview) checks everything again, since in agent mode it trusts no caller.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext, gettext_lazy, pgettext_lazy

from jails.agent.logview import MAX_LINES, MAX_SEARCH_CHARS
from jails.agent.regex import (
    FILTER_MODE,
    FILTER_NAME,
    MAX_DRAFT_CHARS,
    MAX_INPUT_BYTES,
    MAX_INPUT_LINES,
)
from jails.configuration.services.logs import DEFAULT_LINES, LEVEL_CHOICES
from jails.fail2ban import InvalidArgument
from jails.fail2ban.validation import JAIL_NAME_RE, parse_ip

SOURCE_PASTED = "pasted"
SOURCE_JAIL = "jail"


def _jail_name(value: str) -> str:
    value = value.strip()
    if value and not JAIL_NAME_RE.fullmatch(value):
        raise forms.ValidationError(gettext("Not a jail name."))
    return value


class FilterTestForm(forms.Form):
    """Which lines (pasted, or the end of a jail's log) against which filter (or a draft)."""

    source = forms.ChoiceField(
        choices=[
            (SOURCE_PASTED, gettext_lazy("Pasted lines")),
            (SOURCE_JAIL, gettext_lazy("The end of a jail's log")),
        ],
        label=gettext_lazy("Source"),
        initial=SOURCE_PASTED,
        widget=forms.RadioSelect,
    )
    lines = forms.CharField(
        required=False,
        max_length=MAX_INPUT_BYTES,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
        label=gettext_lazy("Lines"),
    )
    jail = forms.CharField(required=False, max_length=64, label=gettext_lazy("Jail"))
    log_lines = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_INPUT_LINES,
        initial=1000,
        label=gettext_lazy("Last lines"),
    )
    filter = forms.CharField(
        required=False,
        max_length=64,
        label=pgettext_lazy("noun: a fail2ban filter", "Filter"),
        help_text=gettext_lazy("A filter in filter.d (default: the jail's name)."),
    )
    mode = forms.CharField(
        required=False,
        max_length=32,
        label=gettext_lazy("Mode"),
        help_text=gettext_lazy("e.g. aggressive"),
    )
    failregex = forms.CharField(
        required=False,
        max_length=MAX_DRAFT_CHARS,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text=gettext_lazy("Draft: one regular expression per line, as in a filter file."),
    )
    ignoreregex = forms.CharField(
        required=False,
        max_length=MAX_DRAFT_CHARS,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
    )
    datepattern = forms.CharField(required=False, max_length=1000)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Built per form, not at import: a number in it, and the request's language.
        self.fields["lines"].help_text = gettext(
            "At most %(count)d lines; comment (#) and blank lines are skipped."
        ) % {"count": MAX_INPUT_LINES}

    def clean_jail(self) -> str:
        return _jail_name(self.cleaned_data["jail"])

    def clean_filter(self) -> str:
        name = self.cleaned_data["filter"].strip()
        if name and (not FILTER_NAME.fullmatch(name) or ".." in name):
            raise forms.ValidationError(gettext("A filter's name: letters, digits, '.', '_', '-'."))
        return name

    def clean_mode(self) -> str:
        mode = self.cleaned_data["mode"].strip()
        if mode and not FILTER_MODE.fullmatch(mode):
            raise forms.ValidationError(gettext("A mode: letters, digits, '_', '-'."))
        return mode

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        source = data.get("source")
        if source == SOURCE_PASTED and not (data.get("lines") or "").strip():
            self.add_error("lines", gettext("Paste the log lines to test."))
        if source == SOURCE_JAIL and not data.get("jail"):
            self.add_error("jail", gettext("Name the jail whose log to read."))
        if source == SOURCE_PASTED and not data.get("filter") and not data.get("failregex"):
            self.add_error("filter", gettext("Name a filter, or write a draft failregex."))
        return data

    def service_arguments(self) -> dict[str, Any]:
        """The cleaned data as filter_test()'s keyword arguments."""
        data = self.cleaned_data
        from_jail = data["source"] == SOURCE_JAIL
        return {
            "lines": None if from_jail else data["lines"],
            "jail": data["jail"] if from_jail else None,
            "log_lines": data.get("log_lines") or 1000,
            "filter_name": data["filter"] or None,
            "mode": data["mode"] or None,
            "failregex": data["failregex"] or None,
            "ignoreregex": data["ignoreregex"] or None,
            "datepattern": data["datepattern"] or None,
        }


class BanExplainForm(forms.Form):
    """An address and a jail: why was it (not) banned there?"""

    jail = forms.CharField(max_length=64, label=gettext_lazy("Jail"))
    address = forms.CharField(max_length=64, label=gettext_lazy("Address"))
    log_lines = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_INPUT_LINES,
        label=gettext_lazy("Last lines of its log"),
    )

    def clean_jail(self) -> str:
        return _jail_name(self.cleaned_data["jail"])

    def clean_address(self) -> str:
        try:
            return str(parse_ip(self.cleaned_data["address"]))
        except InvalidArgument:
            raise forms.ValidationError(gettext("Not an IP address.")) from None


class LogViewForm(forms.Form):
    """How much of fail2ban's log, from which level, containing what (GET parameters)."""

    lines = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_LINES,
        initial=200,
        label=gettext_lazy("Lines"),
    )
    level = forms.ChoiceField(required=False, label=gettext_lazy("Level"))
    q = forms.CharField(
        required=False, max_length=MAX_SEARCH_CHARS, label=gettext_lazy("Containing")
    )
    cursor = forms.CharField(required=False, max_length=600, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The level names are fail2ban's (the values sent); the words around them translate.
        level = self.fields["level"]
        assert isinstance(level, forms.ChoiceField)
        level.choices = [
            ("", gettext("Any level")),
            *[(name, gettext("%(level)s and above") % {"level": name}) for name in LEVEL_CHOICES],
        ]

    def clean_q(self) -> str:
        text: str = self.cleaned_data["q"]
        if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in text):
            raise forms.ValidationError(gettext("No control characters."))
        return text

    def service_arguments(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "lines": data.get("lines") or DEFAULT_LINES,
            "level": data.get("level") or None,
            "search": data.get("q") or None,
        }
