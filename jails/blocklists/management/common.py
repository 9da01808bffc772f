"""What the blocklist commands share: the acting user (`--as`, as `manage.py jails`), JSON."""

from __future__ import annotations

import json
from typing import Any

from jails.management.base import EXIT_USAGE, command_actor

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "command_actor", "dumps"]

EXIT_FAILED = 1


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, ensure_ascii=False)
