"""Money and dates the way a Dutch or English reader expects them in a message.

Babel carries the CLDR rules (grouping, decimal sign, symbol position, month names),
so nl gives "€ 1.656,25" and "3 maart 2025", en gives "€1,656.25" and "3 March 2025".
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from babel.dates import format_date as _babel_format_date
from babel.numbers import format_currency, get_currency_precision

# British English: day before month, as readers in the EU expect.
LOCALES = {"nl": "nl_NL", "en": "en_GB"}

# CLDR puts a no-break space between symbol and amount; SMS gateways (GSM-7) and
# plain-text readers cope better with an ordinary one.
_SPECIAL_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " "})


def locale_for(language: str) -> str:
    try:
        return LOCALES[language]
    except KeyError:
        raise ValueError(
            f"unsupported language {language!r} (supported: {', '.join(sorted(LOCALES))})"
        ) from None


def format_money(amount_minor: int, currency: str, language: str) -> str:
    """An amount in minor units (cents) as text, e.g. 165625 EUR nl -> "€ 1.656,25"."""
    digits = get_currency_precision(currency)
    amount = Decimal(amount_minor).scaleb(-digits)
    text = format_currency(amount, currency, locale=locale_for(language))
    return text.translate(_SPECIAL_SPACES)


def format_long_date(value: date, language: str) -> str:
    """A date with the month written out, e.g. 2025-03-03 nl -> "3 maart 2025"."""
    return _babel_format_date(value, "d MMMM y", locale=locale_for(language))
