"""A reversal by the bank (``streams.core.reversals``) through the in-memory topology: it goes
to the debtor whose payment it takes back, at the next day tick; that payment's money comes
off the invoices it paid, off credit on account, and off the promise it counted towards; the
invoices are dunned again. One it cannot tie to exactly one payment goes to the queue with
the candidates. The state survives the worker's codec."""

from __future__ import annotations

import gc
from datetime import date, timedelta

from streams.core import events as ev
from streams.core.pipeline import Pipeline
from streams.core.references import betalingskenmerk_for
from streams.core.reversals import CANDIDATE
from streams.core.state import Booked
from streams.worker.state_codec import decode_state, encode_state
from tests.scenario import sample_policy

START = date(2025, 3, 3)
PAYER = "NL91ABNA0417164300"
OTHER = "NL39RABO0300065264"
REF_1, REF_2 = betalingskenmerk_for("00000001"), betalingskenmerk_for("00000002")


def on(n: int) -> date:
    return START + timedelta(days=n)


def tick(n: int) -> ev.DayStarted:
    return ev.DayStarted(f"day:{on(n).isoformat()}", on(n))


def ledger(*invoices: tuple[str, int, str | None]) -> list:
    """Debtor D-1 on day 0 with ``invoices`` (number, amount, reference), due on day 14."""
    events = [ev.DebtorRegistered("reg-D-1", "D-1", "Bouwbedrijf De Vries BV", "B2B", segment="smb",
                                  email="ap@devries.example"), tick(0)]
    events += [ev.InvoiceIssued(f"inv-{number}", "D-1", number, on(0), on(14), amount, payment_reference=reference)
               for number, amount, reference in invoices]
    return events


def paid(tx: str, amount: int, n: int, reference: str | None = None, iban: str | None = PAYER,
         text: str | None = None) -> ev.PaymentReceived:
    return ev.PaymentReceived(f"bank-{tx}", tx, on(n), amount, payer_iban=iban, structured_reference=reference,
                              unstructured_remittance=text)


def taken_back(tx: str, amount: int, n: int, reference: str | None = None, iban: str | None = PAYER,
               text: str | None = None) -> ev.PaymentReceived:
    return ev.PaymentReceived(f"bank-{tx}", tx, on(n), amount, payer_iban=iban, structured_reference=reference,
                              unstructured_remittance=text, direction="debit", reversal=True)


def run(events) -> tuple[Pipeline, list]:
    pipeline = Pipeline(sample_policy())
    return pipeline, [o for e in events for o in pipeline.process(e)]


def of_type(outputs, kind) -> list:
    return [o for o in outputs if type(o) is kind]


def test_a_reversal_by_reference_reopens_the_invoice_at_the_next_tick_and_the_ladder_takes_it_up():
    events = [*ledger(("F-1", 10_000, REF_1)), *[tick(n) for n in range(1, 13)], paid("tx-1", 10_000, 12, REF_1),
              tick(13), tick(14), tick(15), taken_back("tx-1r", 10_000, 15, REF_1)]
    pipeline, outputs = run(events)
    state = pipeline.debtors["D-1"]
    assert (state.open_minor, [Booked.of(b).transaction_id for b in state.payments]) == (0, ["tx-1"])  # not before the tick
    assert of_type(outputs, ev.PaymentReversed) == [] and of_type(outputs, ev.PaymentUnmatched) == []
    after = [o for e in (tick(16), tick(17)) for o in pipeline.process(e)]
    [reversed_] = of_type(after, ev.PaymentReversed)
    assert (reversed_.debtor_id, reversed_.transaction_id, reversed_.reversed_transaction_id, reversed_.amount_minor,
            reversed_.invoice_ids, reversed_.credit_minor) == ("D-1", "tx-1r", "tx-1", 10_000, ("F-1",), 0)
    assert "it paid F-1, which the reversal names" in reversed_.reason
    # The first reminder it missed while paid goes out on the day the reversal is applied, once.
    assert [(a.business_date, a.step_name) for a in of_type(after, ev.DunningActionDue)] == [(on(16), "first reminder")]
    state = pipeline.debtors["D-1"]
    assert (state.open_minor, state.payments, state.items["F-1"].paid_minor) == (10_000, (), 0)
    # Taken back once: the same reversal again changes nothing.
    assert run([*events, tick(16), taken_back("tx-1r", 10_000, 15, REF_1), tick(17)])[0].debtors["D-1"] == state


def test_credit_on_account_comes_back_and_what_later_invoices_used_of_it_is_open_again():
    events = [*ledger(("F-1", 6_000, REF_1)), tick(1), paid("tx-1", 10_000, 1, REF_1),  # 40.00 over: credit
              tick(2)]
    pipeline, _ = run(events)
    assert pipeline.debtors["D-1"].credit_minor == 4_000
    more = [ev.InvoiceIssued("inv-F-2", "D-1", "F-2", on(2), on(20), 3_000, payment_reference=REF_2),  # takes 30.00
            taken_back("tx-1r", 10_000, 3, REF_1), tick(3), tick(4)]
    outputs = [o for e in more for o in pipeline.process(e)]
    [reversed_] = of_type(outputs, ev.PaymentReversed)
    assert (reversed_.invoice_ids, reversed_.credit_minor) == (("F-1", "F-2"), 1_000)
    state = pipeline.debtors["D-1"]
    assert (state.credit_minor, state.open_minor, state.balance_minor) == (0, 9_000, 9_000)
    assert {i: (item.paid_minor, item.open_minor) for i, item in state.items.items()} == {
        "F-1": (0, 6_000), "F-2": (0, 3_000)}


def test_a_reversal_by_account_alone_takes_back_the_one_payment_of_its_amount_and_several_go_to_a_person():
    base = [*ledger(("F-1", 5_000, REF_1), ("F-2", 5_000, REF_2)), tick(1)]
    one = [*base, paid("tx-1", 5_000, 1, REF_1), tick(2), taken_back("tx-r", 5_000, 2, iban=PAYER), tick(3)]
    _, outputs = run(one)
    [reversed_] = of_type(outputs, ev.PaymentReversed)
    assert (reversed_.reversed_transaction_id, reversed_.invoice_ids) == ("tx-1", ("F-1",))
    assert "it came from the same account" in reversed_.reason

    two = [*base, paid("tx-1", 5_000, 1, REF_1), paid("tx-2", 5_000, 1, REF_2), tick(2),
           taken_back("tx-r", 5_000, 2, iban=PAYER), tick(3)]
    pipeline, outputs = run(two)
    assert of_type(outputs, ev.PaymentReversed) == []
    [queued] = of_type(outputs, ev.PaymentUnmatched)
    assert (queued.transaction_id, queued.debtor_id, queued.direction, queued.reversal) == ("tx-r", "D-1", "debit", True)
    assert queued.reason.startswith("the bank takes back an earlier credit with this one; 2 payments of 50.00 EUR fit")
    assert {(c.invoice_id, c.via) for c in queued.candidates} == {("F-1", CANDIDATE), ("F-2", CANDIDATE)}
    assert pipeline.debtors["D-1"].open_minor == 0  # nothing undone on a guess

    # Its reference tells which: that one is taken back.
    named = [*two[:-2], taken_back("tx-r", 5_000, 2, REF_2), tick(3)]
    [reversed_] = of_type(run(named)[1], ev.PaymentReversed)
    assert (reversed_.reversed_transaction_id, reversed_.invoice_ids) == ("tx-2", ("F-2",))


def test_a_reversal_that_fits_no_payment_goes_to_the_queue_and_changes_nothing():
    events = [*ledger(("F-1", 5_000, REF_1)), tick(1), paid("tx-1", 5_000, 1, REF_1), tick(2)]
    cases = {  # the reversal, and what its reason says
        taken_back("tx-r1", 4_000, 2, REF_1): "no payment of 40.00 EUR this debtor was credited with",
        taken_back("tx-r2", 5_000, 2, betalingskenmerk_for("00000077"), iban=OTHER):
            f"no invoice carries reference {betalingskenmerk_for('00000077')}, no known invoice number in the text and an unknown payer "
            "account",
        taken_back("tx-r3", 5_000, 2, iban=None): "no structured reference, no invoice number in the text and no "
                                                  "payer account",
    }
    for reversal, why in cases.items():
        pipeline, outputs = run([*events, reversal, tick(3)])
        [queued] = of_type(outputs, ev.PaymentUnmatched)
        assert queued.reason.startswith("the bank takes back an earlier credit with this one; " + why), queued.reason
        assert queued.reason.endswith(": undo it by hand")
        assert pipeline.debtors["D-1"].open_minor == 0


def test_a_promise_the_payment_kept_runs_again_and_breaks_when_its_date_is_past():
    events = [*ledger(("F-1", 5_000, REF_1)), *[tick(n) for n in range(1, 16)],
              ev.PromiseToPayMade("ptp-1", "D-1", "P-1", on(15), on(18), 5_000, invoice_ids=("F-1",)),
              paid("tx-1", 5_000, 15, REF_1), tick(16), *[tick(n) for n in range(17, 20)],
              taken_back("tx-1r", 5_000, 19, REF_1), tick(20)]
    before, _ = run(events[:-2])
    state = before.debtors["D-1"]
    assert [Booked.of(b).promised for b in state.payments] == [(("P-1", 5_000),)]
    assert decode_state(encode_state(state)) == state
    pipeline, outputs = run(events)
    assert [type(o).__name__ for o in outputs if type(o) in (ev.PromiseKept, ev.PromiseBroken)] == [
        "PromiseKept", "PromiseBroken"]
    broken = of_type(outputs, ev.PromiseBroken)[0]
    assert (broken.promise_id, broken.paid_minor, broken.business_date) == ("P-1", 0, on(20))
    assert pipeline.debtors["D-1"].open_minor == 5_000


def test_a_reversal_of_a_debit_is_not_a_debtors_payment():
    events = [*ledger(("F-1", 5_000, REF_1)), tick(1),
              ev.PaymentReceived("bank-tx-d", "tx-d", on(1), 5_000, payer_iban=PAYER, structured_reference=REF_1,
                                 direction="credit", reversal=True)]
    [queued] = of_type(run(events)[1], ev.PaymentUnmatched)
    assert queued.reason == "the bank reverses an earlier debit with this one: not a payment from a debtor"


def test_booked_payments_survive_the_state_codec_and_leave_with_their_ids():
    events = [*ledger(("F-1", 6_000, REF_1)), tick(1), paid("tx-1", 10_000, 1, REF_1), tick(2)]
    pipeline, _ = run(events)
    state = pipeline.debtors["D-1"]
    assert [(b.portions, b.credit_minor) for b in map(Booked.of, state.payments)] == [((("F-1", 6_000),), 4_000)]
    for _ in range(2):  # a collection untracks one level of nested tuples: the record, then the payments
        gc.collect()
    assert not gc.is_tracked(state.payments)  # plain tuples of plain values: the garbage collector drops them
    assert decode_state(encode_state(state)) == state
    later = pipeline
    for n in range(3, 130):
        later.process(tick(n))
    assert later.debtors["D-1"].payments == ()  # pruned with the ids of applied payments


def test_an_invoice_paid_late_stays_while_its_payment_is_kept_and_only_it_is_reopened():
    # F-1 fell due on day 14 and is paid on day 180, long past the 120 days a settled invoice is kept.
    events = [*ledger(("F-1", 10_000, REF_1)),
              ev.InvoiceIssued("inv-F-2", "D-1", "F-2", on(150), on(200), 10_000, payment_reference=REF_2),
              *[tick(n) for n in range(1, 181)], paid("tx-2", 10_000, 180, REF_2), paid("tx-1", 10_000, 180, REF_1),
              tick(181), tick(182), taken_back("tx-1r", 10_000, 182, REF_1), tick(183)]
    pipeline, outputs = run(events)
    [reversed_] = of_type(outputs, ev.PaymentReversed)
    assert (reversed_.reversed_transaction_id, reversed_.invoice_ids) == ("tx-1", ("F-1",))
    # F-1's final notice booked 40.00 of costs, which the payment paid first: both are open again
    assert {i: (item.principal_open_minor, item.costs_open_minor) for i, item in pipeline.debtors["D-1"].items.items()
            } == {"F-1": (10_000, 4_000), "F-2": (0, 0)}


def test_credit_a_later_invoice_used_goes_back_from_that_invoice_only():
    ref_3 = betalingskenmerk_for("00000003")
    events = [*ledger(("F-1", 6_000, REF_1)),
              ev.InvoiceIssued("inv-F-3", "D-1", "F-3", on(0), on(60), 2_000, payment_reference=ref_3),
              tick(1), paid("tx-3", 2_000, 1, ref_3), paid("tx-1", 10_000, 1, REF_1), tick(2),  # tx-1: 40.00 credit
              ev.InvoiceIssued("inv-F-2", "D-1", "F-2", on(2), on(30), 3_000, payment_reference=REF_2),  # uses 30.00
              tick(3), taken_back("tx-1r", 10_000, 3, REF_1), tick(4)]
    pipeline, outputs = run(events)
    [reversed_] = of_type(outputs, ev.PaymentReversed)
    assert (reversed_.invoice_ids, reversed_.credit_minor) == (("F-1", "F-2"), 1_000)
    state = pipeline.debtors["D-1"]
    assert {i: item.open_minor for i, item in state.items.items()} == {"F-1": 6_000, "F-2": 3_000, "F-3": 0}
    # tx-3's own reversal later takes back what tx-3 paid, F-3, and nothing else.
    more = [o for e in (taken_back("tx-3r", 2_000, 4, ref_3), tick(5)) for o in pipeline.process(e)]
    [reversed_] = of_type(more, ev.PaymentReversed)
    assert (reversed_.reversed_transaction_id, reversed_.invoice_ids) == ("tx-3", ("F-3",))


def test_a_reversal_that_names_an_invoice_never_takes_back_a_payment_that_did_not_pay_it():
    base = [*ledger(("F-1", 5_000, REF_1)), tick(1), paid("tx-0", 5_000, 1, REF_1), tick(2)]
    # tx-1 quotes a reference no invoice carries yet and waits; the bank reverses it: tx-0 (same account,
    # same amount, but it paid F-1) is not taken back.
    waiting = [*base, paid("tx-1", 5_000, 2, REF_2), taken_back("tx-1r", 5_000, 3, REF_2), tick(4)]
    pipeline, outputs = run(waiting)
    assert of_type(outputs, ev.PaymentReversed) == []
    assert [u.transaction_id for u in of_type(outputs, ev.PaymentUnmatched) if u.reversal] == ["tx-1r"]
    assert pipeline.debtors["D-1"].open_minor == 0
    # Two reversals that name F-2: the first takes back the payment of F-2, the second finds none.
    two = [*ledger(("F-1", 5_000, REF_1), ("F-2", 5_000, REF_2)), tick(1), paid("tx-0", 5_000, 1, REF_1),
           paid("tx-1", 5_000, 1, REF_2), tick(2), taken_back("tx-r1", 5_000, 2, REF_2),
           taken_back("tx-r2", 5_000, 2, REF_2), tick(3)]
    pipeline, outputs = run(two)
    assert [r.reversed_transaction_id for r in of_type(outputs, ev.PaymentReversed)] == ["tx-1"]
    [queued] = [u for u in of_type(outputs, ev.PaymentUnmatched) if u.reversal]
    assert queued.transaction_id == "tx-r2" and "paid an invoice it names" in queued.reason
    assert {i: item.open_minor for i, item in pipeline.debtors["D-1"].items.items()} == {"F-1": 0, "F-2": 5_000}


def test_a_promise_kept_again_after_a_reversal_says_so_under_an_id_of_its_own():
    events = [*ledger(("F-1", 5_000, REF_1)), tick(1),
              ev.PromiseToPayMade("ptp-1", "D-1", "P-1", on(1), on(10), 5_000, invoice_ids=("F-1",)),
              paid("tx-1", 5_000, 1, REF_1), tick(2), taken_back("tx-1r", 5_000, 2, REF_1), tick(3),
              paid("tx-2", 5_000, 3, REF_1), tick(4)]
    pipeline, outputs = run(events)
    assert [o.event_id for o in of_type(outputs, ev.PromiseKept)] == ["D-1:promise:P-1:kept", "D-1:promise:P-1:kept:1"]
    state = pipeline.debtors["D-1"]
    assert decode_state(encode_state(state)) == state
