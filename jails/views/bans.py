"""Ban and unban from the jail page, the bulk-ban page and the server page."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import permission_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST

from jails.fail2ban import Fail2banError, UnknownJail
from jails.forms import BulkBanForm
from jails.requests import HtmxHttpRequest, actor_from_request
from jails.roles import PERM_OPERATE
from jails.services import bans as ban_service
from jails.services import jails as jail_service
from jails.services.bans import LINE_STATUS_LABELS, ActionReport, LineStatus
from jails.services.control import describe_error
from jails.services.operations import entry_parse, entry_problem
from jails.views.jail_page import (
    MAX_FIELD,
    Confirmation,
    JailAt,
    Outcome,
    jail_action,
    jail_action_response,
    jail_at,
    jail_missing_response,
    list_fields,
    redirect_with_message,
    server_page,
    server_scope,
    server_url,
)

FULL_REPORT_LINES = 1000  # up to this many lines, the report lists every line
REPORT_LINES_PER_STATUS = 1000  # beyond it, problem lines only, this many per kind


# Ban one ---
@jail_action
def jail_ban(request: HtmxHttpRequest, at: JailAt) -> HttpResponse:
    """Ban one address or network from the jail page (held back by the service: confirm first)."""
    state, name = at.state, at.name
    actor = actor_from_request(request)
    value = request.POST.get("ip", "")[:MAX_FIELD]
    confirmed = request.POST.get("confirm") == "yes"
    entry = entry_parse(value)
    if not entry.valid:
        outcome = Outcome(errors={"ban": entry_problem(entry)}, values={"ban": value})
        return jail_action_response(request, at, outcome)
    if not confirmed:
        reasons = ban_service.ban_confirmations(
            state, jail=name, lines=[entry.address], actor=actor, translate=_
        )
        if reasons:
            confirm = Confirmation(
                title=_("Ban %(address)s in %(jail)s?") % {"address": entry.address, "jail": name},
                details=[f"{entry.address}: {reasons[entry.address]}."],
                url=at.url("ban"),
                fields=[("ip", entry.address), ("confirm", "yes"), *list_fields(request)],
                button=_("Ban anyway"),
            )
            outcome = Outcome(confirm=confirm, values={"ban": value})
            return jail_action_response(request, at, outcome)
    report = ban_service.ips_ban(
        state, jail=name, lines=[entry.address], actor=actor, confirmed=confirmed
    )
    return jail_action_response(request, at, _single_ban_outcome(report, entry.address))


def _single_ban_outcome(report: ActionReport, address: str) -> Outcome:
    values = {"address": address, "jail": report.jail}
    if report.error:
        # fail2ban's (or the client's) own text, passed through as it is.
        message = _("Could not ban %(address)s: %(error)s") % {**values, "error": report.error}
        return Outcome(message, "error", values={"ban": address})
    if report.count(LineStatus.BANNED):
        if report.concurrent:
            return Outcome(_("%(address)s was banned in %(jail)s meanwhile.") % values, "info")
        return Outcome(_("Banned %(address)s in %(jail)s.") % values)
    if report.count(LineStatus.ALREADY_BANNED):
        return Outcome(_("%(address)s was already banned in %(jail)s.") % values, "info")
    reason = report.lines[0].reason if report.lines else _("not banned")
    message = _("%(address)s was not banned: %(reason)s.") % {**values, "reason": reason}
    return Outcome(message, "warning", values={"ban": address})


# Unban one or selected ---
@jail_action
def jail_unban(request: HtmxHttpRequest, at: JailAt) -> HttpResponse:
    """Unban the row's address (button `ip`) or the ticked ones (`selected`) from the jail."""
    state, name = at.state, at.name
    single = request.POST.get("ip", "")[:MAX_FIELD]
    lines = [single] if single else [v[:MAX_FIELD] for v in request.POST.getlist("selected")]
    if not [line for line in lines if line.strip()]:
        outcome = Outcome(_("Tick at least one address to unban."), "warning")
        return jail_action_response(request, at, outcome)
    report = ban_service.ips_unban(state, jail=name, lines=lines, actor=actor_from_request(request))
    return jail_action_response(request, at, unban_outcome(report))


def unban_outcome(report: ActionReport) -> Outcome:
    """One sentence for an unban report (jail or every jail)."""
    if report.error:
        return Outcome(_("Unban failed: %(error)s") % {"error": report.error}, "error")
    unbanned = report.lines_with(LineStatus.UNBANNED)
    not_banned = report.lines_with(LineStatus.NOT_BANNED)
    invalid = report.lines_with(LineStatus.INVALID)
    parts = []
    if len(unbanned) == 1:
        values = {"address": unbanned[0].address, "jail": report.jail}
        parts.append(
            _("Unbanned %(address)s from %(jail)s.") % values
            if report.jail
            else _("Unbanned %(address)s from every jail.") % values
        )
    elif unbanned:
        count = {"count": len(unbanned), "jail": report.jail}
        parts.append(
            ngettext(
                "Unbanned %(count)d address from %(jail)s.",
                "Unbanned %(count)d addresses from %(jail)s.",
                len(unbanned),
            )
            % count
            if report.jail
            else ngettext(
                "Unbanned %(count)d address from every jail.",
                "Unbanned %(count)d addresses from every jail.",
                len(unbanned),
            )
            % count
        )
    if len(not_banned) == 1:
        parts.append(
            _("%(address)s was not banned (any more).") % {"address": not_banned[0].address}
        )
    elif not_banned:
        parts.append(
            ngettext(
                "%(count)d address was not banned (any more).",
                "%(count)d addresses were not banned (any more).",
                len(not_banned),
            )
            % {"count": len(not_banned)}
        )
    if invalid:
        parts.append(
            ngettext(
                "%(count)d invalid entry ignored.",
                "%(count)d invalid entries ignored.",
                len(invalid),
            )
            % {"count": len(invalid)}
        )
    level = "success" if unbanned else "info" if not invalid else "error"
    # Whole sentences, each translated on its own, joined with a space.
    return Outcome(" ".join(parts) or _("Nothing to unban."), level)


# Unban all of a jail ---
@jail_action
def jail_unban_all(request: HtmxHttpRequest, at: JailAt) -> HttpResponse:
    """Unban every address of the jail, after a confirmation step."""
    state, name = at.state, at.name
    if request.POST.get("confirm") != "yes":
        count = len(jail_service.jail_bans_list(state, name=name))
        if not count:
            outcome = Outcome(_("No address is banned in %(jail)s.") % {"jail": name}, "info")
            return jail_action_response(request, at, outcome)
        values = {"count": count, "jail": name}
        confirm = Confirmation(
            title=ngettext(
                "Unban the %(count)d address of %(jail)s?",
                "Unban all %(count)d addresses of %(jail)s?",
                count,
            )
            % values,
            details=[_("fail2ban runs the jail's unban action for each of them.")],
            url=at.url("unban-all"),
            fields=[("confirm", "yes")],
            button=ngettext("Unban %(count)d", "Unban all %(count)d", count) % values,
        )
        return jail_action_response(request, at, Outcome(confirm=confirm))
    try:
        count = ban_service.jail_unban_all(state, jail=name, actor=actor_from_request(request))
    except UnknownJail:
        raise
    except Fail2banError as exc:
        outcome = Outcome(_("Unban failed: %(error)s") % {"error": describe_error(exc)}, "error")
        return jail_action_response(request, at, outcome)
    outcome = Outcome(
        ngettext(
            "Unbanned the %(count)d address of %(jail)s.",
            "Unbanned all %(count)d addresses of %(jail)s.",
            count,
        )
        % {"count": count, "jail": name}
    )
    return jail_action_response(request, at, outcome)


# Bulk ban ---
@require_http_methods(["GET", "POST"])
@permission_required(PERM_OPERATE, raise_exception=True)
def jail_bulk_ban(request: HtmxHttpRequest, name: str, host: str | None = None) -> HttpResponse:
    """Paste or upload up to 100 000 addresses; ban them in batches; report every line."""
    at = jail_at(request, name, host, PERM_OPERATE)
    state = at.state
    try:
        jail_service.jail_require(state, name=name)
    except UnknownJail:
        return jail_missing_response(request, at)
    form = BulkBanForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        report = ban_service.ips_ban(
            state,
            jail=name,
            lines=form.cleaned_data["lines"],
            actor=actor_from_request(request),
            confirmed=form.cleaned_data["confirm"],
        )
        form = BulkBanForm()
    context = {
        "jail_name": name,
        "jail_urls": at.urls(),
        "host_name": at.host,
        "list_url": at.list_url(),
        "form": form,
        "report": report,
        "view": report_view(report),
        "min_prefix_v4": state.settings.ban_min_prefix_v4,
        "min_prefix_v6": state.settings.ban_min_prefix_v6,
    }
    return render(request, "jails/bulkban_form.html", context)


def report_view(report: ActionReport | None) -> dict[str, Any] | None:
    """What the page shows of a report: every line when short, else the problem lines."""
    if report is None:
        return None
    labels = {status: str(LINE_STATUS_LABELS[status]) for status in LineStatus}
    counts = [(labels[status], report.count(status)) for status in LineStatus]
    if len(report.lines) <= FULL_REPORT_LINES:
        every = [(line, labels[line.status]) for line in report.lines]
        groups = [(_("Every line"), every, 0)] if report.lines else []
    else:
        groups = []
        for status in LineStatus:
            if status is LineStatus.BANNED:
                continue
            lines = report.lines_with(status)
            if lines:
                shown = lines[:REPORT_LINES_PER_STATUS]
                rows = [(line, labels[status]) for line in shown]
                groups.append((capfirst(labels[status]), rows, len(lines) - len(shown)))
    return {
        "counts": [(label, n) for label, n in counts if n],
        "groups": groups,
        "total": len(report.lines),
        "confirm_text": "\n".join(report.needs_confirmation),
    }


# Unban everything ---
UNBAN_EVERYTHING_PHRASE = "unban everything"


@require_POST
@permission_required(PERM_OPERATE, raise_exception=True)
def server_unban_all(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """Unban every address in every jail (of `host`); the operator types the phrase first."""
    scoped = server_scope(request, host)
    typed = request.POST.get("phrase", "").strip().lower()
    if typed != UNBAN_EVERYTHING_PHRASE:
        outcome = Outcome(
            # The phrase itself stays English: it is what the operator types, in any language.
            errors={
                # Translators: %(phrase)s is the English phrase to type, filled in unchanged:
                # the server checks exactly that text.
                "unban_all": _("Type “%(phrase)s” to confirm.")
                % {"phrase": UNBAN_EVERYTHING_PHRASE}
            },
            values={"phrase": request.POST.get("phrase", "")[:MAX_FIELD]},
        )
        return server_page(request, outcome, host=host)
    try:
        count = ban_service.everything_unban(scoped.state, actor=actor_from_request(request))
    except Fail2banError as exc:
        outcome = Outcome(_("Unban failed: %(error)s") % {"error": describe_error(exc)}, "error")
        return server_page(request, outcome, host=host)
    message = ngettext(
        "Unbanned %(count)d address in every jail.",
        "Unbanned %(count)d addresses in every jail.",
        count,
    ) % {"count": count}
    return redirect_with_message(request, server_url("server", host), message)
