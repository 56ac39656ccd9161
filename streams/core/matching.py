"""Matching a bank transaction to an open invoice by its structured payment reference.

Only an exact structured reference whose check digits validate is trusted; anything
else becomes ``PaymentUnmatched`` with the reason, for a person to look at. A payment
is never dropped and never matched on a guess.

The matcher keeps one ``Slot`` per key (a normalised reference, or the transaction id of
a payment without one) and changes it only through the three functions below, as the
ledger changes a debtor's state through ``apply``; the stream keeps the slots in a table,
``dunning simulate`` in a dict. A payment whose valid reference no invoice carries yet
waits in its slot and is matched the moment the reference is issued, however late: the
order in which the bank feed and the ledger are read does not change the outcome. A
payment still waiting when the next day starts is reported unmatched once (a person sees
it in the queue), keeps waiting, and leaves the queue (``PaymentResolved``) when it is
matched after all.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

from streams.core import events as ev
from streams.core.references import is_valid_normalised_reference, normalise


class ReferenceEntry(NamedTuple):
    """Where a payment reference points. A tuple: the index holds one per invoice."""

    debtor_id: str
    invoice_id: str
    currency: str


class Waiting(NamedTuple):
    """A payment whose reference is not issued yet; ``reported``: in the unmatched queue."""

    payment: ev.PaymentReceived
    reported: bool = False


class Slot(NamedTuple):
    """What the matcher holds under one key: the invoice the reference points to (its
    debtor, id and currency), once it is issued, and the payments waiting for it until
    then. One flat tuple: the matcher holds one per invoice ever issued."""

    debtor_id: str | None = None
    invoice_id: str | None = None
    currency: str | None = None
    waiting: tuple[Waiting, ...] = ()

    @property
    def entry(self) -> ReferenceEntry | None:
        return None if self.debtor_id is None else ReferenceEntry(self.debtor_id, self.invoice_id, self.currency)


EMPTY = Slot()


def entry_for(event: ev.ReferenceIssued) -> ReferenceEntry:
    return ReferenceEntry(event.debtor_id, event.invoice_id, event.currency)


def matching_key(payment: ev.PaymentReceived) -> str:
    """Where a payment is routed for matching: its reference, or its transaction id."""
    if payment.structured_reference:
        return normalise(payment.structured_reference) or payment.transaction_id
    return payment.transaction_id


def on_payment(slot: Slot, payment: ev.PaymentReceived) -> tuple[Slot, list]:
    """A payment routed to ``slot`` (its ``matching_key``): matched, reported unmatched, or
    waiting for its reference. A payment that waits already is not taken twice."""
    reference = _reference(payment)
    if slot.debtor_id is not None:
        return slot, [_decide(payment, reference, slot)]
    if (payment.amount_minor > 0 and payment.direction == "credit" and not payment.reversal and reference
            and is_valid_normalised_reference(reference)):
        # A valid reference that no invoice carries yet: the payment waits for it.
        if any(w.payment.event_id == payment.event_id for w in slot.waiting):
            return slot, []
        return slot._replace(waiting=(*slot.waiting, Waiting(payment))), []
    return slot, [_decide(payment, reference, None)]


def on_reference(slot: Slot, event: ev.ReferenceIssued) -> tuple[Slot, list]:
    """An invoice's reference issued: the payments waiting for it are matched now."""
    issued = Slot(event.debtor_id, event.invoice_id, event.currency)
    if not slot.waiting:
        return issued, []
    outputs: list = []
    for waiting in slot.waiting:
        outcome = _decide(waiting.payment, _reference(waiting.payment), issued)
        outputs.append(outcome)
        if waiting.reported and type(outcome) is ev.PaymentMatched:
            outputs.append(resolved(waiting.payment, outcome))
    return issued, outputs


def on_day(slot: Slot) -> tuple[Slot, list]:
    """A new business day: each payment still waiting and not yet reported is reported
    unmatched (once), and keeps waiting for its reference."""
    if all(w.reported for w in slot.waiting):
        return slot, []
    outputs = [_unmatched(w.payment, f"no invoice carries reference {_reference(w.payment)} (yet): the payment "
                                     "waits and is matched when an invoice with that reference is issued")
               for w in slot.waiting if not w.reported]
    return slot._replace(waiting=tuple(Waiting(w.payment, True) for w in slot.waiting)), outputs


def resolved(payment: ev.PaymentReceived, matched: ev.PaymentMatched) -> ev.PaymentResolved:
    """A payment reported unmatched has found its invoice: it leaves the unmatched queue."""
    return ev.PaymentResolved(f"resolved:{payment.event_id}", payment.transaction_id, "matched",
                              matched.debtor_id, matched.invoice_id)


def match_payment(index: Mapping[str, ReferenceEntry | Slot], payment: ev.PaymentReceived) -> (
        ev.PaymentMatched | ev.PaymentUnmatched):
    """The payment against an index of references (no waiting: what it says now)."""
    reference = _reference(payment)
    return _decide(payment, reference, index.get(reference) if reference else None)


def _decide(payment: ev.PaymentReceived, reference: str,
            entry: ReferenceEntry | Slot | None) -> ev.PaymentMatched | ev.PaymentUnmatched:
    """Matched to ``entry`` (the invoice ``reference`` points to, if any), or why not."""
    if payment.reversal:
        return _unmatched(payment, f"the bank reverses an earlier {'debit' if payment.direction == 'credit' else 'credit'} "
                                   "with this one: undo that booking by hand")
    if payment.direction == "debit":
        return _unmatched(payment, "a debit (money out: a refund or a returned direct debit), not a payment from a debtor")
    if payment.amount_minor <= 0:
        return _unmatched(payment, "not an incoming payment (amount is not positive)")
    if not reference:
        return _unmatched(payment, "no structured payment reference")
    if not is_valid_normalised_reference(reference):
        return _unmatched(payment, f"structured reference {reference} fails its check digits")
    if entry is None:
        return _unmatched(payment, f"no invoice carries reference {reference}")
    if entry.currency != payment.currency:
        return _unmatched(
            payment, f"currency {payment.currency} differs from invoice currency {entry.currency}", entry.debtor_id
        )
    # event_id, debtor_id, invoice_id, transaction_id, booking_date, amount_minor, currency, method, payer_iban
    return ev.PaymentMatched(f"pay:{payment.event_id}", entry.debtor_id, entry.invoice_id, payment.transaction_id,
                             payment.booking_date, payment.amount_minor, payment.currency, "structured_reference",
                             payment.payer_iban)


def _reference(payment: ev.PaymentReceived) -> str:
    return normalise(payment.structured_reference or "")


def _unmatched(payment: ev.PaymentReceived, reason: str, debtor_id: str | None = None) -> ev.PaymentUnmatched:
    return ev.PaymentUnmatched(
        event_id=f"unmatched:{payment.event_id}",
        transaction_id=payment.transaction_id,
        booking_date=payment.booking_date,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        reason=reason,
        payer_iban=payment.payer_iban,
        payer_name=payment.payer_name,
        structured_reference=payment.structured_reference,
        unstructured_remittance=payment.unstructured_remittance,
        end_to_end_id=payment.end_to_end_id,
        debtor_id=debtor_id,
    )
