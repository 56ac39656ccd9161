"""Statutory extrajudicial collection costs (WIK: Besluit vergoeding voor
buitengerechtelijke incassokosten, art. 2), in minor units.

Brackets of the principal with their rate, minimum 40.00, maximum 6,775.00.
"""

from __future__ import annotations

from fractions import Fraction

# (upper bound of the bracket in cents, rate); None: no upper bound
_BRACKETS = (
    (250_000, Fraction(15, 100)),
    (500_000, Fraction(10, 100)),
    (1_000_000, Fraction(5, 100)),
    (20_000_000, Fraction(1, 100)),
    (None, Fraction(5, 1000)),
)
MINIMUM_MINOR = 4_000
MAXIMUM_MINOR = 677_500


def statutory_collection_costs(principal_minor: int) -> int:
    """Costs on an unpaid principal; several claims on one debtor are summed first."""
    if principal_minor <= 0:
        return 0
    total = Fraction(0)
    lower = 0
    for upper, rate in _BRACKETS:
        top = principal_minor if upper is None else min(principal_minor, upper)
        if top > lower:
            total += (top - lower) * rate
        if upper is None or principal_minor <= upper:
            break
        lower = upper
    cents = int(total + Fraction(1, 2))  # round half up to whole cents
    return max(MINIMUM_MINOR, min(MAXIMUM_MINOR, cents))
