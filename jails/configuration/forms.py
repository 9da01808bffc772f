"""Forms of the configuration pages: a jail's common settings, raw files, new filters and jails."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext, gettext_lazy, pgettext_lazy

from jails.configuration.services.overrides import COMMON_SETTINGS, MULTILINE_SETTINGS

MAX_FILE_CHARS = 256 * 1024
BOOLEAN_SETTINGS = ("enabled", "bantime.increment", "bantime.overalljails")
TRUTH_CHOICES = [("", "—"), ("true", "true"), ("false", "false")]


class ReasonField(forms.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            required=False,
            max_length=500,
            label=gettext_lazy("Why (kept with the version)"),
            **kwargs,
        )


class JailSettingsForm(forms.Form):
    """The common settings, initially the effective values; only changed ones are written."""

    sha256 = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)
    reason = ReasonField()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in COMMON_SETTINGS:
            if name in BOOLEAN_SETTINGS:
                self.fields[name] = forms.ChoiceField(choices=TRUTH_CHOICES, required=False)
            elif name in MULTILINE_SETTINGS:
                self.fields[name] = forms.CharField(
                    required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2})
                )
            else:
                self.fields[name] = forms.CharField(required=False, max_length=500)

    def changed_settings(self) -> dict[str, str | None]:
        """The settings the user changed; emptied ones are removed from the override."""
        changed: dict[str, str | None] = {}
        for name in COMMON_SETTINGS:
            if name in self.changed_data:
                value = self.cleaned_data.get(name) or ""
                changed[name] = value.replace("\r\n", "\n") if value.strip() else None
        return changed


class FileForm(forms.Form):
    """The raw editor of one `.local` file."""

    content = forms.CharField(
        label=gettext_lazy("Content"),
        required=False,
        max_length=MAX_FILE_CHARS,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "code"}),
    )
    sha256 = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)
    reason = ReasonField()

    def clean_content(self) -> str:
        content: str = self.cleaned_data["content"].replace("\r\n", "\n")
        if "\x00" in content:
            raise forms.ValidationError(gettext("A configuration file may not contain NUL."))
        if len(content.encode("utf-8", "surrogatepass")) > MAX_FILE_CHARS:
            raise forms.ValidationError(gettext("At most 256 KB."))
        return content


class NewFilterForm(forms.Form):
    name = forms.RegexField(
        regex=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", max_length=63, label=gettext_lazy("Name")
    )
    failregex = forms.CharField(
        max_length=8000,
        widget=forms.Textarea(attrs={"rows": 4, "class": "code"}),
        help_text=gettext_lazy(
            "One regular expression per line, with <HOST> where the address is."
        ),
    )
    ignoreregex = forms.CharField(
        required=False, max_length=8000, widget=forms.Textarea(attrs={"rows": 2, "class": "code"})
    )
    datepattern = forms.CharField(required=False, max_length=200)


class NewJailForm(forms.Form):
    name = forms.RegexField(
        regex=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$", max_length=63, label=gettext_lazy("Name")
    )
    filter = forms.ChoiceField(choices=(), label=pgettext_lazy("noun: a fail2ban filter", "Filter"))
    logpath = forms.CharField(max_length=1000)
    port = forms.CharField(required=False, max_length=200, label=gettext_lazy("Port"))
    maxretry = forms.IntegerField(required=False, min_value=1, max_value=1000)
    findtime = forms.CharField(required=False, max_length=32)
    bantime = forms.CharField(required=False, max_length=32)

    def __init__(self, *args: Any, filters: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["filter"].choices = [(name, name) for name in filters]  # type: ignore[attr-defined]

    def settings(self) -> dict[str, str]:
        data = self.cleaned_data
        values = {k: str(data[k]) for k in ("port", "maxretry", "findtime", "bantime") if data[k]}
        return values
