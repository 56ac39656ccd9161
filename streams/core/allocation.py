"""Where money received goes: BW 6:43 and 6:44, as a pure function.

A payment goes first to the invoice it names (its reference is the payer's designation,
BW 6:43 lid 1); what is left, and any credit on account, goes to what is due first: the
oldest due date first (BW 6:43 lid 2; between invoices due the same day, by invoice id), undisputed amounts before
disputed ones (a contested invoice is the payer's to pay last). Within an invoice the
money goes to costs, then interest, then principal (BW 6:44): today an invoice holds only
principal, so its portion is one amount; once it holds costs and interest, the booking of a
portion serves them in that order. What no open item takes stays credit on account, and
the next invoice takes it. So a debtor with credit has
no open amount: nobody is asked for more than they owe in total.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from streams.core.state import Item, due_order


def allocate(amount_minor: int, items: Iterable[Item], disputed: Mapping[str, int] | None = None,
             designated: str | None = None) -> tuple[dict[str, int], int]:
    """``amount_minor`` spread over the open ``items``: the portion each invoice takes (by
    id, only those that take something) and what is left over as credit. ``disputed``:
    the amount under dispute per invoice id; ``designated``: the invoice the payer named,
    served first."""
    disputed = disputed or {}
    open_items = [item for item in items if item.open_minor > 0]
    portions: dict[str, int] = {}
    left = amount_minor

    def take(item: Item, most: int) -> None:
        nonlocal left
        portion = min(left, most)
        if portion > 0:
            portions[item.invoice_id] = portions.get(item.invoice_id, 0) + portion
            left -= portion

    for item in open_items:
        if item.invoice_id == designated:
            take(item, item.open_minor)
    for undisputed_first in (True, False):
        for item in sorted(open_items, key=due_order):
            if left == 0:
                return portions, 0
            already = portions.get(item.invoice_id, 0)
            room = item.open_minor - already
            contested = min(room, disputed.get(item.invoice_id, 0))
            take(item, room - contested if undisputed_first else room)
    return portions, left
