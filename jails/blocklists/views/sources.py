"""The blocklist pages under /blocklists/ (namespace jails:blocklists).

Viewers see sources and runs; operators preview and import; administrators add and remove
sources (a source makes the site fetch a URL: who may point it somewhere is an admin's call).

On a fleet (jails.hosts) each role holds per host: a source's target hosts are chosen among
those the administrator may administer, "import now" imports on the targets the operator
may operate (and says which it left out), removal needs the administer role on every host
the source imports on or holds bans on. A missing blocklist jail is looked for on every host
the user may view (the jails its sources import into there) and created on the hosts the
administrator ticks among those they administer, with a result per host.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from jails.apps import runtime_state
from jails.blocklists.forms import SourceForm
from jails.blocklists.models import DEFAULT_JAIL, BlocklistSource
from jails.blocklists.selectors.sources import (
    SourceRow,
    source_failing,
    sources_held,
    sources_list,
)
from jails.blocklists.services import imports, sources
from jails.blocklists.services.fetch import FetchError, FetchPolicy
from jails.blocklists.services.jail import (
    HostJailCreated,
    blocklist_jail_create_on_hosts,
    blocklist_jail_files,
    blocklist_jails_missing,
)
from jails.blocklists.services.parse import LineStatus
from jails.configuration.services.files import ApplyOutcome
from jails.fail2ban import Fail2banError, InvalidArgument, UnknownJail
from jails.hosts.models import Host
from jails.hosts.permissions import host_permitted, hosts_permitted
from jails.hosts.services import fleet
from jails.jobs import runner_id
from jails.requests import HtmxHttpRequest, actor_from_request
from jails.roles import PERM_ADMINISTER, PERM_OPERATE, PERM_VIEW
from jails.services import jails as jail_service
from jails.services.control import describe_error

RUNS_SHOWN = 20


def _source_form(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> SourceForm:
    """The add form; on a fleet with the hosts this user may administer as choices."""
    if not fleet.is_fleet():
        return SourceForm(*args, **kwargs)
    allowed = hosts_permitted(request.user, PERM_ADMINISTER)
    hosts = [h for h in fleet.hosts_enabled() if allowed is None or h.name in allowed]
    return SourceForm(*args, hosts=hosts, every_host=allowed is None, **kwargs)


def _permitted_hosts(request: HtmxHttpRequest, perm: str, hosts: list[Host]) -> list[Host]:
    allowed = hosts_permitted(request.user, perm)
    return [host for host in hosts if allowed is None or host.name in allowed]


def _jails_missing(wanted: set[str]) -> tuple[list[str], str]:
    """Which of the wanted jails fail2ban does not have, or why that cannot be told."""
    try:
        live = set(jail_service.jail_names_list(runtime_state()))
    except Fail2banError as exc:
        return [], describe_error(exc)
    return sorted(wanted - live), ""


def _jails_missing_on_hosts(
    request: HtmxHttpRequest, rows: list[SourceRow]
) -> tuple[list[dict[str, Any]], str]:
    """On a fleet: each missing jail with the viewable hosts that lack it and those among them
    this user may create it on; and which hosts could not be asked."""
    viewable = hosts_permitted(request.user, PERM_VIEW)
    wanted = {
        host.name: {DEFAULT_JAIL}
        for host in fleet.hosts_enabled()
        if viewable is None or host.name in viewable
    }
    for row in rows:
        for name in row.hosts:
            if name in wanted:
                wanted[name].add(row.source.jail)
    state = runtime_state()
    found = blocklist_jails_missing(state, wanted=wanted, deadline=state.settings.host_deadline)
    administered = hosts_permitted(request.user, PERM_ADMINISTER)
    missing = [
        {
            "name": jail,
            "files": blocklist_jail_files(jail=jail),
            "hosts": hosts,
            "creatable": [h for h in hosts if administered is None or h in administered],
        }
        for jail, hosts in found.missing.items()
    ]
    error = "; ".join(f"{host}: {why}" for host, why in sorted(found.errors.items()))
    return missing, error


def _list_page(
    request: HtmxHttpRequest,
    form: SourceForm,
    *,
    status: int = 200,
    outcome: ApplyOutcome | None = None,
    error_message: str = "",
    created: list[HostJailCreated] | None = None,
) -> HttpResponse:
    rows = sources_list()
    is_fleet = fleet.is_fleet()
    if is_fleet:
        missing_jails, error = _jails_missing_on_hosts(request, rows)
    else:
        missing, error = _jails_missing({DEFAULT_JAIL, *(row.source.jail for row in rows)})
        missing_jails = [
            {"name": name, "files": blocklist_jail_files(jail=name)} for name in missing
        ]
    context = {
        "rows": rows,
        "form": form,
        # The how-to shows the very files the "Create" button writes.
        "missing_jails": missing_jails,
        "fail2ban_error": error,
        "default_jail": DEFAULT_JAIL,
        "outcome": outcome,
        "create_error": error_message,
        "created": created or [],
        "is_fleet": is_fleet,
    }
    return render(request, "blocklists/source_list.html", context, status=status)


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def source_list(request: HtmxHttpRequest) -> HttpResponse:
    """Every source, its last run and whether it is failing; how to create a missing jail."""
    return _list_page(request, _source_form(request, initial={"jail": DEFAULT_JAIL}))


@require_POST
@permission_required(PERM_ADMINISTER, raise_exception=True)
def jail_create(request: HtmxHttpRequest) -> HttpResponse:
    """Create a missing blocklist jail through the configuration editor's safe path: on the
    local host, or on a fleet on each host ticked (`host`, repeated), with a result per host."""
    jail = request.POST.get("jail", "")
    form = _source_form(request, initial={"jail": DEFAULT_JAIL})
    if not jail:
        # Named explicitly (the how-to's hidden field): a bare POST changes nothing.
        return _list_page(request, form, status=400, error_message=_("Which jail? None was named."))
    is_fleet = fleet.is_fleet()
    if not is_fleet:
        hosts = [fleet.local_host()]
    else:
        names = list(dict.fromkeys(request.POST.getlist("host")))
        if not names:
            message = _("On which hosts? None was ticked.")
            return _list_page(request, form, status=400, error_message=message)
        try:
            hosts = [fleet.host_get(name) for name in names]
        except fleet.HostUnknown as exc:
            return _list_page(request, form, status=400, error_message=str(exc))
        # Every host asked for, or none: a partial change the user did not ask for is worse.
        if not all(host_permitted(request.user, PERM_ADMINISTER, h.name) for h in hosts):
            raise PermissionDenied
    try:
        results = blocklist_jail_create_on_hosts(
            runtime_state(), jail=jail, hosts=hosts, actor=actor_from_request(request)
        )
    except InvalidArgument as exc:
        return _list_page(request, form, status=400, error_message=str(exc))
    if not is_fleet:
        [result] = results
        if result.error:
            status = 400 if result.refused else 503
            return _list_page(request, form, status=status, error_message=result.error)
        assert result.outcome is not None
        if not result.ok:
            return _list_page(request, form, status=409, outcome=result.outcome)
    if not all(result.ok for result in results):
        return _list_page(request, form, status=409, created=results)
    for result in results:
        assert result.outcome is not None
        facts = {"host": result.host, "jail": jail, "summary": result.outcome.shown_summary}
        if is_fleet:
            created = _(
                "%(host)s: Created the jail %(jail)s: %(summary)s Sources can import into it now."
            )
        else:
            created = _("Created the jail %(jail)s: %(summary)s Sources can import into it now.")
        messages.success(request, created % facts)
    return redirect("jails:blocklists:list")


@require_POST
@permission_required(PERM_ADMINISTER, raise_exception=True)
def source_add(request: HtmxHttpRequest) -> HttpResponse:
    form = _source_form(request, request.POST, request.FILES)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    data = {k: v for k, v in form.cleaned_data.items() if k not in ("upload", "hosts")}
    source = sources.source_create(
        actor=actor_from_request(request),
        content=form.uploaded_text(),
        hosts=list(form.cleaned_data.get("hosts") or []),
        **data,
    )
    messages.success(
        request,
        _("Added %(name)s: look at its preview before the first import.") % {"name": source.name},
    )
    return redirect("jails:blocklists:detail", name=source.name)


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def source_detail(request: HtmxHttpRequest, name: str) -> HttpResponse:
    source = get_object_or_404(BlocklistSource, name=name)
    is_fleet = fleet.is_fleet()
    context = {
        "source": source,
        "runs": list(source.runs.all()[:RUNS_SHOWN]),
        "entries": source.entries.count(),
        "failing": source_failing(source),
        "is_fleet": is_fleet,
        "targets": imports.source_targets(source) if is_fleet else [],
        "entries_by_host": sources_held(source) if is_fleet else {},
    }
    return render(request, "blocklists/source_detail.html", context)


def _status_label(status: str) -> str:
    """A preview line status as the page shows it (the status itself stays the key)."""
    labels = {
        LineStatus.ACCEPTED: _("to ban"),
        LineStatus.DUPLICATE: _("duplicate"),
        LineStatus.SKIPPED: _("skipped"),
        LineStatus.INVALID: _("invalid"),
    }
    return labels.get(LineStatus(status), status)


def _back(name: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("jails:blocklists:detail", args=[name]))


@require_POST
@permission_required(PERM_OPERATE, raise_exception=True)
def source_preview(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Fetch and check the list; show what an import would do. Nothing is banned."""
    source = get_object_or_404(BlocklistSource, name=name)
    targets = _permitted_hosts(request, PERM_OPERATE, imports.source_targets(source))
    if not targets:
        raise PermissionDenied
    # What is new differs per host; the preview counts it on one of them (the first).
    host = targets[0]
    state = fleet.host_state(runtime_state(), host)
    try:
        preview = imports.source_preview(state, source=source, policy=FetchPolicy())
    except UnknownJail:
        messages.error(
            request,
            _("The jail %(jail)s does not exist in fail2ban: see the blocklists page.")
            % {"jail": source.jail},
        )
        return _back(name)
    except FetchError as exc:
        # The fetch error itself stays as the service words it (it is the run's record too).
        messages.error(
            request, _("Could not fetch %(name)s: %(error)s") % {"name": source.name, "error": exc}
        )
        return _back(name)
    except Fail2banError as exc:
        messages.error(request, describe_error(exc))
        return _back(name)
    context = {
        "source": source,
        "preview": preview,
        "sections": [
            (status, _status_label(status), count, lines)
            for status, count, lines in imports.samples_of(preview)
        ],
        "preview_host": host.name if fleet.is_fleet() else "",
    }
    return render(request, "blocklists/source_preview.html", context)


@require_POST
@permission_required(PERM_OPERATE, raise_exception=True)
def source_import(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Import now (the first import only with the preview's confirmation)."""
    source = get_object_or_404(BlocklistSource, name=name)
    targets = imports.source_targets(source)
    permitted = _permitted_hosts(request, PERM_OPERATE, targets)
    if targets and not permitted:
        raise PermissionDenied
    left_out = [host.name for host in targets if host not in permitted]
    try:
        runs = imports.source_import(
            runtime_state(),
            source=source,
            actor=actor_from_request(request),
            trigger="web",
            owner=runner_id(),
            confirm=request.POST.get("confirm") == "yes",
            hosts=permitted if left_out else None,
        )
    except imports.NotConfirmed:
        # The exception's own text is English for the commands and the run record.
        messages.error(
            request,
            _("%(name)s: look at the preview and confirm the first import") % {"name": name},
        )
        return _back(name)
    except imports.ImportBusy:
        messages.error(
            request,
            _("%(name)s: another import of this source is running") % {"name": name},
        )
        return _back(name)
    except imports.ImportRefused as exc:
        messages.error(request, str(exc))
        return _back(name)
    several = len(runs) > 1 or fleet.is_fleet()
    for run in runs:
        # run.errors is the run's stored record (English, as fail2ban and the fetch word it).
        facts = {
            "host": run.host,
            "errors": run.errors,
            "status": run.get_status_display(),
            "banned": run.banned,
            "already": run.already_banned,
            "unbanned": run.unbanned,
            "invalid": run.invalid,
            "skipped": run.skipped,
        }
        if run.status == run.Status.FAILED:
            if several:
                failed = _("%(host)s: Import failed: %(errors)s")
            else:
                failed = _("Import failed: %(errors)s")
            messages.error(request, failed % facts)
        else:
            if several:
                done = _(
                    "%(host)s: %(status)s: %(banned)s banned, %(already)s already banned, "
                    "%(unbanned)s unbanned, %(invalid)s invalid, %(skipped)s skipped."
                )
            else:
                done = _(
                    "%(status)s: %(banned)s banned, %(already)s already banned, "
                    "%(unbanned)s unbanned, %(invalid)s invalid, %(skipped)s skipped."
                )
            messages.success(request, done % facts)
    if left_out:
        messages.warning(
            request,
            _("Not imported on %(hosts)s: you may not operate there.")
            % {"hosts": ", ".join(left_out)},
        )
    return _back(name)


@require_POST
@permission_required(PERM_ADMINISTER, raise_exception=True)
def source_delete(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Remove the source; what it alone banned is unbanned."""
    source = get_object_or_404(BlocklistSource, name=name)
    involved = {host.name for host in imports.source_targets(source)}
    involved.update(imports.source_entries_hosts(source))
    allowed = hosts_permitted(request.user, PERM_ADMINISTER)
    if allowed is not None and not involved <= allowed:
        raise PermissionDenied
    try:
        unbanned = sources.source_delete(
            runtime_state(), source=source, actor=actor_from_request(request)
        )
    except imports.ImportRefused as exc:
        messages.error(request, str(exc))
        return _back(name)
    except Fail2banError as exc:
        messages.error(request, describe_error(exc))
        return _back(name)
    messages.success(
        request,
        ngettext(
            "Removed %(name)s; %(count)d ban lifted.",
            "Removed %(name)s; %(count)d of its bans lifted.",
            unbanned,
        )
        % {"name": name, "count": unbanned},
    )
    return redirect("jails:blocklists:list")
