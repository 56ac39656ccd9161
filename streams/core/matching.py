"""Matching a bank transaction to an open invoice by its structured payment reference.

Only an exact structured reference whose check digits validate is trusted; anything
else becomes ``PaymentUnmatched`` with the reason, for a person to look at. A payment
is never dropped and never matched on a guess.
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


def entry_for(event: ev.ReferenceIssued) -> ReferenceEntry:
    return ReferenceEntry(event.debtor_id, event.invoice_id, event.currency)


def matching_key(payment: ev.PaymentReceived) -> str:
    """Where a payment is routed for matching: its reference, or its transaction id."""
    if payment.structured_reference:
        return normalise(payment.structured_reference) or payment.transaction_id
    return payment.transaction_id


def match_payment(
    index: Mapping[str, ReferenceEntry], payment: ev.PaymentReceived
) -> ev.PaymentMatched | ev.PaymentUnmatched:
    reference = normalise(payment.structured_reference or "")
    if payment.amount_minor <= 0:
        return _unmatched(payment, "not an incoming payment (amount is not positive)")
    if not reference:
        return _unmatched(payment, "no structured payment reference")
    if not is_valid_normalised_reference(reference):
        return _unmatched(payment, f"structured reference {reference} fails its check digits")
    entry = index.get(reference)
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
