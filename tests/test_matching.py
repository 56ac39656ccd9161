"""The matcher's slots (``streams.core.matching``) through the in-memory topology: a
payment that comes before its invoice waits for it; the order in which the ledger and the
bank feed are read within a day does not change the actions, the matches or the states."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from harness.drive import ORDERS, day_events
from streams.core import events as ev
from streams.core import matching
from streams.core.pipeline import Pipeline
from streams.core.references import betalingskenmerk_for
from streams.worker.state_codec import decode_slot, encode_slot
from tests.scenario import sample_policy
from tests.timelines import timeline_with_early_payments

START = date(2025, 3, 3)
REFERENCE = betalingskenmerk_for("20250042")


def tick(n: int) -> ev.DayStarted:
    on = START + timedelta(days=n)
    return ev.DayStarted(f"day:{on.isoformat()}", on)


def registered() -> ev.DebtorRegistered:
    return ev.DebtorRegistered("reg-M1", "M1", "Matchbaar BV", "B2B", segment="smb", email="ap@matchbaar.example")


def invoice(n: int = 0, amount: int = 12_100) -> ev.InvoiceIssued:
    issued = START + timedelta(days=n)
    return ev.InvoiceIssued("inv-M1-1", "M1", "F-2025-0042", issued, issued + timedelta(days=14), amount,
                            payment_reference=REFERENCE)


def payment(n: int, amount: int = 12_100, reference: str | None = REFERENCE, tx: str = "tx-1") -> ev.PaymentReceived:
    return ev.PaymentReceived(f"bank-{tx}", tx, START + timedelta(days=n), amount, structured_reference=reference)


def run(events) -> tuple[Pipeline, list]:
    pipeline = Pipeline(sample_policy())
    return pipeline, [o for e in events for o in pipeline.process(e)]


def of_type(outputs, cls) -> list:
    return [o for o in outputs if type(o) is cls]


def test_a_payment_before_its_invoice_waits_and_is_matched_when_the_invoice_is_issued():
    pipeline, outputs = run([tick(0), registered(), payment(0), invoice(0)])
    assert of_type(outputs, ev.PaymentUnmatched) == []
    (matched,) = of_type(outputs, ev.PaymentMatched)
    assert (matched.debtor_id, matched.invoice_id, matched.amount_minor) == ("M1", "F-2025-0042", 12_100)
    (snap,) = pipeline.snapshots()
    assert snap.balance_minor == 0 and snap.items == ()


def test_a_payment_still_waiting_at_the_next_day_is_reported_once_and_leaves_the_queue_when_matched():
    pipeline, outputs = run([tick(0), registered(), payment(0), tick(1), tick(2)])
    (reported,) = of_type(outputs, ev.PaymentUnmatched)
    assert reported.transaction_id == "tx-1" and REFERENCE in reported.reason and "waits" in reported.reason
    later = [o for e in [invoice(5)] for o in pipeline.process(e)]
    (matched,) = of_type(later, ev.PaymentMatched)
    assert of_type(later, ev.PaymentResolved) == [
        ev.PaymentResolved("resolved:bank-tx-1", "tx-1", "matched", "M1", "F-2025-0042")]
    assert later.index(matched) < later.index(of_type(later, ev.PaymentResolved)[0])
    # Nothing waits any more: the next days report nothing.
    assert of_type([o for e in [tick(6), tick(7)] for o in pipeline.process(e)], ev.PaymentUnmatched) == []
    assert pipeline.snapshots()[0].balance_minor == 0


@pytest.mark.parametrize("bad, reason", [
    (payment(0, amount=-500), "not an incoming payment"),
    (ev.PaymentReceived("bank-tx-d", "tx-d", START, 500, direction="debit"), "a debit"),
    (ev.PaymentReceived("bank-tx-r", "tx-r", START, 500, reversal=True), "reverses an earlier"),
])
def test_what_is_no_payment_from_a_debtor_is_reported_at_once(bad, reason):
    _, outputs = run([tick(0), bad])
    (reported,) = of_type(outputs, ev.PaymentUnmatched)
    assert reason in reported.reason


@pytest.mark.parametrize("bad, reason", [
    (payment(0, reference=None), "no structured reference"),
    (payment(0, reference="1234567890123456"), "fails its check digits"),
])
def test_a_payment_with_no_usable_reference_and_nothing_else_to_go_by_is_reported_at_the_next_tick(bad, reason):
    pipeline, outputs = run([tick(0), registered(), invoice(0), bad])
    assert of_type(outputs, ev.PaymentUnmatched) == []  # the cascade runs at the tick, when the day is complete
    (reported,) = of_type(pipeline.process(tick(1)), ev.PaymentUnmatched)
    assert reason in reported.reason and "no payer account" in reported.reason
    assert pipeline.slots.keys() == {REFERENCE, "no:F20250042"}  # the parked payment left no slot behind


def test_the_same_payment_twice_while_it_waits_is_matched_once():
    _, outputs = run([tick(0), registered(), payment(0), payment(0), tick(1), invoice(1)])
    assert len(of_type(outputs, ev.PaymentUnmatched)) == 1
    assert len({m.event_id for m in of_type(outputs, ev.PaymentMatched)}) == 1


def test_a_waiting_payment_in_another_currency_is_reported_with_the_debtor_when_the_invoice_comes():
    foreign = ev.PaymentReceived("bank-tx-usd", "tx-usd", START, 12_100, currency="USD", structured_reference=REFERENCE)
    _, outputs = run([tick(0), registered(), foreign, invoice(0)])
    (reported,) = of_type(outputs, ev.PaymentUnmatched)
    assert "currency USD" in reported.reason and reported.debtor_id == "M1"
    assert of_type(outputs, ev.PaymentMatched) == []


@pytest.mark.parametrize("slot", [
    matching.Slot("M1", "inv-M1-1", "EUR"),
    matching.Slot(waiting=(matching.Waiting(payment(0)), matching.Waiting(payment(1, tx="tx-2"), True))),
    matching.Slot("M1", "inv", "EUR", (matching.Waiting(payment(0, tx="tx-é")),)),
])
def test_a_slot_survives_the_table_byte_for_byte(slot):
    assert decode_slot(encode_slot(slot)) == slot
    assert encode_slot(decode_slot(encode_slot(slot))) == encode_slot(slot)


# --------------------------------------------------------------------------- order within a day


def outcome(events) -> tuple:
    """What must not depend on the order: actions, matches, reports, final states."""
    pipeline, outputs = run(events)
    actions = sorted(a.action_id for a in of_type(outputs, ev.DunningActionDue))
    matched = sorted((m.transaction_id, m.invoice_id) for m in of_type(outputs, ev.PaymentMatched))
    unmatched = sorted(u.transaction_id for u in of_type(outputs, ev.PaymentUnmatched))
    return actions, matched, unmatched, pipeline.snapshots()


@pytest.mark.parametrize("seed", range(3))
def test_the_order_of_ledger_and_bank_within_a_day_changes_nothing(seed):
    timeline = timeline_with_early_payments(40)
    rng = random.Random(seed)
    results = {order: outcome([e for day in timeline for e in (day.tick, *day_events(day, order, rng))])
               for order in ORDERS}
    canonical = outcome([e for day in timeline for e in day.events()])
    assert ("tx-early-2", "F-EARLY-2") in canonical[1], "a payment before its invoice on the same day"
    assert ("tx-early-3", "F-EARLY-3") in canonical[1], "the cascade, at the day tick"
    for order, result in results.items():
        assert result == canonical, order
