"""The filter tester and "why was this address not banned?" (issue 11, item 5).

fail2ban-regex runs on the fail2ban host (jails.agent.regex), through the state's link: in
this process in direct mode, in the agent otherwise. Nothing here changes anything, so
nothing is audited. `filter_test()` is also what `manage.py f2bconfig test` calls.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.translation import gettext, ngettext

from jails.agent.logview import printable
from jails.agent.regex import MATCHED, RegexDraft, RegexLine, RegexReport, RegexRequest
from jails.fail2ban.validation import parse_ip, validate_jail_name
from jails.services import jails as jail_service
from jails.state import RuntimeState

# What "why not banned" reads of the jail's log by default: the filter tester's cap.
EXPLAIN_LOG_LINES = 5000


@dataclass(frozen=True)
class TestedLine:
    """One line for the page: split around the captured host so it can be highlighted
    without putting markup into log text (the template escapes all three parts)."""

    number: int
    status: str
    before: str
    host: str
    after: str
    hosts: tuple[str, ...]
    time: float | None
    undated: bool


@dataclass(frozen=True)
class FilterTestResult:
    """fail2ban-regex's verdict on every line, ready to show."""

    report: RegexReport
    lines: tuple[TestedLine, ...]

    @property
    def error(self) -> str | None:
        return self.report.error

    def of_status(self, status: str) -> tuple[TestedLine, ...]:
        return tuple(line for line in self.lines if line.status == status)

    @property
    def undated(self) -> tuple[TestedLine, ...]:
        return tuple(line for line in self.lines if line.undated)


def host_split(text: str, host: str) -> tuple[str, str, str]:
    """(before, host, after): `text` cut around the host's last occurrence.

    The last one, because a log line's date and its process id come first and the address
    a filter captures is nearly always near the end ("... from 192.0.2.1 port 22").
    """
    at = text.rfind(host) if host else -1
    if at < 0:
        return text, "", ""
    return text[:at], host, text[at + len(host) :]


def tested_line(line: RegexLine) -> TestedLine:
    """A tested line for the page: fail2ban saw it raw; the page shows control characters
    (ANSI escapes, carriage returns) as visible text, as the log viewer does."""
    before, host, after = host_split(line.text, line.hosts[0] if line.hosts else "")
    return TestedLine(
        number=line.number,
        status=line.status,
        before=printable(before),
        host=printable(host),
        after=printable(after),
        hosts=line.hosts,
        time=line.time,
        undated=line.undated,
    )


def filter_test(
    state: RuntimeState,
    *,
    lines: str | None = None,
    jail: str | None = None,
    log_lines: int = 1000,
    filter_name: str | None = None,
    mode: str | None = None,
    failregex: str | None = None,
    ignoreregex: str | None = None,
    datepattern: str | None = None,
    timeout: float | None = None,
) -> FilterTestResult:
    """Run fail2ban-regex over pasted `lines` or the last `log_lines` of `jail`'s log.

    The filter is `filter_name` from filter.d (for a jail, its own name by default), with
    a draft failregex/ignoreregex/datepattern on top of it if given. A filter fail2ban
    cannot load or compile comes back as `error`; bad arguments raise InvalidArgument.
    """
    if jail is not None:
        validate_jail_name(jail)
        jail_service.jail_require(state, name=jail)
        filter_name = filter_name or jail
    request = RegexRequest(
        lines=lines,
        jail=jail,
        log_lines=log_lines,
        filter_name=filter_name or None,
        mode=mode or None,
        draft=RegexDraft(
            failregex=failregex or None,
            ignoreregex=ignoreregex or None,
            datepattern=datepattern or None,
        ),
        timeout=timeout,
        # Log dates are read as the fail2ban server reads them: in its time zone.
        time_zone=state.jail_service.server_time_zone.key,
    )
    report = state.jail_service.client.regex_test(request)
    return FilterTestResult(report, tuple(tested_line(line) for line in report.lines))


# --- Why was this address not banned? ------------------------------------------------------------
@dataclass(frozen=True)
class BanExplanation:
    """An address's lines in a jail's log against the jail's filter and its limits."""

    jail: str
    address: str
    result: FilterTestResult
    matched: tuple[TestedLine, ...]  # the filter found the address in these
    unmatched: tuple[TestedLine, ...]  # these mention it, but the filter missed/ignored them
    maxretry: int
    findtime: int
    recent: int  # matches within findtime before now
    busiest: int  # the most matches within any findtime window in the lines read
    ignored_by: str | None  # the ignoreip entry that covers the address
    banned: bool
    reasons: tuple[str, ...]


def _covering(address: str, entries: Sequence[str]) -> str | None:
    ip = ipaddress.ip_address(address)
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            continue  # a host name or a fail2ban special ("self"): not an address we can test
        if ip.version == network.version and ip in network:
            return entry
    return None


def busiest_window(times: Sequence[float], window: int) -> int:
    """The most of `times` inside any `window` seconds (fail2ban's findtime)."""
    ordered = sorted(times)
    best = start = 0
    for end, value in enumerate(ordered):
        while value - ordered[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _same_host(host: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(host) == ipaddress.ip_address(address)
    except ValueError:
        return host == address


def ban_explain(
    state: RuntimeState,
    *,
    jail: str,
    address: str,
    log_lines: int = EXPLAIN_LOG_LINES,
    filter_name: str | None = None,
    mode: str | None = None,
    now: float | None = None,
) -> BanExplanation:
    """Why `address` was (not) banned in `jail`: its log lines, the filter, maxretry/findtime."""
    ip = str(parse_ip(address))
    result = filter_test(state, jail=jail, log_lines=log_lines, filter_name=filter_name, mode=mode)
    client = state.jail_service.client
    with client.connection() as conn:
        maxretry, findtime, ignoreip, banned = conn.send_batch(
            [
                ["get", jail, "maxretry"],
                ["get", jail, "findtime"],
                ["get", jail, "ignoreip"],
                ["get", jail, "banned", ip],
            ]
        )
    maxretry, findtime = int(maxretry), int(findtime)
    matched = tuple(
        line
        for line in result.lines
        if line.status == MATCHED and any(_same_host(h, ip) for h in line.hosts)
    )
    unmatched = tuple(
        line
        for line in result.lines
        if line.status != MATCHED and ip in (line.before + line.host + line.after)
    )
    times = [line.time for line in matched if line.time is not None]
    moment = time.time() if now is None else now
    recent = sum(1 for value in times if moment - findtime <= value <= moment)
    busiest = busiest_window(times, findtime)
    ignored_by = _covering(ip, [str(entry) for entry in ignoreip or ()])
    is_banned = bool(banned) and banned not in (0, "0")
    reasons = _reasons(
        result=result,
        matched=matched,
        unmatched=unmatched,
        maxretry=maxretry,
        findtime=findtime,
        recent=recent,
        busiest=busiest,
        ignored_by=ignored_by,
        banned=is_banned,
    )
    return BanExplanation(
        jail=jail,
        address=ip,
        result=result,
        matched=matched,
        unmatched=unmatched,
        maxretry=maxretry,
        findtime=findtime,
        recent=recent,
        busiest=busiest,
        ignored_by=ignored_by,
        banned=is_banned,
        reasons=tuple(reasons),
    )


def _reasons(
    *,
    result: FilterTestResult,
    matched: Sequence[TestedLine],
    unmatched: Sequence[TestedLine],
    maxretry: int,
    findtime: int,
    recent: int,
    busiest: int,
    ignored_by: str | None,
    banned: bool,
) -> list[str]:
    # Shown on the page only (never logged or audited): worded in the request's language.
    if result.error:
        return [gettext("The filter could not be run: %(error)s") % {"error": result.error}]
    reasons = []
    if banned:
        reasons.append(gettext("It is banned in this jail now."))
    if ignored_by is not None:
        reasons.append(
            gettext("It is on the jail's ignore list (%(entry)s): fail2ban never bans it.")
            % {"entry": ignored_by}
        )
    if not matched and not unmatched:
        reasons.append(gettext("No line read from the jail's log mentions it."))
    elif not matched:
        reasons.append(
            ngettext(
                "%(count)d line mentions it, but the filter does not match it "
                "(missed or ignored): fail2ban counts no failure.",
                "%(count)d lines mention it, but the filter does not match them "
                "(missed or ignored): fail2ban counts no failure.",
                len(unmatched),
            )
            % {"count": len(unmatched)}
        )
    elif busiest < maxretry:
        reasons.append(
            # Translators: the number of matched lines (count) picks the form.
            ngettext(
                "The filter matches %(count)d line, but the most within any findtime "
                "(%(findtime)d s) is %(busiest)d; a ban needs maxretry = %(maxretry)d.",
                "The filter matches %(count)d lines, but the most within any findtime "
                "(%(findtime)d s) is %(busiest)d; a ban needs maxretry = %(maxretry)d.",
                len(matched),
            )
            % {
                "count": len(matched),
                "busiest": busiest,
                "findtime": findtime,
                "maxretry": maxretry,
            }
        )
    elif not banned and ignored_by is None:
        reasons.append(
            ngettext(
                "%(busiest)d failure fell within findtime (%(findtime)d s), enough for "
                "maxretry = %(maxretry)d: it was banned then (and the ban has ended, or was "
                "lifted), or fail2ban read this line before it watched this file.",
                "%(busiest)d failures fell within findtime (%(findtime)d s), enough for "
                "maxretry = %(maxretry)d: it was banned then (and the ban has ended, or was "
                "lifted), or fail2ban read these lines before it watched this file.",
                busiest,
            )
            % {"busiest": busiest, "findtime": findtime, "maxretry": maxretry}
        )
    if matched and recent < maxretry and busiest >= maxretry:
        reasons.append(
            ngettext(
                "Within the last findtime there is %(count)d failure.",
                "Within the last findtime there are %(count)d failures.",
                recent,
            )
            % {"count": recent}
        )
    if any(line.undated for line in matched):
        reasons.append(
            gettext("Some of its lines have no date fail2ban recognises: check the datepattern.")
        )
    if result.report.truncated:
        reasons.append(gettext("Only the end of the log was read: older lines are not counted."))
    return reasons
