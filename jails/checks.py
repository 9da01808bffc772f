"""System checks (`manage.py check`): is the fail2ban socket usable (jails.E001-E003, W001),
and does the session storage suit the workers and answer (jails.E010, E011, W012)?

They check the stored runtime settings, which a process may not have loaded yet when
the checks run (jails.runtime.runtime_snapshot_stored reads them without installing them).
"""

from __future__ import annotations

import os
import stat
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from jails.runtime import runtime_snapshot_stored
from jails.session_storage import MEMORY, REDIS, SessionStorageUnavailable
from jails.state import runtime_state


@register(Tags.compatibility, deploy=False)
def fail2ban_socket_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """jails.E001: socket missing; jails.E002: not a socket; jails.W003: not accessible.

    In agent mode fail2ban's socket is the agent's business (this process should not even
    be able to open it); jails.W004 then says when the agent's own socket is missing.
    """
    settings = runtime_snapshot_stored(runtime_state()).settings
    if settings.fail2ban_agent:
        agent_path = settings.fail2ban_agent.removeprefix("unix:")
        if not os.path.exists(agent_path):
            return [
                Warning(
                    f"the jailadmin agent's socket {agent_path} does not exist",
                    hint="Start the agent (systemctl enable --now jailadmin-agent.socket, or "
                    "python -m jails.agent --listen unix:PATH), or clear the agent setting.",
                    id="jails.W004",
                )
            ]
        return []
    path = settings.fail2ban_socket
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return [
            Warning(
                f"fail2ban socket {path} does not exist",
                hint="Start fail2ban, set JAILADMIN_FAIL2BAN_SOCKET, "
                "or run `manage.py demo_fail2ban start`.",
                id="jails.W001",
            )
        ]
    except OSError as exc:
        return [Error(f"fail2ban socket {path} cannot be read: {exc}", id="jails.E001")]
    if not stat.S_ISSOCK(info.st_mode):
        return [Error(f"{path} is not a socket", id="jails.E002")]
    if not os.access(path, os.R_OK | os.W_OK):
        return [
            Error(
                f"this process (uid {os.getuid()}) may not connect to {path}",
                hint="Run the web process as the socket's owner or group, or use the proxy.",
                id="jails.E003",
            )
        ]
    return []


@register(Tags.compatibility)
def session_storage_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """jails.E010 memory with several workers; E011 Redis without URL; W012 unreachable."""
    snap = runtime_snapshot_stored(runtime_state())
    settings = snap.settings
    if settings.session_cache == MEMORY and settings.web_workers > 1:
        return [
            Error(
                f"session storage is process memory, but JAILADMIN_WORKERS is "
                f"{settings.web_workers}: every worker would have its own sessions",
                hint="Use the database or Redis session storage (on /settings/ or "
                "JAILADMIN_SESSION_CACHE before setup), or set JAILADMIN_WORKERS=1.",
                id="jails.E010",
            )
        ]
    if settings.session_cache == REDIS and not settings.redis_url:
        return [
            Error(
                "session storage is Redis, but no Redis URL is set",
                hint="Set JAILADMIN_REDIS_URL (before setup) or the Redis URL on /settings/.",
                id="jails.E011",
            )
        ]
    if settings.session_cache == REDIS:
        try:
            snap.session_cache.check()
        except SessionStorageUnavailable as exc:
            return [
                Warning(
                    f"the Redis session storage at {snap.session_cache.location} does not "
                    f"answer: {exc.reason}",
                    hint="Pages answer 503 until Redis is reachable again.",
                    id="jails.W012",
                )
            ]
    return []
