"""When a dunning message counts as received, and when the term it gives runs out
(DOMAIN.md section 1: posted Thursday -> received Saturday; posted Friday -> Tuesday)."""

from __future__ import annotations

from datetime import date

import pytest

from streams.core.terms import is_delivery_day, received_on, term_ends_on


@pytest.mark.parametrize(
    "posted, received",
    [
        (date(2025, 3, 6), date(2025, 3, 8)),  # Thursday -> Saturday
        (date(2025, 3, 7), date(2025, 3, 11)),  # Friday -> Tuesday: no post on Sunday and Monday
        (date(2025, 3, 8), date(2025, 3, 12)),  # Saturday -> Wednesday
        (date(2025, 4, 24), date(2025, 4, 29)),  # Thursday before King's Day (Saturday 26 April)
        (date(2025, 12, 24), date(2025, 12, 30)),  # Christmas Eve: both Christmas days carry no post
        (date(2025, 5, 28), date(2025, 5, 31)),  # the day before Ascension Day
    ],
)
def test_a_letter_counts_as_received_on_the_second_delivery_day_after_posting(posted, received):
    assert received_on(posted, "letter") == received


@pytest.mark.parametrize("channel", ["email", "sms"])
def test_an_e_mail_or_sms_counts_as_received_the_day_it_is_sent(channel):
    assert received_on(date(2025, 3, 7), channel) == date(2025, 3, 7)


def test_no_post_on_sundays_mondays_and_public_holidays():
    assert [is_delivery_day(date(2025, 3, d)) for d in range(9, 16)] == [False, False, True, True, True, True, True]
    assert not is_delivery_day(date(2025, 1, 1))  # New Year's Day, a Wednesday
    assert not is_delivery_day(date(2025, 5, 29))  # Ascension Day, a Thursday


def test_a_term_starts_the_day_after_receipt():
    # Posted Thursday 6 March, received Saturday 8 March: 15 days run from 9 to 23 March.
    assert term_ends_on(date(2025, 3, 6), "letter", 15) == date(2025, 3, 23)
    assert term_ends_on(date(2025, 3, 6), "email", 15) == date(2025, 3, 21)
