"""System checks (`manage.py check`): is the fail2ban socket usable?"""

from __future__ import annotations

import os
import stat
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register


@register(Tags.compatibility, deploy=False)
def fail2ban_socket_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """jails.E001: socket missing; jails.E002: not a socket; jails.W003: not accessible."""
    from jails.apps import runtime_state

    path = runtime_state().settings.fail2ban_socket
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
