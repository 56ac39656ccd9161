"""The debtor ledger as a specification: events in, state and outputs out.

The named scenarios users care about (the workflow in time, payments, disputes, promises,
limits, the consumer letter, refused events, intercompany) are in tests/scenarios.py, run
through the core, ``dunning simulate`` and the real pipeline by tests/test_scenarios.py.
Here: the rules' edges, validation details, idempotence and redelivery.

Every scenario uses the sample policy (harness/samples/policy.yaml). Day 0 is a Monday;
``day(n)`` is n days later. The B2B ``business`` workflow: pre-due at -3, first reminder
at +1, second at +14, call at +21, final notice at +30, collection at +60, minimum 25.00.
The B2C ``consumer`` workflow: pre-due at -3, first reminder at +3, SMS at +10, the
14-day letter at +17 (with collection costs), collection at +40, minimum 5.00.
"""

from dataclasses import replace

import pytest

from streams.core import events as ev
from streams.core.references import betalingskenmerk_for, rf_for
from streams.core.snapshot import snapshot
from tests.scenario import Scenario, actions, day, steps_by_date

REFERENCE = betalingskenmerk_for("12345678")  # 4812345678


def business_debtor(**fields) -> Scenario:
    s = Scenario()
    s.register("B2B", **fields)
    s.tick(day(0))
    return s


def snap(s: Scenario) -> ev.DebtorSnapshot:
    return snapshot(s.state, s.policy)


# --------------------------------------------------------------------------- the workflow in time


def test_no_pre_due_reminder_for_an_invoice_booked_after_its_due_date():
    s = business_debtor()
    s.run_until(day(20))

    emitted = s.invoice("INV-1", due=day(14), amount_minor=10_000)

    assert [a.step_name for a in actions(emitted)] == ["first reminder"]


def booked_late(kind: str, booked_on: int, until: int) -> tuple[Scenario, list, dict]:
    """A new debtor's invoice, due on day 0, booked on day ``booked_on``: the scenario,
    what the booking emitted, and the steps fired by date up to day ``until``."""
    s = Scenario()
    s.register(kind)
    s.tick(day(booked_on))
    emitted = s.invoice("INV-1", due=day(0), amount_minor=10_000)
    return s, emitted, steps_by_date(s.run_until(day(until)))


def test_an_e_mailed_final_notice_counts_as_received_the_day_it_is_sent():
    _, emitted, fired = booked_late("B2B", booked_on=100, until=130)

    # A step a day up to the final notice (e-mail, day 103), then its 15-day term from the
    # day after sending: the hand-over waits until day 119.
    assert [a.step_name for a in actions(emitted)] == ["first reminder"]
    assert fired == {day(101): ["second reminder"], day(102): ["call"], day(103): ["final notice"],
                     day(119): ["collection"]}


def test_action_below_minimum_amount_waits_until_enough_is_open():
    s = business_debtor()
    s.invoice("INV-A", due=day(14), amount_minor=2_000)  # below the 25.00 minimum

    assert s.run_until(day(12)) == {}
    assert s.state.item("INV-A").dunning_step == 0

    (pre_due,) = actions(s.invoice("INV-B", due=day(14), amount_minor=1_000))
    assert pre_due.step_name == "pre-due"
    assert [i.invoice_id for i in pre_due.items] == ["INV-A", "INV-B"]
    assert pre_due.total_minor == 3_000


def test_small_invoice_alone_is_never_dunned():
    s = business_debtor()
    s.invoice("INV-A", due=day(14), amount_minor=2_499)

    assert actions(s.outputs) == []
    assert s.run_until(day(100)) == {}


# --------------------------------------------------------------------------- money in


def test_overpayment_becomes_credit_and_the_balance_goes_negative():
    s = business_debtor()
    s.invoice("INV-1", due=day(14), amount_minor=10_000, reference=REFERENCE)

    s.pay_by_reference(REFERENCE, 12_000, on=day(5))

    assert s.state.item("INV-1").open_minor == 0
    assert s.state.credit_minor == 2_000
    assert s.state.balance_minor == -2_000
    summary = snap(s)
    assert (summary.balance_minor, summary.credit_minor, summary.items) == (-2_000, 2_000, ())
    assert s.run_until(day(100)) == {}


def test_credit_note_lowers_the_open_amount_and_any_excess_becomes_credit():
    s = business_debtor()
    s.invoice("INV-1", due=day(14), amount_minor=10_000)

    s.credit_note("INV-1", 3_000, on=day(2))
    (pre_due,) = actions(s.run_until(day(11))[day(11)])
    assert pre_due.total_minor == 7_000

    s.credit_note("INV-1", 9_000, on=day(12))
    assert (s.state.item("INV-1").credited_minor, s.state.credit_minor, s.state.balance_minor) == (10_000, 2_000, -2_000)
    assert s.run_until(day(100)) == {}


def test_credit_note_for_an_unknown_invoice_is_refused():
    s = business_debtor()
    with pytest.raises(ev.InvalidEvent) as refused:
        s.credit_note("INV-404", 1_000, on=day(1))
    assert refused.value.field == "invoice_id"


# --------------------------------------------------------------------------- disputes


def test_a_resolved_dispute_redelivered_does_not_open_again():
    s = business_debtor()
    s.invoice("INV-1", due=day(14), amount_minor=10_000)
    s.dispute("DSP-1", "INV-1", on=day(5))
    s.resolve("DSP-1", on=day(6))

    assert s.dispute("DSP-1", "INV-1", on=day(5)) == []  # the same DisputeOpened, again

    assert s.state.disputes == ()
    assert steps_by_date(s.run_until(day(11))) == {day(11): ["pre-due"]}


# --------------------------------------------------------------------------- credit limit


def test_exactly_at_the_limit_is_a_warning_not_a_breach():
    s = business_debtor(credit_limit_minor=10_000)
    emitted = s.invoice("INV-A", due=day(60), amount_minor=10_000)
    assert [type(o) for o in emitted if not isinstance(o, ev.DunningActionDue)] == [ev.LimitWarning]
    assert s.state.limit_state == "warning"


def test_insurer_limit_lowered_under_the_exposure_is_a_breach():
    s = business_debtor()
    s.invoice("INV-A", due=day(60), amount_minor=8_000)
    (breach,) = s.limit(5_000, source="insurer")
    assert isinstance(breach, ev.LimitBreached)
    assert (breach.source, breach.utilisation_bp) == ("insurer", 16_000)


# --------------------------------------------------------------------------- refused events


def refused(s: Scenario, event) -> ev.InvalidEvent:
    before = s.state
    with pytest.raises(ev.InvalidEvent) as raised:
        s.feed(event)
    assert s.state is before  # a refused event changes nothing
    return raised.value


def test_an_invoice_past_the_most_a_debtor_may_hold_is_refused(monkeypatch):
    from streams.core import ledger

    monkeypatch.setattr(ledger, "MAX_ITEMS", 3)
    s = business_debtor()
    for n in range(3):
        s.invoice(f"INV-{n}", day(14), 1_000)
    error = refused(s, s.invoice_event("INV-3", day(14), 1_000))
    assert error.field == "invoice_id" and "3 invoices already" in str(error)
    assert s.feed(s.invoice_event("INV-1", day(14), 1_000)) == []  # a repeat of one it holds is still a repeat


def test_event_for_an_unregistered_debtor_is_refused():
    s = Scenario()
    assert refused(s, s.invoice_event("INV-1", day(14), 1_000)).field == "debtor_id"


def test_event_for_another_debtor_is_refused():
    s = business_debtor()
    other = replace(s.invoice_event("INV-1", day(14), 1_000), debtor_id="D2")
    assert refused(s, other).field == "debtor_id"


@pytest.mark.parametrize("amount", [0, -1_000])
def test_amounts_that_are_not_positive_are_refused(amount):
    s = business_debtor()
    s.invoice("INV-1", due=day(14), amount_minor=10_000)
    assert refused(s, s.invoice_event("INV-2", day(14), amount)).field == "amount_minor"
    note = ev.CreditNoteIssued("cn", "D1", "CN-1", "INV-1", day(1), amount)
    assert refused(s, note).field == "amount_minor"
    payment = ev.PaymentMatched("pay", "D1", "INV-1", "TX-1", day(1), amount)
    assert refused(s, payment).field == "amount_minor"
    promise = ev.PromiseToPayMade("ptp", "D1", "PTP-1", day(1), day(5), amount)
    assert refused(s, promise).field == "amount_minor"


def test_currency_other_than_the_debtors_is_refused():
    s = business_debtor()
    assert refused(s, s.invoice_event("INV-1", day(14), 1_000, currency="USD")).field == "currency"
    assert refused(s, ev.CreditLimitSet("lim", "D1", 5_000, currency="GBP")).field == "currency"


def test_debtor_currency_cannot_change_while_items_are_open():
    s = business_debtor()
    s.invoice("INV-1", due=day(14), amount_minor=1_000)
    change = ev.DebtorRegistered("reg-2", "D1", "Buyer BV", "B2B", currency="USD")
    assert refused(s, change).field == "currency"


def test_same_invoice_again_is_a_no_op_and_different_content_is_refused():
    s = business_debtor()
    s.invoice("INV-1", due=day(14), amount_minor=10_000, reference=REFERENCE)
    before = s.state

    assert s.feed(s.invoice_event("INV-1", day(14), 10_000, reference="4812 345 678")) == []
    assert s.state is before
    assert refused(s, s.invoice_event("INV-1", day(14), 10_001, reference=REFERENCE)).field == "invoice_id"
    assert refused(s, s.invoice_event("INV-1", day(15), 10_000, reference=REFERENCE)).field == "invoice_id"


def test_due_date_before_issue_date_is_refused():
    s = business_debtor()
    assert refused(s, s.invoice_event("INV-1", due=day(1), amount_minor=1_000, issued=day(2))).field == "due_date"


def test_promise_dated_before_it_was_made_is_refused():
    s = business_debtor()
    s.invoice("INV-1", due=day(14), amount_minor=1_000)
    promise = ev.PromiseToPayMade("ptp", "D1", "PTP-1", made_on=day(5), promised_date=day(4), amount_minor=1_000)
    assert refused(s, promise).field == "promised_date"


def test_dispute_of_unknown_kind_or_invoice_is_refused():
    s = business_debtor()
    s.invoice("INV-1", due=day(14), amount_minor=1_000)
    assert refused(s, ev.DisputeOpened("d1", "D1", "DSP-1", "INV-404", day(1))).field == "invoice_id"
    assert refused(s, ev.DisputeOpened("d2", "D1", "DSP-2", "INV-1", day(1), kind="rant")).field == "kind"


# --------------------------------------------------------------------------- time and redelivery


def test_repeated_or_earlier_day_is_a_no_op():
    s = business_debtor()
    s.invoice("INV-1", due=day(14), amount_minor=10_000)
    s.tick(day(11))
    before = s.state

    assert s.tick(day(11)) == []
    assert s.tick(day(3)) == []
    assert s.state is before


def test_redelivered_bank_transaction_is_booked_once():
    s = business_debtor()
    s.invoice("INV-1", due=day(14), amount_minor=10_000, reference=REFERENCE)
    payment = ev.PaymentReceived("bank-1", "TX-1", day(3), 4_000, structured_reference=REFERENCE)

    s.feed(payment)
    s.feed(payment)

    assert s.state.balance_minor == 6_000


def test_redelivered_registration_does_not_undo_a_later_limit():
    s = Scenario()
    registration = ev.DebtorRegistered("reg-1", "D1", "Buyer BV", "B2B", credit_limit_minor=50_000)
    s.feed(registration)
    s.limit(10_000)

    s.feed(registration)

    assert s.state.credit_limit_minor == 10_000


def test_limit_set_before_the_first_day_is_still_recognised_when_redelivered():
    s = Scenario()
    s.register("B2B")
    first_limit = ev.CreditLimitSet("lim-1", "D1", 50_000)
    s.feed(first_limit)
    s.tick(day(0))
    s.limit(10_000)

    s.feed(first_limit)

    assert s.state.credit_limit_minor == 10_000


def test_old_payment_imported_late_is_still_recognised_when_redelivered():
    s = business_debtor()
    s.run_until(day(200))
    s.invoice("INV-1", due=day(210), amount_minor=10_000)
    late = ev.PaymentMatched("pay-old", "D1", "INV-1", "TX-1", booking_date=day(0), amount_minor=4_000)
    s.feed(late)
    s.tick(day(201))

    s.feed(late)

    assert s.state.balance_minor == 6_000


def test_settled_promise_redelivered_does_not_run_again():
    s = business_debtor()
    s.invoice("INV-1", due=day(14), amount_minor=10_000)
    promises = [
        ev.PromiseToPayMade(f"ptp-{n}", "D1", f"PTP-{n}", day(n), day(n), 100) for n in range(1, 8)
    ]
    for n, promise in enumerate(promises, start=1):
        s.tick(day(n))
        s.feed(promise)
    s.tick(day(9))  # all seven broken; only the last five are kept
    assert [p.promise_id for p in s.state.promises] == [f"PTP-{n}" for n in range(3, 8)]

    assert s.feed(promises[0]) == []
    assert all(p.status == "broken" for p in s.state.promises)


# --------------------------------------------------------------------------- payment matching


def matched_debtor() -> Scenario:
    s = business_debtor()
    s.invoice("INV-1", due=day(14), amount_minor=10_000, reference=REFERENCE)
    s.invoice("INV-2", due=day(14), amount_minor=5_000, reference=rf_for("539007547034"))
    return s


def test_valid_reference_matches_its_invoice():
    s = matched_debtor()
    (matched, *_) = s.pay_by_reference("rf18 5390 0754 7034", 5_000, on=day(3))
    assert matched == ev.PaymentMatched(
        event_id=matched.event_id,
        debtor_id="D1",
        invoice_id="INV-2",
        transaction_id=matched.transaction_id,
        booking_date=day(3),
        amount_minor=5_000,
        currency="EUR",
        method="structured_reference",
    )
    assert s.state.item("INV-2").open_minor == 0


@pytest.mark.parametrize(
    "reference, currency, amount, reason, debtor_id",
    [
        ("4812345679", "EUR", 10_000, "structured reference 4812345679 fails its check digits", None),
        ("RF19539007547034", "EUR", 5_000, "structured reference RF19539007547034 fails its check digits", None),
        (rf_for("1234"), "EUR", 10_000, f"no invoice carries reference {rf_for('1234')}", None),
        (None, "EUR", 10_000, "no structured payment reference", None),
        ("  ", "EUR", 10_000, "no structured payment reference", None),
        (REFERENCE, "USD", 10_000, "currency USD differs from invoice currency EUR", "D1"),
        (REFERENCE, "EUR", -10_000, "not an incoming payment (amount is not positive)", None),
    ],
)
def test_payment_that_cannot_be_matched_with_confidence_is_unmatched(reference, currency, amount, reason, debtor_id):
    s = matched_debtor()
    before = s.state

    (unmatched,) = s.pay_by_reference(reference, amount, on=day(3), currency=currency)

    assert isinstance(unmatched, ev.PaymentUnmatched)
    assert (unmatched.reason, unmatched.debtor_id, unmatched.amount_minor) == (reason, debtor_id, amount)
    assert unmatched.structured_reference == reference
    assert s.state is before


def test_days_without_a_tick_are_caught_up_one_by_one():
    daily = business_debtor()
    daily.invoice("INV-1", due=day(14), amount_minor=10_000)
    for n in range(1, 31):
        daily.tick(day(n))

    gappy = business_debtor()
    gappy.invoice("INV-1", due=day(14), amount_minor=10_000)
    gappy.tick(day(1))
    gappy.tick(day(30))  # the clock was down for four weeks

    def steps(scenario):
        return [(a.step_name, a.business_date) for a in actions(scenario.outputs)]

    assert steps(gappy) == steps(daily)
    assert len(steps(daily)) >= 3  # pre-due, first and second reminder at least
    assert gappy.state == daily.state
