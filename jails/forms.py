"""Forms for the runtime settings (one ModelForm for /settings/ and the admin), the first-run
setup, the audit log filters and the bulk ban list. The live checks live in
jails.services.settings."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.forms.utils import ErrorDict
from django.utils.text import format_lazy
from django.utils.translation import gettext, gettext_lazy, ngettext, pgettext, pgettext_lazy

from jails.agent.link import agent_address_check
from jails.fail2ban import InvalidArgument
from jails.fail2ban.validation import normalise_ip, parse_duration
from jails.formatting import duration
from jails.models import SiteSettings
from jails.services import settings as settings_service
from jails.services.operations import MAX_ENTRIES
from jails.services.settings import SettingsInvalid, SiteValues
from jails.sessions import MEMORY, REDIS
from jails.state import RuntimeSettings


@dataclass(frozen=True)
class SettingsContext:
    """What validation needs to know about this installation (from the runtime settings)."""

    fail2ban_timeout: float
    web_workers: int

    @classmethod
    def from_settings(cls, settings: RuntimeSettings) -> SettingsContext:
        return cls(fail2ban_timeout=settings.fail2ban_timeout, web_workers=settings.web_workers)


def time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class DurationTextField(forms.CharField):
    """Seconds, written and shown as 30m, 8h, 7d (or plain seconds)."""

    def __init__(self, *, min_seconds: int, max_seconds: int, **kwargs: Any) -> None:
        self.min_seconds = min_seconds
        self.max_seconds = max_seconds
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("maxlength", "32")

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, int):
            return duration(value)
        return value

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        # Translators: 30m, 8h and 7d are what the field accepts (minutes, hours, days).
        invalid = gettext("Write a duration such as 30m, 8h or 7d.")
        if len(str(text)) > 32:
            raise ValidationError(invalid, code="invalid")
        try:
            seconds = sum(parse_duration(part, allow_permanent=False) for part in str(text).split())
        except InvalidArgument:
            raise ValidationError(invalid, code="invalid") from None
        if not self.min_seconds <= seconds <= self.max_seconds:
            raise ValidationError(
                gettext("Choose between %(min)s and %(max)s.")
                % {"min": duration(self.min_seconds), "max": duration(self.max_seconds)},
                code="range",
            )
        return seconds

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != initial
        except ValidationError:
            return True


URL_PASSWORD_MASK = "***"  # what mask_url_password shows instead of a password


def url_password(url: str) -> str | None:
    """The password part of a URL (as written), or None."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def url_with_password(url: str, password: str | None) -> str:
    """The URL with its password replaced (None: removed); the rest is kept as written."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    if password is None:
        netloc = f"{user}@{hostport}" if user else hostport
    else:
        netloc = f"{user}:{password}@{hostport}"
    return urlunsplit(parts._replace(netloc=netloc))


class SecretURLField(forms.CharField):
    """A URL whose stored password never goes back to the browser (pages may be cached).

    The stored password is shown as ``***``; submitting ``***`` keeps it, a URL with
    another password replaces it, a URL without one removes it. A password typed into a
    form that comes back with errors is not shown either: it has to be typed again.
    ``stored`` is the URL saved now, set by the form.
    """

    stored = ""

    def prepare_value(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        password = url_password(value)
        if password is None or password == URL_PASSWORD_MASK:
            return value
        if value.strip() == self.stored:
            return url_with_password(value.strip(), URL_PASSWORD_MASK)
        return url_with_password(value.strip(), None)

    def to_python(self, value: Any) -> str:
        # CharField gives `empty_value` for an empty input: "" here, never None.
        text = super().to_python(value) or ""
        if url_password(text) != URL_PASSWORD_MASK:
            return text
        stored_password = url_password(self.stored)
        if stored_password is None:
            raise ValidationError(
                gettext("No password is stored to keep: replace %(mask)s with the password.")
                % {"mask": URL_PASSWORD_MASK},
                code="no_stored_password",
            )
        return url_with_password(text, stored_password)

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != (initial or "")
        except ValidationError:
            return True


class SiteSettingsForm(forms.ModelForm):
    """The runtime settings, with the live checks; used on /settings/ and in the admin.

    On a change, the live checks run for what changed (an unrelated edit is not blocked
    while fail2ban happens to be down); the setup wizard runs all of them.
    """

    always_check = False

    display_time_zone = forms.ChoiceField(
        label=gettext_lazy("Display time zone"), choices=time_zone_choices
    )
    session_lifetime_seconds = DurationTextField(
        label=gettext_lazy("Session lifetime"),
        min_seconds=settings_service.SESSION_LIFETIME_MIN,
        max_seconds=settings_service.SESSION_LIFETIME_MAX,
        help_text=gettext_lazy("How long a login lasts, e.g. 30m, 8h, 7d."),
    )
    history_retention_days = forms.IntegerField(
        label=gettext_lazy("Ban history retention (days)"),
        min_value=1,
        max_value=settings_service.RETENTION_DAYS_MAX,
        help_text=gettext_lazy("Archived bans older than this are deleted."),
    )
    redis_url = SecretURLField(
        label=gettext_lazy("Redis URL"),
        required=False,
        max_length=255,
        help_text=format_lazy(
            gettext_lazy(
                "Only for Redis session storage, e.g. redis://127.0.0.1:6379/0. "
                "Checked live with a real round trip. A stored password is never shown: "
                "leave {mask} in its place to keep it."
            ),
            mask=URL_PASSWORD_MASK,
        ),
    )

    class Meta:
        model = SiteSettings
        fields = [
            "fail2ban_socket",
            "fail2ban_agent",
            "display_time_zone",
            "session_lifetime_seconds",
            "session_cache",
            "redis_url",
            "history_retention_days",
        ]
        labels = {
            "fail2ban_socket": gettext_lazy("fail2ban socket"),
            "fail2ban_agent": gettext_lazy("Host agent"),
            "session_cache": gettext_lazy("Session storage"),
        }
        help_texts = {
            "fail2ban_socket": gettext_lazy(
                "Checked live: it must exist, be a socket and answer. "
                "Not used when a host agent is set: the agent has its own."
            ),
            "fail2ban_agent": gettext_lazy(
                "Empty: this site talks to fail2ban's socket itself (it needs "
                "root's access). An address such as unix:/run/jailadmin/agent.sock: it goes "
                "through the jailadmin agent and needs no access to fail2ban. Checked live."
            ),
        }
        widgets = {"session_cache": forms.RadioSelect}

    def __init__(self, *args: Any, context: SettingsContext | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if context is None:
            from jails.apps import runtime_state

            context = SettingsContext.from_settings(runtime_state().settings)
        self.context = context
        self.fail2ban_version: str | None = None
        self.redis_checked = False
        # The saved URL (or the seed on /setup/): what *** stands for, never rendered.
        self._redis_url_field().stored = self.initial.get("redis_url") or ""

    def _redis_url_field(self) -> SecretURLField:
        # self.fields holds deep copies typed as plain Field; this one is always ours.
        field = self.fields["redis_url"]
        assert isinstance(field, SecretURLField)
        return field

    def _should_check(self, *names: str) -> bool:
        return self.always_check or any(name in self.changed_data for name in names)

    def clean_fail2ban_socket(self) -> str:
        return str(self.cleaned_data["fail2ban_socket"]).strip()

    def clean_fail2ban_agent(self) -> str:
        try:
            return agent_address_check(str(self.cleaned_data.get("fail2ban_agent") or ""))
        except InvalidArgument as exc:
            raise ValidationError(f"{exc}.", code="agent") from None

    def _fail2ban_check(self, cleaned: dict[str, Any]) -> None:
        # The connection in use is checked live: the agent when one is set (the socket is
        # then the agent's business, and this process may not even look at it), else the
        # socket. Both fields count as a change: switching modes checks the new one.
        if "fail2ban_socket" in self.errors or "fail2ban_agent" in self.errors:
            return
        if not self._should_check("fail2ban_socket", "fail2ban_agent"):
            return
        agent = cleaned.get("fail2ban_agent", "")
        timeout = self.context.fail2ban_timeout
        try:
            if agent:
                self.fail2ban_version = settings_service.fail2ban_agent_check(
                    address=agent, timeout=timeout
                )
            else:
                self.fail2ban_version = settings_service.fail2ban_socket_check(
                    path=cleaned.get("fail2ban_socket", ""), timeout=timeout
                )
        except SettingsInvalid as exc:
            field = "fail2ban_agent" if agent else "fail2ban_socket"
            self.add_error(field, ValidationError(str(exc), code="fail2ban"))

    def clean_redis_url(self) -> str:
        return self.cleaned_data.get("redis_url", "").strip()

    def clean(self) -> dict[str, Any]:
        super().clean()
        # What ModelForm.clean() returned; the attribute is typed as never None.
        cleaned = self.cleaned_data
        self._fail2ban_check(cleaned)
        storage = cleaned.get("session_cache")
        if storage == MEMORY and self.context.web_workers > 1:
            self.add_error(
                "session_cache",
                ngettext(
                    "Process memory only works with a single process, and this site runs "
                    "%(workers)d worker (JAILADMIN_WORKERS): each would have "
                    "its own sessions. Use the database or Redis.",
                    "Process memory only works with a single process, and this site runs "
                    "%(workers)d workers (JAILADMIN_WORKERS): each would have "
                    "its own sessions. Use the database or Redis.",
                    self.context.web_workers,
                )
                % {"workers": self.context.web_workers},
            )
        if storage == REDIS and "redis_url" not in self.errors:
            url = cleaned.get("redis_url", "")
            if self._should_check("session_cache", "redis_url"):
                try:
                    settings_service.redis_url_check(url=url)
                    self.redis_checked = True
                except SettingsInvalid as exc:
                    self.add_error("redis_url", str(exc))
        raw_url = str(self.data.get(self.add_prefix("redis_url"), "")).strip()
        typed_password = url_password(raw_url)
        if (
            self.errors
            and typed_password not in (None, URL_PASSWORD_MASK)
            and raw_url != self._redis_url_field().stored
        ):
            # The form comes back without the new password (never rendered): say so.
            self.add_error(
                "redis_url", gettext("Type the Redis password again: it is never shown.")
            )
        return cleaned

    def site_values(self) -> SiteValues:
        return SiteValues.from_mapping(self.cleaned_data)


SETUP_TOKEN_WHERE = gettext_lazy(
    "It is part of the setup link `make run` printed; on the server, "
    "`manage.py jailadmin_setup --print-token` shows it."
)


class SetupForm(SiteSettingsForm):
    """The first-run setup: the first administrator plus every runtime setting, all checked.

    On /setup/ it asks for the one-time setup token first (``token_valid`` checks it): without
    the right token no field is cleaned, so no live check runs and nothing can be saved.
    """

    always_check = True

    token = forms.CharField(
        label=gettext_lazy("Setup token"),
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
        help_text=SETUP_TOKEN_WHERE,
    )
    username = forms.CharField(
        label=gettext_lazy("Administrator username"),
        max_length=150,
        validators=[get_user_model().username_validator],
        help_text=gettext_lazy("Letters, digits and @ . + - _ only."),
    )
    password1 = forms.CharField(
        label=gettext_lazy("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label=gettext_lazy("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    field_order = ["token", "username", "password1", "password2"]

    def __init__(
        self, *args: Any, token_valid: Callable[[str], bool] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.token_valid = token_valid
        if token_valid is None:
            del self.fields["token"]  # `manage.py jailadmin_setup`: local, trusted already

    def full_clean(self) -> None:
        # The token comes before every field: the live checks (connect to this socket, this
        # Redis URL) are part of what it protects.
        if self.is_bound and self.token_valid is not None:
            given = str(self.data.get("token", "")).strip()
            if not self.token_valid(given):
                self._errors = ErrorDict(renderer=self.renderer)
                self.cleaned_data = {}
                problem = (
                    gettext("Enter the setup token.")
                    if not given
                    else gettext("This is not the setup token.")
                )
                # Three whole sentences, each translated on its own.
                nothing = gettext("Nothing was checked or saved.")
                self.add_error("token", f"{problem} {SETUP_TOKEN_WHERE} {nothing}")
                return
        super().full_clean()

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        user_model = get_user_model()
        if user_model.objects.filter(username__iexact=username).exists():
            raise ValidationError(
                gettext("A user named %(username)s already exists.") % {"username": username},
                code="exists",
            )
        return username

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        password1 = cleaned.get("password1")
        password2 = cleaned.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error("password2", gettext("The two passwords differ."))
        elif password1:
            user_model = get_user_model()
            probe = user_model(username=cleaned.get("username", ""))
            try:
                password_validation.validate_password(password1, user=probe)
            except ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned


class AuditFilterForm(forms.Form):
    """Filters of /audit/: all optional, all validated (an IP through the fail2ban rules)."""

    user = forms.CharField(required=False, max_length=150, label=gettext_lazy("User"))
    action = forms.ChoiceField(required=False, label=gettext_lazy("Action"))
    jail = forms.CharField(required=False, max_length=64, label=gettext_lazy("Jail"))
    ip = forms.CharField(required=False, max_length=64, label=gettext_lazy("IP address"))
    since = forms.DateTimeField(
        required=False,
        # Translators: the start of a time range (audit log filter).
        label=pgettext_lazy("time range", "From"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )
    until = forms.DateTimeField(
        required=False,
        # Translators: the end of a time range (audit log filter).
        label=pgettext_lazy("time range", "To"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )
    result = forms.ChoiceField(
        required=False,
        label=gettext_lazy("Result"),
        choices=[
            ("", pgettext_lazy("filter: no restriction", "any")),
            ("ok", pgettext_lazy("audit result", "ok")),
            ("failed", pgettext_lazy("audit result", "failed")),
            ("started", pgettext_lazy("audit result", "started, no result")),
        ],
    )

    def __init__(
        self, *args: Any, actions: list[str], hosts: list[str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        action = self.fields["action"]
        assert isinstance(action, forms.ChoiceField)  # declared above; typed as plain Field
        # Action names and host names are data (the audit log's own values): untranslated.
        anything = pgettext("filter: no restriction", "any")
        action.choices = [("", anything)] + [(a, a) for a in actions]
        if hosts:  # a fleet (jails.hosts): filter by the host an action went to
            self.fields["host"] = forms.ChoiceField(
                required=False,
                label=gettext("Host"),
                choices=[("", anything)] + [(h, h) for h in hosts],
            )

    def clean_ip(self) -> str:
        value = self.cleaned_data["ip"].strip()
        if not value:
            return ""
        try:
            return normalise_ip(value)
        except InvalidArgument:
            raise ValidationError(gettext("Not an IP address."), code="invalid") from None

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data  # what Form.clean() returned, typed as never None
        since: datetime | None = cleaned.get("since")
        until: datetime | None = cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", gettext("“To” is before “From”."))
        return cleaned


MAX_UPLOAD_BYTES = 16 * 1024 * 1024


class BulkBanForm(forms.Form):
    """Paste a list or upload a file: one address or network per line, up to 100 000 lines."""

    text = forms.CharField(
        label=gettext_lazy("Addresses"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "autocomplete": "off"}),
        help_text=gettext_lazy(
            "One IPv4/IPv6 address or CIDR network per line; # or ; start a comment."
        ),
        strip=False,
    )
    upload = forms.FileField(
        label=gettext_lazy("Or upload a file"),
        required=False,
        help_text=format_lazy(
            gettext_lazy("Plain text, at most {lines} lines and 16 MB."),
            lines=f"{MAX_ENTRIES:,}".replace(",", " "),
        ),
    )
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        text = cleaned.get("text") or ""
        upload = cleaned.get("upload")
        if text.strip() and upload:
            raise forms.ValidationError(gettext("Paste a list or upload a file, not both."))
        if not text.strip() and not upload:
            raise forms.ValidationError(gettext("Paste at least one address, or choose a file."))
        if upload:
            if upload.size > MAX_UPLOAD_BYTES:
                raise forms.ValidationError(gettext("The file is larger than 16 MB."))
            raw = b"".join(upload.chunks())
            if b"\x00" in raw[:8192]:
                raise forms.ValidationError(gettext("That is not a text file."))
            # Undecodable bytes become U+FFFD: such a line is reported as invalid, not lost.
            cleaned["lines"] = raw.decode("utf-8", errors="replace").splitlines()
        else:
            cleaned["lines"] = text.splitlines()
        return cleaned
