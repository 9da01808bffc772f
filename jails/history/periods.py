"""UTC hours, days and months as Unix seconds: the periods the ban history is counted in.

Both sides of the history use them: the archive (jails.history.services.sync and
history_summaries) writes the rollups per period, the selectors (jails.history.selectors.archive)
read them back. They live here, below both, so neither side imports the other's helpers.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import BigIntegerField, ExpressionWrapper, F

HOUR, DAY = 3600, 86400


def month_start(epoch: int) -> int:
    """Start of the UTC month that holds `epoch`."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return int(moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp())


def next_month(epoch: int) -> int:
    """Start of the UTC month after the one that holds `epoch`."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


def hour_expression() -> ExpressionWrapper:
    """A BanEvent's hour (the start of the UTC hour of its `timeofban`), computed in SQL."""
    return ExpressionWrapper(F("timeofban") - F("timeofban") % HOUR, output_field=BigIntegerField())
