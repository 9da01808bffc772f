"""The hosts in the Django admin."""

from __future__ import annotations
