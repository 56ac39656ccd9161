"""``dunning allocate``: a person resolves a payment in the unmatched queue.

The payment is looked up in the queue (the read model), the invoices or the debtor named
are checked against the read model's open items and debtors, and one ``PaymentAllocated``
goes to the bank topic. The stream applies it: the matcher drops any copy of the payment
still waiting there and books it on the debtor (``PaymentMatched``, method ``manual``:
the invoices named first, the rest by the law's order), or, for a payment that is not a
debtor's, books nothing; either way a ``PaymentResolved`` takes the row out of the queue,
and a manual allocation teaches the matcher the payer's account.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from projections.models import Debtor, OpenItem, UnmatchedPayment
from streams.core import events as ev


class AllocationRefused(ValueError):
    """What the person asked for does not fit the read model; one line says why."""


@dataclass(frozen=True)
class Allocation:
    transaction_id: str
    invoice_ids: tuple[str, ...] = ()
    debtor_id: str | None = None
    not_ours: str | None = None  # the reason it is no debtor's payment
    by: str | None = None


def allocation_event(engine: Engine, asked: Allocation) -> ev.PaymentAllocated:
    """The ``PaymentAllocated`` for ``asked``, checked against the read model."""
    with Session(engine) as session:
        row = session.get(UnmatchedPayment, asked.transaction_id)
        if row is None:
            raise AllocationRefused(f"payment {asked.transaction_id!r} is not in the unmatched queue "
                                    "(allocated already, matched after all, or never reported)")
        if asked.not_ours is None and (row.direction != "credit" or row.reversal):
            raise AllocationRefused("money out (a debit or a reversal) is not a debtor's payment: undo what it "
                                    "reverses in the ledger and mark it with --not-ours")
        payment_event_id = row.event_id.removeprefix("unmatched:")
        debtor_id = None if asked.not_ours is not None else _debtor_of(session, asked, row.currency)
    return ev.PaymentAllocated(
        event_id=f"allocated:{payment_event_id}",
        transaction_id=row.transaction_id,
        payment_event_id=payment_event_id,
        booking_date=row.booking_date,
        amount_minor=row.amount_minor,
        currency=row.currency,
        structured_reference=row.structured_reference,
        payer_iban=row.payer_iban,
        debtor_id=debtor_id,
        invoice_ids=asked.invoice_ids,
        not_ours_reason=asked.not_ours,
        allocated_by=asked.by,
    )


def _debtor_of(session: Session, asked: Allocation, currency: str) -> str:
    if asked.invoice_ids:
        query = select(OpenItem.debtor_id, OpenItem.invoice_id).where(OpenItem.invoice_id.in_(asked.invoice_ids))
        if asked.debtor_id is not None:
            query = query.where(OpenItem.debtor_id == asked.debtor_id)
        found = session.execute(query).all()
        missing = sorted(set(asked.invoice_ids) - {invoice_id for _, invoice_id in found})
        if missing:
            whose = f" of debtor {asked.debtor_id}" if asked.debtor_id else ""
            raise AllocationRefused(f"no open invoice {', '.join(missing)}{whose} in the read model")
        debtors = sorted({debtor_id for debtor_id, _ in found})
        if len(debtors) > 1:
            raise AllocationRefused(f"the invoices belong to several debtors ({', '.join(debtors)}): name one "
                                    "with --debtor, or allocate to one debtor's invoices at a time")
        debtor_id = debtors[0]
    else:
        debtor_id = asked.debtor_id
    debtor = session.get(Debtor, debtor_id)
    if debtor is None:
        raise AllocationRefused(f"no debtor {debtor_id!r} in the read model")
    if debtor.currency != currency:
        raise AllocationRefused(f"the payment is in {currency}, debtor {debtor_id} in {debtor.currency}")
    return debtor_id
