"""/notifications/ (channels, rules, subscriptions) and /notifications/log/ (the delivery log).

Administrators manage channels and rules; operators and administrators subscribe themselves
to a rule with their own email address (viewers see the rules and change nothing). No view
sends anything: "send a test" queues a message for the job runner, and the page polls the
row until it is sent or failed.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from jails.notifications.forms import ChannelForm, RuleForm
from jails.notifications.models import Channel, Notification, Rule
from jails.notifications.selectors import notifications as selectors
from jails.notifications.services import channels as service
from jails.requests import HtmxHttpRequest, actor_from_request
from jails.roles import PERM_ADMINISTER, PERM_OPERATE, PERM_VIEW
from jails.views.common import page_number

LOG_PAGE_SIZE = 50


def _index(
    request: HtmxHttpRequest,
    *,
    channel_form: ChannelForm | None = None,
    rule_form: RuleForm | None = None,
    new_secret: str = "",
    new_channel: Channel | None = None,
    status: int = 200,
) -> HttpResponse:
    admin = request.user.has_perm(PERM_ADMINISTER)
    may_subscribe = request.user.has_perm(PERM_OPERATE)
    rules = list(selectors.rules_list())
    mine = {rule.pk for rule in rules if request.user.pk in {u.pk for u in rule.subscribers.all()}}
    context = {
        "admin": admin,
        "may_subscribe": may_subscribe,
        "channels": list(selectors.channels_list()) if admin else [],
        "rules": rules,
        "subscribed": mine,
        "channel_form": channel_form or ChannelForm(),
        "rule_form": rule_form or RuleForm(),
        "new_secret": new_secret,
        "new_channel": new_channel,
    }
    return render(request, "notifications/notification_index.html", context, status=status)


# never_cache: the page may carry a webhook's key, shown once.
@never_cache
@require_GET
@permission_required(PERM_VIEW, raise_exception=True)
def notification_index(request: HtmxHttpRequest) -> HttpResponse:
    """Channels and rules (administrators), and the rules anyone may subscribe to."""
    return _index(request)


@never_cache
@require_POST
@permission_required(PERM_ADMINISTER, raise_exception=True)
def channel_create(request: HtmxHttpRequest) -> HttpResponse:
    """Add a channel; a webhook's new key is shown on this response only."""
    form = ChannelForm(request.POST)
    if not form.is_valid():
        return _index(request, channel_form=form, status=400)
    data = form.cleaned_data
    try:
        created = service.channel_create(
            name=data["name"],
            kind=data["kind"],
            target=data["target"],
            secret=data["apprise_url"],
            actor=actor_from_request(request),
        )
    except service.NotificationError as exc:
        form.add_error("name", str(exc))
        return _index(request, channel_form=form, status=400)
    if created.new_secret:
        # Rendered here rather than after a redirect: the key is never stored for display.
        return _index(request, new_secret=created.new_secret, new_channel=created.channel)
    messages.success(request, _("Channel %(name)s added.") % {"name": created.channel.name})
    return redirect("jails:notifications:index")


@require_POST
@permission_required(PERM_ADMINISTER, raise_exception=True)
def channel_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Remove a channel."""
    channel = get_object_or_404(Channel, pk=pk)
    service.channel_delete(channel=channel, actor=actor_from_request(request))
    messages.success(request, _("Channel %(name)s removed.") % {"name": channel.name})
    return redirect("jails:notifications:index")


@require_POST
@permission_required(PERM_ADMINISTER, raise_exception=True)
def channel_test(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Queue a test message; the answer is the status partial that polls its outcome."""
    channel = get_object_or_404(Channel, pk=pk)
    row = service.channel_test_queue(
        channel=channel, now=timezone.now(), actor=actor_from_request(request)
    )
    if request.htmx:
        return render(request, "notifications/notification_status.html", {"row": row})
    return redirect("jails:notifications:status", pk=row.pk)


@require_GET
@permission_required(PERM_ADMINISTER, raise_exception=True)
@vary_on_headers("HX-Request")
def notification_status(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """One message's delivery status (polled by the test button until it is final)."""
    row = get_object_or_404(Notification.objects.select_related("channel"), pk=pk)
    template = "notifications/notification_status.html"
    if not request.htmx:
        template = "notifications/notification_status_page.html"
    return render(request, template, {"row": row})


@require_POST
@permission_required(PERM_ADMINISTER, raise_exception=True)
def rule_create(request: HtmxHttpRequest) -> HttpResponse:
    """Add a rule."""
    form = RuleForm(request.POST)
    if not form.is_valid():
        return _index(request, rule_form=form, status=400)
    data = form.cleaned_data
    try:
        rule = service.rule_create(
            name=data["name"],
            kind=data["kind"],
            params=form.params(),
            channels=list(data["channels"]),
            rate_limit_minutes=data["rate_limit_minutes"],
            actor=actor_from_request(request),
        )
    except service.NotificationError as exc:
        form.add_error("name", str(exc))
        return _index(request, rule_form=form, status=400)
    messages.success(request, _("Rule %(name)s added.") % {"name": rule.name})
    return redirect("jails:notifications:index")


@require_POST
@permission_required(PERM_ADMINISTER, raise_exception=True)
def rule_change(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Switch a rule on or off, or delete it (`action` = enable, disable or delete)."""
    rule = get_object_or_404(Rule, pk=pk)
    action = request.POST.get("action", "")
    actor = actor_from_request(request)
    if action == "delete":
        service.rule_delete(rule=rule, actor=actor)
        messages.success(request, _("Rule %(name)s removed.") % {"name": rule.name})
    elif action in ("enable", "disable"):
        service.rule_enable(rule=rule, enabled=action == "enable", actor=actor)
        done = _("Rule %(name)s enabled.") if action == "enable" else _("Rule %(name)s disabled.")
        messages.success(request, done % {"name": rule.name})
    else:
        messages.error(request, _("Unknown action."))
    return redirect("jails:notifications:index")


# Operators and administrators: viewers change nothing on this site, their own
# subscriptions included (tests/web/test_access_urls.py holds every page to that).
@require_POST
@permission_required(PERM_OPERATE, raise_exception=True)
def rule_subscribe(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Subscribe yourself to a rule (your account's email address), or unsubscribe."""
    rule = get_object_or_404(Rule, pk=pk)
    subscribed = request.POST.get("subscribe") == "1"
    try:
        service.subscription_set(
            rule=rule, user=request.user, subscribed=subscribed, actor=actor_from_request(request)
        )
    except service.NotificationError as exc:
        messages.error(request, _("Cannot subscribe: %(error)s.") % {"error": exc})
    else:
        done = _("Subscribed to %(name)s.") if subscribed else _("Unsubscribed from %(name)s.")
        messages.success(request, done % {"name": rule.name})
    return redirect("jails:notifications:index")


@require_http_methods(["GET"])
@permission_required(PERM_ADMINISTER, raise_exception=True)
@vary_on_headers("HX-Request")
def notification_log(request: HtmxHttpRequest) -> HttpResponse:
    """The delivery log: every message, its destination, status, attempts and last error."""
    status = request.GET.get("status", "")
    if status not in Notification.Status.values:
        status = ""
    page = Paginator(selectors.delivery_log(status=status), LOG_PAGE_SIZE).get_page(
        page_number(request)
    )
    template = "notifications/notification_log.html"
    if request.htmx:
        template += "#log-table"
    return render(
        request,
        template,
        {"page": page, "status": status, "statuses": Notification.Status.choices},
    )
