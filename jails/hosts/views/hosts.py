"""The hosts pages under /hosts/ (namespace jails:hosts).

Viewers see the hosts and whether they answer; administrators add, change, check and remove
them and confirm SSH host keys. A host's private key is never rendered anywhere: the pages
show its public half, as the authorized_keys line to put on the host.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jails.apps import runtime_state
from jails.fail2ban import InvalidArgument
from jails.hosts.forms import HostAddForm, HostEditForm, KeyConfirmForm
from jails.hosts.models import Host
from jails.hosts.permissions import host_permitted, hosts_permitted
from jails.hosts.services import hosts as host_service
from jails.hosts.services.hosts import HostCheck, HostRefused
from jails.requests import HtmxHttpRequest, actor_from_request
from jails.roles import PERM_ADMINISTER, PERM_VIEW


def _host_for(request: HtmxHttpRequest, name: str, perm: str, **filters: Any) -> Host:
    """The host called `name`, if `request.user` holds `perm` there (404 / 403 if not)."""
    host = get_object_or_404(Host, name=name, **filters)
    if not host_permitted(request.user, perm, host.name):
        raise PermissionDenied
    return host


def _unlimited(request: HtmxHttpRequest, perm: str) -> None:
    """Adding a host is for those who hold `perm` on every host (a group given no hosts)."""
    if hosts_permitted(request.user, perm) is not None:
        raise PermissionDenied


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def host_list(request: HtmxHttpRequest) -> HttpResponse:
    """Every host the user may see, asked live in parallel (each within the per-host deadline)."""
    state = runtime_state()
    hosts = host_service.hosts_ordered()
    allowed = hosts_permitted(request.user, PERM_VIEW)
    if allowed is not None:
        hosts = [host for host in hosts if host.name in allowed]
    checks = host_service.hosts_check(state, hosts=hosts, deadline=state.settings.host_deadline)
    context = {
        "checks": checks,
        "deadline": f"{state.settings.host_deadline:g}",
        "can_add": hosts_permitted(request.user, PERM_ADMINISTER) is None,
    }
    return render(request, "hosts/host_list.html", context)


@require_http_methods(["GET", "POST"])
@permission_required(PERM_ADMINISTER, raise_exception=True)
def host_add(request: HtmxHttpRequest) -> HttpResponse:
    """Add a host; an SSH host gets its key pair and its page shows how to install it."""
    _unlimited(request, PERM_ADMINISTER)
    form = HostAddForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                host = host_service.host_create(
                    actor=actor_from_request(request), **form.cleaned_data
                )
            except InvalidArgument as exc:
                form.add_error(None, str(exc))
            else:
                if host.kind == Host.Kind.SSH:
                    messages.success(
                        request,
                        _(
                            "Added %(host)s with a key of its own: install the agent and the key "
                            "on the host, then fetch and confirm the host's key."
                        )
                        % {"host": host.name},
                    )
                else:
                    messages.success(
                        request, _("Added %(host)s: check that it answers.") % {"host": host.name}
                    )
                return redirect("jails:hosts:detail", name=host.name)
        return render(request, "hosts/host_form.html", {"form": form, "adding": True}, status=400)
    return render(request, "hosts/host_form.html", {"form": form, "adding": True})


def _detail_context(request: HtmxHttpRequest, host: Host) -> dict[str, Any]:
    can_administer = host_permitted(request.user, PERM_ADMINISTER, host.name)
    context: dict[str, Any] = {"host": host, "can_administer": can_administer}
    if host.kind == Host.Kind.SSH:
        context["host_key_fingerprint"] = host_service.host_key_fingerprint(host)
        if can_administer:
            try:
                context["steps"] = host_service.install_steps(host)
            except (HostRefused, InvalidArgument) as exc:
                context["steps_error"] = str(exc)
    return context


@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def host_detail(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """A host: what it is, its reachability as last seen, and (SSH) how to install it.

    Not contacted here: "Check" does that, so a dead host never slows its own page."""
    host = _host_for(request, name, PERM_VIEW)
    return render(request, "hosts/host_detail.html", _detail_context(request, host))


@require_POST
@permission_required(PERM_ADMINISTER, raise_exception=True)
def host_check(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Connect now (the handshake): agent and fail2ban versions and jails, or the error."""
    host = _host_for(request, name, PERM_ADMINISTER)
    state = runtime_state()
    check: HostCheck = host_service.host_check(
        state, host=host, deadline=state.settings.host_deadline
    )
    context = _detail_context(request, host)
    context["check"] = check
    return render(request, "hosts/host_detail.html", context, status=200 if check.ok else 502)


@require_http_methods(["GET", "POST"])
@permission_required(PERM_ADMINISTER, raise_exception=True)
def host_edit(request: HtmxHttpRequest, name: str) -> HttpResponse:
    host = _host_for(request, name, PERM_ADMINISTER)
    form = HostEditForm(request.POST or None, host=host)
    if request.method == "POST":
        if form.is_valid():
            host_service.host_update(
                runtime_state(),
                host=host,
                actor=actor_from_request(request),
                address=form.cleaned_data.get("address"),
                time_zone=form.cleaned_data.get("time_zone"),
                note=form.cleaned_data["note"],
                enabled=form.cleaned_data["enabled"],
            )
            messages.success(request, _("Saved %(host)s.") % {"host": host.name})
            return redirect("jails:hosts:detail", name=host.name)
        context = {"form": form, "host": host}
        return render(request, "hosts/host_form.html", context, status=400)
    return render(request, "hosts/host_form.html", {"form": form, "host": host})


@require_http_methods(["GET", "POST"])
@permission_required(PERM_ADMINISTER, raise_exception=True)
def host_confirm_key(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Fetch the host's key (POST without a fingerprint), or store the one compared (with)."""
    host = _host_for(request, name, PERM_ADMINISTER, kind=Host.Kind.SSH)
    context: dict[str, Any] = {
        "host": host,
        "host_key_fingerprint": host_service.host_key_fingerprint(host),
    }
    if request.method == "GET":
        return render(request, "hosts/host_confirm_key.html", context)
    if "fingerprint" in request.POST:
        form = KeyConfirmForm(request.POST)
        if not form.is_valid():
            context["error"] = _("That is not a SHA256 fingerprint: fetch the key again.")
            return render(request, "hosts/host_confirm_key.html", context, status=400)
        try:
            key = host_service.host_key_confirm(
                runtime_state(),
                host=host,
                actor=actor_from_request(request),
                fingerprint=form.cleaned_data["fingerprint"],
            )
        except HostRefused as exc:
            context["error"] = str(exc)
            return render(request, "hosts/host_confirm_key.html", context, status=409)
        messages.success(
            request,
            _("Confirmed %(host)s's key %(fingerprint)s.")
            % {"host": host.name, "fingerprint": key.fingerprint},
        )
        return redirect("jails:hosts:detail", name=host.name)
    try:
        context["scan"] = host_service.host_keys_fetch(host=host)
    except HostRefused as exc:
        context["error"] = str(exc)
        return render(request, "hosts/host_confirm_key.html", context, status=502)
    return render(request, "hosts/host_confirm_key.html", context)


@require_http_methods(["GET", "POST"])
@permission_required(PERM_ADMINISTER, raise_exception=True)
def host_remove(request: HtmxHttpRequest, name: str) -> HttpResponse:
    """Remove a host, after a confirmation (the local host can only be disabled)."""
    host = _host_for(request, name, PERM_ADMINISTER)
    # The local host is never removed: nothing to count for it.
    removal = None if host.is_local else host_service.host_removal(host)
    context = {"host": host, "removal": removal}
    if request.method == "GET":
        return render(request, "hosts/host_remove.html", context)
    try:
        removal = host_service.host_remove(
            runtime_state(), host=host, actor=actor_from_request(request)
        )
    except HostRefused as exc:
        return render(request, "hosts/host_remove.html", {**context, "error": str(exc)}, status=409)
    kept = sum(count for _, count in removal.kept)
    messages.success(
        request,
        ngettext(
            "Removed %(host)s; its history (%(count)d record) is kept.",
            "Removed %(host)s; its history (%(count)d records) is kept.",
            kept,
        )
        % {"host": name, "count": kept},
    )
    return redirect("jails:hosts:list")
