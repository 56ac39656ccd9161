"""Matching a bank transaction to an open invoice: first by its structured payment
reference, then by the cascade (``streams.core.cascade``) for a payment without one.

Only an exact structured reference whose check digits validate is matched at once;
anything else waits for the next day tick, where the cascade either finds the debtor
and invoices by what the payment says (with the reason and how sure) or puts it in the
unmatched queue for a person. A payment is never dropped and never matched on a guess.

The matcher keeps, per key, a ``Slot`` (a normalised reference, or ``tx:`` + the
transaction id of a payment parked for the cascade) or a ``cascade.Known`` (an invoice
number, ``no:``, or a payer's account, ``iban:``), and changes them only through the
functions below, as the ledger changes a debtor's state through ``apply``; the stream
keeps them in a table, ``dunning simulate`` in a dict. A payment whose valid reference
no invoice carries yet waits in its slot and is matched the moment the reference is
issued, however late: the order in which the bank feed and the ledger are read does not
change the outcome. A payment still waiting when the next day starts is reported
unmatched once (a person sees it in the queue), keeps waiting, and leaves the queue
(``PaymentResolved``) when it is matched after all. A reversal of a credit waits for the
tick like a payment for the cascade, and goes to its debtor to take that payment back.
"""

from __future__ import annotations

from datetime import date
from typing import Mapping, NamedTuple

from streams.core import cascade
from streams.core import events as ev
from streams.core.cascade import NOTHING_KNOWN, Known
from streams.core.ledger import RETENTION
from streams.core.references import is_valid_normalised_reference, normalise

PARKED_KEY = "tx:"  # a payment for the cascade waits under its transaction id
WAITS = RETENTION  # how long a payment waits for its reference: as long as a debtor keeps a settled invoice


class ReferenceEntry(NamedTuple):
    """Where a payment reference points. A tuple: the index holds one per invoice."""

    debtor_id: str
    invoice_id: str
    currency: str


class Waiting(NamedTuple):
    """A payment parked in its slot: for its reference (``reported``: in the unmatched queue
    already), or for the cascade at the next tick (``contested``: its reference and its text
    name different invoices). ``since``: the business date it was reported on, from which
    it waits ``WAITS`` (a statement imported months late waits as long as one read at once)."""

    payment: ev.PaymentReceived
    reported: bool = False
    contested: bool = False
    since: date | None = None


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


def is_index_key(key: str) -> bool:
    return key.startswith((cascade.NUMBER_KEY, cascade.PAYER_KEY))


def holds_nothing(slot: Slot | Known) -> bool:
    """A slot with no invoice and no payment waiting, or an index entry that points nowhere:
    its key is deleted (a payment parked for the cascade that set out, one a person
    allocated, an invoice no longer kept)."""
    if type(slot) is Slot:
        return slot.debtor_id is None and not slot.waiting
    return not slot


def empty_at(key: str) -> Slot | Known:
    """What a key holds before anything is written to it."""
    return NOTHING_KNOWN if is_index_key(key) else EMPTY


def entry_for(event: ev.ReferenceIssued) -> ReferenceEntry:
    return ReferenceEntry(event.debtor_id, event.invoice_id, event.currency)


def matching_key(payment: ev.PaymentReceived) -> str:
    """Where a payment is routed for matching: its reference, if it validates; otherwise
    its transaction id."""
    return _valid_reference(payment) or PARKED_KEY + payment.transaction_id


def index_key(event: ev.ReferenceIssued | ev.ReferenceRetired | ev.PayerLearned | ev.PaymentProbe) -> str:
    """Where the matcher keeps (or a probe looks up) an index entry."""
    if type(event) is ev.PaymentProbe:
        return event.route[0]
    if type(event) is ev.PayerLearned:
        return cascade.payer_key(event.iban)
    if event.kind == cascade.NUMBER:
        return cascade.number_key(event.reference)
    return event.reference


def index_keys(event: ev.ReferenceIssued | ev.ReferenceRetired | ev.PayerLearned | ev.PaymentProbe) -> (
        tuple[str, ...]):
    """Every key an index event is written under: ``index_key``, and for an invoice's
    reference that carries its number as well, the number's entry."""
    key = index_key(event)
    if type(event) in (ev.ReferenceIssued, ev.ReferenceRetired) and event.number and event.kind != cascade.NUMBER:
        return key, cascade.number_key(event.number)
    return (key,)


def on_issued(slot: Slot | Known, event: ev.ReferenceIssued, key: str) -> tuple[Slot | Known, list]:
    """An invoice's reference or number arriving at ``key``, one of its ``index_keys``."""
    return on_index(slot, event) if is_index_key(key) else on_reference(slot, event)


def on_retired(slot: Slot | Known, event: ev.ReferenceRetired, key: str) -> tuple[Slot | Known, list]:
    """A settled invoice no longer kept, at ``key``, one of its ``index_keys``: the number's
    entry forgets it; the reference's slot forgets it if it still points to it (payments
    waiting there keep waiting)."""
    if is_index_key(key):
        return cascade.without_target(slot, event.debtor_id, event.invoice_id), []
    if (slot.debtor_id, slot.invoice_id) != (event.debtor_id, event.invoice_id):
        return slot, []
    return Slot(waiting=slot.waiting), []


def on_payment(slot: Slot, payment: ev.PaymentReceived) -> tuple[Slot, list]:
    """A payment routed to ``slot`` (its ``matching_key``): matched, reported unmatched, or
    waiting, for its reference or for the cascade at the next tick. A payment that waits
    already is not taken twice."""
    reference = _reference(payment)
    if takes_back(payment):  # to its debtor at the tick, once the day's payments are booked
        return _parked(slot, payment, contested=slot.debtor_id is not None)
    usable = payment.amount_minor > 0 and payment.direction == "credit" and not payment.reversal
    if slot.debtor_id is not None and not (usable and _contested(payment, slot.invoice_id)):
        return slot, [_decide(payment, reference, slot)]
    if not usable:
        return slot, [_decide(payment, reference, None)]
    return _parked(slot, payment, contested=slot.debtor_id is not None)


def takes_back(payment: ev.PaymentReceived) -> bool:
    """A reversal of an earlier credit: the bank takes back a payment a debtor was credited
    with (``streams.core.reversals``)."""
    return payment.reversal and payment.direction == "debit" and payment.amount_minor > 0


def _parked(slot: Slot, payment: ev.PaymentReceived, contested: bool) -> tuple[Slot, list]:
    """``payment`` waiting in ``slot`` (``contested``: the slot's invoice goes along to the
    cascade as a hit); one that waits already is not taken twice."""
    if any(w.payment.event_id == payment.event_id for w in slot.waiting):
        return slot, []
    return slot._replace(waiting=(*slot.waiting, Waiting(payment, False, contested))), []


def on_reference(slot: Slot, event: ev.ReferenceIssued) -> tuple[Slot, list]:
    """An invoice's reference issued: the payments waiting for it are matched now."""
    issued = Slot(event.debtor_id, event.invoice_id, event.currency)
    if not slot.waiting:
        return issued, []
    outputs: list = []
    contested = []
    for waiting in slot.waiting:
        if waiting.contested or takes_back(waiting.payment) or _contested(waiting.payment, event.invoice_id):
            contested.append(waiting._replace(contested=True))  # for the cascade, at the tick
            continue
        outcome = _decide(waiting.payment, _reference(waiting.payment), issued)
        outputs.append(outcome)
        if waiting.reported and type(outcome) is ev.PaymentMatched:
            outputs.append(resolved(waiting.payment, outcome))
    return issued._replace(waiting=tuple(contested)), outputs


def on_day(slot: Slot, today: date) -> tuple[Slot, list]:
    """A new business day. A payment parked for the cascade sets out as a ``PaymentProbe``
    (or, with nothing to look up, is reported unmatched) and leaves the slot; one waiting
    for its reference is reported unmatched (once) and keeps waiting, for ``WAITS`` after
    that; then only the unmatched queue holds it."""
    if all(w.reported and not w.contested for w in slot.waiting):
        kept = tuple(w for w in slot.waiting if _still_waits(w, today))
        return (slot if len(kept) == len(slot.waiting) else slot._replace(waiting=kept)), []
    outputs: list = []
    kept = []
    for w in slot.waiting:
        if w.contested:  # the invoice the reference names goes along, to be weighed with the text's
            outputs.append(cascade.probe_for(w.payment, ev.MatchCandidate(slot.debtor_id, slot.invoice_id,
                                                                          cascade.REFERENCE), w.reported))
        elif takes_back(w.payment) or _valid_reference(w.payment) is None:
            outputs.append(cascade.probe_for(w.payment))
        elif w.reported:
            if _still_waits(w, today):
                kept.append(w)
        else:
            outputs.append(_unmatched(w.payment, f"no invoice carries reference {_reference(w.payment)} (yet): the "
                                                 "payment waits and is matched when an invoice with that reference "
                                                 "is issued"))
            kept.append(Waiting(w.payment, True, False, today))
    return slot._replace(waiting=tuple(kept)), outputs


def _still_waits(waiting: Waiting, today: date) -> bool:
    return (waiting.since or waiting.payment.booking_date) + WAITS >= today


def on_allocated(slot: Slot, event: ev.PaymentAllocated) -> tuple[Slot, list]:
    """A person's decision on a payment from the unmatched queue: a copy still waiting in
    the slot leaves it, and the payment is booked as the person said (``PaymentMatched``,
    method ``manual``; no invoice named: on account) or not at all; either way it leaves the
    queue (``PaymentResolved``)."""
    if (event.debtor_id is None) == (event.not_ours_reason is None):
        raise ev.InvalidEvent("names either a debtor (with or without invoices) or why it is not a debtor's "
                              "payment, not both or neither", "debtor_id")
    if event.amount_minor <= 0:
        raise ev.InvalidEvent("must be positive: only money in is allocated", "amount_minor")
    kept = tuple(w for w in slot.waiting if w.payment.event_id != event.payment_event_id)
    slot = slot._replace(waiting=kept) if len(kept) != len(slot.waiting) else slot
    resolved_id = f"resolved:{event.payment_event_id}"
    if event.not_ours_reason is not None:
        return slot, [ev.PaymentResolved(resolved_id, event.transaction_id, "not_ours", reason=event.not_ours_reason)]
    invoice_id = event.invoice_ids[0] if event.invoice_ids else ""
    by = event.allocated_by or "a person"
    reason = f"allocated by {by}" + ("" if event.invoice_ids else ", on account")
    # event_id, debtor_id, invoice_id, transaction_id, booking_date, amount_minor, currency, method, payer_iban,
    # more_invoice_ids, reason, confidence_pct
    matched = ev.PaymentMatched(f"pay:{event.payment_event_id}", event.debtor_id, invoice_id, event.transaction_id,
                                event.booking_date, event.amount_minor, event.currency, "manual", event.payer_iban,
                                tuple(event.invoice_ids[1:]), reason, 100)
    return slot, [matched, ev.PaymentResolved(resolved_id, event.transaction_id, "allocated", event.debtor_id,
                                              invoice_id or None)]


def on_index(known: Known, event: ev.ReferenceIssued | ev.PayerLearned) -> tuple[Known, list]:
    """An invoice's number, or a payer's account learned from a match: into its index entry."""
    return cascade.with_target(known, event.debtor_id,
                               event.invoice_id if type(event) is ev.ReferenceIssued else None), []


def on_probe(known: Known, probe: ev.PaymentProbe) -> tuple[Known, list]:
    """A probe at an index entry (``cascade.visit``); the entry does not change."""
    return known, [cascade.visit(known, probe)]


def resolved(payment: ev.PaymentReceived, matched: ev.PaymentMatched) -> ev.PaymentResolved:
    """A payment reported unmatched has found its invoice: it leaves the unmatched queue."""
    return ev.PaymentResolved(f"resolved:{payment.event_id}", payment.transaction_id, "matched",
                              matched.debtor_id, matched.invoice_id)


def match_payment(index: Mapping[str, ReferenceEntry | Slot], payment: ev.PaymentReceived) -> (
        ev.PaymentMatched | ev.PaymentUnmatched):
    """The payment against an index of references (no waiting: what it says now)."""
    valid = _valid_reference(payment)
    return _decide(payment, _reference(payment), index.get(valid) if valid else None)


def _decide(payment: ev.PaymentReceived, reference: str,
            entry: ReferenceEntry | Slot | None) -> ev.PaymentMatched | ev.PaymentUnmatched:
    """Matched to ``entry`` (the invoice ``reference`` points to, if any), or why not."""
    if payment.reversal:  # of a debit: money out, which no debtor was credited with
        return _unmatched(payment, "the bank reverses an earlier debit with this one: not a payment from a debtor")
    if payment.direction == "debit":
        return _unmatched(payment, "a debit (money out: a refund or a returned direct debit), not a payment from a debtor")
    if payment.amount_minor <= 0:
        return _unmatched(payment, "not an incoming payment (amount is not positive)")
    if entry is None:  # (an entry is kept only under a valid reference: ``matching_key``)
        if not reference:
            return _unmatched(payment, "no structured payment reference")
        if not is_valid_normalised_reference(reference):
            return _unmatched(payment, f"structured reference {reference} fails its check digits")
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


def _contested(payment: ev.PaymentReceived, invoice_id: str) -> bool:
    """The payment's text or end-to-end id holds a number shaped like the invoice's own number
    (the same letters and digits in the same places) but not that number: it names another
    invoice. The reference may be a typo that kept its check digit (a betalingskenmerk's
    check digit misses some: remainders 0 and 1 both give 1), so neither is trusted alone
    and the cascade weighs them at the tick."""
    if not (payment.unstructured_remittance or payment.end_to_end_id):
        return False
    own = cascade.number_token(invoice_id)
    if own is None:
        return False
    tokens = cascade.tokens(payment)
    if own in tokens:
        return False
    shape = _shape(own)
    return any(len(token) == len(own) and _shape(token) == shape for token in tokens)


def _shape(token: str) -> str:
    return "".join("9" if ch.isdigit() else "A" for ch in token)


def _valid_reference(payment) -> str | None:
    """The payment's reference, normalised, if its check digits validate."""
    reference = _reference(payment)
    return reference if reference and is_valid_normalised_reference(reference) else None


def _unmatched(payment: ev.PaymentReceived, reason: str, debtor_id: str | None = None) -> ev.PaymentUnmatched:
    return cascade.unmatched(payment, payment.event_id, reason, debtor_id)
