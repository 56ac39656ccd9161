"""The matching cascade (``streams.core.cascade``) through the in-memory topology: a payment
without a usable structured reference is decided at the next day tick, by the invoice numbers
its text names or by an account learned from earlier matches, with a reason and a confidence;
it never matches on amount alone across debtors, and what it cannot decide goes to the queue
with the candidates it considered."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from streams.core import cascade
from streams.core import events as ev
from streams.core.pipeline import Pipeline
from streams.core.references import betalingskenmerk_for
from streams.core.state import DebtorState, Item
from streams.worker.state_codec import decode_slot, decode_state, encode_slot, encode_state
from tests.scenario import sample_policy

START = date(2025, 3, 3)
IBAN_A = "NL91ABNA0417164300"
IBAN_B = "NL39RABO0300065264"
IBAN_UNKNOWN = "NL44RABO0123456789"


def on(n: int) -> date:
    return START + timedelta(days=n)


def tick(n: int) -> ev.DayStarted:
    return ev.DayStarted(f"day:{on(n).isoformat()}", on(n))


def registered(debtor_id: str) -> ev.DebtorRegistered:
    return ev.DebtorRegistered(f"reg-{debtor_id}", debtor_id, f"Bedrijf {debtor_id}", "B2B", segment="smb")


def invoice(debtor_id: str, number: str, amount: int, n: int = 0, reference: bool = True) -> ev.InvoiceIssued:
    digits = "".join(ch for ch in number if ch.isdigit())
    return ev.InvoiceIssued(f"inv-{number}", debtor_id, number, on(n), on(n + 30), amount,
                            payment_reference=betalingskenmerk_for(digits.rjust(8, "0")[-12:]) if reference else None)


def payment(tx: str, amount: int, n: int = 1, iban: str | None = None, text: str | None = None,
            reference: str | None = None, e2e: str | None = None) -> ev.PaymentReceived:
    return ev.PaymentReceived(f"bank-{tx}", tx, on(n), amount, payer_iban=iban, structured_reference=reference,
                              unstructured_remittance=text, end_to_end_id=e2e)


def learned_from(debtor_id: str, number: str, iban: str, tx: str = "tx-learn") -> list:
    """A first payment that quotes its reference: the payer's account is learned from it."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return [payment(tx, 1_00, n=0, iban=iban, reference=betalingskenmerk_for(digits.rjust(8, "0")[-12:]))]


def run(events) -> tuple[Pipeline, list]:
    pipeline = Pipeline(sample_policy())
    return pipeline, [o for e in events for o in pipeline.process(e)]


def of_type(outputs, cls) -> list:
    return [o for o in outputs if type(o) is cls]


def setup() -> list:
    """Two debtors: A with three open invoices, B with one; each has paid once by reference."""
    return [
        tick(0), registered("A"), registered("B"),
        invoice("A", "F2025-0101", 10_000), invoice("A", "F2025-0102", 25_000, n=1), invoice("A", "F2025-0103", 7_500, n=2),
        invoice("B", "F2025-0201", 25_000), invoice("B", "F2025-0202", 1_00),
        invoice("A", "F2025-0100", 1_00),
        *learned_from("A", "F2025-0100", IBAN_A, "tx-learn-a"),
        *learned_from("B", "F2025-0202", IBAN_B, "tx-learn-b"),
    ]


def decided(*payments, more=()) -> tuple[Pipeline, list, list]:
    """The setup, the payments on day 1, then the tick of day 2 that decides them."""
    pipeline, before = run([*setup(), tick(1), *more, *payments])
    assert of_type(before, ev.PaymentUnmatched) == []
    after = pipeline.process(tick(2))
    return pipeline, of_type(after, ev.PaymentMatched), of_type(after, ev.PaymentUnmatched)


def open_of(pipeline: Pipeline, debtor_id: str) -> dict[str, int]:
    return {i.invoice_id: i.open_minor for i in pipeline.debtors[debtor_id].items.values() if i.open_minor}


def test_an_invoice_number_in_the_text_matches_when_the_amount_equals_its_open_amount():
    pipeline, (matched,), unmatched = decided(payment("tx-1", 25_000, text="betaling factuur F2025/0102 dank"))
    assert unmatched == []
    assert (matched.debtor_id, matched.invoice_id, matched.method, matched.confidence_pct) == (
        "A", "F2025-0102", "invoice_number", 98)
    assert "F2025-0102" in matched.reason
    assert "F2025-0102" not in open_of(pipeline, "A")


def test_the_end_to_end_id_counts_as_text():
    _, (matched,), _ = decided(payment("tx-1", 7_500, e2e="F2025-0103"))
    assert matched.invoice_id == "F2025-0103"


def test_several_invoice_numbers_of_one_debtor_are_paid_together_in_due_order():
    pipeline, (matched,), _ = decided(payment("tx-1", 17_500, text="F2025-0103 en F2025-0101"))
    assert (matched.invoice_id, matched.more_invoice_ids) == ("F2025-0101", ("F2025-0103",))
    assert open_of(pipeline, "A") == {"F2025-0102": 25_000}


def test_a_partial_payment_naming_a_long_invoice_number_is_matched_and_leaves_the_rest_open():
    pipeline, (matched,), _ = decided(payment("tx-1", 12_000, iban=IBAN_UNKNOWN, text="deel F2025-0102"))
    assert (matched.invoice_id, matched.confidence_pct) == ("F2025-0102", 90)
    assert open_of(pipeline, "A")["F2025-0102"] == 13_000


def test_an_amount_that_is_another_open_items_says_the_number_in_the_text_may_be_a_typo():
    # 10,000 is the open amount of F2025-0101; the text names F2025-0102 (25,000).
    _, matched, (queued,) = decided(payment("tx-1", 10_000, iban=IBAN_A, text="F2025-0102"))
    assert matched == [] and "open amount of F2025-0101" in queued.reason
    assert {c.invoice_id for c in queued.candidates} == {"F2025-0101", "F2025-0102"}


def test_a_reference_and_a_text_that_name_different_invoices_are_weighed_at_the_tick():
    # A betalingskenmerk typo can keep its check digit and name another invoice; the text
    # names the one paid: the amount decides, at the tick.
    reference = betalingskenmerk_for("20250101")  # F2025-0101's, 10,000
    pipeline, before = run([*setup(), tick(1), payment("tx-1", 25_000, iban=IBAN_UNKNOWN, reference=reference,
                                                       text="factuur F2025-0102")])
    assert [m.transaction_id for m in of_type(before, ev.PaymentMatched)] == ["tx-learn-a", "tx-learn-b"]
    (matched,) = of_type(pipeline.process(tick(2)), ev.PaymentMatched)
    assert (matched.invoice_id, matched.method) == ("F2025-0102", "invoice_number")
    # The same reference with a text naming its own invoice, or no invoice, is matched at once.
    for text in ("factuur F2025-0101", "dank", None):
        _, outputs = run([*setup(), tick(1), payment("tx-2", 10_000, reference=reference, text=text)])
        assert [m.invoice_id for m in of_type(outputs, ev.PaymentMatched) if m.transaction_id == "tx-2"] == [
            "F2025-0101"], text


def test_a_known_payer_naming_its_invoice_may_pay_more_and_the_rest_goes_to_the_oldest_open_items():
    pipeline, (matched,), _ = decided(payment("tx-1", 30_000, iban=IBAN_A, text="F2025-0102"))
    assert (matched.invoice_id, matched.confidence_pct) == ("F2025-0102", 95)
    assert open_of(pipeline, "A") == {"F2025-0101": 5_000, "F2025-0103": 7_500}  # the 5,000 left: to the oldest


def test_an_invoice_number_paid_from_another_debtors_account_needs_the_exact_amount():
    _, (matched,), _ = decided(payment("tx-1", 25_000, iban=IBAN_B, text="F2025-0102"))
    assert (matched.debtor_id, matched.confidence_pct) == ("A", 90) and "group company" in matched.reason
    _, matched, (queued,) = decided(payment("tx-1", 20_000, iban=IBAN_B, text="F2025-0102"))
    assert matched == [] and queued.debtor_id == "A" and "known for another debtor" in queued.reason


def test_a_known_payer_without_reference_is_matched_to_the_one_open_item_of_that_amount():
    _, (matched,), _ = decided(payment("tx-1", 7_500, iban=IBAN_A))
    assert (matched.invoice_id, matched.method, matched.confidence_pct) == ("F2025-0103", "payer_iban_amount", 92)


def test_of_several_open_items_of_the_amount_the_oldest_is_taken_with_less_confidence():
    extra = [invoice("A", "F2025-0104", 7_500, n=1)]
    pipeline, (matched,), _ = decided(payment("tx-1", 7_500, iban=IBAN_A), more=extra)
    assert (matched.invoice_id, matched.confidence_pct) == ("F2025-0104", 85)  # due day 31, before 0103's day 32


def test_one_combination_of_open_items_that_sums_to_the_amount_is_matched():
    pipeline, (matched,), _ = decided(payment("tx-1", 32_500, iban=IBAN_A))
    assert matched.method == "payer_iban_combination"
    assert {matched.invoice_id, *matched.more_invoice_ids} == {"F2025-0102", "F2025-0103"}
    assert open_of(pipeline, "A") == {"F2025-0101": 10_000}


def test_two_combinations_that_fit_are_a_tie_for_a_person():
    extra = [invoice("A", "F2025-0105", 17_500, n=3)]  # 17,500 = 10,000 + 7,500 too
    _, matched, (queued,) = decided(payment("tx-1", 17_500 + 25_000, iban=IBAN_A), more=extra)
    assert matched == [] and "several combinations" in queued.reason
    assert {c.invoice_id for c in queued.candidates} >= {"F2025-0101", "F2025-0103", "F2025-0105"}


def test_amount_alone_never_picks_a_debtor():
    # 25,000 is open at A (F2025-0102) and at B (F2025-0201); an unknown account says nothing.
    _, matched, (queued,) = decided(payment("tx-1", 25_000, iban=IBAN_UNKNOWN, text="betaling"))
    assert matched == [] and queued.debtor_id is None and queued.candidates == ()
    assert "unknown payer account" in queued.reason


def test_text_that_names_invoices_of_two_debtors_goes_to_the_queue_with_both():
    _, matched, (queued,) = decided(payment("tx-1", 50_000, iban=IBAN_UNKNOWN, text="F2025-0102 F2025-0201"))
    assert matched == [] and "2 debtors" in queued.reason
    assert {(c.debtor_id, c.invoice_id) for c in queued.candidates} == {("A", "F2025-0102"), ("B", "F2025-0201")}


def test_the_payers_account_narrows_invoice_numbers_of_two_debtors_to_its_own():
    _, (matched,), _ = decided(payment("tx-1", 25_000, iban=IBAN_B, text="F2025-0102 F2025-0201"))
    assert (matched.debtor_id, matched.invoice_id) == ("B", "F2025-0201")


def test_a_known_payer_whose_amount_fits_nothing_is_queued_with_the_debtor_and_its_open_items():
    _, matched, (queued,) = decided(payment("tx-1", 12_345, iban=IBAN_A))
    assert matched == [] and queued.debtor_id == "A"
    assert {c.invoice_id for c in queued.candidates} == {"F2025-0101", "F2025-0102", "F2025-0103"}
    assert all(c.via == "open_item" for c in queued.candidates)


def test_a_short_number_in_the_text_with_another_amount_is_not_trusted():
    # "0101" alone is too short to name an invoice whose amount it does not fit: numbers in
    # text are often dates, order numbers and the like.
    pipeline, _ = run([tick(0), registered("C"), invoice("C", "7001", 40_000)])
    pipeline.process(payment("tx-1", 1_000, iban=IBAN_UNKNOWN, text="order 7001"))
    (queued,) = of_type(pipeline.process(tick(1)), ev.PaymentUnmatched)
    assert queued.debtor_id == "C" and "not known" in queued.reason


def test_an_account_is_learned_only_from_a_match_that_named_the_invoice():
    pipeline, outputs = run([*setup(), tick(1), payment("tx-1", 7_500, iban=IBAN_A)])
    learned = of_type(outputs, ev.PayerLearned)
    assert {(p.debtor_id, p.iban) for p in learned} == {("A", IBAN_A), ("B", IBAN_B)}
    # A match on amount teaches nothing new; the same account is said once per debtor.
    assert of_type(pipeline.process(tick(2)), ev.PayerLearned) == []


def test_the_same_payment_twice_is_decided_once():
    pipeline, before = run([*setup(), tick(1), payment("tx-1", 7_500, iban=IBAN_A), payment("tx-1", 7_500, iban=IBAN_A)])
    (matched,) = of_type(pipeline.process(tick(2)), ev.PaymentMatched)
    pipeline.process(payment("tx-1", 7_500, iban=IBAN_A))  # imported again later
    assert of_type(pipeline.process(tick(3)), ev.PaymentMatched) == []
    assert "F2025-0103" not in open_of(pipeline, "A") and open_of(pipeline, "A")["F2025-0101"] == 10_000


def test_a_payment_decided_at_the_tick_stops_that_days_reminder():
    # The invoice falls due on day 30 and a reminder would go out on day 31; paid without a
    # reference on day 30, the tick of day 31 decides the payment before the day's steps.
    pipeline, _ = run([*setup()])
    for n in range(1, 31):
        pipeline.process(tick(n))
    pipeline.process(payment("tx-1", 10_000, n=30, iban=IBAN_A, text="F2025-0101"))
    outputs = pipeline.process(tick(31))
    assert of_type(outputs, ev.PaymentMatched)[0].invoice_id == "F2025-0101"
    assert all("F2025-0101" not in [i.invoice_id for i in a.items] for a in of_type(outputs, ev.DunningActionDue))


def test_the_order_of_the_days_payments_does_not_change_the_decisions():
    payments = [payment("tx-1", 7_500, iban=IBAN_A), payment("tx-2", 7_500, iban=IBAN_A),
                payment("tx-3", 10_000, iban=IBAN_A, text="F2025-0101")]
    results = []
    for order in (payments, payments[::-1], [payments[1], payments[2], payments[0]]):
        pipeline, _ = run([*setup(), tick(1), *order])
        outputs = pipeline.process(tick(2))
        results.append((sorted((m.transaction_id, m.invoice_id) for m in of_type(outputs, ev.PaymentMatched)),
                        sorted(u.transaction_id for u in of_type(outputs, ev.PaymentUnmatched)),
                        pipeline.snapshots()))
    assert results[0] == results[1] == results[2]
    assert results[0][0] == [("tx-1", "F2025-0103"), ("tx-3", "F2025-0101")]  # tx-2: no second 7,500 open
    assert results[0][1] == ["tx-2"]


@pytest.mark.parametrize("amount, expected", [
    (3, [(1, 2)]), (6, [(1, 5), (2, 4), ]), (100, []),
])
def test_combinations_summing_finds_up_to_two(amount, expected):
    items = [Item(f"I{v}", f"e{v}", START, START, v) for v in (1, 2, 4, 5)]
    found = cascade.combinations_summing(items, amount)
    assert [tuple(i.amount_minor for i in combo) for combo in found] == expected[:2]


def test_combinations_summing_gives_up_rather_than_search_for_ever():
    items = [Item(f"I{v}", f"e{v}", START, START, 1_000 + v) for v in range(16)]
    assert cascade.combinations_summing(items, 1, budget=100) == []  # nothing under the target: quick
    assert cascade.combinations_summing(items, 10**9, budget=100) is None


def test_tokens_are_words_of_four_or_more_with_a_digit():
    p = payment("tx", 1, text="Fact. F2025/0102, 2x; order 12 en ABCD-9", e2e="E2E-0042")
    assert cascade.tokens(p) == ["E2E0042", "F20250102", "ABCD9"]


def test_index_entries_and_pending_probes_survive_the_table():
    known = cascade.with_target(cascade.with_target(cascade.NOTHING_KNOWN, "A", "F2025-0101"), "[B]", None)
    assert cascade.targets(known) == (("A", "F2025-0101"), ("[B]", None))
    assert cascade.with_target(known, "A", "F2025-0101") is known
    assert decode_slot(encode_slot(known)) == known
    probe = cascade.probe_for(payment("tx-é", 7_500, iban=IBAN_A, text="F2025-0101"))
    probe = cascade.visit(cascade.with_target(cascade.NOTHING_KNOWN, "A", "F2025-0101"), probe)
    state = DebtorState("A", pending=(cascade.visit(cascade.with_target(cascade.NOTHING_KNOWN, "A", None), probe),), payer_ibans=(IBAN_A,))
    assert decode_state(encode_state(state)) == state


def test_a_contested_reference_is_weighed_with_the_text_and_a_match_leaves_the_queue():
    # The reference names F2025-0101 (10,000); the text names F2025-0103 (7,500) of the same
    # debtor; the amount is F2025-0101's: the reference holds, with less confidence, at the tick.
    reference = betalingskenmerk_for("20250101")
    pipeline, before = run([*setup(), tick(1), payment("tx-1", 10_000, reference=reference, text="zie F2025-0103")])
    assert [m for m in of_type(before, ev.PaymentMatched) if m.transaction_id == "tx-1"] == []
    after = pipeline.process(tick(2))
    (matched,) = of_type(after, ev.PaymentMatched)
    assert (matched.invoice_id, matched.method, matched.confidence_pct) == ("F2025-0101", "structured_reference", 95)
    assert of_type(after, ev.PaymentResolved) == []  # it was never in the queue


def test_a_contested_reference_whose_text_names_another_debtors_invoice_goes_to_a_person():
    reference = betalingskenmerk_for("20250101")  # A's F2025-0101; the text names B's F2025-0201
    pipeline, _ = run([*setup(), tick(1), payment("tx-1", 10_000, iban=IBAN_UNKNOWN, reference=reference,
                                                  text="F2025-0201")])
    after = pipeline.process(tick(2))
    assert of_type(after, ev.PaymentMatched) == []
    (queued,) = of_type(after, ev.PaymentUnmatched)
    assert {(c.debtor_id, c.via) for c in queued.candidates} == {("A", "payment_reference"), ("B", "invoice_number")}


def test_a_payment_waiting_for_its_reference_whose_text_then_contradicts_it_is_still_decided():
    # Reported while it waited; when the invoice comes, the text names another invoice of the
    # debtor: it is decided at the next tick, not left waiting for ever, and leaves the queue.
    reference = betalingskenmerk_for("20259999")
    pipeline, outputs = run([*setup(), tick(1), payment("tx-w", 5_000, iban=IBAN_A, reference=reference,
                                                        text="F2025-0103"), tick(2)])
    assert [u.transaction_id for u in of_type(outputs, ev.PaymentUnmatched)] == ["tx-w"]
    pipeline.process(ev.InvoiceIssued("inv-late", "A", "F2025-9999", on(2), on(30), 5_000,
                                      payment_reference=reference))
    after = pipeline.process(tick(3))
    (matched,) = of_type(after, ev.PaymentMatched)
    assert matched.invoice_id == "F2025-9999"
    assert of_type(after, ev.PaymentResolved) == [
        ev.PaymentResolved("resolved:bank-tx-w", "tx-w", "matched", "A", "F2025-9999")]
    assert not pipeline.waiting


def test_a_plain_payment_matched_does_not_take_a_contested_one_out_of_the_days_round():
    reference = betalingskenmerk_for("20258888")
    pipeline, _ = run([*setup(), tick(1), payment("tx-c", 3_000, iban=IBAN_A, reference=reference, text="F2025-0103"),
                       payment("tx-p", 3_000, reference=reference)])
    found = pipeline.process(ev.InvoiceIssued("inv-88", "A", "F2025-8888", on(1), on(30), 6_000,
                                              payment_reference=reference))
    assert [m.transaction_id for m in of_type(found, ev.PaymentMatched)] == ["tx-p"]
    (matched,) = of_type(pipeline.process(tick(2)), ev.PaymentMatched)
    assert matched.transaction_id == "tx-c"


def test_a_decision_that_cannot_be_booked_goes_to_the_queue_and_the_others_are_booked():
    # The debtor's unallocated credit is near 10^14, the most one debtor holds (set here by hand:
    # the bound, not the history, is under test). A payment of 10^13 naming F2025-0101 would
    # take it past; the next payment of the day is booked all the same.
    from dataclasses import replace

    from streams.core.bounds import MAX_BALANCE_MINOR

    pipeline, _ = run([*setup(), tick(1)])
    pipeline.debtors["A"] = replace(pipeline.debtors["A"], credit_minor=MAX_BALANCE_MINOR - 10**12)
    pipeline.process(payment("tx-1", 10**13, iban=IBAN_A, text="F2025-0101"))
    pipeline.process(payment("tx-2", 25_000, iban=IBAN_A))
    after = pipeline.process(tick(2))
    (refused,) = of_type(after, ev.PaymentUnmatched)
    assert refused.transaction_id == "tx-1" and refused.reason.startswith("cannot be booked")
    assert [m.transaction_id for m in of_type(after, ev.PaymentMatched)] == ["tx-2"]
    state = pipeline.debtors["A"]
    assert state.credit_minor == MAX_BALANCE_MINOR - 10**12 and not state.pending
    assert state.items["F2025-0101"].open_minor == 10_000 and state.items["F2025-0102"].open_minor == 0


def test_an_invoice_with_a_reference_is_indexed_by_both_from_one_event_and_the_record_key_says_which():
    """The worker writes the one ReferenceIssued under its reference and under its number;
    the matcher treats each record by its key, and refuses a key that is neither."""
    from schemas import topics
    from schemas.codec import Codec
    from streams.kafka.records import Record, partition_of
    from streams.worker.processor import LedgerProcessor, MatchingProcessor

    codec, partitions = Codec(), 4
    ledger = LedgerProcessor(codec, sample_policy(), partitions)
    table: dict[bytes, bytes] = {}
    records = []
    for offset, event in enumerate((registered("A"), invoice("A", "F2025-0101", 10_000))):
        result = ledger.process([Record(topics.LEDGER.name, 0, offset, b"A", codec.encode(topics.LEDGER.name, event),
                                        0.0)], table.get, lambda: list(table))
        table.update({key: raw for key, (raw, _) in result.states.items()})
        records += [out for out in result.outputs if out.topic == topics.MATCHING.name]
    reference = betalingskenmerk_for("20250101")
    assert sorted(out.key for out in records) == sorted([reference.encode(), b"no:F20250101"])
    assert records[0].value == records[1].value  # one event, encoded once
    matcher = MatchingProcessor(codec, partitions)
    stored: dict[bytes, bytes] = {}
    for offset, out in enumerate(records):
        result = matcher.process([Record(out.topic, partition_of(out.key, partitions), offset, out.key, out.value,
                                         0.0)], stored.get, lambda: list(stored.items()))
        stored.update({key: raw for key, (raw, _) in result.states.items()})
    assert decode_slot(stored[b"no:F20250101"]) == ("A", "F2025-0101")
    assert decode_slot(stored[reference.encode()]).invoice_id == "F2025-0101"
    wrong = matcher.process([Record(topics.MATCHING.name, 0, 9, b"no:F20259999", records[0].value, 0.0)],
                            stored.get, lambda: list(stored.items()))
    assert not wrong.states and [out.topic for out in wrong.outputs] == [topics.DEAD_LETTERS.name]
