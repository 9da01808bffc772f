"""The first-run setup's one-time token, its defaults, and the history sync right after the setup.

Until the setup is complete, /setup/ is open to anybody who reaches the site; whoever
completes it owns the site, and its live checks make the server connect to any socket path
or Redis URL it is given. The token proves the visitor can read the server's files (or saw
`make run`'s output): it lives in a file (mode 0600) created the first time it is needed —
not at startup, ready() does no I/O — and is deleted once the setup is complete.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from django.utils import timezone
from django.utils.translation import gettext as _

from jails.fail2ban import Fail2banError
from jails.history.geo import GeoLocator
from jails.history.services import sync as history_service
from jails.history.services.jobs import SYNC_JOB
from jails.jobs import job_acquire, job_lease_kept, runner_id
from jails.state import HistoryState, RuntimeSettings, RuntimeState, jail_service_build

logger = logging.getLogger(__name__)

TOKEN_BYTES = 32  # 256 bits: not guessable, so the wizard needs no rate limit of its own
MAX_TOKEN_CHARS = 200  # anything longer is not ours; never read more from the file either
SYNC_LEASE = timedelta(minutes=30)  # as `manage.py history_sync`


class SetupTokenError(Exception):
    """The token file cannot be created or read (the message names the file and the cause).

    Translated when raised: it is shown on /setup/ and by the setup command, never stored."""


# The token ----------------------------------------------------------------------------------------
def _token_read(path: Path) -> str | None:
    try:
        with path.open("r", encoding="ascii", errors="replace") as handle:
            text = handle.read(MAX_TOKEN_CHARS + 1).strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SetupTokenError(
            _("cannot read the setup token %(path)s: %(error)s")
            % {"path": path, "error": exc.strerror}
        ) from None
    return text or None


def setup_token_ensure(*, path: Path) -> str:
    """The setup token, created (mode 0600) if there is none yet."""
    existing = _token_read(path)
    if existing is not None:
        return existing
    token = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written in full to a private temp file, then linked into place: several workers
        # may get here at once, and link() lets exactly one win, so nobody ever reads a
        # half-written token or has theirs replaced.
        fd, temp = tempfile.mkstemp(prefix=".setup-token-", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(token + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
        finally:
            os.unlink(temp)
    except OSError as exc:
        raise SetupTokenError(
            _("cannot create the setup token %(path)s: %(error)s")
            % {"path": path, "error": exc.strerror}
        ) from None
    winner = _token_read(path)
    if winner is None:
        raise SetupTokenError(
            _("the setup token %(path)s vanished while it was created") % {"path": path}
        )
    return winner


def setup_token_valid(*, path: Path, given: str) -> bool:
    """True if ``given`` is the stored token (compared in constant time)."""
    given = (given or "").strip()
    if not given or len(given) > MAX_TOKEN_CHARS:
        return False
    stored = _token_read(path)
    if stored is None:
        return False
    return hmac.compare_digest(given.encode(), stored.encode())


def setup_token_delete(*, path: Path) -> None:
    """Remove the token: the setup is complete and the token must never work again."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        # The setup is saved whatever happens here, and a complete setup refuses every
        # token anyway; an operator should still remove the file.
        logger.warning("could not delete the setup token %s: %s", path, exc)


# The defaults -------------------------------------------------------------------------------------
def setup_initial(seeds: RuntimeSettings) -> dict[str, object]:
    """The setup's defaults (the wizard's initial values, the command's unset options): the
    JAILADMIN_* seed values, keyed by the setup form's field names."""
    return {
        "fail2ban_socket": seeds.fail2ban_socket,
        "fail2ban_agent": seeds.fail2ban_agent,
        "display_time_zone": seeds.display_time_zone,
        "session_lifetime_seconds": seeds.session_lifetime_seconds,
        "session_cache": seeds.session_cache,
        "redis_url": seeds.redis_url,
        "history_retention_days": seeds.history_retention_days,
    }


# The first sync -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SetupSync:
    """What the sync right after the setup did: ok, or why it is left to the job runner."""

    ok: bool
    archived: int = 0
    reason: str = ""  # for the page or the command's output: never stored


def setup_history_sync(
    state: RuntimeState, *, fail2ban_socket: str, fail2ban_agent: str = ""
) -> SetupSync:
    """Archive the bans fail2ban holds now, so the dashboard shows them at once; never raises
    for fail2ban's sake (the setup is saved already; the job runner syncs again anyway)."""
    # The saved socket, not the state's: this process applies the saved settings only on its
    # watcher's next tick. A throw-away geo locator: the archive needs each event's country
    # once, but a web worker must not keep ~100 MB of geo data for the rest of its life.
    settings = state.settings
    geo = GeoLocator(mmdb_path=settings.geoip_db or None)
    sync_settings = replace(
        settings, fail2ban_socket=fail2ban_socket, fail2ban_agent=fail2ban_agent
    )
    sync_state = replace(
        state,
        snapshot=replace(
            state.snapshot, settings=sync_settings, jail_service=jail_service_build(sync_settings)
        ),
        history=HistoryState(geo=geo),
    )
    owner = "setup:" + runner_id()
    # The job runner's lease: two syncs at once would archive the same rows twice over.
    if not job_acquire(
        name=SYNC_JOB, owner=owner, now=timezone.now(), lease=SYNC_LEASE, when_due=False
    ):
        return SetupSync(ok=False, reason=_("the job runner is syncing right now"))
    try:
        with job_lease_kept(name=SYNC_JOB, owner=owner) as outcome:
            try:
                result = history_service.history_sync(sync_state)
            except (Fail2banError, history_service.HistoryError) as exc:
                outcome.failed(str(exc))
                logger.warning("ban history sync after the setup failed: %s", exc)
                return SetupSync(ok=False, reason=str(exc))
            outcome.succeeded(result.message)
            return SetupSync(ok=True, archived=result.archived)
    finally:
        geo.close()
        sync_state.jail_service.client.close()  # an agent link's connections, not kept
