"""Extrajudicial collection costs, in minor units: the statutory table (WIK: Besluit
vergoeding voor buitengerechtelijke incassokosten, art. 2) and how costs are spread over
the invoices one message claims them on.

The table is data: the policy file may give its own brackets, minimum, maximum and VAT
(``policy.costs_table``); these are the statutory ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

MINIMUM_MINOR = 4_000
MAXIMUM_MINOR = 677_500


@dataclass(frozen=True, slots=True)
class CostsTable:
    # (upper bound of the bracket in minor units, rate), the last without an upper bound (None)
    brackets: tuple[tuple[int | None, Fraction], ...]
    minimum_minor: int = MINIMUM_MINOR
    maximum_minor: int = MAXIMUM_MINOR
    # VAT on the costs, only for a creditor who cannot deduct VAT (and says so): else 0
    vat_rate: Fraction = Fraction(0)

    def costs(self, principal_minor: int) -> int:
        """Costs on an unpaid principal (several claims in one letter: their sum), VAT included."""
        if principal_minor <= 0:
            return 0
        total = Fraction(0)
        lower = 0
        for upper, rate in self.brackets:
            top = principal_minor if upper is None else min(principal_minor, upper)
            if top > lower:
                total += (top - lower) * rate
            if upper is None or principal_minor <= upper:
                break
            lower = upper
        return self.with_vat(max(self.minimum_minor, min(self.maximum_minor, _cents(total))))

    def b2b(self, rule: str | int, principal_minor: int) -> int:
        """Costs on one business invoice by a workflow's ``b2b_costs`` rule: ``minimum`` (the
        flat 40.00 of BW 6:96 lid 4), ``statutory`` (this table on its principal), ``none``,
        or the amount the creditor's terms say."""
        if rule == "none" or principal_minor <= 0:
            return 0
        if rule == "minimum":
            return self.with_vat(self.minimum_minor)
        if rule == "statutory":
            return self.costs(principal_minor)
        return self.with_vat(rule)

    def with_vat(self, costs_minor: int) -> int:
        return costs_minor + _cents(costs_minor * self.vat_rate) if self.vat_rate else costs_minor


STATUTORY = CostsTable(brackets=(
    (250_000, Fraction(15, 100)),
    (500_000, Fraction(10, 100)),
    (1_000_000, Fraction(5, 100)),
    (20_000_000, Fraction(1, 100)),
    (None, Fraction(5, 1000)),
))


def statutory_collection_costs(principal_minor: int) -> int:
    """Costs on an unpaid principal by the statutory table; several claims are summed first."""
    return STATUTORY.costs(principal_minor)


def _cents(amount: Fraction) -> int:
    return int(amount + Fraction(1, 2))  # round half up to whole cents


def spread(total_minor: int, principals: list[tuple[str, int]]) -> dict[str, int]:
    """``total_minor`` over the invoices in proportion to their principal (largest remainder;
    a tie goes to the invoice listed first), so the parts add up to the total exactly."""
    weight = sum(principal for _, principal in principals)
    if weight <= 0:
        return {}
    parts = {invoice_id: total_minor * principal // weight for invoice_id, principal in principals}
    short = total_minor - sum(parts.values())
    by_remainder = sorted(range(len(principals)), key=lambda i: -(total_minor * principals[i][1] % weight))
    for i in by_remainder[:short]:
        parts[principals[i][0]] += 1
    return parts
