"""The notifications' periodic jobs, run by jails.jobs' runner (`manage.py run_jobs`).

Two jobs with their own leases: evaluating the rules (every minute, after the history sync
has archived new bans) and delivering the outbox (every few seconds, so a test message or a
burst goes out soon). The lease lets one runner run each; the outbox claim
(jails.notifications.services.delivery) makes a row go out once even if they overlap.
"""

from __future__ import annotations

from datetime import timedelta

from jails.jobs import JobContext, JobSpec
from jails.notifications.services.delivery import DeliveryConfig, outbox_deliver
from jails.notifications.services.rules import rules_evaluate

EVALUATE_JOB = "notify-evaluate"
DELIVER_JOB = "notify-deliver"


def notification_jobs(
    config: DeliveryConfig,
    *,
    evaluate_interval: timedelta = timedelta(minutes=1),
    deliver_interval: timedelta = timedelta(seconds=5),
) -> list[JobSpec]:
    """The evaluation and the delivery, with `config` (read from the settings by apps.py)."""

    def evaluate(ctx: JobContext) -> str:
        result = rules_evaluate(ctx.state, now=ctx.now, config=config)
        ctx.heartbeat()
        return result.message

    def deliver(ctx: JobContext) -> str:
        owner = f"deliver:{id(ctx)}"
        return outbox_deliver(
            now=ctx.now,
            owner=owner,
            config=config,
            should_stop=ctx.should_stop,
            progress=ctx.heartbeat,
        ).message

    lease = timedelta(seconds=config.timeout * 3 * config.batch + 60)
    return [
        JobSpec(EVALUATE_JOB, evaluate_interval, evaluate),
        JobSpec(DELIVER_JOB, deliver_interval, deliver, lease=lease),
    ]
