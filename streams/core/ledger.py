"""``apply(state, event, policy) -> (state, outputs)``: the debtor ledger as a pure function.

Every event a debtor receives goes through here, in order. Applying the same event
twice changes nothing, even when the copy comes after later events: invoices, disputes
and promises are known by their own ids (resolved disputes and made promises are also
remembered), registrations, payments, credit notes and limit changes by their event ids. An event the ledger
refuses raises ``InvalidEvent``; the caller dead-letters it and the state is untouched.

After each event that changed something, the ledger re-evaluates promises, the credit
limit and the dunning steps that are due on the debtor's business date.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import singledispatch

from streams.core import events as ev
from streams.core.dunning import due_actions
from streams.core.limits import limit_events
from streams.core.policy import Policy
from streams.core.references import normalise
from streams.core.state import Debtor, DebtorState, Dispute, Item, Promise, evolve

# How long settled invoices, settled promises and the ids of applied payments are
# kept: long enough to recognise any redelivery, short enough to bound state.
RETENTION = timedelta(days=120)
SETTLED_PROMISES_KEPT = 5
# Missed days beyond this are not replayed one by one (a debtor dormant for years).
MAX_CATCH_UP_DAYS = 366

Outputs = list


def apply(state: DebtorState, event, policy: Policy) -> tuple[DebtorState, Outputs]:
    if isinstance(event, ev.DayStarted):
        return start_day(state, event.business_date, policy)
    if event.debtor_id != state.debtor_id:
        raise ev.InvalidEvent(f"belongs to debtor {event.debtor_id!r}, not {state.debtor_id!r}", "debtor_id")
    if not isinstance(event, ev.DebtorRegistered) and state.debtor is None:
        raise ev.InvalidEvent(f"unknown debtor {event.debtor_id!r}: no DebtorRegistered yet", "debtor_id")
    new_state, outputs = _book(event, state)
    if new_state is state:
        return state, []  # a duplicate: nothing changes, nothing is emitted
    new_state = evolve(new_state, version=new_state.version + 1)
    new_state, more = _settle_promises(new_state)
    outputs.extend(more)
    new_state, more = evaluate(new_state, policy)
    outputs.extend(more)
    return new_state, outputs


def start_day(state: DebtorState, today: date, policy: Policy) -> tuple[DebtorState, Outputs]:
    """A new business date. Days the debtor did not see a tick for (the clock was down, a
    tick went missing) are caught up one by one first, so no step, promise or letter
    term is skipped and the outcome is the same as with every tick delivered."""
    if state.today is not None and today <= state.today:
        return state, []  # a repeated or late tick
    outputs: Outputs = []
    if state.today is not None:
        missed = (today - state.today).days - 1
        for _ in range(min(missed, MAX_CATCH_UP_DAYS)):
            state, more = _one_day(state, state.today + timedelta(days=1), policy)
            outputs.extend(more)
    state, more = _one_day(state, today, policy)
    return state, outputs + more


def _one_day(state: DebtorState, today: date, policy: Policy) -> tuple[DebtorState, Outputs]:
    """Break overdue promises, prune old history, run the steps due on ``today``."""
    first_day = state.today is None
    state = evolve(state, today=today, version=state.version + 1)
    outputs: Outputs = []
    promises = []
    for promise in state.promises:
        if promise.status == "running" and promise.promised_date < today:
            promise = evolve(promise, status="broken")
            outputs.append(_promise_event(ev.PromiseBroken, state, promise))
        promises.append(promise)
    state = evolve(state, promises=_trim_settled(promises), **_pruned(state, today, first_day))
    state, more = evaluate(state, policy)
    return state, outputs + more


def evaluate(state: DebtorState, policy: Policy) -> tuple[DebtorState, Outputs]:
    """Limit state and due dunning steps, on the debtor's business date."""
    if state.debtor is None:
        return state, []
    state, outputs = limit_events(state, policy.limit_warning_bp)
    workflow = policy.workflow_for_debtor(state.debtor)
    if workflow is not None and state.today is not None:
        state, actions = due_actions(state, workflow, state.today)
        outputs.extend(actions)
    return state, outputs


# --------------------------------------------------------------------------- booking


@singledispatch
def _book(event, state: DebtorState) -> tuple[DebtorState, Outputs]:
    raise ev.InvalidEvent(f"{type(event).__name__} is not a ledger event", "type")


@_book.register
def _(event: ev.DebtorRegistered, state: DebtorState):
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
    if state.has_seen(event.event_id) or (debtor == state.debtor and limit == state.credit_limit_minor):
        return state, []
    state = evolve(state, debtor=debtor, credit_limit_minor=limit)
    return _remember(state, event.event_id, None, 0), []


@_book.register
def _(event: ev.InvoiceIssued, state: DebtorState):
    _require_positive(event.amount_minor)
    _require_currency(state, event.currency)
    if event.due_date < event.issue_date:
        raise ev.InvalidEvent(f"due date {event.due_date} is before issue date {event.issue_date}", "due_date")
    reference = normalise(event.payment_reference) if event.payment_reference else None
    existing = state.item(event.invoice_id)
    if existing is not None:
        same = (existing.issue_date, existing.due_date, existing.amount_minor, existing.payment_reference) == (
            event.issue_date,
            event.due_date,
            event.amount_minor,
            reference,
        )
        if same:
            return state, []
        raise ev.InvalidEvent(
            f"invoice {event.invoice_id!r} was already issued with different content", "invoice_id"
        )
    item = Item(
        invoice_id=event.invoice_id,
        event_id=event.event_id,
        issue_date=event.issue_date,
        due_date=event.due_date,
        amount_minor=event.amount_minor,
        payment_reference=reference,
    )
    items = tuple(sorted(state.items + (item,), key=lambda i: (i.due_date, i.invoice_id)))
    outputs: Outputs = []
    if reference:
        outputs.append(
            ev.ReferenceIssued(
                event_id=f"ref:{event.event_id}",
                reference=reference,
                debtor_id=state.debtor_id,
                invoice_id=event.invoice_id,
                currency=event.currency,
            )
        )
    return evolve(state, items=items), outputs


@_book.register
def _(event: ev.CreditNoteIssued, state: DebtorState):
    _require_positive(event.amount_minor)
    _require_currency(state, event.currency)
    if state.has_seen(event.event_id):
        return state, []
    item = state.item(event.invoice_id)
    if item is None:
        raise ev.InvalidEvent(f"credits unknown invoice {event.invoice_id!r}", "invoice_id")
    absorbed = min(event.amount_minor, item.open_minor)
    state = _replace_item(state, evolve(item, credited_minor=item.credited_minor + absorbed))
    return _remember(state, event.event_id, event.issue_date, event.amount_minor - absorbed), []


@_book.register
def _(event: ev.PaymentMatched, state: DebtorState):
    _require_positive(event.amount_minor)
    _require_currency(state, event.currency)
    if state.has_seen(event.event_id):
        return state, []
    item = state.item(event.invoice_id)
    absorbed = 0
    if item is not None:
        absorbed = min(event.amount_minor, item.open_minor)
        state = _replace_item(state, evolve(item, paid_minor=item.paid_minor + absorbed))
    promises = tuple(
        evolve(p, paid_minor=p.paid_minor + event.amount_minor) if p.covers(event.invoice_id) else p
        for p in state.promises
    )
    state = evolve(state, promises=promises)
    return _remember(state, event.event_id, event.booking_date, event.amount_minor - absorbed), []


@_book.register
def _(event: ev.DisputeOpened, state: DebtorState):
    if state.has_seen(_resolved(event.dispute_id)) or any(d.dispute_id == event.dispute_id for d in state.disputes):
        return state, []  # open, or resolved already: a redelivery
    if event.kind not in ("dispute", "complaint"):
        raise ev.InvalidEvent(f"{event.kind!r} is neither 'dispute' nor 'complaint'", "kind")
    item = state.item(event.invoice_id)
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
    return evolve(state, disputes=state.disputes + (dispute,)), []


@_book.register
def _(event: ev.DisputeResolved, state: DebtorState):
    remaining = tuple(d for d in state.disputes if d.dispute_id != event.dispute_id)
    if len(remaining) == len(state.disputes):
        return state, []  # already resolved (or never opened): nothing to do
    # Remembered, so that the DisputeOpened redelivered later does not open it again.
    state = evolve(state, disputes=remaining)
    return _remember(state, _resolved(event.dispute_id), event.resolved_on, 0), []


@_book.register
def _(event: ev.PromiseToPayMade, state: DebtorState):
    _require_positive(event.amount_minor)
    _require_currency(state, event.currency)
    if state.has_seen(_made(event.promise_id)) or any(p.promise_id == event.promise_id for p in state.promises):
        return state, []  # running, or settled (and perhaps trimmed already): a redelivery
    if event.promised_date < event.made_on:
        raise ev.InvalidEvent(f"promised date {event.promised_date} is before {event.made_on}", "promised_date")
    promise = Promise(
        promise_id=event.promise_id,
        made_on=event.made_on,
        promised_date=event.promised_date,
        amount_minor=event.amount_minor,
        invoice_ids=tuple(event.invoice_ids),
    )
    state = evolve(state, promises=state.promises + (promise,))
    return _remember(state, _made(event.promise_id), event.made_on, 0), []


@_book.register
def _(event: ev.CreditLimitSet, state: DebtorState):
    if event.amount_minor < 0:
        raise ev.InvalidEvent("must not be negative", "amount_minor")
    _require_currency(state, event.currency)
    if event.source not in ("own", "insurer"):
        raise ev.InvalidEvent(f"{event.source!r} is neither 'own' nor 'insurer'", "source")
    if state.has_seen(event.event_id):
        return state, []
    state = evolve(state, credit_limit_minor=event.amount_minor, limit_source=event.source)
    return _remember(state, event.event_id, event.effective_date, 0), []


# --------------------------------------------------------------------------- helpers


def _require_positive(amount: int) -> None:
    if amount <= 0:
        raise ev.InvalidEvent(f"must be positive, got {amount}", "amount_minor")


def _require_currency(state: DebtorState, currency: str) -> None:
    if currency != state.currency:
        raise ev.InvalidEvent(f"currency {currency} differs from the debtor's currency {state.currency}", "currency")


def _replace_item(state: DebtorState, item: Item) -> DebtorState:
    return evolve(state, items=tuple(item if i.invoice_id == item.invoice_id else i for i in state.items))


def _remember(state: DebtorState, event_id: str, on: date | None, extra_credit: int) -> DebtorState:
    # Dated by the business date it was applied on (or its own date, if later), so that
    # an event booked late, e.g. an old bank transaction, is kept as long as any other.
    # Before the first DayStarted there is no business date: the first one stamps it.
    stamp = max((d for d in (on, state.today) if d is not None), default=date.min)
    return evolve(state, seen=state.seen + ((event_id, stamp),), credit_minor=state.credit_minor + extra_credit)


def _resolved(dispute_id: str) -> str:
    return f"dispute-resolved:{dispute_id}"


def _made(promise_id: str) -> str:
    return f"promise-made:{promise_id}"


def _settle_promises(state: DebtorState) -> tuple[DebtorState, Outputs]:
    outputs: Outputs = []
    promises = []
    for promise in state.promises:
        if promise.status == "running" and promise.paid_minor >= promise.amount_minor:
            promise = evolve(promise, status="kept")
            outputs.append(_promise_event(ev.PromiseKept, state, promise))
        promises.append(promise)
    if not outputs:
        return state, []
    return evolve(state, promises=_trim_settled(promises)), outputs


def _trim_settled(promises: list[Promise]) -> tuple[Promise, ...]:
    settled = [p for p in promises if p.status != "running"]
    drop = {p.promise_id for p in settled[:-SETTLED_PROMISES_KEPT]} if len(settled) > SETTLED_PROMISES_KEPT else set()
    return tuple(p for p in promises if p.promise_id not in drop)


def _pruned(state: DebtorState, today: date, first_day: bool) -> dict:
    horizon = today - RETENTION
    seen = state.seen
    if first_day:  # what was applied before any business date counts from the first one
        seen = tuple((seen_id, max(on, today)) for seen_id, on in seen)
    return {
        "seen": tuple(entry for entry in seen if entry[1] >= horizon),
        # A settled invoice stays until its due date is past the horizon, so that a
        # redelivered InvoiceIssued is still recognised as a duplicate.
        "items": tuple(i for i in state.items if i.open_minor or i.due_date >= horizon),
    }


def _promise_event(event_type, state: DebtorState, promise: Promise):
    return event_type(
        event_id=f"{state.debtor_id}:promise:{promise.promise_id}:{promise.status}",
        debtor_id=state.debtor_id,
        promise_id=promise.promise_id,
        promised_date=promise.promised_date,
        amount_minor=promise.amount_minor,
        paid_minor=promise.paid_minor,
        currency=state.currency,
        business_date=state.today,
    )
