"""The add-source form: a URL or an uploaded file, the target jail, schedule and options."""

from __future__ import annotations

from typing import Any

from django import forms

from jails.blocklists.models import BlocklistSource
from jails.blocklists.services.sources import MAX_UPLOAD_BYTES
from jails.fail2ban import InvalidArgument
from jails.fail2ban.validation import validate_jail_name


class SourceForm(forms.ModelForm):
    url = forms.URLField(
        required=False,
        max_length=2000,
        assume_scheme="https",
        label="URL",
        help_text="http:// or https://",
    )
    upload = forms.FileField(
        required=False, label="or upload a list", help_text="A text file, one entry a line."
    )

    class Meta:
        model = BlocklistSource
        fields = ["name", "url", "upload", "jail", "schedule", "enabled", "allow_private"]
        labels = {"url": "URL", "allow_private": "Allow private sources and ranges"}

    def clean_url(self) -> str:
        url = str(self.cleaned_data.get("url") or "")
        if url and not url.lower().startswith(("http://", "https://")):
            raise forms.ValidationError("Only http:// and https:// lists are fetched.")
        return url

    def clean_jail(self) -> str:
        jail = str(self.cleaned_data.get("jail") or "")
        try:
            return validate_jail_name(jail)
        except InvalidArgument as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("upload")
        if upload is not None and upload.size > MAX_UPLOAD_BYTES:
            self.add_error("upload", "The file is over the 50 MB cap.")
        if bool(data.get("url")) == bool(upload):
            raise forms.ValidationError("Give either a URL or a file (one of the two).")
        return data

    def uploaded_text(self) -> str:
        upload = self.cleaned_data.get("upload")
        if upload is None:
            return ""
        data = b"".join(upload.chunks())
        return data.decode("utf-8", errors="replace")
