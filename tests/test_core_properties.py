"""Properties of the functional core over random but valid histories.

A history registers a few debtors, then mixes invoices, bank payments by reference (so
through the matcher), credit notes, disputes opened and resolved, promises to pay,
credit limits and day ticks. It is run through the in-memory ``Pipeline``, which routes
exactly as the streaming topology does.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core import events as ev
from streams.core.pipeline import Pipeline
from streams.core.policy import HANDOVER_CHANNEL
from streams.core.references import betalingskenmerk_for, rf_for
from streams.core.snapshot import snapshot
from streams.core.state import DebtorState
from streams.core.terms import term_ends_on
from tests.scenario import sample_policy

POLICY = sample_policy()
DEBTORS = ("D1", "D2", "D3")
FIRST_DAY = date(2025, 3, 3)
# Ticks stop here: well inside the ledger's retention of settled items and applied ids,
# so every redelivery in a history is one the ledger must recognise.
MAX_SPAN = timedelta(days=90)
BAD_REFERENCE = "5000056789012346"  # the check digit should be 5

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


class HistoryBuilder:
    """Turns drawn choices into events that are valid at the point they occur."""

    def __init__(self, draw):
        self.draw = draw
        self.events: list = []
        self.today: date | None = None
        self.invoices: list[tuple[str, str, int, str | None]] = []  # debtor, invoice, amount, reference
        self.open_disputes: list[tuple[str, str]] = []
        self.serial = 0

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    @property
    def current(self) -> date:
        return self.today or FIRST_DAY

    def integers(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def register(self, debtor_id: str) -> None:
        self.events.append(
            ev.DebtorRegistered(
                event_id=self.next_id("reg"),
                debtor_id=debtor_id,
                name=f"Debtor {debtor_id}",
                kind=self.draw(st.sampled_from(["B2B", "B2C"])),
                segment=self.draw(st.sampled_from(["default", "enterprise"])),
                intercompany=self.draw(st.sampled_from([False, False, False, True])),
                credit_limit_minor=self.draw(st.none() | st.integers(0, 300_000)),
            )
        )

    def invoice(self) -> None:
        debtor_id = self.draw(st.sampled_from(DEBTORS))
        invoice_id = self.next_id("INV")
        number = f"{self.serial:08d}"
        reference = self.draw(st.sampled_from([betalingskenmerk_for(number), rf_for(number), None]))
        amount = self.integers(1, 200_000)
        issued = self.current - timedelta(days=self.integers(0, 20))
        self.events.append(
            ev.InvoiceIssued(
                event_id=self.next_id("ev"),
                debtor_id=debtor_id,
                invoice_id=invoice_id,
                issue_date=issued,
                due_date=issued + timedelta(days=self.integers(0, 40)),
                amount_minor=amount,
                payment_reference=reference,
            )
        )
        self.invoices.append((debtor_id, invoice_id, amount, reference))

    def pay(self) -> None:
        if self.invoices:
            _, _, amount, reference = self.draw(st.sampled_from(self.invoices))
            amount = self.integers(1, amount * 5 // 4 + 1)
        else:
            reference, amount = None, self.integers(1, 10_000)
        if self.draw(st.integers(0, 9)) == 0:
            reference = self.draw(st.sampled_from([BAD_REFERENCE, None]))
        transaction = self.next_id("TX")
        self.events.append(
            ev.PaymentReceived(f"bank-{transaction}", transaction, self.current, amount, structured_reference=reference)
        )

    def take_back(self) -> None:
        """The bank reverses one of the payments so far (or one it never made: nothing fits)."""
        paid = [e for e in self.events if isinstance(e, ev.PaymentReceived)]
        if not paid:
            return
        payment = self.draw(st.sampled_from(paid))
        transaction = self.next_id("TX")
        amount = payment.amount_minor if self.draw(st.integers(0, 4)) else payment.amount_minor + 1
        self.events.append(ev.PaymentReceived(f"bank-{transaction}", transaction, self.current, amount,
                                              structured_reference=payment.structured_reference,
                                              direction="debit", reversal=True))

    def credit_note(self) -> None:
        if not self.invoices:
            return
        debtor_id, invoice_id, amount, _ = self.draw(st.sampled_from(self.invoices))
        note = self.next_id("CN")
        self.events.append(
            ev.CreditNoteIssued(f"ev-{note}", debtor_id, note, invoice_id, self.current, self.integers(1, amount + 1_000))
        )

    def dispute(self) -> None:
        if not self.invoices:
            return
        debtor_id, invoice_id, amount, _ = self.draw(st.sampled_from(self.invoices))
        dispute_id = self.next_id("DSP")
        self.events.append(
            ev.DisputeOpened(
                event_id=f"ev-{dispute_id}",
                debtor_id=debtor_id,
                dispute_id=dispute_id,
                invoice_id=invoice_id,
                opened_on=self.current,
                kind=self.draw(st.sampled_from(["dispute", "complaint"])),
                amount_minor=self.draw(st.none() | st.integers(0, amount)),
            )
        )
        self.open_disputes.append((debtor_id, dispute_id))

    def resolve(self) -> None:
        if not self.open_disputes:
            return
        debtor_id, dispute_id = self.draw(st.sampled_from(self.open_disputes))
        self.open_disputes.remove((debtor_id, dispute_id))
        self.events.append(ev.DisputeResolved(self.next_id("ev"), debtor_id, dispute_id, self.current))

    def promise(self) -> None:
        debtor_id = self.draw(st.sampled_from(DEBTORS))
        own = [invoice_id for d, invoice_id, _, _ in self.invoices if d == debtor_id]
        invoice_ids = tuple(self.draw(st.lists(st.sampled_from(own), unique=True, max_size=3))) if own else ()
        promise_id = self.next_id("PTP")
        self.events.append(
            ev.PromiseToPayMade(
                event_id=f"ev-{promise_id}",
                debtor_id=debtor_id,
                promise_id=promise_id,
                made_on=self.current,
                promised_date=self.current + timedelta(days=self.integers(0, 20)),
                amount_minor=self.integers(1, 200_000),
                invoice_ids=invoice_ids,
            )
        )

    def limit(self) -> None:
        self.events.append(
            ev.CreditLimitSet(
                event_id=self.next_id("lim"),
                debtor_id=self.draw(st.sampled_from(DEBTORS)),
                amount_minor=self.integers(0, 300_000),
                source=self.draw(st.sampled_from(["own", "insurer"])),
                effective_date=self.draw(st.sampled_from([None, self.current])),
            )
        )

    def tick(self) -> None:
        start = self.today or FIRST_DAY - timedelta(days=1)
        next_day = start + timedelta(days=self.integers(1, 6))
        if next_day - FIRST_DAY > MAX_SPAN:
            return
        self.today = next_day
        self.events.append(ev.DayStarted(f"day-{next_day}", next_day))


# Weighted: mostly invoices, payments and time, so that workflows get to run.
COMMANDS = ("invoice",) * 4 + ("pay",) * 3 + ("tick",) * 6 + ("dispute", "resolve") * 2 + (
    "credit_note",
    "promise",
    "limit",
    "take_back",
)


@st.composite
def histories(draw) -> list:
    builder = HistoryBuilder(draw)
    for debtor_id in DEBTORS:
        builder.register(debtor_id)
    for command in draw(st.lists(st.sampled_from(COMMANDS), min_size=15, max_size=70)):
        getattr(builder, command)()
    return builder.events


def run(events, after_each=None) -> tuple[Pipeline, list[list]]:
    """Every event through a fresh pipeline; the outputs of each event, in order."""
    pipeline = Pipeline(POLICY)
    outputs = []
    for event in events:
        emitted = pipeline.process(event)
        outputs.append(emitted)
        if after_each:
            after_each(pipeline, emitted)
    return pipeline, outputs


def action_ids(outputs: list[list]) -> list[str]:
    return [o.action_id for emitted in outputs for o in emitted if isinstance(o, ev.DunningActionDue)]


# --------------------------------------------------------------------------- what must hold after each event


def principal_of(item) -> int:
    return item.amount_minor - item.paid_minor - item.credited_minor


def open_of(item) -> int:
    return principal_of(item) + item.costs_minor - item.costs_paid_minor


def check_figures(state: DebtorState) -> None:
    open_total = sum(open_of(item) for item in state.items.values())
    assert all(principal_of(item) >= 0 for item in state.items.values())
    assert all(0 <= item.costs_paid_minor <= item.costs_minor for item in state.items.values())
    assert state.open_minor == open_total  # kept in step, not summed
    assert list(state.items.values()) == sorted(state.items.values(), key=lambda i: (i.due_date, i.invoice_id))
    assert state.balance_minor == open_total - state.credit_minor
    # Credit on account is always used: a debtor with credit has nothing open (BW 6:43).
    assert state.credit_minor >= 0 and (state.credit_minor == 0 or open_total == 0)
    if state.debtor is None:
        return
    summary = snapshot(state, POLICY)
    aging = (
        summary.aging_not_due_minor,
        summary.aging_1_30_minor,
        summary.aging_31_60_minor,
        summary.aging_61_90_minor,
        summary.aging_over_90_minor,
    )
    assert sum(aging) == open_total
    assert summary.balance_minor == open_total - summary.credit_minor
    assert summary.overdue_minor == open_total - summary.aging_not_due_minor


def check_action(state: DebtorState, action: ev.DunningActionDue) -> None:
    for named in action.items:
        item = state.item(named.invoice_id)
        assert item is not None
        open_now = open_of(item)
        disputed = sum(d.amount_minor for d in state.disputes if d.invoice_id == item.invoice_id)
        promised = any(
            p.status == "running" and (not p.invoice_ids or item.invoice_id in p.invoice_ids) for p in state.promises
        )
        assert open_now > 0, f"{item.invoice_id} is settled"
        assert disputed < open_now, f"{item.invoice_id} is fully disputed"
        assert not promised, f"{item.invoice_id} is covered by a running promise"
        # A tick that catches up several days may book costs after an earlier day's action: that
        # action asked for the costs open on its day, no more.
        costs_now = item.costs_minor - item.costs_paid_minor
        assert named.costs_minor <= costs_now
        assert named.open_minor == named.principal_minor + named.costs_minor
        assert named.open_minor == open_now - disputed - (costs_now - named.costs_minor)
    assert action.total_minor == sum(named.open_minor for named in action.items)
    assert action.total_minor <= state.balance_minor, "asked for more than the debtor owes in total"


def check_after_event(pipeline: Pipeline, emitted: list) -> None:
    for state in pipeline.debtors.values():
        check_figures(state)
    for output in emitted:
        if isinstance(output, ev.DunningActionDue):
            check_action(pipeline.debtors[output.debtor_id], output)


# --------------------------------------------------------------------------- the properties


@PROPERTY_SETTINGS
@given(histories())
def test_figures_add_up_and_actions_never_name_what_may_not_be_dunned(events):
    run(events, after_each=check_after_event)


@PROPERTY_SETTINGS
@given(histories())
def test_a_consumer_owes_costs_and_is_handed_over_only_after_the_letters_term(events):
    letters: dict[tuple[str, str], tuple[date, int]] = {}  # (debtor, invoice) -> (last day of its term, costs named)

    def check(pipeline: Pipeline, emitted: list) -> None:
        for output in emitted:
            if not (isinstance(output, ev.DunningActionDue) and output.debtor_kind == "B2C"):
                continue
            if output.channel == HANDOVER_CHANNEL:
                for named in output.items:
                    ends, _ = letters[(output.debtor_id, named.invoice_id)]
                    assert ends < output.business_date, "handed over before the letter's term ran out"
            elif output.collection_costs_minor and output.term_days:
                ends = term_ends_on(output.business_date, output.channel, output.term_days)
                for named in output.items:
                    letters[(output.debtor_id, named.invoice_id)] = (ends, output.collection_costs_minor)
        for state in pipeline.debtors.values():
            if state.debtor is None or state.debtor.kind != "B2C":
                continue
            for item in state.items.values():
                if item.costs_minor:
                    ends, named = letters[(state.debtor_id, item.invoice_id)]
                    assert ends < state.today, "costs booked within the letter's term"
                    assert item.costs_minor <= named, "more costs than the letter named"

    run(events, after_each=check)


@PROPERTY_SETTINGS
@given(histories())
def test_every_euro_received_is_on_an_invoice_or_credit_on_account(events):
    pipeline, outputs = run(events)
    received: dict[str, int] = defaultdict(int)
    for money in {o.event_id: o for emitted in outputs for o in emitted if isinstance(o, ev.PaymentMatched)}.values():
        received[money.debtor_id] += money.amount_minor
    for money in {e.event_id: e for e in events if isinstance(e, ev.CreditNoteIssued)}.values():
        received[money.debtor_id] += money.amount_minor
    for money in {o.event_id: o for emitted in outputs for o in emitted if isinstance(o, ev.PaymentReversed)}.values():
        received[money.debtor_id] -= money.amount_minor
    for debtor_id, state in pipeline.debtors.items():
        booked = sum(i.paid_minor + i.costs_paid_minor + i.credited_minor for i in state.items.values()) + state.credit_minor
        assert booked == received[debtor_id], debtor_id


@PROPERTY_SETTINGS
@given(histories())
def test_replay_gives_identical_outputs_and_states(events):
    first, first_outputs = run(events)
    second, second_outputs = run(events)

    assert first_outputs == second_outputs
    assert first.debtors == second.debtors
    assert first.slots == second.slots


@PROPERTY_SETTINGS
@given(histories(), st.data())
def test_redelivered_events_change_nothing(events, data):
    again_after: dict[int, list] = defaultdict(list)
    for index, event in enumerate(events):
        if data.draw(st.booleans(), label=f"duplicate {index} at once"):
            again_after[index].append(event)
        # A DayStarted for an earlier date is recognised by its date: no need to replay it late.
        if not isinstance(event, ev.DayStarted) and data.draw(st.booleans(), label=f"replay {index} later"):
            again_after[data.draw(st.integers(index, len(events) - 1))].append(event)
    noisy = [copy for index, event in enumerate(events) for copy in (event, *again_after[index])]

    clean, clean_outputs = run(events)
    redelivered, noisy_outputs = run(noisy)

    assert redelivered.debtors == clean.debtors
    assert set(action_ids(noisy_outputs)) == set(action_ids(clean_outputs))


@PROPERTY_SETTINGS
@given(histories())
def test_action_ids_are_unique_across_a_run(events):
    _, outputs = run(events)
    ids = action_ids(outputs)
    assert len(ids) == len(set(ids))


@PROPERTY_SETTINGS
@given(histories())
def test_looking_only_where_a_step_can_be_due_changes_no_outcome(events):
    """The ledger looks at the dunning steps only after events that can make one due, and a
    day tick skips debtors whose invoices cannot move yet. Looking at every invoice after
    every event must give the same outputs and the same final states."""
    from unittest import mock

    from streams.core import ledger

    def look_everywhere(state, policy, outputs, made_due=ledger.ALL_ITEMS):
        full_look(state, policy, outputs, ledger.ALL_ITEMS)

    full_look = ledger.evaluate
    shortcut, shortcut_outputs = run(events)
    with mock.patch.object(ledger, "evaluate", look_everywhere):
        everywhere, everywhere_outputs = run(events)

    assert shortcut_outputs == everywhere_outputs
    assert shortcut.snapshots() == everywhere.snapshots()
