"""The matching cascade for a payment without a usable structured reference (DOMAIN.md
section 7, steps 2 to 5), as pure rules. ``streams.core.matching`` moves the payment
through the indexes; the debtor's ledger makes the decision.

1. The matcher parks the payment until the next day tick, so that every invoice and
   every learned account of the day is known, whatever order the topics were read in.
2. At the tick it becomes a ``PaymentProbe`` that visits, one after the other, the index
   entries of the invoice numbers its text and end-to-end id hold (tokens of four or more
   characters with a digit) and of the payer's IBAN, collecting the debtors and invoices
   they point to (``visit``).
3. ``address``: one debtor named (by an invoice number, or else by the payer's account)
   gets the probe; several, or none, and the payment goes to the unmatched queue with
   the candidates. Amount alone never picks a debtor.
4. ``decide``, at that debtor, at the same tick before its day runs: the invoices its
   text names; else, from a known payer, the open item of exactly that amount (the
   oldest), or the one combination of open items that sums to it (a bounded search; two
   combinations are a tie and go to the queue). Each decision says why and how sure.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Sequence

from streams.core import events as ev
from streams.core.references import is_valid_normalised_reference, normalise
from streams.core.state import DebtorState, Item

NUMBER = "invoice_number"
PAYER = "payer_iban"
REFERENCE = "payment_reference"  # a valid reference whose invoice the text contradicts
NUMBER_KEY = "no:"  # index keys: an invoice number, a payer's account
PAYER_KEY = "iban:"
MIN_TOKEN = 4  # DOMAIN.md: tokens of 4+ characters with a digit
PARTIAL_TOKEN = 6  # a token this long names its invoice even when the amount is less than it
MAX_TOKENS = 8  # the invoice numbers one payment's text is looked up by
MAX_TARGETS = 10  # the debtors (invoices) one index entry remembers, the most recent
SUBSET_ITEMS = 16  # the oldest open items a combination is looked for among
SUBSET_SIZE = 5  # the most invoices one combination holds
SUBSET_BUDGET = 20_000  # steps of the search before it gives up (and the payment is queued)
CANDIDATES_LISTED = 10
# The matches an account is learned from: those that name the invoice. A match on amount
# taught nothing new, and one learned from a guess would spread it.
LEARNED_FROM = ("structured_reference", "invoice_number", "manual")

_TOKEN = re.compile(r"[0-9A-Za-z][0-9A-Za-z\-/._]*")


# An index entry: the debtors (and invoices) an invoice number or a payer's account points
# to, as one flat tuple of strings, debtor and invoice ("" for an account) by turns, in
# sorted order. A plain tuple, not a class of its own: the matcher holds one per invoice
# ever issued, and the garbage collector stops looking at a tuple of strings once it has
# seen it (it never does for an instance of a tuple subclass).
Known = tuple


def targets(known: Known) -> tuple[tuple[str, str | None], ...]:
    return tuple((known[i], known[i + 1] or None) for i in range(0, len(known), 2))


def with_target(known: Known, debtor_id: str, invoice_id: str | None) -> Known:
    """``known`` with the pair added, in sorted order (the stream learns them in whatever
    order its partitions deliver; ``dunning simulate`` in input order: sorted, both hold the
    same), the first ``MAX_TARGETS`` kept: more is an account many debtors share, which
    points to none of them anyway."""
    invoice = invoice_id or ""
    if not known:
        return (debtor_id, invoice)  # an invoice number: almost always the only one
    pairs = set(zip(known[::2], known[1::2]))
    if (debtor_id, invoice) in pairs:
        return known
    pairs.add((debtor_id, invoice))
    return tuple(value for pair in sorted(pairs)[:MAX_TARGETS] for value in pair)


def without_target(known: Known, debtor_id: str, invoice_id: str | None) -> Known:
    """``known`` without the pair (an invoice no longer kept)."""
    invoice = invoice_id or ""
    return tuple(value for i in range(0, len(known), 2) if (known[i], known[i + 1]) != (debtor_id, invoice)
                 for value in known[i:i + 2])


NOTHING_KNOWN: Known = ()


def number_token(text: str) -> str | None:
    """The form an invoice number is indexed and looked up in: letters and digits, upper case."""
    token = normalise(text)
    if len(token) >= MIN_TOKEN and not token.isalpha():  # letters and digits only: not all letters, so a digit
        return token
    return None


def number_key(token: str) -> str:
    return NUMBER_KEY + token


def payer_key(iban: str) -> str:
    return PAYER_KEY + normalise(iban)


def tokens(payment) -> list[str]:
    """The invoice numbers a payment may quote: its end-to-end id, then the words of its text."""
    found: list[str] = []
    for text in (payment.end_to_end_id, payment.unstructured_remittance):
        for word in _TOKEN.findall(text or ""):
            token = number_token(word)
            if token and token not in found:
                found.append(token)
    return found[:MAX_TOKENS]


def probe_for(payment: ev.PaymentReceived, referenced: ev.MatchCandidate | None = None, reported: bool = False) -> (
        ev.PaymentProbe | ev.PaymentUnmatched):
    """The payment, off to the indexes its text and account point to (with ``referenced``,
    the invoice its reference names, as a hit; ``reported``: in the unmatched queue
    already); with none to visit, unmatched."""
    route = [number_key(token) for token in tokens(payment)]
    if payment.payer_iban:
        route.append(payer_key(payment.payer_iban))
    probe = ev.PaymentProbe(
        f"probe:{payment.event_id}", payment.transaction_id, payment.booking_date, payment.amount_minor,
        payment.currency, payment.payer_iban, payment.payer_name, payment.structured_reference,
        payment.unstructured_remittance, payment.end_to_end_id, payment.account_iban, payment.event_id,
        tuple(route), (referenced,) if referenced else (), None, reported, payment.reversal)
    if route:
        return probe
    if referenced:
        return address(probe)
    return unmatched(payment, payment.event_id, _why_no_reference(payment) +
                     ", no invoice number in the text and no payer account")


def visit(known: Known, probe: ev.PaymentProbe) -> ev.PaymentProbe | ev.PaymentUnmatched:
    """The probe at the index entry of its next key: what the entry knows is added, and it
    goes on to the next key, or, at the last, to its debtor (``address``)."""
    via = PAYER if probe.route[0].startswith(PAYER_KEY) else NUMBER
    hits = probe.hits + tuple(ev.MatchCandidate(debtor_id, invoice_id, via) for debtor_id, invoice_id in targets(known))
    probe = replace(probe, route=probe.route[1:], hits=hits)
    return probe if probe.route else address(probe)


def address(probe: ev.PaymentProbe) -> ev.PaymentProbe | ev.PaymentUnmatched:
    """To the one debtor the invoice numbers name (narrowed by the payer's account where
    they name several), or else the one debtor the account is known for; otherwise the
    queue, with the candidates."""
    named = {hit.debtor_id for hit in probe.hits if hit.via in (NUMBER, REFERENCE)}
    payers = {hit.debtor_id for hit in probe.hits if hit.via == PAYER}
    if len(named) > 1 and len(named & payers) == 1:
        named &= payers
    if len(named) == 1:
        return replace(probe, debtor_id=next(iter(named)))
    if named:
        return _queued(probe, f"the text names invoices of {len(named)} debtors ({', '.join(sorted(named))})")
    if len(payers) == 1:
        return replace(probe, debtor_id=next(iter(payers)))
    if payers:
        return _queued(probe, f"the payer's account is known for {len(payers)} debtors "
                              f"({', '.join(sorted(payers))}) and the text names none of their invoices")
    return _queued(probe, _why_no_reference(probe) + ", no known invoice number in the text and an unknown "
                                                     "payer account")


def decide(state: DebtorState, probe: ev.PaymentProbe) -> ev.PaymentMatched | ev.PaymentUnmatched:
    """The debtor's decision on a payment addressed to it (``address``): matched to the
    invoices it names or, from an account known for this debtor, to the open item or the
    one combination of open items of exactly its amount; otherwise queued."""
    debtor_id = state.debtor_id
    if probe.currency != state.currency:
        return _queued(probe, f"currency {probe.currency} differs from the debtor's currency {state.currency}",
                       debtor_id)
    payers = {hit.debtor_id for hit in probe.hits if hit.via == PAYER}
    payer_agrees = debtor_id in payers
    named_ids = [hit.invoice_id for hit in probe.hits if hit.via == NUMBER and hit.debtor_id == debtor_id]
    named = [state.items[i] for i in dict.fromkeys(named_ids) if i in state.items and state.items[i].open_minor]
    named.sort(key=lambda item: (item.due_date, item.invoice_id))
    amount = probe.amount_minor
    referenced = [state.items[h.invoice_id] for h in probe.hits if h.via == REFERENCE and h.debtor_id == debtor_id
                  and h.invoice_id in state.items]
    if referenced:
        return _weighed(probe, debtor_id, referenced[0], named)
    if named:
        numbers = ", ".join(item.invoice_id for item in named)
        total = sum(item.open_minor for item in named)
        if amount == total:
            if payers and not payer_agrees:
                return _matched(probe, debtor_id, named, NUMBER, 90, f"the text names {numbers}, whose open amount "
                                f"the payment equals (the payer's account is known for another debtor: a group company?)")
            return _matched(probe, debtor_id, named, NUMBER, 98, f"the text names {numbers}, whose open amount "
                            "the payment equals")
        fits = [item for item in _open_items(state) if item.open_minor == amount and item not in named]
        if fits:
            return _queued(probe, f"the text names {numbers}, but the amount is the open amount of "
                                  f"{fits[0].invoice_id}", debtor_id, [*named, *fits])
        if payers and not payer_agrees:
            return _queued(probe, f"the text names {numbers} of this debtor, but the amount differs from their open "
                                  "amount and the payer's account is known for another debtor", debtor_id, named)
        if payer_agrees:
            return _matched(probe, debtor_id, named, NUMBER, 95, f"the text names {numbers} and the payer's account "
                            "is known for this debtor")
        longest = max(len(number_token(item.invoice_id) or "") for item in named)
        if amount < total and longest >= PARTIAL_TOKEN:
            return _matched(probe, debtor_id, named, NUMBER, 90, f"the text names {numbers}: a partial payment")
        return _queued(probe, f"the text names {numbers}, but the amount differs from their open amount and the "
                              "payer's account is not known", debtor_id, named)
    if not payer_agrees:
        closed = [i for i in dict.fromkeys(named_ids) if i in state.items]
        what = f"the invoices the text names ({', '.join(closed)}) are paid already" if closed else \
            "the invoices the text names are not this debtor's open items"
        return _queued(probe, what, debtor_id, _open_items(state))
    open_items = _open_items(state)
    exact = [item for item in open_items if item.open_minor == amount]
    if exact:
        more = f" (the oldest of {len(exact)} of that amount)" if len(exact) > 1 else ""
        return _matched(probe, debtor_id, exact[:1], "payer_iban_amount", 92 if len(exact) == 1 else 85,
                        f"the payer's account is known for this debtor and the amount equals the open amount of "
                        f"{exact[0].invoice_id}{more}")
    found = combinations_summing(open_items[:SUBSET_ITEMS], amount)
    if found is not None and len(found) == 1:
        numbers = ", ".join(item.invoice_id for item in found[0])
        return _matched(probe, debtor_id, list(found[0]), "payer_iban_combination", 88,
                        f"the payer's account is known for this debtor and the amount equals the open amount of "
                        f"{numbers} together")
    if found:
        return _queued(probe, "the payer's account is known for this debtor, but several combinations of open "
                              "items sum to the amount", debtor_id, [i for combo in found for i in combo])
    why = "the search for a combination of open items gave up" if found is None else \
        "the amount equals no open item and no combination of them"
    return _queued(probe, f"the payer's account is known for this debtor, but {why}", debtor_id, open_items)


def _weighed(probe: ev.PaymentProbe, debtor_id: str, referenced: Item, named: list[Item]) -> (
        ev.PaymentMatched | ev.PaymentUnmatched):
    """A valid reference and a text that names another invoice: the reference holds when no
    invoice of this debtor is named against it; otherwise the one of them whose open amount
    the payment equals, or a person."""
    others = [item for item in named if item.invoice_id != referenced.invoice_id]
    if not others:
        return _matched(probe, debtor_id, [referenced], "structured_reference", 100,
                        f"the structured reference names {referenced.invoice_id}")
    fits = [item for item in (referenced, *others) if item.open_minor == probe.amount_minor]
    numbers = ", ".join(item.invoice_id for item in others)
    if len(fits) == 1:
        method = "structured_reference" if fits[0] is referenced else NUMBER
        return _matched(probe, debtor_id, fits, method, 95, f"the reference names {referenced.invoice_id}, the text "
                        f"{numbers}; the amount is the open amount of {fits[0].invoice_id}")
    return _queued(probe, f"the reference names {referenced.invoice_id}, the text {numbers}, and the amount does not "
                          "tell which", debtor_id, [referenced, *others])


class _Exhausted(Exception):
    pass


def combinations_summing(items: Sequence[Item], target: int, most: int = SUBSET_SIZE,
                         budget: int = SUBSET_BUDGET) -> list[tuple[Item, ...]] | None:
    """Up to two combinations of two to ``most`` items whose open amounts sum to ``target``
    (two: enough to know it is not one); None when the search ran out of ``budget``."""
    found: list[tuple[Item, ...]] = []
    steps = 0

    def walk(start: int, chosen: tuple[Item, ...], total: int) -> None:
        nonlocal steps
        for index in range(start, len(items)):
            steps += 1
            if steps > budget:
                raise _Exhausted
            item = items[index]
            sum_ = total + item.open_minor
            if sum_ == target and chosen:
                found.append((*chosen, item))
                if len(found) > 1:
                    return
            elif sum_ < target and len(chosen) + 1 < most:
                walk(index + 1, (*chosen, item), sum_)
                if len(found) > 1:
                    return

    try:
        walk(0, (), 0)
    except _Exhausted:
        return None
    return found


def unmatched(payment, payment_event_id: str, reason: str, debtor_id: str | None = None,
              candidates: tuple[ev.MatchCandidate, ...] = ()) -> ev.PaymentUnmatched:
    """``payment`` (a PaymentReceived or a PaymentProbe) for the unmatched queue, with why."""
    reversal = payment.reversal
    direction = getattr(payment, "direction", "debit" if reversal else "credit")  # a probe: money in, or taken back
    if reversal and direction == "debit":
        reason = f"the bank takes back an earlier credit with this one; {reason}: undo it by hand"
    return ev.PaymentUnmatched(
        event_id=f"unmatched:{payment_event_id}",
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
        candidates=candidates,
        direction=direction,
        reversal=reversal,
    )


def _open_items(state: DebtorState) -> list[Item]:
    return [item for item in state.items.values() if item.open_minor]  # in due order


def _matched(probe: ev.PaymentProbe, debtor_id: str, items: list[Item], method: str, confidence: int,
             reason: str) -> ev.PaymentMatched:
    return ev.PaymentMatched(f"pay:{probe.payment_event_id}", debtor_id, items[0].invoice_id, probe.transaction_id,
                             probe.booking_date, probe.amount_minor, probe.currency, method, probe.payer_iban,
                             tuple(item.invoice_id for item in items[1:]), reason, confidence)


def _queued(probe: ev.PaymentProbe, reason: str, debtor_id: str | None = None,
            items: Sequence[Item] = ()) -> ev.PaymentUnmatched:
    if items:
        candidates = tuple(ev.MatchCandidate(debtor_id, item.invoice_id, "open_item")
                           for item in list(dict.fromkeys(items))[:CANDIDATES_LISTED])
    else:
        candidates = tuple(dict.fromkeys(probe.hits))[:CANDIDATES_LISTED]
    return unmatched(probe, probe.payment_event_id, reason, debtor_id, candidates)


def _why_no_reference(payment) -> str:
    reference = normalise(payment.structured_reference or "")
    if not reference:
        return "no structured reference"
    if is_valid_normalised_reference(reference):
        if payment.reversal:  # not contested: it goes to the cascade whatever its reference
            return f"no invoice carries reference {reference}"
        return f"structured reference {reference} names another invoice than the text"
    return f"structured reference {reference} fails its check digits"
