"""The ban history is its own Django app (jails.history, label `history`) beside the core."""

from __future__ import annotations

from django.apps import apps
from django.urls import reverse

from jails.history.models import BanEvent, BanRollup, HistorySource, IPSummary, NetworkSummary
from jails.models import ScheduledJob


def test_history_app_owns_the_archive_models_and_the_core_keeps_the_job_runner():
    config = apps.get_app_config("history")
    assert config.name == "jails.history"
    for model in (BanEvent, BanRollup, IPSummary, NetworkSummary, HistorySource):
        assert model._meta.app_label == "history"
        assert model._meta.db_table.startswith("history_")
    # The runner's table is generic: it stays with the core app.
    assert ScheduledJob._meta.app_label == "jails"


def test_history_urls_keep_their_paths_and_names_in_the_jails_namespace():
    assert reverse("jails:dashboard") == "/"
    assert reverse("jails:history") == "/history/"
    assert reverse("jails:history-export") == "/history/export.csv"
