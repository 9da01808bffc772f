"""Delivery: the outbox, the three kinds of channel, retries with backoff.

Only the job runner delivers (the `notify-deliver` job, and `manage.py notify`): a request
never waits for an SMTP server or a webhook. Rows are claimed with one conditional UPDATE
before they are sent, so two runners (or a runner and the command) never send a row twice;
a runner that dies mid-send leaves a claim that expires and the row is sent again later.

A refusal that will not change by retrying (HTTP 4xx, an SMTP 5xx, a bad Apprise URL, email
not configured) fails the row at once; anything else (connection refused, timeout, HTTP 5xx,
SMTP 4xx) is retried with exponential backoff up to ``max_attempts``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import smtplib
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import apprise
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Q

from jails.notifications.models import Channel, Notification, Rule
from jails.notifications.services.messages import Message

SIGNATURE_HEADER = "X-Jailadmin-Signature"
TIMESTAMP_HEADER = "X-Jailadmin-Timestamp"
MAX_BACKOFF = timedelta(hours=1)
_APPRISE_STATUS = re.compile(r"error=(\d{3})")


@dataclass(frozen=True)
class DeliveryConfig:
    """How delivery behaves (from JAILADMIN_NOTIFY_* and JAILADMIN_EMAIL_*, read in apps.py)."""

    email_from: str = "jailadmin@localhost"
    email_configured: bool = False
    timeout: float = 10.0  # seconds per connection or read, every channel
    max_attempts: int = 5
    backoff: timedelta = timedelta(seconds=30)  # first retry; doubles each time
    batch: int = 20  # rows claimed per pass
    site_url: str = ""  # links in messages; "" leaves them out


class DeliveryRefused(Exception):
    """The receiver refused for good (4xx, SMTP 5xx, bad configuration): not retried."""


class DeliveryFailed(Exception):
    """The receiver could not be reached or failed for now (timeout, refused, 5xx): retried."""


@dataclass(frozen=True)
class SendOutcome:
    ok: bool
    retry: bool
    error: str = ""


@dataclass
class DeliveryResult:
    sent: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def message(self) -> str:
        return f"{self.sent} sent, {self.retried} to retry, {self.failed} failed"


# --- The channels ---------------------------------------------------------------------------------
def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The HMAC-SHA256 a webhook receiver recomputes: over "<timestamp>." + the body."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _send_email(
    recipients: Sequence[str], *, subject: str, text: str, html: str, config: DeliveryConfig
) -> None:
    if not config.email_configured:
        raise DeliveryRefused("email is not configured (JAILADMIN_EMAIL_URL)")
    if not recipients:
        raise DeliveryRefused("no recipients")
    connection = get_connection(timeout=config.timeout)
    mail = EmailMultiAlternatives(
        subject, text, from_email=config.email_from, to=list(recipients), connection=connection
    )
    if html:
        mail.attach_alternative(html, "text/html")
    try:
        mail.send()
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryRefused(f"recipients refused ({len(exc.recipients)})") from None
    except smtplib.SMTPResponseException as exc:
        reason = f"SMTP {exc.smtp_code}"
        if 500 <= exc.smtp_code < 600:
            raise DeliveryRefused(reason) from None
        raise DeliveryFailed(reason) from None
    except TimeoutError:
        raise DeliveryFailed("SMTP server timed out") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP server unreachable ({type(exc).__name__})") from None


def _send_webhook(
    url: str, secret: str, *, payload: dict[str, Any], config: DeliveryConfig
) -> None:
    body = json.dumps(payload, sort_keys=True).encode()
    # Real time, not the job's clock: receivers compare it with theirs to refuse replays.
    timestamp = str(int(time.time()))
    request = urllib.request.Request(  # noqa: S310 (the form allows http and https only)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "jailadmin",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: webhook_signature(secret, timestamp, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=config.timeout) as response:  # noqa: S310
            response.read(1024)
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code}"
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise DeliveryRefused(reason) from None
        raise DeliveryFailed(reason) from None
    except TimeoutError:
        raise DeliveryFailed("webhook timed out") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise DeliveryFailed("webhook timed out") from None
        raise DeliveryFailed(f"webhook unreachable ({type(exc.reason).__name__})") from None
    except OSError as exc:
        raise DeliveryFailed(f"webhook unreachable ({type(exc).__name__})") from None


def apprise_url_valid(url: str) -> bool:
    """Whether Apprise knows this URL's service and can parse it."""
    return apprise.Apprise().add(url)


def _with_timeouts(url: str, timeout: float) -> str:
    # cto/rto: Apprise's connect and read timeouts, taken from the URL of every service.
    if "cto=" in url or "rto=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}cto={timeout:g}&rto={timeout:g}"


def _send_apprise(url: str, *, title: str, body: str, config: DeliveryConfig) -> None:
    notifier = apprise.Apprise()
    if not notifier.add(_with_timeouts(url, config.timeout)):
        raise DeliveryRefused("not a valid Apprise URL")
    capture = apprise.LogCapture(level=apprise.logging.WARNING)  # type: ignore[no-untyped-call]
    with capture as captured:
        ok = notifier.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
        log = captured.getvalue()
    if ok:
        return
    # Apprise reports only True/False; its log line names the HTTP status (never stored:
    # it may quote the service URL and its token).
    status = _APPRISE_STATUS.search(log)
    if status:
        code = int(status.group(1))
        if 400 <= code < 500 and code not in (408, 429):
            raise DeliveryRefused(f"chat service refused (HTTP {code})")
        raise DeliveryFailed(f"chat service failed (HTTP {code})")
    if "timed out" in log.lower() or "timeout" in log.lower():
        raise DeliveryFailed("chat service timed out")
    raise DeliveryFailed("chat service unreachable")


def send_one(row: Notification, *, config: DeliveryConfig) -> SendOutcome:
    """Send one outbox row now; never raises for a receiver's failure."""
    channel = row.channel
    try:
        if channel is None:  # a subscriber's own address
            _send_email(
                [row.recipient],
                subject=row.subject,
                text=row.body_text,
                html=row.body_html,
                config=config,
            )
        elif channel.kind == Channel.Kind.EMAIL:
            recipients = [a.strip() for a in channel.target.split(",") if a.strip()]
            _send_email(
                recipients,
                subject=row.subject,
                text=row.body_text,
                html=row.body_html,
                config=config,
            )
        elif channel.kind == Channel.Kind.WEBHOOK:
            _send_webhook(channel.target, channel.secret, payload=row.payload, config=config)
        elif channel.kind == Channel.Kind.APPRISE:
            _send_apprise(channel.secret, title=row.subject, body=row.body_text, config=config)
        else:
            raise DeliveryRefused(f"unknown channel kind {channel.kind!r}")
    except DeliveryRefused as exc:
        return SendOutcome(ok=False, retry=False, error=str(exc))
    except DeliveryFailed as exc:
        return SendOutcome(ok=False, retry=True, error=str(exc))
    return SendOutcome(ok=True, retry=False)


# --- The outbox -----------------------------------------------------------------------------------
def outbox_add(
    *,
    rule: Rule | None,
    key: str,
    message: Message,
    channels: Iterable[Channel],
    subscriber_emails: Iterable[tuple[int, str]] = (),
    now: datetime,
) -> int:
    """Queue `message` once per channel and subscriber; a key already queued is skipped."""
    text, html, payload = message.text(), message.html(), message.payload()
    prefix = f"r{rule.pk}" if rule is not None else "test"
    rows = [
        Notification(
            rule=rule,
            channel=channel,
            recipient=channel.name,
            dedupe_key=f"{prefix}:{key}:c{channel.pk}"[:255],
            subject=message.subject,
            body_text=text,
            body_html=html if channel.kind == Channel.Kind.EMAIL else "",
            payload=payload,
            next_attempt_at=now,
        )
        for channel in channels
        if channel.enabled
    ]
    rows += [
        Notification(
            rule=rule,
            channel=None,
            recipient=email,
            dedupe_key=f"{prefix}:{key}:u{user_id}"[:255],
            subject=message.subject,
            body_text=text,
            body_html=html,
            payload=payload,
            next_attempt_at=now,
        )
        for user_id, email in subscriber_emails
        if email
    ]
    # A key already queued (an evaluation repeated after a crash) stays the only row: skipped
    # here, and ignore_conflicts covers a race with another writer.
    queued = set(
        Notification.objects.filter(dedupe_key__in=[r.dedupe_key for r in rows]).values_list(
            "dedupe_key", flat=True
        )
    )
    fresh = [row for row in rows if row.dedupe_key not in queued]
    Notification.objects.bulk_create(fresh, ignore_conflicts=True)
    return len(fresh)


def backoff_delay(attempts: int, *, base: timedelta) -> timedelta:
    """How long to wait after the `attempts`-th failed try (doubling, at most an hour)."""
    delay: timedelta = base * (2 ** max(0, attempts - 1))
    return min(delay, MAX_BACKOFF)


def outbox_claim(*, now: datetime, owner: str, lease: timedelta, limit: int) -> list[Notification]:
    """Take up to `limit` due rows for this runner; rows another runner holds are skipped."""
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    due = Notification.objects.filter(free, status=Notification.Status.PENDING).filter(
        next_attempt_at__lte=now
    )
    ids = list(due.order_by("next_attempt_at", "id").values_list("id", flat=True)[:limit])
    if not ids:
        return []
    token = f"{owner}:{uuid.uuid4().hex[:8]}"[:100]
    # The same conditions again in the UPDATE: a row another runner claimed in between is
    # not matched, so each row has exactly one owner.
    due.filter(id__in=ids).update(claimed_by=token, claimed_until=now + lease)
    return list(
        Notification.objects.filter(claimed_by=token, status=Notification.Status.PENDING)
        .select_related("channel")
        .order_by("next_attempt_at", "id")
    )


def outcome_record(
    row: Notification, outcome: SendOutcome, *, now: datetime, config: DeliveryConfig
) -> str:
    """Store a send's outcome on its claimed row; returns the row's new status."""
    attempts = row.attempts + 1
    changes: dict[str, Any] = {"attempts": attempts, "claimed_by": "", "claimed_until": None}
    if outcome.ok:
        changes.update(status=Notification.Status.SENT, sent_at=now, last_error="")
    elif outcome.retry and attempts < config.max_attempts:
        changes.update(
            next_attempt_at=now + backoff_delay(attempts, base=config.backoff),
            last_error=outcome.error,
        )
    else:
        changes.update(status=Notification.Status.FAILED, last_error=outcome.error)
    Notification.objects.filter(pk=row.pk, claimed_by=row.claimed_by).update(**changes)
    return str(changes.get("status", Notification.Status.PENDING))


def outbox_deliver(
    *,
    now: datetime,
    owner: str,
    config: DeliveryConfig,
    should_stop: Callable[[], bool] = lambda: False,
    progress: Callable[[], None] = lambda: None,
) -> DeliveryResult:
    """Send every due outbox row (batch by batch) until none is left or we are told to stop.

    ``now`` decides what is due and when a retry falls due (tests move it to drive the backoff).
    """
    result = DeliveryResult()
    lease = timedelta(seconds=config.timeout * 3 * config.batch + 60)
    seen: set[int] = set()
    while not should_stop():
        claimed = outbox_claim(now=now, owner=owner, lease=lease, limit=config.batch)
        # A row already tried in this pass (a zero backoff) waits for the next pass.
        rows = [row for row in claimed if row.pk not in seen]
        _claims_release([row for row in claimed if row.pk in seen])
        if not rows:
            break
        for index, row in enumerate(rows):
            if should_stop():
                _claims_release(rows[index:])
                break
            seen.add(row.pk)
            outcome = send_one(row, config=config)
            with transaction.atomic():
                status = outcome_record(row, outcome, now=now, config=config)
            if status == Notification.Status.SENT:
                result.sent += 1
            elif status == Notification.Status.FAILED:
                result.failed += 1
            else:
                result.retried += 1
            progress()
    return result


def _claims_release(rows: Sequence[Notification]) -> None:
    # Rows claimed but not sent (told to stop) are due again at once, not after the lease.
    for row in rows:
        Notification.objects.filter(pk=row.pk, claimed_by=row.claimed_by).update(
            claimed_by="", claimed_until=None
        )
