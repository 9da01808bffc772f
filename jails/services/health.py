"""The health check behind /healthz: fail2ban and the session storage answer, or not."""

from __future__ import annotations

from jails.fail2ban import Fail2banError
from jails.sessions import SessionStorageUnavailable
from jails.state import RuntimeState


def health_check(state: RuntimeState) -> bool:
    """True when fail2ban answers `ping` and the session storage answers; never raises for
    either (a load balancer needs a yes or a no, not the reason)."""
    try:
        state.jail_service.client.send("ping")
        state.session_cache.check()
    except (Fail2banError, SessionStorageUnavailable):
        return False
    return True
