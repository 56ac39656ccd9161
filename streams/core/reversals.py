"""Which payment a reversal takes back, as a pure rule.

A bank reverses a credit (a transfer recalled or returned, camt ``RvslInd``) with a debit of
the same amount that repeats what the original said, but names no id of it. The matcher
routes the reversal like a payment without a reference (``streams.core.cascade``: by its
reference, the invoice numbers in its text, its account) to one debtor, who looks for the
payment among those it was credited with (``DebtorState.payments``): the same amount, booked
no later, and, if the reversal names invoices or quotes a valid reference, one that paid an
invoice it names; if it names none, one from the same account. One such payment (the one
that also shares the other, if several fit) is taken back (``ledger``); none, or several that
fit as well as each other, and the reversal goes to the unmatched queue with the candidates.
"""

from __future__ import annotations

from streams.core import cascade
from streams.core import events as ev
from streams.core.references import is_valid_normalised_reference, normalise
from streams.core.state import Booked, DebtorState

CANDIDATE = "payment"  # a MatchCandidate's ``via``: a booked payment the reversal may take back


def reversed_payment(state: DebtorState, reversal: ev.PaymentProbe) -> tuple[Booked, str] | ev.PaymentUnmatched:
    """The one booked payment ``reversal`` takes back and why, or the queue."""
    debtor_id = state.debtor_id
    if reversal.currency != state.currency:
        return _queued(reversal, debtor_id, f"currency {reversal.currency} differs from the debtor's currency "
                                            f"{state.currency}")
    named = {hit.invoice_id for hit in reversal.hits
             if hit.debtor_id == debtor_id and hit.invoice_id and hit.via in (cascade.NUMBER, cascade.REFERENCE)}
    # A reversal that names invoices (or quotes a valid reference, even one no invoice here
    # carries) takes back only a payment that paid one of them; one that names none, only a
    # payment from its account.
    naming = bool(named) or is_valid_normalised_reference(normalise(reversal.structured_reference or ""))
    payer = normalise(reversal.payer_iban) if reversal.payer_iban else None
    scored = []
    for payment in map(Booked.of, state.payments):
        if payment.amount_minor != reversal.amount_minor or payment.booking_date > reversal.booking_date:
            continue
        paid = [invoice_id for invoice_id in dict.fromkeys(i for i, _ in payment.portions) if invoice_id in named]
        same_account = bool(payer and payment.payer_iban and normalise(payment.payer_iban) == payer)
        if not (paid if naming else same_account):
            continue
        shared = [f"it paid {', '.join(paid)}, which the reversal names"] if paid else []
        if same_account:
            shared.append("it came from the same account")
        scored.append((len(shared), payment, shared))
    amount = f"{reversal.amount_minor / 100:,.2f} {reversal.currency}"
    if not scored:
        what = "paid an invoice it names" if naming else "came from its account"
        return _queued(reversal, debtor_id, f"no payment of {amount} this debtor was credited with (of those it "
                                            f"keeps) {what}")
    best = max(score for score, _, _ in scored)
    top = [(payment, shared) for score, payment, shared in scored if score == best]
    if len(top) > 1:
        return _queued(reversal, debtor_id, f"{len(top)} payments of {amount} fit it as well as each other",
                       [payment for payment, _ in top])
    payment, shared = top[0]
    return payment, (f"the bank takes back transaction {payment.transaction_id} of {payment.booking_date}: "
                     f"the same amount; {' and '.join(shared)}")


def _queued(reversal: ev.PaymentProbe, debtor_id: str, reason: str,
            payments: list[Booked] = ()) -> ev.PaymentUnmatched:
    candidates = tuple(ev.MatchCandidate(debtor_id, payment.portions[0][0] if payment.portions else None, CANDIDATE)
                       for payment in payments[:cascade.CANDIDATES_LISTED])
    return cascade.unmatched(reversal, reversal.payment_event_id, reason, debtor_id, candidates)
