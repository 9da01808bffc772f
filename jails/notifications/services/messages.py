"""What a notification says: one structure rendered as plain text, HTML and JSON.

Every value that reaches a message may come from an attacker (addresses, jail names,
country names from the archive, a blocklist's name and error): plain text gets it with
control characters removed and length capped (no forged lines in a mail or chat), HTML
through Django's autoescaping, JSON through json.dumps. Nothing here may name a secret or
a path on this host: rules hand over short labels, never exception texts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.template.loader import render_to_string
from django.utils.translation import gettext

MAX_VALUE = 200  # characters of one value in a message
MAX_ROWS = 20  # table rows in one message: the rest is counted, not listed
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def shown(label: str) -> str:
    """A fact's label or a table's title or header, in the active language. They are kept
    in English (marked with gettext_noop where they are written) because a webhook's JSON
    uses them as keys; the text and HTML bodies show them translated."""
    return gettext(label) if label else label  # gettext("") would be the catalogue's header


def clean(value: object) -> str:
    """One attacker-controlled value for a message: one line, no control characters."""
    text = _CONTROL.sub(" ", str(value)).strip()
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


@dataclass(frozen=True)
class Table:
    """Rows under headers (at most MAX_ROWS kept; ``more`` counts the rest)."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    more: int = 0

    @classmethod
    def of(cls, title: str, headers: tuple[str, ...], rows: Sequence[tuple[object, ...]]) -> Table:
        kept = tuple(tuple(clean(cell) for cell in row) for row in rows[:MAX_ROWS])
        return cls(title, headers, kept, more=max(0, len(rows) - MAX_ROWS))


@dataclass(frozen=True)
class Message:
    """A notification's content, before it is rendered for a channel."""

    event: str  # machine name of what happened: "burst", "repeat", "down", "test"...
    title: str
    summary: str
    facts: tuple[tuple[str, str], ...] = ()
    tables: tuple[Table, ...] = ()
    link: str = ""  # absolute URL to the page that shows more, when the site URL is known
    data: dict[str, Any] = field(default_factory=dict)  # extra machine-readable fields

    @property
    def subject(self) -> str:
        return clean(f"[jailadmin] {self.title}")

    def _context(self) -> dict[str, Any]:
        return {
            "title": clean(self.title),
            "summary": clean(self.summary),
            "facts": [(clean(shown(k)), clean(v)) for k, v in self.facts],
            "tables": [
                Table(shown(t.title), tuple(shown(h) for h in t.headers), t.rows, more=t.more)
                for t in self.tables
            ],
            "link": self.link,
        }

    def text(self) -> str:
        return render_to_string("notifications/message.txt", self._context()).strip() + "\n"

    def html(self) -> str:
        return render_to_string("notifications/message.html", self._context())

    def payload(self) -> dict[str, Any]:
        """The JSON a webhook receives (values cleaned like the text)."""
        return {
            "event": self.event,
            "title": clean(self.title),
            "summary": clean(self.summary),
            "facts": {clean(k): clean(v) for k, v in self.facts},
            "tables": [
                {
                    "title": t.title,
                    "rows": [dict(zip(t.headers, row, strict=False)) for row in t.rows],
                    "more": t.more,
                }
                for t in self.tables
            ],
            "link": self.link,
            **self.data,
        }
