from __future__ import annotations

from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from jails.metrics.state import MetricsState, metrics_state_build


class MetricsConfig(AppConfig):
    name = "jails.metrics"
    label = "metrics"
    verbose_name = _("Metrics")
    state: MetricsState

    def ready(self) -> None:
        # No I/O: the directory is created by the gunicorn hook, the middleware or a scrape.
        self.state = metrics_state_build(Path(settings.JAILADMIN_METRICS_DIR))
