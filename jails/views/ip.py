"""Where is this address? `/ip/<address>/`: the jails that ban it now, with actions.

The history of the address (archived bans) is the history app's part of this page:
it is added to ``templates/jails/ip_detail.html`` with one include (see the marker there),
and its context by :func:`ip_history_context`, which reads the history app's selector
(a core view may use a domain app's selectors, never its views).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from jails.apps import runtime_state
from jails.fail2ban import Fail2banError, InvalidArgument, UnknownJail
from jails.fail2ban.validation import JAIL_NAME_RE
from jails.history.selectors import archive as history_selectors
from jails.hosts.permissions import hosts_permitted
from jails.hosts.services import fleet
from jails.hosts.services.fleet import HostOutcome, HostScope
from jails.requests import (
    HtmxHttpRequest,
    actor_from_request,
    host_for_request,
    is_fleet_request,
    scopes_for_request,
)
from jails.roles import PERM_OPERATE, PERM_VIEW
from jails.services import bans as ban_service
from jails.services import control as control_service
from jails.services.audit import Actor
from jails.services.bans import ChangeRun, LineStatus, WhereReport, change_audit_close
from jails.services.control import describe_error
from jails.services.operations import AuditDraft, audited, entry_parse, entry_problem
from jails.state import RuntimeState
from jails.views.bans import unban_outcome
from jails.views.control import LOST_ON_RELOAD
from jails.views.jail_page import (
    MAX_FIELD,
    Confirmation,
    HostResult,
    Outcome,
    redirect_with_message,
)

TEMPLATE = "jails/ip_detail.html"
OOB_PARTIALS = ("ip-message", "ip-confirm", "ip-live")
EVERY_JAIL = "*"
MAX_HOSTS = 200  # host names looked at in one posted form


@dataclass(frozen=True)
class HostWhere:
    """The address on one host: where it is banned and ignored, or why the host did not say."""

    name: str
    where: WhereReport | None
    error: str = ""
    unreachable_since: datetime | None = None
    operate: bool = False  # the user may ban and unban on this host


def ip_url(address: str) -> str:
    # The pattern takes a path, so a network's slash stays a slash.
    return reverse("jails:ip-detail", args=[address])


def ip_context(
    request: HtmxHttpRequest, state: RuntimeState, address: str, outcome: Outcome
) -> dict[str, Any]:
    """Everything the page shows about the address right now."""
    if is_fleet_request(request):
        return ip_fleet_context(request, state, address, outcome)
    state = host_for_request(request, state, None, PERM_VIEW).state
    where = ban_service.ip_where(state, address=address)
    return {
        "address": where.address,
        "where": where,
        "now": timezone.now(),
        "outcome": outcome,
        "search": where.address,
        # The archived bans of the address (the history app's section).
        **ip_history_context(request, state, where.address),
    }


def ip_fleet_context(
    request: HtmxHttpRequest, state: RuntimeState, address: str, outcome: Outcome
) -> dict[str, Any]:
    """The address on every host the user may view, asked in parallel within the deadline."""
    scopes = scopes_for_request(request, state, PERM_VIEW)
    outcomes = fleet.fleet_map(
        scopes,
        lambda scoped: ban_service.ip_where(scoped, address=address),
        deadline=state.settings.host_deadline,
    )
    operable = hosts_permitted(request.user, PERM_OPERATE)
    hosts = [
        HostWhere(
            name=item.name,
            where=item.value,
            error=item.error,
            unreachable_since=item.host.unreachable_since,
            operate=operable is None or item.name in operable,
        )
        for item in outcomes
    ]
    jails = sorted({jail for host in hosts if host.where for jail in host.where.jails})
    return {
        "fleet": True,
        "address": address,
        "hosts_where": hosts,
        "where": True,  # the page's sections show (as with one host's WhereReport)
        "jail_choices": jails,
        "operate_hosts": [host.name for host in hosts if host.operate and host.where],
        "banned_anywhere": any(host.where and host.where.bans for host in hosts),
        "now": timezone.now(),
        "outcome": outcome,
        "search": address,
        **ip_history_context(request, state, address),
    }


def ip_history_context(
    request: HtmxHttpRequest, state: RuntimeState, address: str
) -> dict[str, Any]:
    """Context for templates/history/_ip_history.html (the archived bans of the address)."""
    permitted = hosts_permitted(request.user, PERM_VIEW)
    try:
        found = history_selectors.ip_history_get(
            ip=address, hosts=None if permitted is None else tuple(sorted(permitted))
        )
    except InvalidArgument:
        return {"ip_history": None}
    try:
        number = max(int(request.GET.get("hpage", "1")), 1)
    except ValueError:
        number = 1
    return {
        "ip_history": found,
        "ip_history_page": Paginator(found.events, state.settings.page_size).get_page(number),
    }


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def ip_search(request: HtmxHttpRequest) -> HttpResponse:
    """The header's search box: go to the address's page, or say why not."""
    text = request.GET.get("q", "")[:MAX_FIELD]
    entry = entry_parse(text)
    if entry.valid:
        return HttpResponseRedirect(ip_url(entry.address))
    error = "" if not entry.text else entry_problem(entry)
    return render(
        request,
        TEMPLATE,
        {"search": text.strip(), "search_error": error},
        status=400 if error else 200,
    )


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
@vary_on_headers("HX-Request")
def ip_detail(request: HtmxHttpRequest, address: str) -> HttpResponse:
    """Which jails ban the address now (since, until), with actions per permission."""
    entry = entry_parse(address)
    if not entry.valid:
        context = {"search": entry.text, "search_error": entry_problem(entry)}
        return render(request, TEMPLATE, context, status=404)
    if entry.address != address:
        return HttpResponseRedirect(ip_url(entry.address))
    context = ip_context(request, runtime_state(), entry.address, Outcome())
    template = TEMPLATE + ("#ip-live" if request.htmx else "")
    return render(request, template, context)


def _ip_response(request: HtmxHttpRequest, address: str, outcome: Outcome) -> HttpResponse:
    if not request.htmx and not outcome.shows_form:
        return (
            redirect_with_message(request, ip_url(address), outcome.message, level=outcome.level)
            if outcome.message
            else HttpResponseRedirect(ip_url(address))
        )
    if outcome.confirm is not None and not outcome.confirm.cancel:
        outcome.confirm.cancel = ip_url(address)
    context = ip_context(request, runtime_state(), address, outcome)
    if not request.htmx:
        return render(request, TEMPLATE, context)
    context["oob"] = True
    return HttpResponse(
        "".join(render_to_string(f"{TEMPLATE}#{p}", context, request) for p in OOB_PARTIALS)
    )


def _ip_action(
    request: HtmxHttpRequest, address: str, *, every_jail_allowed: bool
) -> tuple[str, str] | HttpResponse:
    """The canonical address and the chosen jail; or the response for a bad request."""
    entry = entry_parse(address)
    if not entry.valid:
        return render(
            request,
            TEMPLATE,
            {"search": entry.text, "search_error": entry_problem(entry)},
            status=404,
        )
    jail = request.POST.get("jail", "")[:80]
    named = JAIL_NAME_RE.fullmatch(jail) is not None
    if not (named or (every_jail_allowed and jail == EVERY_JAIL)):
        outcome = Outcome(errors={"jail": _("Choose a jail.")})
        return _ip_response(request, entry.address, outcome)
    return entry.address, jail


@require_POST
@permission_required(PERM_OPERATE, raise_exception=True)
def ip_unban(request: HtmxHttpRequest, address: str) -> HttpResponse:
    """Unban the address (or the network entry that holds it) from one jail or every jail."""
    checked = _ip_action(request, address, every_jail_allowed=True)
    if isinstance(checked, HttpResponse):
        return checked
    address, jail = checked
    target = request.POST.get("entry", "")[:MAX_FIELD] or address
    if is_fleet_request(request):
        return _fleet_unban(request, address, jail, target)
    report = ban_service.ips_unban(
        host_for_request(request, runtime_state(), None, PERM_OPERATE).state,
        jail=None if jail == EVERY_JAIL else jail,
        lines=[target],
        actor=actor_from_request(request),
    )
    outcome = unban_outcome(report)
    if isinstance(report.failure, UnknownJail):
        outcome = Outcome(_("fail2ban has no jail named %(jail)s.") % {"jail": jail}, "error")
    return _ip_response(request, address, outcome)


@require_POST
@permission_required(PERM_OPERATE, raise_exception=True)
def ip_ban(request: HtmxHttpRequest, address: str) -> HttpResponse:
    """Ban the address in a jail (own, ignored, special-use or wide: confirm first)."""
    checked = _ip_action(request, address, every_jail_allowed=False)
    if isinstance(checked, HttpResponse):
        return checked
    address, jail = checked
    if is_fleet_request(request):
        return _fleet_ban(request, address, jail)
    state = host_for_request(request, runtime_state(), None, PERM_OPERATE).state
    actor = actor_from_request(request)
    confirmed = request.POST.get("confirm") == "yes"
    try:
        reasons = (
            {}
            if confirmed
            else ban_service.ban_confirmations(
                state, jail=jail, lines=[address], actor=actor, translate=_
            )
        )
    except UnknownJail:
        return _ip_response(
            request,
            address,
            Outcome(_("fail2ban has no jail named %(jail)s.") % {"jail": jail}, "error"),
        )
    values = {"address": address, "jail": jail}
    if reasons:
        confirm = Confirmation(
            title=_("Ban %(address)s in %(jail)s?") % values,
            details=[f"{address}: {reasons[address]}."],
            url=reverse("jails:ip-ban", args=[address]),
            fields=[("jail", jail), ("confirm", "yes")],
            button=_("Ban anyway"),
        )
        return _ip_response(request, address, Outcome(confirm=confirm))
    report = ban_service.ips_ban(
        state, jail=jail, lines=[address], actor=actor, confirmed=confirmed
    )
    if report.error:
        message = _("Could not ban %(address)s in %(jail)s: %(error)s") % {
            **values,
            "error": report.error,
        }
        outcome = Outcome(message, "error")
    elif report.count(LineStatus.ALREADY_BANNED):
        outcome = Outcome(_("%(address)s was already banned in %(jail)s.") % values, "info")
    else:
        outcome = Outcome(_("Banned %(address)s in %(jail)s.") % values)
    return _ip_response(request, address, outcome)


@require_POST
@permission_required(PERM_OPERATE, raise_exception=True)
def ip_ignore(request: HtmxHttpRequest, address: str) -> HttpResponse:
    """Put the address on a jail's ignore list (a runtime change)."""
    checked = _ip_action(request, address, every_jail_allowed=False)
    if isinstance(checked, HttpResponse):
        return checked
    address, jail = checked
    # With several hosts the form names one; without, the local host (as always).
    host = None
    if is_fleet_request(request):
        host = request.POST.get("host", "")[:63] or None
    state = host_for_request(request, runtime_state(), host, PERM_OPERATE).state
    try:
        control_service.ignore_add(
            state, jail=jail, address=address, actor=actor_from_request(request)
        )
    except Fail2banError as exc:
        return _ip_response(request, address, Outcome(describe_error(exc), "error"))
    values = {"address": address, "jail": jail, "host": host or ""}
    if host:
        added = _(
            "Added %(address)s to the ignore list of %(jail)s on %(host)s: its log failures no"
            " longer lead to a ban there (a current ban stays until unbanned)."
        )
    else:
        added = _(
            "Added %(address)s to the ignore list of %(jail)s: its log failures no longer lead"
            " to a ban there (a current ban stays until unbanned)."
        )
    return _ip_response(request, address, Outcome(f"{added % values} {LOST_ON_RELOAD}"))


# Several hosts: one action, a line per host ---
def _chosen_hosts(
    request: HtmxHttpRequest, state: RuntimeState
) -> tuple[list[HostScope], list[HostResult]]:
    """The hosts a fleet form chose (`host` boxes, or `everywhere`), those the user may
    operate on scoped; a line for each chosen host that is unknown or not permitted."""
    enabled = [host.name for host in fleet.hosts_enabled()]
    if request.POST.get("everywhere") == "1":
        wanted = enabled
    else:
        wanted = list(dict.fromkeys(v[:63] for v in request.POST.getlist("host")[:MAX_HOSTS]))
    allowed = hosts_permitted(request.user, PERM_OPERATE)
    refused: list[HostResult] = []
    names: list[str] = []
    for name in wanted:
        if name not in enabled:
            refused.append(HostResult(name, "error", _("no enabled host of that name")))
        elif allowed is not None and name not in allowed:
            message = _("not permitted on %(host)s") % {"host": name}
            refused.append(HostResult(name, "not permitted", message))
        else:
            names.append(name)
    return fleet.scopes_list(state, names=names), refused


def _change_on_hosts(
    state: RuntimeState,
    scopes: list[HostScope],
    *,
    work: Callable[[RuntimeState], ChangeRun],
    audit_action: str,
    jail: str,
    actor: Actor,
    verb: str,
    result: Callable[[str, ChangeRun], HostResult],
    **audit_extra: Any,
) -> list[HostResult]:
    """`work` on every scope at once, each within the per-host deadline: its line, or the
    host's failure, or that it did not answer in time (the change may still have happened).

    The audit records are written here, on the request's thread, before (intent) and after
    (result); the worker threads only talk to fail2ban (jails.hosts.services.fleet).
    """
    deadline = state.settings.host_deadline
    unknown = (
        gettext_noop("no answer within %(seconds)s s — the ban may still have happened")
        if verb == "ban"
        else gettext_noop("no answer within %(seconds)s s — the unban may still have happened")
    )
    unknown_values = {"seconds": f"{deadline:g}"}

    def audit(item: HostScope) -> AbstractContextManager[AuditDraft]:
        return audited(actor=actor, action=audit_action, jail=jail, host=item.name)

    def finish(draft: AuditDraft, outcome: HostOutcome[ChangeRun]) -> None:
        # The audit record keeps the English text (the page shows it translated).
        line = _change_line(outcome, unknown % unknown_values, result, translate=_english)
        missed = outcome.timed_out and not outcome.skipped
        change_audit_close(draft, outcome.value, error=line.message, unknown=missed, **audit_extra)

    outcomes = fleet.fleet_change(
        scopes, work, deadline=deadline, audit=audit, finish=finish, failure_of=ChangeRun.failure
    )
    shown_unknown = _(unknown) % unknown_values
    return [_change_line(outcome, shown_unknown, result, translate=_) for outcome in outcomes]


def _english(text: str) -> str:
    return text


def _change_line(
    outcome: HostOutcome[ChangeRun],
    unknown: str,
    result: Callable[[str, ChangeRun], HostResult],
    *,
    translate: Callable[[str], str],
) -> HostResult:
    """A host's line; `translate` is gettext for the page, _english for the audit record."""
    if outcome.value is not None:
        return result(outcome.name, outcome.value)
    if outcome.skipped:
        message = translate(gettext_noop("not sent: %(error)s")) % {"error": outcome.error}
        return HostResult(outcome.name, "unreachable", message)
    if outcome.timed_out:
        return HostResult(outcome.name, "unreachable", unknown)
    return HostResult(outcome.name, "error", outcome.error)


def _summary(verb: str, address: str, results: list[HostResult]) -> Outcome:
    done = sum(1 for result in results if result.status == "ok")
    failed = sum(1 for result in results if result.status not in ("ok", "info", "held back"))
    level = "error" if failed and not done else "warning" if failed else "success"
    if not done and not failed:
        level = "info"
    values = {"address": address, "done": done, "total": len(results)}
    if verb == "ban":
        message = ngettext(
            "Banned %(address)s on %(done)d of %(total)d host.",
            "Banned %(address)s on %(done)d of %(total)d hosts.",
            len(results),
        )
    else:
        message = ngettext(
            "Unbanned %(address)s on %(done)d of %(total)d host.",
            "Unbanned %(address)s on %(done)d of %(total)d hosts.",
            len(results),
        )
    return Outcome(message % values, level, results=results)


def _fleet_ban(request: HtmxHttpRequest, address: str, jail: str) -> HttpResponse:
    """Ban the address in `jail` on the chosen hosts (or every host), a line per host.

    Each host's wide, private or own-address check holds the ban back there until it is
    confirmed; the confirmation then names only the hosts that held it back. The checks,
    then the bans, go to every host at once, each within the per-host deadline.
    """
    state = runtime_state()
    scopes, refused = _chosen_hosts(request, state)
    if not scopes and not refused:
        return _ip_response(request, address, Outcome(errors={"host": _("Choose a host.")}))
    actor = actor_from_request(request)
    confirmed = request.POST.get("confirm") == "yes"
    asked = [item.name for item in scopes]
    checked: list[HostResult] = []
    if not confirmed:
        scopes, checked = _ban_checks(state, scopes, jail=jail, address=address, actor=actor)

    def ban_on(scoped: RuntimeState) -> ChangeRun:
        return ban_service.ban_run(
            scoped, jail=jail, lines=[address], actor=actor, confirmed=confirmed
        )

    def line(host: str, run: ChangeRun) -> HostResult:
        return _ban_line(host, run, jail=jail)

    done = _change_on_hosts(
        state,
        scopes,
        work=ban_on,
        audit_action="ban",
        jail=jail,
        actor=actor,
        verb="ban",
        result=line,
        confirmed=confirmed,
    )
    by_host = {result.host: result for result in [*done, *checked]}
    results = [*(by_host[name] for name in asked), *refused]
    held = {r.host: r.message for r in results if r.status == "held back"}
    outcome = _summary("ban", address, results)
    if held:
        outcome.confirm = Confirmation(
            title=_("Ban %(address)s in %(jail)s on %(hosts)s?")
            % {"address": address, "jail": jail, "hosts": ", ".join(held)},
            # The reasons were translated when asked for (translate=_).
            details=[f"{host}: {reason}." for host, reason in held.items()],
            url=reverse("jails:ip-ban", args=[address]),
            fields=[("jail", jail), ("confirm", "yes"), *(("host", host) for host in held)],
            button=_("Ban anyway"),
        )
    return _ip_response(request, address, outcome)


def _ban_checks(
    state: RuntimeState, scopes: list[HostScope], *, jail: str, address: str, actor: Actor
) -> tuple[list[HostScope], list[HostResult]]:
    """Which hosts may ban the address now (the rest: held back, or why they cannot)."""

    # The checks run on worker threads, where the request's language is not active.
    language = translation.get_language()

    def shown(text: str) -> str:
        with translation.override(language):
            return _(text)

    def reasons_on(scoped: RuntimeState) -> dict[str, str] | None:
        try:
            return ban_service.ban_confirmations(
                scoped, jail=jail, lines=[address], actor=actor, translate=shown
            )
        except UnknownJail:
            return None  # an answer: the host has no such jail

    outcomes = fleet.fleet_map(scopes, reasons_on, deadline=state.settings.host_deadline)
    ready: list[HostScope] = []
    lines: list[HostResult] = []
    for item, outcome in zip(scopes, outcomes, strict=True):
        if outcome.ok and outcome.value is None:
            lines.append(HostResult(item.name, "error", _no_jail(jail)))
        elif outcome.value is not None:
            if address in outcome.value:
                lines.append(HostResult(item.name, "held back", outcome.value[address]))
            else:
                ready.append(item)
        elif outcome.skipped or outcome.timed_out:
            # Nothing was sent there: only the check was asked (and not answered in time).
            message = _("not sent: %(error)s") % {"error": outcome.error}
            lines.append(HostResult(item.name, "unreachable", message))
        else:
            lines.append(HostResult(item.name, "error", outcome.error))
    return ready, lines


def _ban_line(host: str, run: ChangeRun, *, jail: str) -> HostResult:
    report = run.report
    if isinstance(report.failure, UnknownJail):
        return HostResult(host, "error", _no_jail(jail))
    if report.error:
        return HostResult(host, "error", report.error)
    if report.count(LineStatus.ALREADY_BANNED):
        return HostResult(host, "info", _("already banned in %(jail)s") % {"jail": jail})
    if report.count(LineStatus.BANNED):
        return HostResult(host, "ok", _("banned in %(jail)s") % {"jail": jail})
    reason = report.lines[0].reason if report.lines else _("not banned")
    if report.needs_confirmation:
        return HostResult(host, "held back", reason.removesuffix(": needs confirmation"))
    return HostResult(host, "error", reason)


def _fleet_unban(request: HtmxHttpRequest, address: str, jail: str, target: str) -> HttpResponse:
    """Unban the entry from one jail or every jail on the chosen hosts (all at once, each
    within the per-host deadline), a line per host."""
    state = runtime_state()
    scopes, refused = _chosen_hosts(request, state)
    if not scopes and not refused:
        return _ip_response(request, address, Outcome(errors={"host": _("Choose a host.")}))
    actor = actor_from_request(request)
    which = None if jail == EVERY_JAIL else jail

    def unban_on(scoped: RuntimeState) -> ChangeRun:
        return ban_service.unban_run(scoped, jail=which, lines=[target])

    def line(host: str, run: ChangeRun) -> HostResult:
        report = run.report
        if isinstance(report.failure, UnknownJail):
            return HostResult(host, "error", _no_jail(jail))
        if report.error:
            return HostResult(host, "error", report.error)
        if report.count(LineStatus.UNBANNED):
            if which:
                return HostResult(host, "ok", _("unbanned from %(jail)s") % {"jail": which})
            return HostResult(host, "ok", _("unbanned from every jail"))
        return HostResult(host, "info", _("was not banned"))

    results = _change_on_hosts(
        state,
        scopes,
        work=unban_on,
        audit_action=ban_service.unban_audit_action(which),
        jail=which or "",
        actor=actor,
        verb="unban",
        result=line,
    )
    return _ip_response(request, address, _summary("unban", address, [*results, *refused]))


def _no_jail(jail: str) -> str:
    return _("no jail named %(jail)s") % {"jail": jail}
