"""fail2ban's own log for the log viewer (issue 11, item 6).

Read on the fail2ban host (jails.agent.logview) through the state's link: the file its
`logtarget` names, or the journal of fail2ban.service; never a path the site chooses.
Lines come back as printable text (control characters made visible); the page escapes them.
"""

from __future__ import annotations

from jails.agent.logview import LEVELS, LogTail
from jails.state import RuntimeState

DEFAULT_LINES = 200
# Levels offered as "at least": fail2ban's debug levels below DEBUG are not worth a choice.
LEVEL_CHOICES = tuple(name for name, value in LEVELS.items() if value >= LEVELS["DEBUG"])


def log_tail(
    state: RuntimeState,
    *,
    lines: int = DEFAULT_LINES,
    level: str | None = None,
    search: str | None = None,
    cursor: str | None = None,
) -> LogTail:
    """The last `lines` lines of fail2ban's log at `level` or above containing `search`
    (a plain, case-blind substring), or with `cursor` only the lines written since."""
    return state.jail_service.client.log_tail(
        lines=lines, level=level or None, search=search or None, cursor=cursor or None
    )
