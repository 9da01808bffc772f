"""Ignore list, tuning and control (idle, stop, start, reload) from the jail and server pages."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from jails.configuration.services import overrides as config_overrides
from jails.fail2ban import Fail2banError, InvalidArgument, UnknownJail
from jails.formatting import duration_input
from jails.requests import HtmxHttpRequest, actor_from_request
from jails.roles import PERM_OPERATE
from jails.services import control as control_service
from jails.services.audit import Actor
from jails.services.control import ReloadFailed, describe_error
from jails.services.operations import entry_parse, entry_problem
from jails.state import RuntimeState
from jails.views.jail_page import (
    MAX_FIELD,
    Confirmation,
    JailAt,
    Outcome,
    jail_action,
    jail_action_response,
    jail_url,
    list_fields,
    redirect_with_message,
    server_page,
    server_scope,
    server_url,
)

# Lazy: the pages append it to their own sentences at request time (str() translates it).
LOST_ON_RELOAD = gettext_lazy(
    "This is a runtime change: fail2ban forgets it on the next reload or restart unless it is "
    "also made in the configuration."
)


# Ignore list ---
@jail_action
def jail_ignore(request: HtmxHttpRequest, at: JailAt) -> HttpResponse:
    """Add (`op=add`) or remove (`op=remove`) an address or network on the jail's ignore list."""
    state, name = at.state, at.name
    op = request.POST.get("op", "add")
    value = request.POST.get("ip", "")[:MAX_FIELD]
    entry = entry_parse(value)
    if op not in ("add", "remove"):
        return jail_action_response(request, at, Outcome(gettext("Unknown action."), "error"))
    if not entry.valid:
        outcome = Outcome(errors={"ignore": entry_problem(entry)}, values={"ignore": value})
        return jail_action_response(request, at, outcome)
    actor = actor_from_request(request)
    values = {"address": entry.address, "jail": name}
    try:
        if op == "add":
            control_service.ignore_add(state, jail=name, address=entry.address, actor=actor)
            done = gettext("Added %(address)s to the ignore list of %(jail)s.") % values
        else:
            control_service.ignore_remove(state, jail=name, address=entry.address, actor=actor)
            done = gettext("Removed %(address)s from the ignore list of %(jail)s.") % values
        message = f"{done} {LOST_ON_RELOAD}"
    except UnknownJail:
        raise
    except Fail2banError as exc:
        outcome = Outcome(errors={"ignore": describe_error(exc)}, values={"ignore": value})
        return jail_action_response(request, at, outcome)
    if request.POST.get("persist"):
        message = _ignore_persist(state, name, entry.address, add=op == "add", actor=actor)
    return jail_action_response(request, at, Outcome(message))


def _ignore_persist(
    state: RuntimeState, name: str, address: str, *, add: bool, actor: Actor
) -> str:
    """Also keep the change in the configuration: the jail's `ignoreip` in its override
    file, through the configuration editor's safe path, so the entry survives a reload."""
    values = {"address": address, "jail": name}
    try:
        saved = config_overrides.ignore_persist(
            state, jail=name, address=address, add=add, actor=actor
        )
    except Fail2banError as exc:
        return _not_persisted(values, add=add, error=describe_error(exc))
    if not saved.ok:
        return _not_persisted(values, add=add, error=saved.summary)
    values["path"] = str(config_overrides.jail_override_path(name))
    if add:
        text = gettext(
            "Added %(address)s to the ignore list of %(jail)s, and in the configuration "
            "(%(path)s): it survives reloads."
        )
    else:
        text = gettext(
            "Removed %(address)s from the ignore list of %(jail)s, and in the configuration "
            "(%(path)s): it survives reloads."
        )
    return text % values


def _not_persisted(values: dict[str, str], *, add: bool, error: str) -> str:
    if add:
        text = gettext(
            "Added %(address)s to the ignore list of %(jail)s at run time, but the "
            "configuration was not changed: %(error)s"
        )
    else:
        text = gettext(
            "Removed %(address)s from the ignore list of %(jail)s at run time, but the "
            "configuration was not changed: %(error)s"
        )
    return text % {**values, "error": error}


# Tune ---
@jail_action
def jail_tune(request: HtmxHttpRequest, at: JailAt) -> HttpResponse:
    """Change bantime/findtime/maxretry: validate, show the change, apply on confirmation."""
    state, name = at.state, at.name
    raw = {key: request.POST.get(key, "").strip()[:32] for key in control_service.TUNE_KEYS}
    try:
        values = control_service.tune_parse(**raw)
    except InvalidArgument as exc:
        outcome = Outcome(errors={"tune": str(exc)}, values=raw)
        return jail_action_response(request, at, outcome)
    changes = control_service.jail_tune_preview(state, jail=name, values=values)
    if not changes:
        outcome = Outcome(gettext("Nothing to change."), "info")
        return jail_action_response(request, at, outcome)
    if request.POST.get("confirm") != "yes":
        confirm = Confirmation(
            title=gettext("Change the settings of %(jail)s?") % {"jail": name},
            details=[
                # fail2ban's option names (bantime...) are the same in every language.
                *(f"{c.key}: {_shown(c.key, c.old)} → {_shown(c.key, c.new)}" for c in changes),
                str(LOST_ON_RELOAD),
            ],
            url=at.url("tune"),
            fields=[*raw.items(), ("confirm", "yes"), *list_fields(request)],
            button=gettext("Apply"),
            danger=False,
        )
        return jail_action_response(request, at, Outcome(confirm=confirm, values=raw))
    try:
        done = control_service.jail_tune(state, jail=name, actor=actor_from_request(request), **raw)
    except UnknownJail:
        raise
    except Fail2banError as exc:
        outcome = Outcome(errors={"tune": describe_error(exc)}, values=raw)
        return jail_action_response(request, at, outcome)
    summary = ", ".join(f"{c.key} {_shown(c.key, c.old)} → {_shown(c.key, c.new)}" for c in done)
    changed = gettext("Changed %(changes)s on %(jail)s.") % {"changes": summary, "jail": name}
    return jail_action_response(request, at, Outcome(f"{changed} {LOST_ON_RELOAD}"))


def _shown(key: str, value: int) -> str:
    if key == "maxretry":
        return str(value)
    return gettext("permanent (-1)") if value < 0 else duration_input(value)


# Idle, stop, start, reload ---
# (title with %(jail)s, what it does, button, dangerous): lazy, translated when shown.
CONTROL_ACTIONS = {
    "idle-on": (
        gettext_lazy("Pause %(jail)s (idle on)?"),
        gettext_lazy(
            "fail2ban stops reading the jail's logs; its current bans stay and still expire."
        ),
        gettext_lazy("Set idle on"),
        False,
    ),
    "idle-off": (
        gettext_lazy("Resume %(jail)s (idle off)?"),
        gettext_lazy("fail2ban reads the jail's logs again and bans on new failures."),
        gettext_lazy("Set idle off"),
        False,
    ),
    "reload": (
        gettext_lazy("Reload %(jail)s?"),
        gettext_lazy(
            "fail2ban re-reads the jail's configuration: runtime changes (ignore list, bantime,"
            " findtime, maxretry) are replaced by the configured values. Bans are kept."
        ),
        gettext_lazy("Reload jail"),
        True,
    ),
    "stop": (
        gettext_lazy("Stop %(jail)s?"),
        gettext_lazy(
            "fail2ban unbans every address of the jail and removes the jail until the next"
            " reload; its page will be gone until then."
        ),
        gettext_lazy("Stop jail"),
        True,
    ),
    "start": (
        gettext_lazy("Start %(jail)s?"),
        gettext_lazy(
            "fail2ban 1.0 forgets a stopped jail: starting it again reloads the whole"
            " configuration (every jail re-reads its settings; bans are kept)."
        ),
        gettext_lazy("Start jail"),
        True,
    ),
}


@jail_action
def jail_control(request: HtmxHttpRequest, at: JailAt) -> HttpResponse:
    """Idle on/off, reload, stop or start a jail, each after a confirmation step."""
    state, name = at.state, at.name
    op = request.POST.get("op", "")
    if op not in CONTROL_ACTIONS:
        return jail_action_response(request, at, Outcome(gettext("Unknown action."), "error"))
    lazy_title, lazy_detail, lazy_button, danger = CONTROL_ACTIONS[op]
    button = str(lazy_button)
    if request.POST.get("confirm") != "yes":
        confirm = Confirmation(
            title=str(lazy_title) % {"jail": name},
            details=[str(lazy_detail)],
            url=at.url("control"),
            fields=[("op", op), ("confirm", "yes"), *list_fields(request)],
            button=button,
            danger=danger,
        )
        if op == "start":  # the jail has no page while it is stopped: a page of its own
            confirm.htmx = False
            confirm.cancel = at.list_url()
            return render(request, "jails/action_confirm.html", {"confirm": confirm})
        return jail_action_response(request, at, Outcome(confirm=confirm))
    actor = actor_from_request(request)
    try:
        if op in ("idle-on", "idle-off"):
            control_service.jail_idle_set(state, jail=name, idle=op == "idle-on", actor=actor)
            if op == "idle-on":
                message = gettext("%(jail)s is now idle.") % {"jail": name}
            else:
                message = gettext("%(jail)s is now active.") % {"jail": name}
        elif op == "reload":
            control_service.server_reload(state, jail=name, actor=actor)
            message = gettext("Reloaded %(jail)s from the configuration.") % {"jail": name}
        elif op == "stop":
            control_service.jail_stop(state, jail=name, actor=actor)
            return redirect_with_message(
                request,
                at.list_url(),
                gettext(
                    "Stopped %(jail)s. It comes back with the next reload (or Start on its page)."
                )
                % {"jail": name},
            )
        else:
            result = control_service.jail_start(state, jail=name, actor=actor)
            if result.via_reload:
                started = gettext("Started %(jail)s by reloading the configuration.")
            else:
                started = gettext("Started %(jail)s.")
            return redirect_with_message(request, jail_url(at), started % {"jail": name})
    except UnknownJail:
        raise
    except ReloadFailed as exc:
        return _failed(request, at, gettext("Reload failed: %(error)s") % {"error": exc}, op)
    except Fail2banError as exc:
        # Translators: %(action)s is the button's text, e.g. "Stop jail failed: ...".
        message = gettext("%(action)s failed: %(error)s") % {
            "action": button,
            "error": describe_error(exc),
        }
        return _failed(request, at, message, op)
    return jail_action_response(request, at, Outcome(message))


def _failed(request: HtmxHttpRequest, at: JailAt, message: str, op: str) -> HttpResponse:
    if op == "start":
        return redirect_with_message(request, at.list_url(), message, level="error")
    return jail_action_response(request, at, Outcome(message, "error"))


# The server page: reload everything, unban everything ---
@require_GET
@permission_required(PERM_OPERATE, raise_exception=True)
def server_actions(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """Actions on the whole fail2ban server (of `host`: the local host by default)."""
    return server_page(request, Outcome(), host=host)


@require_POST
@permission_required(PERM_OPERATE, raise_exception=True)
def server_reload(request: HtmxHttpRequest, host: str | None = None) -> HttpResponse:
    """Reload fail2ban's whole configuration, after a confirmation step."""
    scoped = server_scope(request, host)
    if request.POST.get("confirm") != "yes":
        confirm = Confirmation(
            title=gettext("Reload fail2ban on %(host)s?") % {"host": scoped.name}
            if host
            else gettext("Reload fail2ban?"),
            details=[
                gettext(
                    "fail2ban re-reads its whole configuration: stopped jails come back, and"
                    " every runtime change (ignore lists, ban times) is replaced by the"
                    " configured values. Bans are kept."
                )
            ],
            url=server_url("server-reload", host),
            fields=[("confirm", "yes")],
            button=gettext("Reload fail2ban"),
            cancel=server_url("server", host),
            htmx=False,
        )
        return server_page(request, Outcome(confirm=confirm), host=host)
    try:
        control_service.server_reload(scoped.state, actor=actor_from_request(request))
    except Fail2banError as exc:
        message = gettext("Reload failed: %(error)s") % {"error": describe_error(exc)}
        return server_page(request, Outcome(message, "error"), host=host)
    return redirect_with_message(request, server_url("server", host), gettext("Reloaded fail2ban."))
