"""Statutory collection costs (WIK), checked against the decree's own examples."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.collection_costs import MAXIMUM_MINOR, MINIMUM_MINOR, statutory_collection_costs


def euros(amount: str) -> int:
    """'1,000.00' -> 100000 minor units."""
    whole, _, cents = amount.replace(",", "").partition(".")
    return int(whole) * 100 + int(cents or 0)


@pytest.mark.parametrize(
    "principal, costs",
    [
        ("100", "40.00"),  # 15 % is 15.00: the minimum applies
        ("267", "40.05"),
        ("1,000", "150.00"),
        ("2,500", "375.00"),  # end of the first bracket
        ("5,000", "625.00"),
        ("10,000", "875.00"),
        ("200,000", "2,775.00"),
        ("1,000,000", "6,775.00"),  # the maximum is reached here
    ],
)
def test_examples_of_the_decree(principal, costs):
    assert statutory_collection_costs(euros(principal)) == euros(costs)


@pytest.mark.parametrize("principal", ["1,000,000.01", "1,500,000", "25,000,000"])
def test_maximum_holds_above_one_million(principal):
    assert statutory_collection_costs(euros(principal)) == euros("6,775.00")


def test_brackets_apply_to_the_sum_of_several_claims():
    # 2,000 + 1,000 as one claim: 375.00 + 50.00, less than 300.00 + 150.00 apart.
    assert statutory_collection_costs(euros("3,000")) == euros("425.00")


def test_rounds_half_up_to_whole_cents():
    assert statutory_collection_costs(26_703) == 4_005  # 40.0545
    assert statutory_collection_costs(26_710) == 4_007  # 40.065 rounds up


def test_no_principal_no_costs():
    assert statutory_collection_costs(0) == 0
    assert statutory_collection_costs(-5_000) == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=10**11), st.integers(min_value=0, max_value=10**9))
def test_more_principal_never_costs_less(principal, extra):
    assert statutory_collection_costs(principal) <= statutory_collection_costs(principal + extra)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=10**11))
def test_costs_stay_between_minimum_and_maximum(principal):
    assert MINIMUM_MINOR <= statutory_collection_costs(principal) <= MAXIMUM_MINOR
