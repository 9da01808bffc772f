"""The rules: read what the archive gained since the last run and queue what is worth a message.

Run by the `notify-evaluate` job only (one runner at a time: the job's lease), never in a
request. Each rule keeps a cursor into the archive (BanEvent.id). That is safe on PostgreSQL
too: only the history sync inserts archive rows, one runner at a time (its own lease), and
each of its transactions starts after the previous one committed, so a row that becomes
visible later always has a higher id than every row visible now. It also keeps a small
memory (when fail2ban went down, when each key last fired, which digest was sent), saved in
the same transaction as the messages it queues: a run that dies leaves neither half.

Grouping and rate limit: a rule makes at most one message per run, and none while its rate
limit holds; events that arrive meanwhile stay behind the cursor and go into the next message
(10 000 bans from an import make one message that counts them and lists the top few).

`now` is an argument everywhere: the tests drive time with it instead of sleeping.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Min, Q, QuerySet
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext, gettext_noop, ngettext

from jails.fail2ban import Fail2banError
from jails.history.models import BanEvent
from jails.hosts.models import LOCAL_HOST
from jails.hosts.services import fleet
from jails.notifications.models import PendingEvent, Rule
from jails.notifications.services.delivery import DeliveryConfig, outbox_add
from jails.notifications.services.messages import MAX_ROWS, Message, Table
from jails.services.health import connection_problem
from jails.state import RuntimeState

logger = logging.getLogger(__name__)

PENDING_KEEP = timedelta(days=7)  # reported events are kept this long after the rules read them
EVENT_BLOCKLIST_FAILED = "blocklist_import_failed"
DAY = 86400

# Each kind's parameters and their defaults (the form and `notify rules --json` show these).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    Rule.Kind.BURST: {"threshold": 100, "minutes": 10, "per_jail": False},
    Rule.Kind.REPEAT: {"days": 7, "min_jails": 0},
    Rule.Kind.ORIGIN: {"countries": [], "networks": []},
    Rule.Kind.DOWN: {"minutes": 5},
    Rule.Kind.BLOCKLIST: {},
    Rule.Kind.DIGEST: {"period": "daily"},
}


def rule_params(rule: Rule) -> dict[str, Any]:
    """The rule's parameters with the defaults of its kind filled in."""
    return {**DEFAULT_PARAMS.get(rule.kind, {}), **(rule.params or {})}


@dataclass(frozen=True)
class Firing:
    """A message a rule wants sent, with the key that makes it unique in the outbox."""

    key: str
    message: Message


@dataclass
class RuleRun:
    """What one rule's evaluation decided: messages, and its cursor and memory afterwards."""

    firings: list[Firing] = field(default_factory=list)
    cursor: int | None = None  # None: leave the cursor where it is
    memory: dict[str, Any] | None = None


@dataclass
class EvaluateResult:
    rules: int = 0
    fired: int = 0
    queued: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        text = f"{self.rules} rules, {self.fired} fired, {self.queued} messages queued"
        return text + (f"; errors: {'; '.join(self.errors)}" if self.errors else "")


@dataclass
class _Context:
    """What every rule of one run shares: the time, the newest archived id, the site URL."""

    state: RuntimeState
    now: datetime
    top_id: int
    site_url: str

    @property
    def now_ts(self) -> int:
        return int(self.now.timestamp())

    def new_rows(self, after: int) -> QuerySet[BanEvent]:
        """The archived bans with id in (after, top_id], as a query (for SQL to aggregate)."""
        return BanEvent.objects.filter(id__gt=after, id__lte=self.top_id).order_by()

    def link(self, name: str, query: str = "") -> str:
        if not self.site_url:
            return ""
        return self.site_url.rstrip("/") + reverse(name) + query


def _rate_limited(rule: Rule, memory: dict[str, Any], key: str, now: datetime) -> bool:
    fired = memory.get("fired", {}).get(key)
    if not fired or not rule.rate_limit_minutes:
        return False
    return now < datetime.fromisoformat(fired) + timedelta(minutes=rule.rate_limit_minutes)


def _mark_fired(memory: dict[str, Any], key: str, now: datetime) -> None:
    memory.setdefault("fired", {})[key] = now.isoformat()


# Table headers are also the keys of a webhook's rows: English, translated only when shown.
HEADERS_ADDRESS_BANS = (gettext_noop("address"), gettext_noop("bans"))
HEADERS_JAIL_BANS = (gettext_noop("jail"), gettext_noop("bans"))


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- Ban burst ------------------------------------------------------------------------------------
def _burst(rule: Rule, ctx: _Context, memory: dict[str, Any]) -> RuleRun:
    params = rule_params(rule)
    threshold, minutes = int(params["threshold"]), int(params["minutes"])
    per_jail = bool(params["per_jail"])
    run = RuleRun(cursor=ctx.top_id, memory=memory)
    if ctx.top_id <= rule.cursor:
        return run
    since = ctx.now_ts - minutes * 60
    window = BanEvent.objects.filter(timeofban__gte=since, timeofban__lte=ctx.now_ts).order_by()
    if per_jail:
        jails = sorted(ctx.new_rows(rule.cursor).values_list("jail", flat=True).distinct())
        counts = dict(
            window.filter(jail__in=jails)
            .values_list("jail")
            .annotate(n=Count("id"))
            .values_list("jail", "n")
        )
        over = {f"jail:{jail}": jail for jail in jails if counts.get(jail, 0) >= threshold}
    else:
        total = window.count()
        counts = {"": total}
        over = {"all": ""} if total >= threshold else {}
    # Every jail over the threshold in this run goes into one message (not one per jail).
    keys = [key for key in over if not _rate_limited(rule, memory, key, ctx.now)]
    if not keys:
        return run
    jails_over = [over[key] for key in keys if over[key]]
    scope = window.filter(jail__in=jails_over) if per_jail else window
    count = sum(counts[over[key]] for key in keys)
    # Address and count only: (timeofban, ip) is an index, so SQLite never reads the rows.
    top_ips = list(scope.values_list("ip").annotate(n=Count("id")).order_by("-n", "ip")[:MAX_ROWS])
    by_jail: list[tuple[object, ...]] = (
        [(jail, -n) for n, jail in sorted((-counts[j], j) for j in jails_over)]
        if per_jail
        else list(scope.values_list("jail").annotate(n=Count("id")).order_by("-n", "jail"))
    )
    # Titles and summaries are worded when the message is built (the runner: the site's
    # language); labels and headers stay English here and are translated when rendered, so
    # a webhook's JSON keys do not depend on the language (jails.notifications.services.messages).
    if not per_jail:
        where = gettext("all jails")
    elif len(jails_over) == 1:
        where = gettext("jail %(jail)s") % {"jail": jails_over[0]}
    else:
        where = ngettext("%(count)s jail", "%(count)s jails", len(jails_over)) % {
            "count": len(jails_over)
        }
    figures = {"count": count, "minutes": minutes, "where": where, "threshold": threshold}
    if per_jail:
        summary = ngettext(
            "%(count)s ban in the last %(minutes)s minutes (threshold %(threshold)s per jail).",
            "%(count)s bans in the last %(minutes)s minutes (threshold %(threshold)s per jail).",
            count,
        )
    else:
        summary = ngettext(
            "%(count)s ban in the last %(minutes)s minutes (threshold %(threshold)s).",
            "%(count)s bans in the last %(minutes)s minutes (threshold %(threshold)s).",
            count,
        )
    message = Message(
        event="burst",
        title=ngettext(
            "Ban burst: %(count)s ban in %(minutes)s min (%(where)s)",
            "Ban burst: %(count)s bans in %(minutes)s min (%(where)s)",
            count,
        )
        % figures,
        summary=summary % figures,
        facts=(
            (gettext_noop("Rule"), rule.name),
            (gettext_noop("Scope"), where),
            (gettext_noop("Since"), _when(since)),
        ),
        tables=(
            Table.of(gettext_noop("Top addresses"), HEADERS_ADDRESS_BANS, top_ips),
            Table.of(gettext_noop("By jail"), HEADERS_JAIL_BANS, by_jail),
        ),
        link=ctx.link("jails:history", "?window=24h"),
        data={"count": count, "jails": jails_over, "minutes": minutes},
    )
    run.firings.append(Firing(f"burst:{','.join(keys)}:{ctx.now_ts // 60}"[:150], message))
    for key in keys:
        _mark_fired(memory, key, ctx.now)
    return run


# --- Repeat offenders -----------------------------------------------------------------------------
def _repeat(rule: Rule, ctx: _Context, memory: dict[str, Any]) -> RuleRun:
    if _rate_limited(rule, memory, "all", ctx.now):
        return RuleRun()  # cursor held: these events go into the next message
    params = rule_params(rule)
    days, min_jails = int(params["days"]), int(params["min_jails"])
    run = RuleRun(cursor=ctx.top_id, memory=memory)
    if ctx.top_id <= rule.cursor:
        return run
    new = ctx.new_rows(rule.cursor)
    first = new.aggregate(first=Min("timeofban"))["first"]
    # "Within D days" counts from the earliest of the new bans (a run covers about a minute).
    since = int(first or ctx.now_ts) - days * DAY
    # One query: the new bans' addresses as a subquery (no parameter list), counted by SQLite
    # over the (ip, jail, timeofban) index, and only the offenders come back (HAVING).
    again = Q(recent__gte=2) | Q(jails__gte=min_jails) if min_jails > 1 else Q(recent__gte=2)
    offenders: list[tuple[str, int, int]] = list(
        BanEvent.objects.filter(ip__in=new.values("ip"), id__lte=ctx.top_id)
        .order_by()
        .values_list("ip")
        .annotate(
            recent=Count("id", filter=Q(timeofban__gte=since)),
            jails=Count("jail", distinct=True),
        )
        .filter(again)
        .values_list("ip", "recent", "jails")
    )
    if not offenders:
        return run
    offenders.sort(key=lambda o: (-o[1], -o[2], o[0]))
    shown = offenders[:MAX_ROWS]
    jail_names: dict[str, set[str]] = defaultdict(set)
    for ip, jail in (
        BanEvent.objects.filter(ip__in=[o[0] for o in shown], id__lte=ctx.top_id)
        .order_by()
        .values_list("ip", "jail")
        .distinct()
    ):
        jail_names[ip].add(jail)
    country = dict(
        new.filter(ip__in=[o[0] for o in shown]).values_list("ip", "country_code").distinct()
    )
    rows_out: list[tuple[object, ...]] = [
        (ip, recent, ", ".join(sorted(jail_names[ip])), country.get(ip, ""))
        for ip, recent, _ in shown
    ]
    figures = {"count": len(offenders), "days": days, "min_jails": min_jails}
    if min_jails > 1:
        summary = ngettext(
            "%(count)s address banned more than once within %(days)s days or in "
            "%(min_jails)s or more jails.",
            "%(count)s addresses banned more than once within %(days)s days or in "
            "%(min_jails)s or more jails.",
            len(offenders),
        )
    else:
        summary = ngettext(
            "%(count)s address banned more than once within %(days)s days.",
            "%(count)s addresses banned more than once within %(days)s days.",
            len(offenders),
        )
    message = Message(
        event="repeat",
        title=ngettext(
            "Repeat offenders: %(count)s address banned again",
            "Repeat offenders: %(count)s addresses banned again",
            len(offenders),
        )
        % figures,
        summary=summary % figures,
        facts=((gettext_noop("Rule"), rule.name),),
        tables=(
            Table(
                gettext_noop("Offenders"),
                (
                    gettext_noop("address"),
                    gettext_noop("bans"),
                    gettext_noop("jails"),
                    gettext_noop("country"),
                ),
                Table.of("", ("",), rows_out).rows,
                more=len(offenders) - len(shown),
            ),
        ),
        link=ctx.link("jails:history"),
        data={"count": len(offenders)},
    )
    run.firings.append(Firing(f"repeat:{rule.cursor}-{ctx.top_id}", message))
    _mark_fired(memory, "all", ctx.now)
    return run


# --- Countries and networks -----------------------------------------------------------------------
def _ranges(networks: Iterable[str]) -> list[tuple[int, int, int]]:
    """Networks as (version, first, last) integers: 10 000 checks without ip_network objects."""
    out: list[tuple[int, int, int]] = []
    for text in networks:
        net = ipaddress.ip_network(text, strict=False)
        out.append((net.version, int(net.network_address), int(net.broadcast_address)))
    return out


def _span(ip: str) -> tuple[int, int, int] | None:
    # inet_pton is ten times cheaper than ipaddress for the plain addresses most bans are.
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        try:
            value = int.from_bytes(socket.inet_pton(family, ip), "big")
        except OSError:
            continue
        return version, value, value
    try:  # a banned network (CIDR)
        net = ipaddress.ip_network(ip, strict=False)
    except ValueError:
        return None
    return net.version, int(net.network_address), int(net.broadcast_address)


def _origin(rule: Rule, ctx: _Context, memory: dict[str, Any]) -> RuleRun:
    if _rate_limited(rule, memory, "all", ctx.now):
        return RuleRun()
    params = rule_params(rule)
    countries = {str(c).upper() for c in params["countries"]}
    ranges = _ranges(params["networks"])
    run = RuleRun(cursor=ctx.top_id, memory=memory)

    def in_ranges(ip: str) -> bool:
        span = _span(ip)
        return span is not None and any(
            span[0] == version and first <= span[1] and span[2] <= last
            for version, first, last in ranges
        )

    new = ctx.new_rows(rule.cursor)
    # The watched countries: SQLite picks them out. Tuples, not dicts, and only the rows the
    # countries left to the networks' test: a burst is 10 000 rows, each one costs the runner.
    fields = ("ip", "jail", "country_code")
    hits: list[tuple[str, str, str]] = (
        list(new.filter(country_code__in=sorted(countries)).values_list(*fields))
        if countries
        else []
    )
    if ranges:
        rest = new.exclude(country_code__in=sorted(countries)) if countries else new
        hits += [row for row in rest.values_list(*fields) if in_ranges(row[0])]
    if not hits:
        return run
    per_ip = Counter(ip for ip, _, _ in hits)
    where = {ip: (country, jail) for ip, jail, country in hits}
    rows: list[tuple[object, ...]] = [
        (ip, n, where[ip][0], where[ip][1]) for ip, n in per_ip.most_common(MAX_ROWS)
    ]
    message = Message(
        event="origin",
        title=ngettext(
            "%(count)s ban from watched countries or networks",
            "%(count)s bans from watched countries or networks",
            len(hits),
        )
        % {"count": len(hits)},
        # Translators: count (the number of bans) picks the form; addresses is "3 addresses",
        # translated on its own with its own plural.
        summary=ngettext(
            "%(count)s ban matched rule %(rule)s (%(addresses)s).",
            "%(count)s bans matched rule %(rule)s (%(addresses)s).",
            len(hits),
        )
        % {
            "count": len(hits),
            "addresses": ngettext("%(addresses)s address", "%(addresses)s addresses", len(per_ip))
            % {"addresses": len(per_ip)},
            "rule": rule.name,
        },
        facts=(
            (gettext_noop("Countries"), ", ".join(sorted(countries)) or "—"),
            (gettext_noop("Networks"), ", ".join(params["networks"]) or "—"),
        ),
        tables=(
            Table(
                gettext_noop("Addresses"),
                (
                    gettext_noop("address"),
                    gettext_noop("bans"),
                    gettext_noop("country"),
                    gettext_noop("jail"),
                ),
                Table.of("", ("",), rows).rows,
                more=len(per_ip) - len(rows),
            ),
        ),
        link=ctx.link("jails:history"),
        data={"count": len(hits)},
    )
    run.firings.append(Firing(f"origin:{rule.cursor}-{ctx.top_id}", message))
    _mark_fired(memory, "all", ctx.now)
    return run


# --- fail2ban unreachable -------------------------------------------------------------------------
def fail2ban_problem(state: RuntimeState) -> str | None:
    """None when fail2ban answers `ping`; else a short label (never a path or exception text)."""
    snap = state.snapshot
    try:
        snap.jail_service.client.send("ping")
    except Fail2banError as exc:
        return connection_problem(exc, agent=snap.settings.fail2ban_agent).label
    return None


def hosts_problems(state: RuntimeState) -> dict[str, str | None]:
    """Every enabled host's problem (None: fail2ban answers), all pinged at once, each within
    the per-host deadline; the reachability goes on the host rows as the pages record it."""
    fleet.local_host()  # the local host's row exists (a flushed or hand-edited table)
    outcomes = fleet.fleet_map(
        fleet.scopes_list(state), fail2ban_problem, deadline=state.settings.host_deadline
    )
    problems: dict[str, str | None] = {}
    for outcome in outcomes:
        if outcome.timed_out:
            problems[outcome.name] = f"no answer within {state.settings.host_deadline:g} s"
        elif not outcome.ok:
            # Not the error's text: it may name paths or addresses on this side.
            problems[outcome.name] = "host unreachable"
        else:
            problems[outcome.name] = outcome.value
    return problems


def _host_memory(memory: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each host's outage memory ({"down_since", "down_notified"}), by host name.

    A rule saved before the fleet kept the one fail2ban's at the top level: that is the
    local host's, moved under "hosts" the first time it is read."""
    hosts: dict[str, dict[str, Any]] = memory.setdefault("hosts", {})
    legacy = {key: memory.pop(key) for key in ("down_since", "down_notified") if key in memory}
    if legacy:
        hosts.setdefault(LOCAL_HOST, {}).update(legacy)
    return hosts


def _down(
    rule: Rule, ctx: _Context, memory: dict[str, Any], problems: dict[str, str | None]
) -> RuleRun:
    minutes = int(rule_params(rule)["minutes"])
    run = RuleRun(memory=memory)
    hosts = _host_memory(memory)
    # A single-host site keeps its messages as they always were; with other hosts every
    # message names its host.
    named = set(problems) != {LOCAL_HOST}
    for gone in set(hosts) - set(problems):
        hosts.pop(gone)  # removed or disabled: no longer watched, nothing to recover from
    for host, problem in problems.items():
        firing = _host_down(host, problem, hosts, ctx=ctx, minutes=minutes, named=named)
        if firing is not None:
            run.firings.append(firing)
    return run


def _host_down(
    host: str,
    problem: str | None,
    hosts: dict[str, dict[str, Any]],
    *,
    ctx: _Context,
    minutes: int,
    named: bool,
) -> Firing | None:
    """One host's outage: "down" once it lasted `minutes`, "recovered" when it ends."""
    memory = hosts.get(host, {})
    since = memory.get("down_since")
    key = f"{host}:" if named else ""
    facts: tuple[tuple[str, str], ...] = ((gettext_noop("Host"), host),) if named else ()
    if problem is not None:
        if since is None:
            hosts[host] = {"down_since": ctx.now.isoformat()}
            return None
        started = datetime.fromisoformat(since)
        if memory.get("down_notified") or ctx.now - started < timedelta(minutes=minutes):
            return None
        memory["down_notified"] = True
        return Firing(
            f"down:{key}{started.isoformat()}",
            Message(
                event="down",
                title=(
                    gettext("fail2ban on %(host)s unreachable for %(minutes)s+ minutes")
                    if named
                    else gettext("fail2ban unreachable for %(minutes)s+ minutes")
                )
                % {"host": host, "minutes": minutes},
                summary=(
                    gettext("fail2ban on %(host)s has not answered since %(since)s UTC.")
                    if named
                    else gettext("fail2ban has not answered since %(since)s UTC.")
                )
                % {"host": host, "since": f"{started:%Y-%m-%d %H:%M}"},
                facts=(
                    *facts,
                    (gettext_noop("Problem"), problem),
                    (gettext_noop("Since"), f"{started:%Y-%m-%d %H:%M:%S} UTC"),
                ),
                link=ctx.link("jails:dashboard"),
                data={"down_since": started.isoformat(), **({"host": host} if named else {})},
            ),
        )
    if since is None:
        return None
    hosts.pop(host, None)
    if not memory.get("down_notified"):
        return None  # a short outage: nothing was said, nothing to take back
    started = datetime.fromisoformat(since)
    lasted = ctx.now - started
    return Firing(
        f"recovered:{key}{started.isoformat()}",
        Message(
            event="recovered",
            title=(
                gettext("fail2ban on %(host)s answers again")
                if named
                else gettext("fail2ban answers again")
            )
            % {"host": host},
            summary=(
                gettext("fail2ban on %(host)s was unreachable for %(minutes)s min.")
                if named
                else gettext("fail2ban was unreachable for %(minutes)s min.")
            )
            % {"host": host, "minutes": int(lasted.total_seconds() // 60)},
            facts=(
                *facts,
                (gettext_noop("Down since"), f"{started:%Y-%m-%d %H:%M:%S} UTC"),
                (gettext_noop("Back at"), f"{ctx.now:%Y-%m-%d %H:%M:%S} UTC"),
            ),
            link=ctx.link("jails:dashboard"),
            data={
                "down_since": started.isoformat(),
                "recovered_at": ctx.now.isoformat(),
                **({"host": host} if named else {}),
            },
        ),
    )


# --- Blocklist imports failing --------------------------------------------------------------------
def _blocklist(rule: Rule, ctx: _Context, memory: dict[str, Any]) -> RuleRun:
    if _rate_limited(rule, memory, "all", ctx.now):
        return RuleRun()
    after = int(memory.get("event_cursor", 0))
    events = list(
        PendingEvent.objects.filter(kind=EVENT_BLOCKLIST_FAILED, id__gt=after).order_by("id")[:1000]
    )
    run = RuleRun(memory=memory)
    if not events:
        return run
    memory["event_cursor"] = events[-1].pk
    rows: list[tuple[object, ...]] = [
        (e.payload.get("blocklist", "?"), e.payload.get("error", "?"), _when_dt(e.created_at))
        for e in events
    ]
    message = Message(
        event="blocklist_failed",
        title=ngettext(
            "Blocklist import failing (%(count)s failure)",
            "Blocklist import failing (%(count)s failures)",
            len(events),
        )
        % {"count": len(events)},
        summary=ngettext(
            "%(count)s blocklist import failed since the last message.",
            "%(count)s blocklist imports failed since the last message.",
            len(events),
        )
        % {"count": len(events)},
        tables=(
            Table.of(
                gettext_noop("Failures"),
                (gettext_noop("blocklist"), gettext_noop("error"), gettext_noop("when")),
                rows,
            ),
        ),
        data={"count": len(events)},
    )
    run.firings.append(Firing(f"blocklist:{after}-{events[-1].pk}", message))
    _mark_fired(memory, "all", ctx.now)
    return run


def _when_dt(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- Digest ---------------------------------------------------------------------------------------
def digest_period(now: datetime, period: str) -> tuple[int, int]:
    """The last complete period before `now` (UTC day, or ISO week from Monday), Unix seconds."""
    day_start = int(now.timestamp()) // DAY * DAY
    if period == "weekly":
        weekday = datetime.fromtimestamp(day_start, tz=UTC).weekday()
        end = day_start - weekday * DAY
        return end - 7 * DAY, end
    return day_start - DAY, day_start


def _digest(rule: Rule, ctx: _Context, memory: dict[str, Any]) -> RuleRun:
    period = str(rule_params(rule)["period"])
    start, end = digest_period(ctx.now, period)
    run = RuleRun(memory=memory)
    sent = memory.get("sent_period")
    if sent is None:
        # A new rule starts with the next complete period, not a digest of the past.
        memory["sent_period"] = start
        return run
    if int(sent) >= start:
        return run
    memory["sent_period"] = start
    scope = BanEvent.objects.filter(timeofban__gte=start, timeofban__lt=end).order_by()
    total = scope.count()
    by_jail = list(scope.values_list("jail").annotate(n=Count("id")).order_by("-n", "jail"))
    countries = list(
        scope.exclude(country_code="")
        .values_list("country_code")
        .annotate(n=Count("id"))
        .order_by("-n", "country_code")[:10]
    )
    offenders = list(scope.values_list("ip").annotate(n=Count("id")).order_by("-n", "ip")[:10])
    if period != "weekly":
        title = ngettext("Daily digest: %(count)s ban", "Daily digest: %(count)s bans", total)
    else:
        title = ngettext("Weekly digest: %(count)s ban", "Weekly digest: %(count)s bans", total)
    message = Message(
        event="digest",
        title=title % {"count": total},
        summary=ngettext(
            "%(count)s ban from %(start)s to %(end)s.",
            "%(count)s bans from %(start)s to %(end)s.",
            total,
        )
        % {"count": total, "start": _when(start), "end": _when(end)},
        facts=((gettext_noop("Rule"), rule.name),),
        tables=(
            Table.of(gettext_noop("Bans per jail"), HEADERS_JAIL_BANS, by_jail),
            Table.of(
                gettext_noop("Top countries"),
                (gettext_noop("country"), gettext_noop("bans")),
                countries,
            ),
            Table.of(gettext_noop("Top offenders"), HEADERS_ADDRESS_BANS, offenders),
        ),
        link=ctx.link("jails:dashboard"),
        data={"count": total, "start": start, "end": end},
    )
    run.firings.append(Firing(f"digest:{period}:{start}", message))
    return run


# --- The run --------------------------------------------------------------------------------------
def _evaluate_one(
    rule: Rule, ctx: _Context, problems: Callable[[], dict[str, str | None]]
) -> RuleRun:
    memory = dict(rule.memory or {})
    if rule.kind == Rule.Kind.BURST:
        return _burst(rule, ctx, memory)
    if rule.kind == Rule.Kind.REPEAT:
        return _repeat(rule, ctx, memory)
    if rule.kind == Rule.Kind.ORIGIN:
        return _origin(rule, ctx, memory)
    if rule.kind == Rule.Kind.DOWN:
        return _down(rule, ctx, memory, problems())
    if rule.kind == Rule.Kind.BLOCKLIST:
        return _blocklist(rule, ctx, memory)
    if rule.kind == Rule.Kind.DIGEST:
        return _digest(rule, ctx, memory)
    return RuleRun()


def _subscribers(rule: Rule) -> list[tuple[int, str]]:
    return [(user.pk, user.email) for user in rule.subscribers.all() if user.is_active]


def rules_evaluate(
    state: RuntimeState,
    *,
    now: datetime,
    config: DeliveryConfig,
    rules: Sequence[Rule] | None = None,
) -> EvaluateResult:
    """Evaluate every enabled rule (or `rules`) once and queue their messages in the outbox.

    Messages are worded in the site's language (settings.LANGUAGE_CODE), whoever runs this:
    the job runner, a command, or a test under another active language."""
    with translation.override(settings.LANGUAGE_CODE):
        return _rules_evaluate(state, now=now, config=config, rules=rules)


def _rules_evaluate(
    state: RuntimeState,
    *,
    now: datetime,
    config: DeliveryConfig,
    rules: Sequence[Rule] | None,
) -> EvaluateResult:
    result = EvaluateResult()
    top_id = BanEvent.objects.aggregate(top=Max("id"))["top"] or 0
    ctx = _Context(state=state, now=now, top_id=top_id, site_url=config.site_url)
    probed: list[dict[str, str | None]] = []

    def problems() -> dict[str, str | None]:
        if not probed:  # one ping per host per run, however many "down" rules there are
            probed.append(hosts_problems(state))
        return probed[0]

    todo: Iterable[Rule] = (
        rules
        if rules is not None
        else Rule.objects.filter(enabled=True).prefetch_related("channels", "subscribers")
    )
    for rule in todo:
        result.rules += 1
        try:
            run = _evaluate_one(rule, ctx, problems)
            with transaction.atomic():
                channels = list(rule.channels.all())
                subscribers = _subscribers(rule)
                for firing in run.firings:
                    result.queued += outbox_add(
                        rule=rule,
                        key=firing.key,
                        message=firing.message,
                        channels=channels,
                        subscriber_emails=subscribers,
                        now=now,
                    )
                changes: dict[str, Any] = {}
                if run.cursor is not None:
                    changes["cursor"] = run.cursor
                if run.memory is not None:
                    changes["memory"] = run.memory
                if run.firings:
                    changes["last_fired_at"] = now
                    result.fired += 1
                if changes:
                    Rule.objects.filter(pk=rule.pk).update(**changes)
        except Exception as exc:  # one broken rule must not keep the others from running
            logger.exception("notification rule %s failed", rule.name)
            result.errors.append(f"{rule.name}: {type(exc).__name__}")
    PendingEvent.objects.filter(created_at__lt=now - PENDING_KEEP).delete()
    return result


_URL_USERINFO = re.compile(r"//[^/@\s]+@")
_LOCAL_PATH = re.compile(r"(?<![\w:/.])/[\w.\-/]+")


def scrub(text: str) -> str:
    """A reported error without credentials in URLs or paths on this host (messages leave it)."""
    return _LOCAL_PATH.sub("<path>", _URL_USERINFO.sub("//", text))


def blocklist_failure_record(*, blocklist: str, error: str) -> PendingEvent:
    """Remember a failed blocklist import for the rules (the signal's receiver calls this)."""
    return PendingEvent.objects.create(
        kind=EVENT_BLOCKLIST_FAILED,
        payload={"blocklist": str(blocklist)[:200], "error": scrub(str(error))[:500]},
    )
