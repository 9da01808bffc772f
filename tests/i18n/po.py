"""Just enough of the .po format for the catalogue tests: the header and each entry's keys."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

_KEYWORD = re.compile(r'^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)\s+(".*")$')


@dataclass
class Entry:
    fields: dict[str, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str | None, str]:
        """(context, msgid): what a catalogue is looked up by."""
        return self.fields.get("msgctxt"), self.fields.get("msgid", "")


def entries(path: Path) -> list[Entry]:
    """Every live entry (obsolete `#~` ones skipped), the header entry first."""
    found: list[Entry] = []
    current = Entry()
    last: str | None = None
    for line in [*path.read_text().splitlines(), ""]:
        if not line.strip():
            if current.fields:
                found.append(current)
            current, last = Entry(), None
        elif line.startswith("#,"):
            current.flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif match := _KEYWORD.match(line):
            last = match.group(1)
            current.fields[last] = ast.literal_eval(match.group(2))
        elif line.startswith('"') and last is not None:
            current.fields[last] += ast.literal_eval(line)
        else:
            raise ValueError(f"{path}: cannot read {line!r}")
    return found


def keys(path: Path) -> set[tuple[str | None, str]]:
    """The (context, msgid) of every message, the header left out."""
    return {entry.key for entry in entries(path) if entry.fields.get("msgid")}


def header(path: Path) -> dict[str, str]:
    first = entries(path)[0]
    assert first.fields.get("msgid") == "", f"{path}: no header entry"
    pairs = (line.split(":", 1) for line in first.fields["msgstr"].splitlines() if ":" in line)
    return {name.strip(): value.strip() for name, value in pairs}
