"""Country names in the page's language, by ISO 3166 alpha-2 code.

The archive stores codes and the English names the geo data gave; a page shows the name in
its own language from CLDR (via Babel) and falls back to the stored English name for a code
CLDR does not know (or a language Babel has no data for). English pages keep the stored
names, so what an English page says is what the archive says.
"""

from __future__ import annotations

from functools import lru_cache

from babel import Locale, UnknownLocaleError
from django.utils.translation import get_language, to_locale


# A cache on a pure function of its arguments rather than a dict on the module (DESIGN.md,
# "no module-level caches"): nine languages times about 250 codes fits in the bound.
@lru_cache(maxsize=4096)
def territory_name(language: str, code: str) -> str | None:
    """CLDR's name of the territory `code` in `language` (a Django language code), or None."""
    try:
        locale = Locale.parse(to_locale(language))
    except (UnknownLocaleError, ValueError, TypeError):
        return None
    code = code.upper()
    # CLDR's "ZZ" is its "Unknown Region", not a country: such a code shows as itself, as
    # it does in English.
    if code == "ZZ":
        return None
    name = locale.territories.get(code)
    return str(name) if name else None


def country_name(code: str, english: str = "") -> str:
    """The name of `code` in the active language; `english` (the stored name) otherwise."""
    language = get_language()
    if code and language and not language.lower().startswith("en"):
        name = territory_name(language, code)
        if name:
            return name
    return english or code
