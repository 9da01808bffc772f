"""Counts as people read them: grouped the active language's way (10,000 / 10.000 / 10 000).

Only for text shown to people. Form values, URLs, hx-*/data-* attributes, CSV and --json
keep plain digits: something parses those back.
"""

from __future__ import annotations

from django.utils.formats import number_format


def count_text(value: int) -> str:
    """``value`` with the active language's thousands separator (Django's locale formats)."""
    return number_format(int(value), force_grouping=True)


class Count(int):
    """An int that prints grouped (``count_text``) and counts as itself.

    So ``{% blocktranslate count counter=n|count %}…{{ counter }}…`` still picks the plural
    form by the number while showing it grouped, with the msgids translators already have
    (a separate display variable would need a new msgid per sentence, in every language).
    """

    __slots__ = ()

    def __str__(self) -> str:
        return count_text(int(self))
