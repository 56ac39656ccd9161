"""The term a dunning message gives the debtor, and when it runs out.

A term starts the day after the message is received (for the consumer's 14-day letter:
Hoge Raad 25-11-2016, ECLI:NL:HR:2016:2704). An e-mail or SMS counts as received the
day it is sent. A letter by post counts as received on the second delivery day after
posting; Sundays, Mondays and public holidays are no delivery days (posted Thursday:
received Saturday; posted Friday: received Tuesday). The public holidays are those of
the ``holidays`` package for the Netherlands; one day too many only makes the term end
later, never too early.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import holidays

_DAY = timedelta(days=1)
_NO_DELIVERY_WEEKDAYS = (0, 6)  # Monday, Sunday
_DELIVERY_DAYS_TO_RECEIPT = 2


@lru_cache(maxsize=64)
def _public_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.NL(years=year))


def is_delivery_day(day: date) -> bool:
    return day.weekday() not in _NO_DELIVERY_WEEKDAYS and day not in _public_holidays(day.year)


def received_on(sent_on: date, channel: str) -> date:
    """When a message sent on ``sent_on`` counts as received."""
    if channel != "letter":
        return sent_on
    day, delivery_days = sent_on, 0
    while delivery_days < _DELIVERY_DAYS_TO_RECEIPT:
        day += _DAY
        delivery_days += is_delivery_day(day)
    return day


def term_ends_on(sent_on: date, channel: str, term_days: int) -> date:
    """The last day of a term of ``term_days`` days that starts the day after receipt."""
    return received_on(sent_on, channel) + timedelta(days=term_days)
