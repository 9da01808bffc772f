"""Find the text of a Django template that a user would see or hear and nobody marked.

Used by test_marked_templates.py (every template) and kept apart so a test can run it over a
small template string and prove that it finds what it should.

How: Django's own template Lexer splits the file into tokens. Text inside
{% translate %}/{% blocktranslate %} and comments is dropped; every other tag and variable
becomes a placeholder (so `placeholder="{% translate 'x' %}"` leaves nothing behind), except
the string literals of `default`/`default_if_none`/`yesno`, which a browser shows exactly
like template text. The result goes through an HTML parser that keeps text nodes (not inside
script/style/code) and the attributes users see or hear.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

from django.template.base import Lexer, TokenType

# Stands in for a tag or a variable: not a letter, and never in a template's own text. The
# spaces keep `<tr{% if x %} class="y"{% endif %}>` a well-formed tag for the HTML parser.
HOLE = "\x00"
_GAP = f" {HOLE} "

# Filters whose literal arguments end up on the page as they are.
_SHOWN_LITERAL_FILTERS = re.compile(
    r"""\|\s*(?:default|default_if_none|yesno)\s*:\s*(?P<q>["'])(?P<text>.*?)(?P=q)"""
)
_TRANSLATED_LITERAL = re.compile(r"""_\(\s*(["']).*?\1\s*\)""")
_PLURALIZE = re.compile(r"\|\s*pluralize\b")

# Attributes a user sees (tooltips, placeholders, image text, confirm dialogs) or a screen
# reader speaks. `value` counts only on buttons (handled in the parser).
VISIBLE_ATTRIBUTES = frozenset(
    {
        "title",
        "placeholder",
        "aria-label",
        "aria-description",
        "aria-roledescription",
        "aria-valuetext",
        "alt",
        "label",
        "hx-confirm",
        "hx-prompt",
    }
)
_BUTTON_INPUT_TYPES = frozenset({"submit", "button", "reset"})
# Blocks whose content is not text: Django admin's body classes, head contents.
_NON_TEXT_BLOCKS = frozenset(
    {"block bodyclass", "block extrastyle", "block extrahead", "block extra_head"}
)
# Text inside these is not shown (script, style) or is literal machine text that stays the
# same in every language: commands, option names, file names (the conventions' "never
# translated" list).
_SKIPPED_ELEMENTS = frozenset({"script", "style", "code", "kbd", "samp", "var"})
_DATA_ELEMENTS = frozenset({"pre", "textarea"})

# Whole tokens that are not words to translate, each with the reason it may stay as it is.
ALLOWED_TOKENS: tuple[tuple[str, str], ...] = (
    (r"jailadmin", "the product's name"),
    (r"fail2ban(-(client|server|regex))?", "fail2ban and its commands are names"),
    (r"IPv[46]", "protocol names, the same in every language"),
    (r"CIDR", "technical name of the network notation"),
    (r"UTC", "the time standard's abbreviation, used as it is in every language"),
    (r"ISO", "the standard's name (ISO 8601)"),
    (
        r"JSON|CSV|HTMX|HTTPS?|SMTP|SSH|SQLite|Redis|OpenSSH|systemd|Django|Prometheus",
        "format, protocol and product names",
    ),
    (
        r"bantime|findtime|maxretry|ignoreip|logpath|ignoreself|usedns|failregex|ignoreregex"
        r"|datepattern|backend|bantime\.increment|dbpurgeage|dbfile|loglevel|logtarget",
        "fail2ban option names: the operator types them in jail.local as they are",
    ),
    (r"[\w.-]+\.(conf|local|py|pyz|sock|sqlite3)(:\d+)?", "file names (and a line in one)"),
    (r"DEFAULT|INCLUDES|Definition|Init", "section names of fail2ban's configuration files"),
    (r"URLs?|Apprise", "the abbreviation and the notification library's name, in every language"),
    (r"(/[\w.@-]+)+/?", "file paths"),
    (r"https?://\S+", "addresses"),
    (r"\d[\d.,:/]*(ms|s|m|h|d|w|KB|MB|GB|px)?", "numbers and durations as fail2ban writes them"),
    (
        r"[0-9a-fA-F:]*::[0-9a-fA-F:/]*|(\d{1,3}\.){3}\d{1,3}(/\d+)?",
        "IP addresses and networks (examples)",
    ),
)
_ALLOWED = re.compile("|".join(f"(?:{pattern})" for pattern, _reason in ALLOWED_TOKENS))
# A word: two letters in a row (any script). Symbols, numbers, single letters are not words.
_WORD = re.compile(r"[^\W\d_]{2,}")
_EDGE_PUNCTUATION = "\"'()[]{}<>,;:!?.…“”‘’«»—–-·|*+=&%#"


@dataclass(frozen=True)
class Unmarked:
    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text!r}"


def _variable_text(contents: str) -> str:
    """What of a {{ variable }} reaches the page as literal text (see the module docstring)."""
    contents = _TRANSLATED_LITERAL.sub("", contents)
    return " ".join(match.group("text") for match in _SHOWN_LITERAL_FILTERS.finditer(contents))


def untranslated_source(source: str) -> tuple[str, list[tuple[int, str]]]:
    """The template with translated text, comments, tags and variables replaced by HOLEs
    (newlines kept, so HTML positions are template lines), plus template-level findings."""
    parts: list[str] = []
    findings: list[tuple[int, str]] = []
    depth_translated = 0
    depth_comment = 0
    depth_non_text = 0  # inside a _NON_TEXT_BLOCKS block: the blocks opened in it, plus one
    for token in Lexer(source).tokenize():
        newlines = "\n" * token.contents.count("\n") if token.token_type != TokenType.TEXT else ""
        if token.token_type == TokenType.BLOCK:
            command = token.contents.split(maxsplit=1)[0] if token.contents else ""
            if command in ("blocktranslate", "blocktrans"):
                depth_translated += 1
            elif command in ("endblocktranslate", "endblocktrans"):
                depth_translated -= 1
            elif command == "comment":
                depth_comment += 1
            elif command == "endcomment":
                depth_comment -= 1
            elif token.contents in _NON_TEXT_BLOCKS or (depth_non_text and command == "block"):
                depth_non_text += 1
            elif command == "endblock" and depth_non_text:
                depth_non_text -= 1
            parts.append(_GAP + newlines)
        elif token.token_type == TokenType.VAR:
            shown = ""
            if not (depth_translated or depth_comment or depth_non_text):
                if _PLURALIZE.search(token.contents):
                    findings.append(
                        (
                            token.lineno,
                            f"{{{{ {token.contents} }}}}: English plural; use "
                            "{% blocktranslate count %}",
                        )
                    )
                shown = _variable_text(token.contents)
            parts.append(_GAP + shown + _GAP + newlines)
        elif token.token_type == TokenType.COMMENT:
            parts.append(_GAP + newlines)
        elif depth_translated or depth_comment or depth_non_text:
            parts.append(_GAP + "\n" * token.contents.count("\n"))
        else:
            parts.append(token.contents)
    return "".join(parts), findings


def unmarked_words(text: str) -> str:
    """The part of a visible text that needs translating: "" if it is only allowed tokens."""
    left = []
    for raw in text.replace(HOLE, " ").split():
        token = raw.strip(_EDGE_PUNCTUATION)
        if not token or _ALLOWED.fullmatch(token):
            continue
        if _WORD.search(token):
            left.append(token)
    return " ".join(left)


class _VisibleText(HTMLParser):
    """Collects visible text with unmarked words (keep_all: every visible text)."""

    def __init__(self, *, keep_all: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        # keep_all: which of `found` are attribute values (the rest are text nodes).
        self.attribute_lines: set[int] = set()
        self._skipped: list[str] = []
        self._keep_all = keep_all
        # A rendered page's preformatted text is data: log lines, configuration files.
        self._skipped_elements = _SKIPPED_ELEMENTS | (_DATA_ELEMENTS if keep_all else set())

    def _check(self, text: str) -> None:
        if self._keep_all or unmarked_words(text):
            self.attribute_lines.add(len(self.found))
            self.found.append((self.getpos()[0], " ".join(text.replace(HOLE, " ").split())))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if value is None:
                continue
            # A <button>'s value is sent, not shown (its content is); an input button shows it.
            if name in VISIBLE_ATTRIBUTES or (
                name == "value"
                and tag == "input"
                and (values.get("type") or "").lower() in _BUTTON_INPUT_TYPES
            ):
                self._check(value)
        if tag in self._skipped_elements:
            self._skipped.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in self._skipped_elements:
            self._skipped.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in self._skipped_elements and tag in self._skipped:
            while self._skipped and self._skipped.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if not self._skipped:
            # getpos() is where the data starts; findings report the line of the words.
            stripped = data.lstrip()
            line_offset = data[: len(data) - len(stripped)].count("\n")
            if (self._keep_all and stripped) or unmarked_words(stripped):
                self.found.append(
                    (self.getpos()[0] + line_offset, " ".join(stripped.replace(HOLE, " ").split()))
                )


def find_unmarked(source: str, *, path: str, html: bool = True) -> list[Unmarked]:
    """Every piece of visible, unmarked text in one template."""
    text, findings = untranslated_source(source)
    if html:
        parser = _VisibleText()
        parser.feed(text)
        parser.close()
        findings += parser.found
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if unmarked_words(line):
                findings.append((number, " ".join(line.replace(HOLE, " ").split())))
    return [Unmarked(path, line, message) for line, message in sorted(findings)]


def visible_text(html: str) -> list[tuple[int, str, bool]]:
    """Every visible text node and user-visible attribute of a rendered page, in document
    order: (line, text, is_attribute)."""
    parser = _VisibleText(keep_all=True)
    parser.feed(html)
    parser.close()
    return [
        (line, text, index in parser.attribute_lines)
        for index, (line, text) in enumerate(parser.found)
    ]
