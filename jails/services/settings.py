"""Runtime settings and the first-run setup: live checks and the one place they are saved.

One write path for the SiteSettings row: site_setup() (the wizard and `manage.py
jailadmin_setup`) and settings_update() (/settings/ and the Django admin). Both save in one
transaction with their audit record and bump the row's version. They do not touch the
runtime state: every process, this one included, applies the change from its settings
watcher (jails.runtime), so request handling never decides which backend is in use.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import asdict, dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from jails.agent.link import agent_address_check, link_build
from jails.agent.operations import HostConfig
from jails.fail2ban import (
    AgentRefused,
    AgentUnreachable,
    Fail2banClient,
    Fail2banError,
    Fail2banUnreachable,
    InvalidArgument,
    ProtocolError,
)
from jails.models import SiteSettings
from jails.roles import ADMINISTRATOR
from jails.services.audit import Actor, audit_record
from jails.sessions import (
    SessionStore,
    mask_url_password,
    session_storage_switch,
)
from jails.state import RuntimeState, session_cache_build

MAX_SOCKET_PATH_BYTES = 107  # sun_path is 108 bytes with the terminating NUL
REDIS_SCHEMES = ("redis", "rediss", "unix")
SESSION_LIFETIME_MIN = 5 * 60
SESSION_LIFETIME_MAX = 90 * 86400
RETENTION_DAYS_MAX = 3650


class SettingsInvalid(ValueError):
    """A value was refused; the message says why and what to do, for the operator.

    Translated when raised (at request time): it is only ever shown as a form error, never
    stored in the audit log or logged."""


class SetupAlreadyComplete(Exception):
    """The first-run setup was done before; it can never run again."""


class SetupFailed(Exception):
    """The setup could not be saved; nothing of it was kept."""


class SetupRequired(Exception):
    """Settings cannot be changed before the first-run setup."""


@dataclass(frozen=True)
class SiteValues:
    """The values the SiteSettings row holds, as the forms and the command hand them over."""

    fail2ban_socket: str
    display_time_zone: str
    session_lifetime_seconds: int
    session_cache: str
    redis_url: str
    history_retention_days: int
    fail2ban_agent: str = ""  # "" = the socket directly; else the host agent's address

    @classmethod
    def from_row(cls, row: SiteSettings) -> SiteValues:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> SiteValues:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})

    def apply_to(self, row: SiteSettings) -> None:
        for name, value in asdict(self).items():
            setattr(row, name, value)

    def for_audit(self) -> dict[str, Any]:
        """As stored in an audit record: a Redis password never is."""
        values = asdict(self)
        values["redis_url"] = mask_url_password(self.redis_url)
        return values


@dataclass(frozen=True)
class SetupResult:
    user_id: int
    username: str
    settings_version: int


@dataclass(frozen=True)
class SettingsChange:
    changes: dict[str, tuple[Any, Any]]  # field -> (old, new); empty when nothing changed
    settings_version: int

    @property
    def storage_changed(self) -> bool:
        return "session_cache" in self.changes or "redis_url" in self.changes


# Live checks -------------------------------------------------------------------------------------
def fail2ban_socket_check(*, path: str, timeout: float) -> str:
    """The socket exists, is a socket, and fail2ban answers on it: return its version."""
    if not path:
        raise SettingsInvalid(_("Enter the path of fail2ban's socket."))
    if "\0" in path or not os.path.isabs(path):
        raise SettingsInvalid(
            _("Give an absolute path, for example /var/run/fail2ban/fail2ban.sock.")
        )
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise SettingsInvalid(
            _("A Unix socket path can be at most %(bytes)d bytes.")
            % {"bytes": MAX_SOCKET_PATH_BYTES}
        )
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SettingsInvalid(
            _(
                "Nothing exists at %(path)s. Is fail2ban running? Its socket is the `socket` "
                "setting in fail2ban.conf (Debian: /var/run/fail2ban/fail2ban.sock)."
            )
            % {"path": path}
        ) from None
    except OSError as exc:
        raise SettingsInvalid(
            _("This process (uid %(uid)d) cannot look at %(path)s: %(error)s.")
            % {"uid": os.getuid(), "path": path, "error": exc.strerror}
        ) from None
    if not stat.S_ISSOCK(info.st_mode):
        if stat.S_ISDIR(info.st_mode):
            text = _("%(path)s exists but is a directory, not fail2ban's Unix socket.")
        elif stat.S_ISREG(info.st_mode):
            text = _("%(path)s exists but is a regular file, not fail2ban's Unix socket.")
        else:
            text = _("%(path)s exists but is not a socket, so it cannot be fail2ban's Unix socket.")
        raise SettingsInvalid(text % {"path": path})
    client = Fail2banClient(path, timeout=timeout)
    try:
        with client.connection() as conn:
            pong = conn.send("ping")
            version = conn.send("version")
    except Fail2banUnreachable as exc:
        raise SettingsInvalid(
            _("%(path)s is a socket, but fail2ban does not answer on it: %(reason)s.")
            % {"path": path, "reason": exc.reason}
        ) from None
    except ProtocolError as exc:
        raise SettingsInvalid(
            _("Something answers on %(path)s, but not like fail2ban: %(error)s")
            % {"path": path, "error": exc}
        ) from None
    except Fail2banError as exc:
        raise SettingsInvalid(
            _("fail2ban at %(path)s refused the check: %(error)s") % {"path": path, "error": exc}
        ) from None
    if pong != "pong":
        raise SettingsInvalid(
            _("Something answers on %(path)s, but not like fail2ban.") % {"path": path}
        )
    return str(version)


def fail2ban_agent_check(*, address: str, timeout: float) -> str:
    """The host agent answers the handshake and fail2ban answers behind it: its version."""
    try:
        address = agent_address_check(address)
    except InvalidArgument as exc:
        raise SettingsInvalid(f"{exc}.") from None
    if not address:
        raise SettingsInvalid(_("Enter the agent's address, e.g. unix:/run/jailadmin/agent.sock."))
    link = link_build(agent=address, config=HostConfig(timeout=timeout))
    try:
        info = link.hello()
        if info.fail2ban_version is None:
            # The agent is up; ask fail2ban through it, for the reason it does not answer.
            link.send("ping")
            info = link.hello()
    except AgentUnreachable as exc:
        raise SettingsInvalid(
            _(
                "The jailadmin agent does not answer at %(address)s: %(reason)s. Is it running "
                "(systemctl status jailadmin-agent.socket), and is this site's user in the "
                "group of its socket?"
            )
            % {"address": address, "reason": exc.reason}
        ) from None
    except Fail2banUnreachable as exc:
        raise SettingsInvalid(
            _(
                "The agent at %(address)s answers, but fail2ban does not answer behind it "
                "(%(socket)s: %(reason)s). Is fail2ban running?"
            )
            % {"address": address, "socket": exc.socket_path, "reason": exc.reason}
        ) from None
    except (AgentRefused, ProtocolError) as exc:
        raise SettingsInvalid(
            _(
                "Something answers at %(address)s, but not like a jailadmin agent of this "
                "version: %(error)s"
            )
            % {"address": address, "error": exc}
        ) from None
    except Fail2banError as exc:
        raise SettingsInvalid(
            _("The agent at %(address)s refused the check: %(error)s")
            % {"address": address, "error": exc}
        ) from None
    finally:
        link.close()  # a checking link's pooled connections end here, not at garbage collection
    if info.fail2ban_version is None:
        raise SettingsInvalid(
            _("The agent at %(address)s answers, but cannot tell fail2ban's version.")
            % {"address": address}
        )
    return info.fail2ban_version


def redis_url_check(*, url: str, timeout: float = 2.0) -> None:
    """A real round trip (write, read back, delete) to the Redis server at `url`."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if not url:
        raise SettingsInvalid(_("Enter the Redis URL, for example redis://127.0.0.1:6379/0."))
    scheme = urlsplit(url).scheme.lower()
    if scheme not in REDIS_SCHEMES:
        raise SettingsInvalid(
            _(
                "A Redis URL starts with redis://, rediss:// or unix://, "
                "for example redis://127.0.0.1:6379/0."
            )
        )
    shown = mask_url_password(url)
    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError as exc:
        raise SettingsInvalid(
            _("%(url)s is not a usable Redis URL: %(error)s") % {"url": shown, "error": exc}
        ) from None
    key = f"jailadmin:check:{secrets.token_hex(8)}"
    token = secrets.token_hex(8)
    try:
        client.set(key, token, ex=60)
        answer = client.get(key)
        client.delete(key)
    except redis.AuthenticationError as exc:
        raise SettingsInvalid(
            _("Redis at %(url)s refused the credentials: %(error)s") % {"url": shown, "error": exc}
        ) from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise SettingsInvalid(
            _("Could not reach Redis at %(url)s: %(error)s") % {"url": shown, "error": exc}
        ) from None
    except redis.RedisError as exc:
        raise SettingsInvalid(
            _("Redis at %(url)s answered with an error: %(error)s") % {"url": shown, "error": exc}
        ) from None
    finally:
        client.close()
    # Bytes unless the URL itself asks for decode_responses: compare the text either way.
    if isinstance(answer, bytes):
        answer = answer.decode(errors="replace")
    if answer != token:
        raise SettingsInvalid(
            _("Redis at %(url)s did not give back what was written.") % {"url": shown}
        )


# Saving ------------------------------------------------------------------------------------------
def setup_is_complete() -> bool:
    """True once the first-run setup has been saved."""
    return SiteSettings.objects.filter(singleton=1, setup_complete=True).exists()


def site_setup(
    state: RuntimeState,
    *,
    values: SiteValues,
    username: str,
    password: str,
    source: str,
    address: str | None = None,
) -> SetupResult:
    """Save the first-run setup: settings, first administrator, audit record — all or nothing."""
    user_model = get_user_model()
    with transaction.atomic():
        row = SiteSettings.objects.select_for_update().filter(singleton=1).first()
        if row is not None and row.setup_complete:
            raise SetupAlreadyComplete("the first-run setup is already complete")
        if row is None:
            row = SiteSettings(singleton=1)
        values.apply_to(row)
        row.setup_complete = True
        row.version += 1
        row.save()
        try:
            with transaction.atomic():
                user = user_model.objects.create_superuser(
                    username=username, email="", password=password
                )
        except IntegrityError:
            raise SetupFailed(
                _("a user named %(username)s already exists") % {"username": repr(username)}
            ) from None
        group = Group.objects.filter(name=ADMINISTRATOR).first()
        if group is not None:
            user.groups.add(group)
        audit_record(
            actor=Actor(name=username, source=source, user_id=user.pk, address=address),
            action="setup",
            parameters={"administrator": username, **values.for_audit()},
        )
    return SetupResult(user_id=user.pk, username=username, settings_version=row.version)


def settings_update(state: RuntimeState, *, values: SiteValues, actor: Actor) -> SettingsChange:
    """Save changed runtime settings with their audit record, and apply them here at once."""
    with transaction.atomic():
        row = SiteSettings.objects.select_for_update().filter(singleton=1).first()
        if row is None or not row.setup_complete:
            raise SetupRequired("complete the first-run setup first")
        before = SiteValues.from_row(row)
        changes = {
            name: (getattr(before, name), getattr(values, name))
            for name in asdict(values)
            if getattr(before, name) != getattr(values, name)
        }
        if not changes:
            return SettingsChange(changes={}, settings_version=row.version)
        values.apply_to(row)
        row.version += 1
        row.save()
        audit_record(
            actor=actor,
            action="settings_change",
            parameters={
                name: {
                    "from": mask_url_password(old) if name == "redis_url" else old,
                    "to": mask_url_password(new) if name == "redis_url" else new,
                }
                for name, (old, new) in changes.items()
            },
        )
    return SettingsChange(changes=changes, settings_version=row.version)


def storage_switch_keep_session(
    state: RuntimeState, *, session: SessionStore, values: SiteValues
) -> None:
    """Carry the session of whoever switched the session storage into the new storage.

    Called after settings_update() reported ``storage_changed``: the administrator stays
    logged in (every worker's watcher swaps to the new storage within a second), and every
    other session ends, so none is left behind to revive on a later switch back. Raises
    SessionStorageUnavailable when the new storage cannot take the session (the caller
    tells them to log in again: the settings are saved either way).
    """
    # Built from the state: a memory target must be this process's own store, the one its
    # snapshot will hold once the watcher swaps, or the copied session would be lost.
    target = session_cache_build(state, kind=values.session_cache, redis_url=values.redis_url)
    session_storage_switch(session, old=session.storage, new=target)
