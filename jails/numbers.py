"""Counts as people read them: grouped the active language's way (10,000 / 10.000 / 10 000).

Only for text shown to people. Form values, URLs, hx-*/data-* attributes, CSV and --json
keep plain digits: something parses those back.
"""

from __future__ import annotations

from django.utils.formats import number_format

# Django's locales group digits by 3 or 4 (NUMBER_GROUPING), or not at all: no count
# below this has a separator in any language.
UNGROUPED_BELOW = 1000


def count_text(value: int) -> str:
    """``value`` with the active language's thousands separator (Django's locale formats)."""
    value = int(value)
    # Most counters on a page are small, and number_format looks up three locale formats
    # per call (about 15 µs each time; a jail list with its status bar made some 40 calls).
    if -UNGROUPED_BELOW < value < UNGROUPED_BELOW:
        return str(value)
    return number_format(value, force_grouping=True)


class Count(int):
    """An int that prints grouped (``count_text``) and counts as itself.

    So ``{% blocktranslate count counter=n|count %}…{{ counter }}…`` still picks the plural
    form by the number while showing it grouped, with the msgids translators already have
    (a separate display variable would need a new msgid per sentence, in every language).
    """

    __slots__ = ()

    def __str__(self) -> str:
        return count_text(int(self))
