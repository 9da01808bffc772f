"""The login lockout: django-axes' database handler with two limits and a narrow reset.

Stock axes, configured with ``AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"],
"ip_address"]``, compares every parameter set against the one AXES_FAILURE_LIMIT and, on a
successful login with AXES_RESET_ON_SUCCESS, deletes the failures of every parameter set the
request matches: a login as any account from an address wiped the failures that address had
collected against the administrator (a brute-force bypass). This handler:

- locks a (username, address) pair after AXES_FAILURE_LIMIT failures, and an address after
  JAILADMIN_LOGIN_ADDRESS_FAILURE_LIMIT failures for any usernames — never a username alone,
  so nobody can lock the administrator out from somewhere else;
- on a successful login deletes only that username's failures from that address.
"""

from __future__ import annotations

from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


class AxesHttpRequest(HttpRequest):
    """A request as axes hands it to a handler: its proxy handler has set these first.

    Only a type: axes adds the attributes to the plain request (`update_request`).
    """

    axes_ip_address: str | None


def _failures(**filters: Any) -> int:
    total = AccessAttempt.objects.filter(**filters).aggregate(n=Sum("failures_since_start"))["n"]
    return int(total or 0)


class PairAndAddressHandler(AxesDatabaseHandler):
    """axes' database handler: lock per (username, address), and per address at a higher limit."""

    def get_failures(self, request: AxesHttpRequest, credentials: dict | None = None) -> int:
        """Failures counted against the per-pair limit; an address's are scaled to it.

        axes compares this one number with AXES_FAILURE_LIMIT (when it records a failure and
        before it lets a login through), so the address count is scaled: with the pair limit
        L and the address limit M, ``address * L // M >= L`` exactly when ``address >= M``.
        """
        limit = get_failure_limit(request, credentials)
        address_limit = max(settings.JAILADMIN_LOGIN_ADDRESS_FAILURE_LIMIT, limit)
        address = request.axes_ip_address
        recent = {}
        if settings.AXES_COOLOFF_TIME is not None:
            recent["attempt_time__gte"] = get_cool_off_threshold(request)
        username = get_client_username(request, credentials)
        pair = _failures(username=username, ip_address=address, **recent)
        from_address = _failures(ip_address=address, **recent)
        return max(pair, from_address * limit // address_limit)

    def reset_user_attempts(self, request: AxesHttpRequest, credentials: dict | None = None) -> int:
        """A successful login clears that username's failures from that address, nothing else.

        Not the address's failures for other usernames (the stock behaviour, a bypass), and
        not the username's failures from other addresses (an attacker's lockout of the pair
        (admin, their address) must outlive the administrator's own login).
        """
        username = get_client_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(
            username=username, ip_address=request.axes_ip_address
        ).delete()
        return count
