"""The add-source form: a URL or an uploaded file, the target jail, schedule and options.

On a fleet (jails.hosts) it also asks where the list is imported: the hosts on which the
user may administer, or every enabled host (only for a user who may administer them all).
A single-host site's form has no such fields: it is exactly the pre-fleet form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.utils.translation import gettext, gettext_lazy

from jails.blocklists.models import BlocklistSource
from jails.blocklists.services.sources import MAX_UPLOAD_BYTES
from jails.fail2ban import InvalidArgument
from jails.fail2ban.validation import validate_jail_name
from jails.hosts.models import LOCAL_HOST, Host


class SourceForm(forms.ModelForm):
    url = forms.URLField(
        required=False,
        max_length=2000,
        assume_scheme="https",
        label="URL",
        help_text=gettext_lazy("http:// or https://"),
    )
    upload = forms.FileField(
        required=False,
        label=gettext_lazy("or upload a list"),
        help_text=gettext_lazy("A text file, one entry per line."),
    )

    class Meta:
        model = BlocklistSource
        fields = [
            "name",
            "url",
            "upload",
            "jail",
            "hosts",
            "all_hosts",
            "schedule",
            "enabled",
            "allow_private",
        ]
        labels = {"url": "URL", "allow_private": gettext_lazy("Allow private sources and ranges")}
        widgets = {"hosts": forms.CheckboxSelectMultiple}

    def __init__(
        self,
        *args: Any,
        hosts: Sequence[Host] | None = None,
        every_host: bool = False,
        **kwargs: Any,
    ) -> None:
        """`hosts`: the hosts the user may choose (None: not a fleet, no host fields);
        `every_host`: whether the user may choose "every enabled host"."""
        super().__init__(*args, **kwargs)
        self.every_host = every_host
        self.choosable = None if hosts is None else {host.name for host in hosts}
        if hosts is None:
            del self.fields["hosts"]
            del self.fields["all_hosts"]
            return
        field = self.fields["hosts"]
        assert isinstance(field, forms.ModelMultipleChoiceField)
        field.queryset = Host.objects.filter(pk__in=[host.pk for host in hosts]).order_by("name")
        field.help_text = gettext("Import on these hosts; none chosen: the local host only.")
        if not every_host:
            del self.fields["all_hosts"]

    def clean_url(self) -> str:
        url = str(self.cleaned_data.get("url") or "")
        if url and not url.lower().startswith(("http://", "https://")):
            raise forms.ValidationError(gettext("Only http:// and https:// lists are fetched."))
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
            self.add_error("upload", gettext("The file is over the 50 MB cap."))
        if bool(data.get("url")) == bool(upload):
            raise forms.ValidationError(gettext("Give either a URL or a file (one of the two)."))
        chosen = data.get("hosts")
        if (
            self.choosable is not None
            and not data.get("all_hosts")
            and not chosen
            and LOCAL_HOST not in self.choosable
        ):
            # None chosen means the local host, where this user may not act.
            self.add_error("hosts", gettext("Choose the hosts to import on."))
        return data

    def uploaded_text(self) -> str:
        upload = self.cleaned_data.get("upload")
        if upload is None:
            return ""
        data = b"".join(upload.chunks())
        return data.decode("utf-8", errors="replace")
