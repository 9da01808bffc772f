"""`manage.py notify`: list channels and rules, send a test, deliver the outbox now."""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from jails.management.base import TranslatedCommand
from jails.notifications.apps import NotificationsConfig
from jails.notifications.models import Channel
from jails.notifications.selectors import notifications as selectors
from jails.notifications.services import channels as service
from jails.notifications.services.delivery import DeliveryConfig, outbox_deliver
from jails.services.audit import Actor


def _delivery_config() -> DeliveryConfig:
    config = apps.get_app_config("notifications")
    assert isinstance(config, NotificationsConfig)
    return config.delivery_config()


class Command(TranslatedCommand):
    help = gettext_noop(
        "Notifications: `notify channels`, `notify rules [--json]`, `notify test CHANNEL` "
        "(sends now and reports the outcome), `notify deliver` (send what is due now)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        for name, text in (
            ("channels", gettext("List the channels.")),
            ("rules", gettext("List the rules.")),
        ):
            listing = sub.add_parser(name, help=text)
            listing.add_argument("--json", action="store_true", help=gettext("Print JSON."))
        test = sub.add_parser("test", help=gettext("Send a test message to CHANNEL now."))
        test.add_argument("channel", metavar="CHANNEL")
        sub.add_parser("deliver", help=gettext("Deliver the messages that are due, then exit."))

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "channels":
            self._listing(
                [selectors.channel_describe(c) for c in selectors.channels_list()], options
            )
        elif action == "rules":
            self._listing([selectors.rule_describe(r) for r in selectors.rules_list()], options)
        elif action == "test":
            self._test(options["channel"])
        elif action == "deliver":
            config = _delivery_config()
            result = outbox_deliver(now=timezone.now(), owner="command", config=config)
            # The delivery's summary is the job runner's record too: English.
            self.stdout.write(result.message)

    def _listing(self, items: list[dict[str, Any]], options: dict[str, Any]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(items, indent=2))
            return
        # Tab-separated for `cut` and the like: the values as the JSON has them, untranslated.
        for item in items:
            extra = item.get("channels", item.get("target", ""))
            self.stdout.write(
                f"{item['name']}\t{item['kind']}\t{'on' if item['enabled'] else 'off'}\t{extra}"
            )

    def _test(self, name: str) -> None:
        channel = Channel.objects.filter(name=name).first()
        if channel is None:
            known = ", ".join(Channel.objects.values_list("name", flat=True)) or gettext("none")
            raise CommandError(
                gettext("no channel %(name)r (channels: %(known)s)")
                % {"name": name, "known": known}
            )
        config = _delivery_config()
        outcome = service.channel_test_now(
            channel=channel,
            now=timezone.now(),
            config=config,
            actor=Actor.system("manage.py notify"),
        )
        if not outcome.ok:
            raise CommandError(
                gettext("test message to %(name)s failed: %(error)s")
                % {"name": name, "error": outcome.error}
            )
        self.stdout.write(gettext("test message sent to %(name)s") % {"name": name})
