"""`jailadmin`: manage.py under a real name, for an installed jailadmin (`jailadmin migrate`,
`jailadmin check`, `jailadmin jails status`, `jailadmin runserver`)."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jailadmin.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
