"""Amounts as files write them (a bank's ``1234.50``, a Dutch export's ``1.234,50``) as exact
integer minor units of their currency: ``Decimal``, never float. Shared by the bank and the
invoice imports."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_precision


class Unreadable(Exception):
    """A value (or the entry holding it) that cannot be read: the reason, and where it is
    (an element, a line, a column) when known."""

    def __init__(self, reason: str, where: str | None = None):
        super().__init__(reason)
        self.reason, self.where = reason, where


def minor_units(amount: str, currency: str, where: str | None) -> int:
    """An amount in plain digits with a decimal point ("1234.50", "-12.5") as exact minor
    units of its currency."""
    if not (len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.isupper()):
        raise Unreadable(f"currency {currency!r} is not an ISO 4217 code", where)
    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        raise Unreadable(f"amount {amount!r} is not a number", where) from None
    if not value.is_finite():
        raise Unreadable(f"amount {amount!r} is not a number", where)
    digits = get_currency_precision(currency)
    minor = value.scaleb(digits)
    if minor != minor.to_integral_value():
        raise Unreadable(f"amount {amount} has more decimals than {currency} has ({digits})", where)
    return int(minor)


_DIGITS = re.compile(r"[0-9]+")


def plain_number(text: str, decimal_comma: bool, where: str | None) -> str:
    """A number as an export writes it, in plain digits with a decimal point for
    ``minor_units``: ``1.391,50``, ``1391,50``, ``1,391.50`` and ``1391.50`` are all 1391.50.

    With both separators, the last one is the decimal separator and the other groups
    thousands (in threes). With one of them: once and followed by other than three digits,
    it is the decimal separator; otherwise (``1.391``, ``1.391.234``) the package's locale
    decides: with ``decimal_comma`` (Dutch) a ``.`` groups thousands and a ``,`` is the
    decimal separator, without it the other way round. An amount with cents never has three
    digits after its separator, so the locale decides only what no other reading could."""
    body = text.strip().replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    sign = ""
    if body[:1] in ("-", "+"):
        sign, body = ("-" if body[0] == "-" else ""), body[1:]
    bad = Unreadable(f"amount {text.strip()!r} is not a number", where)
    if not body or not body.isascii():
        raise bad
    commas, dots = body.count(","), body.count(".")
    if commas and dots:
        decimal = "," if body.rfind(",") > body.rfind(".") else "."
        group = "." if decimal == "," else ","
        whole, _, fraction = body.rpartition(decimal)
        if not (_DIGITS.fullmatch(fraction) and _grouped(whole, group)):
            raise bad
        return f"{sign}{whole.replace(group, '')}.{fraction}"
    if not commas and not dots:
        if not _DIGITS.fullmatch(body):
            raise bad
        return sign + body
    separator = "," if commas else "."
    locale_decimal = "," if decimal_comma else "."
    parts = body.split(separator)
    if len(parts) == 2 and (len(parts[1]) != 3 or separator == locale_decimal):
        whole, fraction = parts
        if not (_DIGITS.fullmatch(whole or "0") and _DIGITS.fullmatch(fraction)):
            raise bad
        return f"{sign}{whole or '0'}.{fraction}"
    if separator == locale_decimal or not _grouped(body, separator):  # 1,2,3 or 1.234.5
        raise bad
    return sign + body.replace(separator, "")


def _grouped(whole: str, group: str) -> bool:
    """Digits in groups of three after the first (``1.391.234``), or digits alone."""
    parts = whole.split(group)
    return (all(_DIGITS.fullmatch(p) for p in parts) and 1 <= len(parts[0]) <= (3 if len(parts) > 1 else 99)
            and all(len(p) == 3 for p in parts[1:]))
