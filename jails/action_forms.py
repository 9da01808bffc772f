"""Forms of the operating pages that need more than a field or two (the bulk ban list)."""

from __future__ import annotations

from django import forms

from jails.services.operations import MAX_ENTRIES

MAX_UPLOAD_BYTES = 16 * 1024 * 1024


class BulkBanForm(forms.Form):
    """Paste a list or upload a file: one address or network per line, up to 100 000 lines."""

    text = forms.CharField(
        label="Addresses",
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "autocomplete": "off"}),
        help_text="One IPv4/IPv6 address or CIDR network per line; # or ; start a comment.",
        strip=False,
    )
    upload = forms.FileField(
        label="Or upload a file",
        required=False,
        help_text=f"Plain text, at most {MAX_ENTRIES:,} lines and 16 MB.".replace(",", " "),
    )
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        text = cleaned.get("text") or ""
        upload = cleaned.get("upload")
        if text.strip() and upload:
            raise forms.ValidationError("Paste a list or upload a file, not both.")
        if not text.strip() and not upload:
            raise forms.ValidationError("Paste at least one address, or choose a file.")
        if upload:
            if upload.size > MAX_UPLOAD_BYTES:
                raise forms.ValidationError("The file is larger than 16 MB.")
            raw = b"".join(upload.chunks())
            if b"\x00" in raw[:8192]:
                raise forms.ValidationError("That is not a text file.")
            # Undecodable bytes become U+FFFD: such a line is reported as invalid, not lost.
            cleaned["lines"] = raw.decode("utf-8", errors="replace").splitlines()
        else:
            cleaned["lines"] = text.splitlines()
        return cleaned
