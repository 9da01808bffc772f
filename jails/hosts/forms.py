"""Forms for the hosts pages."""

from __future__ import annotations
