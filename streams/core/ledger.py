"""``apply(state, event, policy) -> (state, outputs)``: the debtor ledger as a pure function.

Every event a debtor receives goes through here, in order. Applying the same event
twice changes nothing, even when the copy comes after later events: invoices, disputes
and promises are known by their own ids (resolved disputes and made promises are also
remembered), registrations, payments, credit notes and limit changes by their event ids. An event the ledger
refuses raises ``InvalidEvent``; the caller dead-letters it and the state is untouched.

After each event that changed something, the ledger re-evaluates promises, the credit
limit and the dunning steps that are due on the debtor's business date.

How: ``apply`` copies the state once (``DebtorState.copy``) and the helpers below change
that copy, replacing a container whole when they change it; the state passed in is
never touched. The dunning steps are looked at again only where an event can make one
due (see ``NOTHING`` and its kin): the state after every event is already settled for
its business date, so most events need no look at the other invoices at all.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

from streams.core import cascade
from streams.core import events as ev
from streams.core.allocation import allocate
from streams.core.bounds import MAX_BALANCE_MINOR
from streams.core.dunning import due_actions, next_move
from streams.core.limits import update_limit_state
from streams.core.policy import Policy
from streams.core.references import normalise
from streams.core.reversals import reversed_payment
from streams.core.state import (
    BOOKED_CREDIT,
    BOOKED_EVENT_ID,
    BOOKED_PORTIONS,
    Booked,
    Debtor,
    DebtorState,
    Dispute,
    Item,
    Promise,
    booked_record,
)

# How long settled invoices, settled promises and the ids of applied payments are
# kept: long enough to recognise any redelivery, short enough to bound state.
RETENTION = timedelta(days=120)
SETTLED_PROMISES_KEPT = 5
# Missed days beyond this are not replayed one by one (a debtor dormant for years).
MAX_CATCH_UP_DAYS = 366
# The invoices one debtor may hold (open ones and settled ones within RETENTION): its state
# and snapshot grow with them and each travel as one record (``schemas.topics.MAX_RECORD_BYTES``;
# at this bound the state takes 1.2 MB compressed, the snapshot 3.7 MB).
MAX_ITEMS = 100_000
PAYER_IBANS_KEPT = 5  # accounts a debtor remembers having learned (it says each once)
MAX_PAYMENTS_KEPT = 1_000  # booked payments a reversal can take back (within RETENTION), the most recent

Outputs = list
# What an event may have made due, for ``evaluate``. Payments, credit notes, new disputes,
# promises and limits only take amounts out of dunning; a new invoice may be due at once
# (and then, for the minimum amount, so may the invoices at its step); a resolved
# dispute, a settled promise or new master data may release any invoice.
NOTHING = "nothing"
NEW_INVOICE = "the new invoice"  # becomes that Item in ``apply``
ALL_ITEMS = "all items"
WHEN_DUE = "when due"  # a new day: any invoice, once the dates say so (``steps_quiet_until``)


def apply(state: DebtorState, event, policy: Policy) -> tuple[DebtorState, Outputs]:
    kind = type(event)
    if kind is ev.DayStarted:
        return start_day(state, event.business_date, policy)
    booking = _BOOKING.get(kind)
    if booking is None:
        raise ev.InvalidEvent(f"{kind.__name__} is not a ledger event", "type")
    if event.debtor_id != state.debtor_id:
        raise ev.InvalidEvent(f"belongs to debtor {event.debtor_id!r}, not {state.debtor_id!r}", "debtor_id")
    if state.debtor is None and kind is not ev.DebtorRegistered:
        raise ev.InvalidEvent(f"unknown debtor {event.debtor_id!r}: no DebtorRegistered yet", "debtor_id")
    book, made_due = booking
    draft = state.copy()
    outputs = book(event, draft)
    if outputs is None:
        return state, []  # a duplicate: nothing changes, nothing is emitted
    draft.version += 1
    if draft.promises and _settle_promises(draft, outputs):
        made_due = ALL_ITEMS
    elif made_due is NEW_INVOICE:
        made_due = draft.items[event.invoice_id]
    evaluate(draft, policy, outputs, made_due)
    return draft, outputs


def start_day(state: DebtorState, today: date, policy: Policy) -> tuple[DebtorState, Outputs]:
    """A new business date. The payments the matching cascade handed to the debtor are
    decided first, on the day they were booked: the day's steps see them. Days the debtor
    did not see a tick for (the clock was down, a tick went missing) are caught up one by
    one, so no step, promise or letter term is skipped and the outcome is the same as with
    every tick delivered."""
    repeated = state.today is not None and today <= state.today
    if repeated and not state.pending:
        return state, []  # a repeated or late tick
    draft = state.copy()
    outputs: Outputs = []
    if state.pending:
        reopened = _decide_pending(draft, outputs)
        if repeated:
            evaluate(draft, policy, outputs, ALL_ITEMS if _settle_promises(draft, outputs) or reopened else NOTHING)
            return draft, outputs
        if _settle_promises(draft, outputs) or reopened:
            draft.steps_quiet_until = None  # what a kept promise held back, or a reversal reopened, may be due today
    if state.today is not None:
        missed = (today - state.today).days - 1
        for _ in range(min(missed, MAX_CATCH_UP_DAYS)):
            _one_day(draft, draft.today + timedelta(days=1), policy, outputs)
    _one_day(draft, today, policy, outputs)
    return draft, outputs


def _one_day(state: DebtorState, today: date, policy: Policy, outputs: Outputs) -> None:
    """Break overdue promises, prune old history, run the steps due on ``today``."""
    first_day = state.today is None
    state.today = today
    state.version += 1
    made_due = WHEN_DUE
    if state.promises:
        promises = []
        for promise in state.promises:
            if promise.status == "running" and promise.promised_date < today:
                promise = replace(promise, status="broken")
                outputs.append(_promise_event(ev.PromiseBroken, state, promise))
                made_due = ALL_ITEMS  # what it held back is due again
            promises.append(promise)
        state.promises = _trim_settled(promises)
    _prune(state, today, first_day, outputs)
    evaluate(state, policy, outputs, made_due)


def evaluate(state: DebtorState, policy: Policy, outputs: Outputs, made_due=ALL_ITEMS) -> None:
    """Limit state and due dunning steps, on the debtor's business date. ``made_due``
    says where to look for steps: ``NOTHING``, ``ALL_ITEMS``, ``WHEN_DUE`` or one Item."""
    if state.debtor is None:
        return
    update_limit_state(state, policy.limit_warning_bp, outputs)
    today = state.today
    if made_due is NOTHING or today is None:
        return
    workflow = policy.workflow_for_debtor(state.debtor)
    if workflow is None:
        return
    quiet = state.steps_quiet_until
    known = quiet is not None and quiet[0] is workflow
    if made_due is WHEN_DUE:
        if known and today.toordinal() < quiet[1]:
            return
    elif made_due is not ALL_ITEMS:  # one new invoice
        at = next_move(made_due, workflow, today)
        if at > today.toordinal():
            if known and at < quiet[1]:  # it may move before the others do
                state.steps_quiet_until = (workflow, at)
            return
    due_actions(state, workflow, today, outputs, policy.costs_table)


# --------------------------------------------------------------------------- booking
# Each takes the event and the copy to change; returns the outputs, or None when the
# event changes nothing (a redelivery).


def _registered(event: ev.DebtorRegistered, state: DebtorState):
    debtor = Debtor(
        name=event.name,
        kind=event.kind,
        segment=event.segment,
        language=event.language,
        currency=event.currency,
        email=event.email,
        phone=event.phone,
        intercompany=event.intercompany,
        branch=event.branch,
        salesperson=event.salesperson,
    )
    if state.debtor is not None and state.debtor.currency != debtor.currency and state.items:
        raise ev.InvalidEvent(
            f"currency {debtor.currency} differs from {state.debtor.currency} of the open items", "currency"
        )
    limit = event.credit_limit_minor if event.credit_limit_minor is not None else state.credit_limit_minor
    if limit is not None and limit < 0:
        raise ev.InvalidEvent("must not be negative", "credit_limit_minor")
    # A redelivered registration must not undo a later change of master data or limit.
    if event.event_id in state.seen or (debtor == state.debtor and limit == state.credit_limit_minor):
        return None
    state.debtor = debtor
    state.credit_limit_minor = limit
    _remember(state, event.event_id, None)
    return []


def _invoice(event: ev.InvoiceIssued, state: DebtorState):
    _require_money(event, state)
    if event.due_date < event.issue_date:
        raise ev.InvalidEvent(f"due date {event.due_date} is before issue date {event.issue_date}", "due_date")
    reference = normalise(event.payment_reference) if event.payment_reference else None
    existing = state.items.get(event.invoice_id)
    if existing is not None:
        same = (existing.issue_date, existing.due_date, existing.amount_minor, existing.payment_reference) == (
            event.issue_date,
            event.due_date,
            event.amount_minor,
            reference,
        )
        if same:
            return None
        raise ev.InvalidEvent(
            f"invoice {event.invoice_id!r} was already issued with different content", "invoice_id"
        )
    if state.open_minor + event.amount_minor > MAX_BALANCE_MINOR:
        raise _past_balance_bound("open amount", state.open_minor + event.amount_minor)
    if len(state.items) >= MAX_ITEMS:
        raise ev.InvalidEvent(f"the debtor holds {len(state.items):,} invoices already, the most one debtor may hold",
                              "invoice_id")
    # invoice_id, event_id, issue_date, due_date, amount_minor, paid_minor, credited_minor, payment_reference
    state.add_item(Item(event.invoice_id, event.event_id, event.issue_date, event.due_date, event.amount_minor,
                        0, 0, reference))
    if state.credit_minor:  # credit on account pays the new invoice first: nothing else is open
        _use_credit(state)
    entry = _index_entry(event.invoice_id, reference)
    if entry is None:
        return []
    key, kind, number = entry
    prefix = "ref:" if kind == cascade.REFERENCE else "number:"
    # event_id, reference, debtor_id, invoice_id, currency, kind, number
    return [ev.ReferenceIssued(prefix + event.event_id, key, state.debtor_id, event.invoice_id, event.currency,
                               kind, number)]


def _index_entry(invoice_id: str, reference: str | None) -> tuple[str, str, str | None] | None:
    """What the matcher finds an invoice by, for its ``ReferenceIssued`` and, once it is let
    go of, its ``ReferenceRetired`` (the same keys): its payment reference and its number (one
    event written under both keys), or its number alone, as (reference, kind, number)."""
    number = cascade.number_token(invoice_id)
    if reference:
        return reference, cascade.REFERENCE, number
    if number:
        return number, cascade.NUMBER, None
    return None


def _credit_note(event: ev.CreditNoteIssued, state: DebtorState):
    _require_money(event, state)
    if event.event_id in state.seen:
        return None
    item = state.items.get(event.invoice_id)
    if item is None:
        raise ev.InvalidEvent(f"credits unknown invoice {event.invoice_id!r}", "invoice_id")
    absorbed = min(event.amount_minor, item.principal_open_minor)  # a credit note credits the principal
    state.replace_item(item, item.with_credited(item.credited_minor + absorbed))
    _remember(state, event.event_id, event.issue_date)
    state.credit_minor += _book_paid(state, event.amount_minor - absorbed)
    if state.credit_minor > MAX_BALANCE_MINOR:  # the copy is dropped: the state given to apply is untouched
        raise _past_balance_bound("unallocated credit", state.credit_minor)
    return []


def _payment(event: ev.PaymentMatched, state: DebtorState):
    _require_money(event, state)
    if event.event_id in state.seen:
        return None
    named = (event.invoice_id, *event.more_invoice_ids) if event.more_invoice_ids else (event.invoice_id,)
    left = event.amount_minor
    booked: dict[str, int] = {}  # what each invoice took
    for invoice_id in named:  # the invoices the payer named, in their order (BW 6:43 lid 1)
        item = state.items.get(invoice_id)
        if item is not None:
            absorbed = min(left, item.open_minor)
            if absorbed:
                state.replace_item(item, item.with_paid(absorbed))
                left -= absorbed
                booked[invoice_id] = absorbed
    _remember(state, event.event_id, event.booking_date)
    credit = _book_paid(state, left, booked) if left else 0
    state.credit_minor += credit
    promised: list = []  # what counted towards which promise
    if state.promises:
        # A payment that names an invoice a promise covers counts whole towards it; otherwise what
        # allocation put on the invoices it covers counts.
        promises = []
        for p in state.promises:
            toward = event.amount_minor if any(p.covers(i) for i in named) else sum(
                portion for i, portion in booked.items() if p.covers(i))
            if toward:
                p = replace(p, paid_minor=p.paid_minor + toward)
                promised.append((p.promise_id, toward))
            promises.append(p)
        state.promises = tuple(promises)
    state.payments = (*state.payments[1 - MAX_PAYMENTS_KEPT:], booked_record(
        event.event_id, event.transaction_id, event.booking_date, event.amount_minor, event.payer_iban, booked,
        credit, promised))
    if state.credit_minor > MAX_BALANCE_MINOR:  # as for a credit note
        raise _past_balance_bound("unallocated credit", state.credit_minor)
    return _learned(state, event)


def _learned(state: DebtorState, event: ev.PaymentMatched) -> Outputs:
    """The payer's account, from a match that named the invoice, for the matcher's next
    payment from it without a reference (once per account the debtor does not know yet)."""
    iban = event.payer_iban
    if not iban or iban in state.payer_ibans or event.method not in cascade.LEARNED_FROM:
        return []
    state.payer_ibans = (*state.payer_ibans, iban)[-PAYER_IBANS_KEPT:]
    return [ev.PayerLearned(f"payer:{state.debtor_id}:{iban}", iban, state.debtor_id)]


def _probe(event: ev.PaymentProbe, state: DebtorState):
    """A payment the cascade addressed to this debtor: decided at the next day tick, with
    the others of the day in a fixed order, so the order they arrived in does not matter."""
    if event.event_id in state.seen or f"pay:{event.payment_event_id}" in state.seen:
        return None
    _remember(state, event.event_id, event.booking_date)
    state.pending = (*state.pending, event)
    return []


def _decide_pending(state: DebtorState, outputs: Outputs) -> bool:
    """Each payment the cascade handed over, decided and booked, in a fixed order (a match of
    one that was in the unmatched queue already takes it out: ``PaymentResolved``), then
    each reversal, which takes back the payment it names (``_reverse``). One that cannot be
    booked (it would take the credit past its bound) or undone goes to the queue with the
    reason; the others are booked. True if a reversal opened an invoice again."""
    reopened = False
    for probe in sorted(state.pending, key=lambda p: (p.reversal, p.booking_date, p.transaction_id, p.event_id)):
        if probe.reversal:
            found = reversed_payment(state, probe)
            if type(found) is ev.PaymentUnmatched:
                outputs.append(found)
                continue
            payment, why = found
            done = _tried(state, lambda trial: _reverse(trial, payment, probe, why))
        else:
            decision = cascade.decide(state, probe)
            if type(decision) is ev.PaymentUnmatched:
                outputs.append(decision)
                continue
            done = _tried(state, lambda trial: [decision, *(_payment(decision, trial) or [])])
        if isinstance(done, ev.InvalidEvent):
            what = "cannot be undone" if probe.reversal else "cannot be booked"
            outputs.append(cascade.unmatched(probe, probe.payment_event_id, f"{what}: {done}", state.debtor_id))
            continue
        outputs += done
        if probe.reversal:
            reopened = reopened or bool(done[0].invoice_ids)
        elif probe.reported:
            outputs.append(ev.PaymentResolved(f"resolved:{probe.payment_event_id}", probe.transaction_id,
                                              "matched", state.debtor_id, done[0].invoice_id))
    state.pending = ()
    state.version += 1
    return reopened


def _unpaid(promise: Promise, amount_minor: int) -> Promise:
    paid = max(0, promise.paid_minor - amount_minor)
    if promise.status != "kept" or paid >= promise.amount_minor:
        return replace(promise, paid_minor=paid)
    return replace(promise, paid_minor=paid, status="running", reopened=promise.reopened + 1)


def _tried(state: DebtorState, change) -> Outputs | ev.InvalidEvent:
    """``change(copy)`` on a copy of ``state``, taken over when it succeeds: its outputs; or
    the ``InvalidEvent`` it raised, and ``state`` as it was."""
    trial = state.copy()
    try:
        outputs = change(trial)
    except ev.InvalidEvent as exc:
        return exc
    for name in DebtorState.__slots__:
        setattr(state, name, getattr(trial, name))
    return outputs


def _reverse(state: DebtorState, payment: Booked, reversal: ev.PaymentProbe, why: str) -> Outputs:
    """``payment`` taken back: each invoice it paid is open again by what it took (the invoices
    its credit on account paid later among them: ``_use_credit``), the rest of that credit is
    gone, and what it counted towards a promise no longer counts (a promise it kept runs
    again, and breaks if its date is past). Credit the debtor holds from other money then
    pays what is open, as always."""
    left = payment.amount_minor
    reopened: list[str] = []

    def take_back(item: Item, most: int) -> None:
        nonlocal left
        back = min(most, item.money_paid_minor, left)
        if back:
            state.replace_item(item, item.with_paid(-back))
            left -= back
            if item.invoice_id not in reopened:
                reopened.append(item.invoice_id)

    for invoice_id, portion in payment.portions:
        item = state.items.get(invoice_id)
        if item is not None:
            take_back(item, portion)
    credit = min(left, payment.credit_minor, state.credit_minor)
    state.credit_minor -= credit
    left -= credit
    if left:  # its invoices are kept while it is (``_prune``): only an earlier version's state lacks one
        raise ev.InvalidEvent(f"{left:,} of its {payment.amount_minor:,} is on no invoice this debtor holds",
                              "amount_minor")
    state.payments = tuple(b for b in state.payments if b[BOOKED_EVENT_ID] != payment.event_id)
    if state.credit_minor and state.open_minor:  # credit from other money pays what is open again (BW 6:43)
        _use_credit(state)
    if payment.promised:
        toward = dict(payment.promised)
        state.promises = tuple(
            _unpaid(p, toward[p.promise_id]) if p.promise_id in toward else p for p in state.promises)
    # event_id, debtor_id, transaction_id, reversed_transaction_id, booking_date, amount_minor, currency,
    # invoice_ids, credit_minor, reason
    return [ev.PaymentReversed(f"reversed:{reversal.payment_event_id}", state.debtor_id, reversal.transaction_id,
                               payment.transaction_id, reversal.booking_date, payment.amount_minor, reversal.currency,
                               tuple(reopened), credit, why)]


def _use_credit(state: DebtorState) -> None:
    """Credit on account pays the open items (``_book_paid``). What it paid is written to the
    payments the credit came from, the oldest first (credit from credit notes last), so that
    a reversal of one takes back exactly what its money paid."""
    paid: dict[str, int] = {}
    left = _book_paid(state, state.credit_minor, paid)
    spent = state.credit_minor - left
    state.credit_minor = left
    if not (spent and state.payments):
        return
    portions = list(paid.items())  # (invoice, amount), in the order the credit paid them
    records = []
    for record in state.payments:
        credit = record[BOOKED_CREDIT]
        if not (credit and spent):
            records.append(record)
            continue
        taken = take = min(credit, spent)
        spent -= take
        added = []
        while take:
            invoice_id, amount = portions[0]
            part = min(amount, take)
            added += (invoice_id, part)
            take -= part
            portions[0] = (invoice_id, amount - part)
            if portions[0][1] == 0:
                portions.pop(0)
        records.append((*record[:BOOKED_CREDIT], credit - taken, *record[BOOKED_CREDIT + 1:], *added))
    state.payments = tuple(records)


def _book_paid(state: DebtorState, amount_minor: int, booked: dict[str, int] | None = None) -> int:
    """Money beyond the invoice it named goes to the other open items (``allocation``),
    booked as paid (and added to ``booked``, by invoice); returns what none of them takes,
    the credit on account."""
    if amount_minor <= 0 or not state.open_minor:
        return amount_minor
    disputed = {d.invoice_id: state.disputed_minor(d.invoice_id) for d in state.disputes}
    portions, left = allocate(amount_minor, state.items.values(), disputed)
    for invoice_id, portion in portions.items():
        item = state.items[invoice_id]
        state.replace_item(item, item.with_paid(portion))
        if booked is not None:
            booked[invoice_id] = booked.get(invoice_id, 0) + portion
    return left


def _dispute_opened(event: ev.DisputeOpened, state: DebtorState):
    if _resolved(event.dispute_id) in state.seen or any(d.dispute_id == event.dispute_id for d in state.disputes):
        return None  # open, or resolved already: a redelivery
    if event.kind not in ("dispute", "complaint"):
        raise ev.InvalidEvent(f"{event.kind!r} is neither 'dispute' nor 'complaint'", "kind")
    item = state.items.get(event.invoice_id)
    if item is None:
        raise ev.InvalidEvent(f"disputes unknown invoice {event.invoice_id!r}", "invoice_id")
    amount = item.open_minor if event.amount_minor is None else event.amount_minor
    if amount < 0:
        raise ev.InvalidEvent("must not be negative", "amount_minor")
    dispute = Dispute(
        dispute_id=event.dispute_id,
        invoice_id=event.invoice_id,
        kind=event.kind,
        amount_minor=min(amount, item.open_minor),
        opened_on=event.opened_on,
        reason=event.reason,
        owner=event.owner,
    )
    state.disputes = state.disputes + (dispute,)
    return []


def _dispute_resolved(event: ev.DisputeResolved, state: DebtorState):
    remaining = tuple(d for d in state.disputes if d.dispute_id != event.dispute_id)
    if len(remaining) == len(state.disputes):
        return None  # already resolved (or never opened): nothing to do
    # Remembered, so that the DisputeOpened redelivered later does not open it again.
    state.disputes = remaining
    _remember(state, _resolved(event.dispute_id), event.resolved_on)
    return []


def _promise_made(event: ev.PromiseToPayMade, state: DebtorState):
    _require_money(event, state)
    if _made(event.promise_id) in state.seen or any(p.promise_id == event.promise_id for p in state.promises):
        return None  # running, or settled (and perhaps trimmed already): a redelivery
    if event.promised_date < event.made_on:
        raise ev.InvalidEvent(f"promised date {event.promised_date} is before {event.made_on}", "promised_date")
    promise = Promise(
        promise_id=event.promise_id,
        made_on=event.made_on,
        promised_date=event.promised_date,
        amount_minor=event.amount_minor,
        invoice_ids=tuple(event.invoice_ids),
    )
    state.promises = state.promises + (promise,)
    _remember(state, _made(event.promise_id), event.made_on)
    return []


def _limit_set(event: ev.CreditLimitSet, state: DebtorState):
    if event.amount_minor < 0:
        raise ev.InvalidEvent("must not be negative", "amount_minor")
    if event.currency != state.debtor.currency:
        raise _other_currency(event.currency, state)
    if event.source not in ("own", "insurer"):
        raise ev.InvalidEvent(f"{event.source!r} is neither 'own' nor 'insurer'", "source")
    if event.event_id in state.seen:
        return None
    state.credit_limit_minor = event.amount_minor
    state.limit_source = event.source
    _remember(state, event.event_id, event.effective_date)
    return []


_BOOKING = {  # event type -> (booking, what it may make due)
    ev.DebtorRegistered: (_registered, ALL_ITEMS),
    ev.InvoiceIssued: (_invoice, NEW_INVOICE),
    ev.CreditNoteIssued: (_credit_note, NOTHING),
    ev.PaymentMatched: (_payment, NOTHING),
    ev.PaymentProbe: (_probe, NOTHING),
    ev.DisputeOpened: (_dispute_opened, NOTHING),
    ev.DisputeResolved: (_dispute_resolved, ALL_ITEMS),
    ev.PromiseToPayMade: (_promise_made, NOTHING),
    ev.CreditLimitSet: (_limit_set, NOTHING),
}


# --------------------------------------------------------------------------- helpers


def _require_money(event, state: DebtorState) -> None:
    """A positive amount, in the debtor's currency (registered: ``apply`` checked)."""
    if event.amount_minor <= 0:
        raise ev.InvalidEvent(f"must be positive, got {event.amount_minor}", "amount_minor")
    if event.currency != state.debtor.currency:
        raise _other_currency(event.currency, state)


def _past_balance_bound(what: str, total: int) -> ev.InvalidEvent:
    """One debtor's sums stay within MAX_BALANCE_MINOR, far inside the Avro long and BIGINT
    its snapshot is carried in: its open amount (and so its aging buckets, overdue amount
    and action totals, parts of it) and its unallocated credit. Each amount is bounded on
    its own already (``streams.core.bounds``); these are sums of many, kept in step, so
    the guard is one comparison."""
    return ev.InvalidEvent(
        f"would take the debtor's {what} to {total:,}, more than {MAX_BALANCE_MINOR:,}, the most one debtor may hold",
        "amount_minor",
    )


def _other_currency(currency: str, state: DebtorState) -> ev.InvalidEvent:
    return ev.InvalidEvent(f"currency {currency} differs from the debtor's currency {state.currency}", "currency")


def _remember(state: DebtorState, event_id: str, on: date | None) -> None:
    # Dated by the business date it was applied on (or its own date, if later), so that
    # an event booked late, e.g. an old bank transaction, is kept as long as any other.
    # Before the first DayStarted there is no business date: the first one stamps it.
    today = state.today
    stamp = on if today is None or (on is not None and on > today) else today
    state.seen = seen = state.seen.copy()
    seen[event_id] = stamp or date.min


def _resolved(dispute_id: str) -> str:
    return f"dispute-resolved:{dispute_id}"


def _made(promise_id: str) -> str:
    return f"promise-made:{promise_id}"


def _settle_promises(state: DebtorState, outputs: Outputs) -> bool:
    """Running promises paid in full are kept. True if any was."""
    kept = False
    promises = []
    for promise in state.promises:
        if promise.status == "running" and promise.paid_minor >= promise.amount_minor:
            promise = replace(promise, status="kept")
            outputs.append(_promise_event(ev.PromiseKept, state, promise))
            kept = True
        promises.append(promise)
    if kept:
        state.promises = _trim_settled(promises)
    return kept


def _trim_settled(promises: list[Promise]) -> tuple[Promise, ...]:
    settled = [p for p in promises if p.status != "running"]
    drop = {p.promise_id for p in settled[:-SETTLED_PROMISES_KEPT]} if len(settled) > SETTLED_PROMISES_KEPT else set()
    return tuple(p for p in promises if p.promise_id not in drop)


def _prune(state: DebtorState, today: date, first_day: bool, outputs: Outputs) -> None:
    horizon = today - RETENTION
    seen = state.seen
    if first_day:  # what was applied before any business date counts from the first one
        seen = state.seen = {seen_id: max(on, today) for seen_id, on in seen.items()}
    if seen and min(seen.values()) < horizon:
        state.seen = seen = {seen_id: on for seen_id, on in seen.items() if on >= horizon}
        if state.payments:  # a payment is kept as long as its id is
            state.payments = tuple(b for b in state.payments if b[BOOKED_EVENT_ID] in seen)
    # A settled invoice stays until its due date is past the horizon, so that a
    # redelivered InvoiceIssued is still recognised as a duplicate, and as long as a payment
    # that paid it is kept (a reversal reopens it). Items are in due order: only if the
    # first is past the horizon can any go; the matcher's index entries go with them.
    items = state.items
    if items and next(iter(items.values())).due_date < horizon:
        paid_by_kept = {invoice_id for record in state.payments  # for reversals
                        for invoice_id in record[BOOKED_PORTIONS::2]}
        kept = {key: i for key, i in items.items() if i.open_minor or i.due_date >= horizon or key in paid_by_kept}
        if len(kept) < len(items):
            outputs += filter(None, (_retired(state.debtor_id, i) for key, i in items.items() if key not in kept))
            state.keep_items(kept)


def _retired(debtor_id: str, item: Item) -> ev.ReferenceRetired | None:
    """The index entries of an invoice no longer kept, under the keys ``_invoice`` issued them."""
    entry = _index_entry(item.invoice_id, item.payment_reference)
    if entry is None:
        return None
    key, kind, number = entry
    # event_id, reference, debtor_id, invoice_id, kind, number
    return ev.ReferenceRetired(f"retired:{item.event_id}", key, debtor_id, item.invoice_id, kind, number)


def _promise_event(event_type, state: DebtorState, promise: Promise):
    return event_type(
        event_id=f"{state.debtor_id}:promise:{promise.promise_id}:{promise.status}"
                 + (f":{promise.reopened}" if promise.reopened else ""),
        debtor_id=state.debtor_id,
        promise_id=promise.promise_id,
        promised_date=promise.promised_date,
        amount_minor=promise.amount_minor,
        paid_minor=promise.paid_minor,
        currency=state.currency,
        business_date=state.today,
    )
