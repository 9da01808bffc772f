"""The site's settings with the test's pseudo-locale as its catalogue, for commands the
tests run in a subprocess (tests/i18n/test_language_choice.py)."""

import os

from jailadmin.settings import *  # noqa: F403

LOCALE_PATHS = [os.environ["JAILADMIN_TEST_LOCALE_PATH"]]
