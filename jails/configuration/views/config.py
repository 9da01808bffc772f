"""The configuration pages: every jail with its effective settings and their origin, the
common-settings form, activate/deactivate, filters, actions, the raw editor of `.local` files,
each file's versions, a diff of two, a restore.

Who may do what: viewers read; operators change a jail's common settings, activate or
deactivate it and keep ignore-list entries (the same things they may do at run time);
administrators edit raw files, create jails and filters, restore versions, and are the only
ones who may touch action definitions (action.d/: shell commands run as root).

Every page is about one host (`/config/…`: the local one; `/hosts/<host>/config/…`: that
host, views.scoping): the roles are checked on that host too, and its links stay on it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jails.configuration.forms import FileForm, JailSettingsForm, NewFilterForm, NewJailForm
from jails.configuration.links import config_reverse
from jails.configuration.selectors import versions as version_selectors
from jails.configuration.services import files as file_service
from jails.configuration.services import overrides
from jails.configuration.services.files import (
    ApplyOutcome,
    ConfigPermissionDenied,
    FileChange,
    JailConfig,
)
from jails.configuration.views.scoping import (
    MAX_PATH,
    ConfigHost,
    config_host,
    page,
    permitted,
    url_host_for,
)
from jails.fail2ban import Fail2banError, InvalidArgument
from jails.fail2ban.validation import validate_jail_name
from jails.requests import HtmxHttpRequest, actor_from_request
from jails.roles import PERM_ADMINISTER, PERM_OPERATE, PERM_VIEW

WRITABLE_TOP = ("jail.local", "fail2ban.local")
BR = mark_safe("<br>")
INDEX_COLUMNS = ("filter", "maxretry", "findtime", "bantime", "backend")


def _file_url(path: str, where: ConfigHost) -> str:
    return config_reverse("file", where.url_host, query={"path": path})


def _jail_url(name: str, where: ConfigHost) -> str:
    return config_reverse("jail", where.url_host, name)


def _editable(path: str) -> bool:
    """Whether the raw editor offers to save this file (the host checks again)."""
    return path in WRITABLE_TOP or (
        path.split("/", 1)[0] in ("jail.d", "filter.d", "action.d") and path.endswith(".local")
    )


def _report(request: HtmxHttpRequest, outcome: ApplyOutcome, url: str) -> HttpResponse | None:
    """A saved change goes back to `url` with a message; a refused one returns None so the
    form is shown again with the outcome."""
    if outcome.ok:
        messages.success(request, outcome.shown_summary)
        return HttpResponseRedirect(url)
    return None


def _cells_html(jail: JailConfig, file_base: str, built_in: str) -> SafeString:
    """One index row's setting cells: the value, and the file:line it comes from."""
    cells = []
    for column in INDEX_COLUMNS:
        value, origin = jail.value(column), jail.origin(column)
        if origin is None:
            cells.append(
                format_html(
                    '<td><code>{}</code><br><span class="muted">{}</span></td>', value, built_in
                )
            )
            continue
        line = f":{origin.line}" if origin.line else ""
        default = " [DEFAULT]" if origin.section == "DEFAULT" else ""
        cells.append(
            format_html(
                '<td><code>{}</code><br><a class="origin" href="{}" title="{}">{}</a></td>',
                value,
                file_base + urlencode({"path": origin.file}),
                _("[%(section)s] in %(file)s") % {"section": origin.section, "file": origin.file},
                f"{origin.file}{line}{default}",
            )
        )
    return mark_safe("".join(cells))  # each part is format_html's, escaped


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def config_index(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """Every jail, enabled or not, with its effective settings and their origin."""
    where = config_host(request, host, PERM_VIEW)
    config = file_service.config_get(where.state)
    query = request.GET.get("q", "").strip()[:64]
    jails = [j for j in config.jails if query.lower() in j.name.lower()]
    # The rows are built here with format_html (every value escaped), not by the template
    # engine: Debian's 91 jails make 455 cells, and resolving their variables, filters and
    # {% url %}s one by one was most of the page's time (the bound is 300 ms).
    file_base = config_reverse("file", where.url_host) + "?"
    jail_base = config_reverse("jail", where.url_host, "-")[: -len("-/")]
    # Translated once per page, not once per cell: the index is bound to 300 ms.
    built_in, yes, no = _("built-in"), _("yes"), _("no")
    rows = format_html_join(
        "\n",
        '<tr class="{}"><td><a href="{}">{}</a></td><td>{}</td>{}<td>{}</td></tr>',
        (
            (
                "" if jail.enabled else "muted",
                f"{jail_base}{quote(jail.name)}/",
                jail.name,
                yes if jail.enabled else no,
                _cells_html(jail, file_base, built_in),
                format_html_join(BR, '<span class="error">{}</span>', ((e,) for e in jail.errors))
                or "—",
            )
            for jail in jails
        ),
    )
    context = {
        "config": config,
        "rows": rows,
        "row_count": len(jails),
        "query": query,
        "enabled_count": sum(1 for j in config.jails if j.enabled),
        "columns": INDEX_COLUMNS,
    }
    return page(request, where, "configuration/config_index.html", context)


def _jail_page(
    request: HtmxHttpRequest,
    where: ConfigHost,
    name: str,
    *,
    form: JailSettingsForm | None = None,
    outcome: ApplyOutcome | None = None,
    status: int = 200,
) -> HttpResponse:
    state = where.state
    config = file_service.config_get(state)
    jail = config.jail(name)
    if jail is None:
        raise Http404("no such jail in the configuration")
    override = file_service.config_file_get(state, path=overrides.jail_override_path(name))
    if form is None:
        initial: dict[str, Any] = {key: jail.value(key) for key in overrides.COMMON_SETTINGS}
        initial["sha256"] = override.sha256 or ""
        form = JailSettingsForm(initial=initial)
    context = {
        "config": config,
        "jail": jail,
        "override": override,
        "override_path": overrides.jail_override_path(name),
        "form": form,
        "outcome": outcome,
    }
    return page(request, where, "configuration/config_jail.html", context, status=status)


@require_http_methods(["GET", "POST"])
@permission_required(PERM_VIEW, raise_exception=True)
def jail_config(request: HtmxHttpRequest, name: str, host: str | None = None) -> HttpResponse:
    """One jail: every effective setting with file and line; the common-settings form."""
    where = config_host(request, host, PERM_VIEW)
    try:
        validate_jail_name(name)
    except InvalidArgument:
        raise Http404("no such jail") from None
    if request.method != "POST":
        return _jail_page(request, where, name)
    if not permitted(request, PERM_OPERATE, where):
        return HttpResponse(_("Operators only."), status=403)
    state = where.state
    jail = file_service.config_get(state).jail(name)
    if jail is None:
        raise Http404("no such jail in the configuration")
    initial = {key: jail.value(key) for key in overrides.COMMON_SETTINGS}
    form = JailSettingsForm(request.POST, initial=initial)
    if not form.is_valid():
        return _jail_page(request, where, name, form=form, status=400)
    changed = form.changed_settings()
    if not changed:
        form.add_error(None, _("Nothing changed."))
        return _jail_page(request, where, name, form=form, status=400)
    try:
        outcome = overrides.jail_settings_save(
            state,
            jail=name,
            values=changed,
            expected_sha256=form.cleaned_data["sha256"] or None,
            actor=actor_from_request(request),
            reason=form.cleaned_data["reason"],
            administrator=permitted(request, PERM_ADMINISTER, where),
        )
    except (InvalidArgument, ConfigPermissionDenied) as exc:
        form.add_error(None, str(exc))
        return _jail_page(request, where, name, form=form, status=400)
    return _report(request, outcome, _jail_url(name, where)) or _jail_page(
        request, where, name, form=form, outcome=outcome, status=409
    )


@require_POST
@permission_required(PERM_OPERATE, raise_exception=True)
def jail_toggle(request: HtmxHttpRequest, name: str, host: str | None = None) -> HttpResponse:
    """Activate (`enabled=true`) or deactivate a jail through its override file."""
    where = config_host(request, host, PERM_OPERATE)
    try:
        validate_jail_name(name)
    except InvalidArgument:
        raise Http404("no such jail") from None
    choice = request.POST.get("enabled")
    if choice not in ("true", "false"):
        # Only the page's two buttons: a POST that names neither changes nothing.
        return HttpResponseBadRequest(_("enabled must be true or false"))
    enabled = choice == "true"
    try:
        outcome = overrides.jail_enabled_set(
            where.state, jail=name, enabled=enabled, actor=actor_from_request(request)
        )
    except InvalidArgument as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(_jail_url(name, where))
    return _report(request, outcome, _jail_url(name, where)) or _jail_page(
        request, where, name, outcome=outcome, status=409
    )


@require_http_methods(["GET", "POST"])
@permission_required(PERM_ADMINISTER, raise_exception=True)
def jail_new(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """Create a jail from a form (its own jail.d/<name>.local)."""
    where = config_host(request, host, PERM_ADMINISTER)
    state = where.state
    config = file_service.config_get(state)
    filters = config.names("filter.d")
    form = NewJailForm(request.POST or None, filters=filters)
    outcome = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            outcome = overrides.jail_create(
                state,
                name=data["name"],
                filter_name=data["filter"],
                logpath=data["logpath"],
                settings=form.settings(),
                actor=actor_from_request(request),
                administrator=True,
            )
        except InvalidArgument as exc:
            form.add_error(None, str(exc))
        else:
            if response := _report(request, outcome, _jail_url(data["name"], where)):
                return response
    context = {"form": form, "outcome": outcome, "kind": "jail"}
    status = 400 if request.method == "POST" else 200
    return page(request, where, "configuration/config_new.html", context, status=status)


@require_http_methods(["GET", "POST"])
@permission_required(PERM_ADMINISTER, raise_exception=True)
def filter_new(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """Create a filter from a form (filter.d/<name>.local)."""
    where = config_host(request, host, PERM_ADMINISTER)
    form = NewFilterForm(request.POST or None)
    outcome = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            outcome = overrides.filter_create(
                where.state,
                name=data["name"],
                failregex=data["failregex"],
                ignoreregex=data["ignoreregex"],
                datepattern=data["datepattern"],
                actor=actor_from_request(request),
                administrator=True,
            )
        except InvalidArgument as exc:
            form.add_error(None, str(exc))
        else:
            url = _file_url(f"filter.d/{data['name']}.local", where)
            if response := _report(request, outcome, url):
                return response
    context = {"form": form, "outcome": outcome, "kind": "filter"}
    status = 400 if request.method == "POST" else 200
    return page(request, where, "configuration/config_new.html", context, status=status)


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def definition_list(
    request: HtmxHttpRequest, directory: str, host: str | None = None
) -> HttpResponse:
    """Filters (filter.d) or actions (action.d): their files and the jails that use them."""
    where = config_host(request, host, PERM_VIEW)
    config = file_service.config_get(where.state)
    key = "filter" if directory == "filter.d" else "action"
    rows = []
    for name in config.names(directory):
        users = [
            jail.name
            for jail in config.jails
            if any(
                entry.split("[", 1)[0].strip() == name
                for entry in (
                    jail.value(key).splitlines() if key == "action" else [jail.value(key)]
                )
            )
        ]
        files = [
            path
            for path in (f"{directory}/{name}.conf", f"{directory}/{name}.local")
            if path in config.files
        ]
        rows.append({"name": name, "files": files, "jails": users})
    context = {"rows": rows, "directory": directory, "kind": key}
    return page(request, where, "configuration/config_definitions.html", context)


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def definition_detail(
    request: HtmxHttpRequest, directory: str, name: str, host: str | None = None
) -> HttpResponse:
    """One filter or action: every option as fail2ban reads it, with file, line, section."""
    where = config_host(request, host, PERM_VIEW)
    try:
        definition = file_service.definition_get(where.state, directory=directory, name=name)
    except InvalidArgument:
        raise Http404("no such definition") from None
    key = "filter" if directory == "filter.d" else "action"
    files = [
        path
        for path in (f"{directory}/{name}.conf", f"{directory}/{name}.local")
        if path in definition.read_order
    ]
    context = {"definition": definition, "kind": key, "directory": directory, "files": files}
    return page(request, where, "configuration/config_definition.html", context)


def _path(request: HtmxHttpRequest) -> str:
    return (request.GET.get("path") or request.POST.get("path") or "")[:MAX_PATH]


@require_http_methods(["GET", "POST"])
@permission_required(PERM_VIEW, raise_exception=True)
def file_edit(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """One file: its content; the raw editor for `.local` files (administrators)."""
    where = config_host(request, host, PERM_VIEW)
    state = where.state
    path = _path(request)
    administrator = permitted(request, PERM_ADMINISTER, where)
    if request.method == "POST" and not administrator:
        return HttpResponse(_("Administrators only."), status=403)
    outcome: ApplyOutcome | None = None
    try:
        current = file_service.config_file_get(state, path=path)
    except InvalidArgument as exc:
        return page(
            request,
            where,
            "configuration/config_file.html",
            {"refused": str(exc), "path": path},
            status=400,
        )
    form = None
    if _editable(current.path) and administrator:
        form = FileForm(
            request.POST if request.method == "POST" else None,
            initial={"content": current.content, "sha256": current.sha256 or ""},
        )
    status = 200
    if request.method == "POST":
        if form is None:
            return HttpResponse(_("Only .local files are edited here."), status=400)
        if form.is_valid():
            try:
                outcome = file_service.config_files_save(
                    state,
                    changes=[
                        FileChange(
                            current.path,
                            form.cleaned_data["content"],
                            form.cleaned_data["sha256"] or None,
                        )
                    ],
                    actor=actor_from_request(request),
                    reason=form.cleaned_data["reason"],
                    administrator=administrator,
                )
            except (InvalidArgument, ConfigPermissionDenied) as exc:
                form.add_error(None, str(exc))
            else:
                if response := _report(request, outcome, _file_url(current.path, where)):
                    return response
        status = 409 if outcome is not None else 400
    conflict_diff = ""
    if outcome is not None and outcome.current is not None and form is not None:
        conflict_diff = file_service.file_diff(
            outcome.current.content,
            form.cleaned_data.get("content", ""),
            current.path,
            old_label=_("(on disk now)"),
            new_label=_("(yours)"),
        )
    context = {
        "path": current.path,
        "file": current,
        "form": form,
        "outcome": outcome,
        "conflict_diff": conflict_diff,
        "editable": _editable(current.path),
        "versions": version_selectors.versions_for(host=where.name, path=current.path)[:10],
    }
    return page(request, where, "configuration/config_file.html", context, status=status)


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def file_history(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """Every version of one of the host's files the site has kept."""
    where = config_host(request, host, PERM_VIEW)
    path = _path(request)
    versions = version_selectors.versions_for(host=where.name, path=path)
    if not versions:
        raise Http404("no versions of that file")
    return page(
        request, where, "configuration/config_history.html", {"path": path, "versions": versions}
    )


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def version_diff(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """A diff between two versions of one of the host's files (`a`, `b`: version ids)."""
    where = config_host(request, host, PERM_VIEW)
    try:
        a, b = int(request.GET.get("a", "")), int(request.GET.get("b", ""))
    except ValueError:
        raise Http404("two version ids are needed") from None
    pair = version_selectors.version_pair(host=where.name, a=a, b=b)
    if pair is None:
        raise Http404("no such versions of one file")
    old, new = pair
    diff = file_service.file_diff(
        old.content, new.content, old.path, old_label=f"#{old.pk}", new_label=f"#{new.pk}"
    )
    context = {"old": old, "new": new, "diff": diff, "path": old.path}
    return page(request, where, "configuration/config_diff.html", context)


@require_POST
@permission_required(PERM_ADMINISTER, raise_exception=True)
def version_restore(request: HtmxHttpRequest, pk: int, host: str | None = None) -> HttpResponse:
    """Put an old version of the host's file back, through the same safe path as an edit."""
    where = config_host(request, host, PERM_ADMINISTER)
    # Another host's version is not found here: its jail.local is not this host's past.
    version = version_selectors.version_get(host=where.name, pk=pk)
    if version is None:
        raise Http404("no such version")
    url = _file_url(version.path, where)
    try:
        outcome = file_service.version_restore(
            where.state, version_id=pk, actor=actor_from_request(request), administrator=True
        )
    except (InvalidArgument, Fail2banError) as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(url)
    if outcome.ok:
        messages.success(
            request,
            _("Restored version %(pk)s. %(summary)s")
            % {"pk": pk, "summary": outcome.shown_summary},
        )
    else:
        shown = outcome.shown_summary
        messages.error(request, shown + (f"\n{outcome.output}" if outcome.output else ""))
    return HttpResponseRedirect(url)


# Where the host switcher may land: the same page on the other host when it names nothing
# host-specific (a version id does: a diff lands on the file's history there).
SWITCH_PAGES = frozenset(
    {
        "index",
        "jail",
        "jail-new",
        "filters",
        "filter-new",
        "actions",
        "filter",
        "action",
        "file",
        "history",
        "filter-test",
        "ban-explain",
        "logs",
    }
)
SWITCH_NAMED = frozenset({"jail", "filter", "action"})
SWITCH_PATHED = frozenset({"file", "history"})


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def host_switch(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """The host switcher's form: the same page (`page`, `name`, `path`) on host `to`."""
    target = config_host(request, (request.GET.get("to") or "")[:63] or None, PERM_VIEW)
    url_host = url_host_for(target.name)
    page_name = request.GET.get("page", "")
    if page_name == "diff":
        page_name = "history"
    name = request.GET.get("name", "")[:64]
    path = request.GET.get("path", "")[:MAX_PATH]
    if page_name not in SWITCH_PAGES or (page_name in SWITCH_NAMED and not name):
        page_name = "index"
    if page_name in SWITCH_PATHED and not path:
        page_name = "index"
    if page_name in SWITCH_NAMED:
        try:
            validate_jail_name(name)
        except InvalidArgument:
            page_name = "index"
    if page_name in SWITCH_NAMED:
        return HttpResponseRedirect(config_reverse(page_name, url_host, name))
    if page_name in SWITCH_PATHED:
        return HttpResponseRedirect(config_reverse(page_name, url_host, query={"path": path}))
    return HttpResponseRedirect(config_reverse(page_name, url_host))
