"""A configuration change's outcome in two languages (issue 16): `summary` is what the audit
record keeps (English, always), `shown_summary` what the page says (the request's language),
word for word the same in English.

The pseudo-locale of tests/i18n (every translation is its English text inside ⟦…⟧) stands in
for German, so these tests do not depend on the translators' words.
"""

from __future__ import annotations

import pytest
from django.utils import translation

from jails.configuration.services.files import ApplyOutcome

# The session's pseudo-locale fixtures (they run `make messages` over a copy of the sources).
from tests.i18n.conftest import (  # noqa: F401
    PSEUDO_LANGUAGE,
    PSEUDO_OPEN,
    fresh_locale_dir,
    pseudo_locale,
    pseudo_locale_dir,
)

OUTCOMES = [
    ApplyOutcome(ok=True, written=("jail.d/sshd.local",), reloaded=("sshd",)),
    ApplyOutcome(ok=True, written=("jail.local", "filter.d/x.local")),
    ApplyOutcome(ok=False, stage="conflict", message="jail.local changed"),
    ApplyOutcome(ok=False, stage="test", message="ERROR: No failure-id group in 'x'"),
    ApplyOutcome(ok=False, stage="reload", message="sshd: reload failed", rolled_back=True),
    ApplyOutcome(ok=False, stage="verify", rolled_back=True, restored=False),
    ApplyOutcome(ok=False, stage="", message=""),
]
IDS = ["saved", "saved-no-reload", "conflict", "test", "reload", "verify", "other"]


@pytest.mark.parametrize("outcome", OUTCOMES, ids=IDS)
def test_in_english_the_page_says_what_the_audit_keeps(outcome: ApplyOutcome) -> None:
    with translation.override("en"):
        assert outcome.shown_summary == outcome.summary


@pytest.mark.usefixtures("pseudo_locale")
@pytest.mark.parametrize("outcome", OUTCOMES, ids=IDS)
def test_in_another_language_only_the_page_is_translated(outcome: ApplyOutcome) -> None:
    with translation.override(PSEUDO_LANGUAGE):
        shown, audited = outcome.shown_summary, outcome.summary
    assert PSEUDO_OPEN in shown
    assert PSEUDO_OPEN not in audited
    # The host's own words (fail2ban's output) pass through untranslated.
    assert outcome.message in shown
