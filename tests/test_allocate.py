"""A person resolves the unmatched queue (``PaymentAllocated``, ``dunning allocate``): in the
core, the payment is booked as they say, leaves the queue and teaches the matcher the payer's
account; end to end through the broker, the projector and PostgreSQL, an ambiguous payment lands
in the queue with its candidates and leaves it once ``dunning allocate`` has put it on an invoice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta

import pytest
from sqlalchemy import create_engine, text

from connectors.publisher import Publisher
from harness.stack import Stack
from harness.watch import pipeline_watcher
from projections.db import migrate
from schemas.codec import Codec
from streams.core import events as ev
from streams.kafka.progress import WorkerProgress
from tests.support import postgres_database, wait_until
from tests.test_cascade import IBAN_A, IBAN_UNKNOWN, of_type, payment, registered, run, setup, tick

PARTITIONS = 4


def allocated(tx: str, amount: int, debtor_id: str | None = None, invoice_ids=(), not_ours: str | None = None,
              reference: str | None = None, iban: str | None = None) -> ev.PaymentAllocated:
    return ev.PaymentAllocated(f"allocated:bank-{tx}", tx, f"bank-{tx}", date(2025, 3, 4), amount,
                               structured_reference=reference, payer_iban=iban, debtor_id=debtor_id,
                               invoice_ids=tuple(invoice_ids), not_ours_reason=not_ours, allocated_by="anouk")


def queued(*events):
    """The setup, then ``events`` on day 1, decided by the tick of day 2."""
    pipeline, _ = run([*setup(), tick(1), *events])
    return pipeline, pipeline.process(tick(2))


def test_a_queued_payment_allocated_to_invoices_is_booked_on_them_and_leaves_the_queue():
    pipeline, decided = queued(payment("tx-9", 17_500, iban=IBAN_UNKNOWN, text="betaling"))
    assert [u.transaction_id for u in of_type(decided, ev.PaymentUnmatched)] == ["tx-9"]
    outputs = pipeline.process(allocated("tx-9", 17_500, "A", ("F2025-0103", "F2025-0101"), iban=IBAN_UNKNOWN))
    (matched,) = of_type(outputs, ev.PaymentMatched)
    assert (matched.method, matched.invoice_id, matched.more_invoice_ids) == ("manual", "F2025-0103", ("F2025-0101",))
    assert "anouk" in matched.reason
    assert of_type(outputs, ev.PaymentResolved) == [
        ev.PaymentResolved("resolved:bank-tx-9", "tx-9", "allocated", "A", "F2025-0103")]
    open_items = {i.invoice_id for i in pipeline.debtors["A"].items.values() if i.open_minor}
    assert open_items == {"F2025-0102"}
    # The account is learned: the next payment from it, of an open item's amount, finds it alone.
    assert of_type(outputs, ev.PayerLearned) == [ev.PayerLearned(f"payer:A:{IBAN_UNKNOWN}", IBAN_UNKNOWN, "A")]
    pipeline.process(payment("tx-10", 25_000, n=2, iban=IBAN_UNKNOWN))
    (next_match,) = of_type(pipeline.process(tick(3)), ev.PaymentMatched)
    assert (next_match.invoice_id, next_match.method) == ("F2025-0102", "payer_iban_amount")


def test_on_account_goes_to_the_oldest_open_items_and_the_rest_is_credit():
    pipeline, _ = queued(payment("tx-9", 50_000, iban=IBAN_UNKNOWN))
    (matched, _) = pipeline.process(allocated("tx-9", 50_000, "A"))[:2]
    assert (matched.invoice_id, matched.more_invoice_ids, matched.reason) == ("", (), "allocated by anouk, on account")
    state = pipeline.debtors["A"]
    assert state.open_minor == 0 and state.credit_minor == 50_000 - 10_000 - 25_000 - 7_500


def test_not_ours_books_nothing_and_leaves_the_queue_with_the_reason():
    pipeline, _ = queued(payment("tx-9", 1_234, iban=IBAN_UNKNOWN))
    before = pipeline.snapshots()
    outputs = pipeline.process(allocated("tx-9", 1_234, not_ours="refund from the insurer"))
    assert outputs == [ev.PaymentResolved("resolved:bank-tx-9", "tx-9", "not_ours", reason="refund from the insurer")]
    assert pipeline.snapshots() == before


def test_a_waiting_payment_allocated_by_hand_is_not_matched_again_when_its_invoice_comes():
    reference = "5000056789012345"
    pipeline, outputs = run([tick(0), registered("A"), payment("tx-w", 10_000, reference=reference), tick(1)])
    assert [u.transaction_id for u in of_type(outputs, ev.PaymentUnmatched)] == ["tx-w"]  # waits for its reference
    pipeline.process(allocated("tx-w", 10_000, "A", reference=reference))
    later = pipeline.process(ev.InvoiceIssued("inv-late", "A", "F-LATE", date(2025, 3, 4), date(2025, 4, 4), 10_000,
                                              payment_reference=reference))
    assert of_type(later, ev.PaymentMatched) == []
    assert pipeline.debtors["A"].open_minor == 0  # the credit from the allocation paid it


def test_the_same_allocation_twice_books_once():
    pipeline, _ = queued(payment("tx-9", 7_500, iban=IBAN_UNKNOWN))
    first = pipeline.process(allocated("tx-9", 7_500, "A", ("F2025-0103",)))
    again = pipeline.process(allocated("tx-9", 7_500, "A", ("F2025-0101",)))
    assert of_type(first, ev.PaymentMatched) and pipeline.debtors["A"].items["F2025-0101"].open_minor == 10_000
    assert [o for o in again if type(o) is ev.DebtorSnapshot] == []


@pytest.mark.parametrize("debtor_id, not_ours", [(None, None), ("A", "both")])
def test_an_allocation_names_a_debtor_or_a_reason(debtor_id, not_ours):
    pipeline, _ = queued()
    with pytest.raises(ev.InvalidEvent, match="either a debtor"):
        pipeline.process(allocated("tx-9", 100, debtor_id, not_ours=not_ours))


# --------------------------------------------------------------------------- end to end


def dunning(*args, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "dunning.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.mark.broker
def test_an_ambiguous_payment_is_queued_with_its_candidates_and_resolved_with_dunning_allocate(tmp_path):
    start = date(2025, 3, 3)
    codec = Codec()
    with postgres_database("dunning_allocate") as db_url:
        migrate(db_url)
        with Stack(tmp_path, PARTITIONS, {"DATABASE_URL": db_url}) as stack:
            stack.start("worker")
            stack.start("project")
            env = {**stack.child_env()}
            env.pop("SCHEMA_REGISTRY_URL", None)
            watcher = pipeline_watcher(stack.bootstrap, codec).start()
            publisher = Publisher(stack.bootstrap, codec, PARTITIONS, before_tick=WorkerProgress(stack.bootstrap,
                                                                                                 timeout=120))
            try:
                publisher.publish_all([
                    ev.DayStarted("day:0", start), registered("A"), registered("B"),
                    ev.InvoiceIssued("inv-1", "A", "F2025-0101", start, start + timedelta(days=30), 10_000),
                    ev.InvoiceIssued("inv-2", "B", "F2025-0201", start, start + timedelta(days=30), 25_000),
                    # The text names invoices of two debtors; the account is unknown: a person decides.
                    ev.PaymentReceived("bank-tx-amb", "tx-amb", start, 12_000, payer_iban=IBAN_A,
                                       unstructured_remittance="F2025-0101 F2025-0201"),
                    ev.DayStarted("day:1", start + timedelta(days=1)),
                ])
                engine = create_engine(db_url)

                def queue() -> dict:
                    with engine.connect() as connection:
                        rows = connection.execute(text("SELECT transaction_id, debtor_id, candidates, reason "
                                                       "FROM unmatched_payments")).mappings().all()
                    return {row["transaction_id"]: dict(row) for row in rows}

                row = wait_until(lambda: queue().get("tx-amb"), 60, "the payment in the unmatched queue")
                assert row["debtor_id"] is None and "2 debtors" in row["reason"]
                assert {(c["debtor_id"], c["invoice_id"]) for c in json.loads(row["candidates"])} == {
                    ("A", "F2025-0101"), ("B", "F2025-0201")}

                refused = dunning("allocate", "tx-amb", "--invoice", "F2025-0999", env=env)
                assert refused.returncode == 2 and "no open invoice F2025-0999" in refused.stderr
                assert len(refused.stderr.strip().splitlines()) == 1

                done = dunning("allocate", "tx-amb", "--invoice", "F2025-0201", "--by", "anouk", env=env)
                assert done.returncode == 0, done.stderr
                assert json.loads(done.stdout)["debtor_id"] == "B"
                wait_until(lambda: "tx-amb" not in queue(), 60, "the row to leave the queue")
                def manual() -> list:
                    return [m for m in watcher.events("PaymentMatched") if m.transaction_id == "tx-amb"]

                (matched,) = wait_until(manual, 60, "the manual match")
                assert (matched.method, matched.invoice_id, matched.amount_minor) == ("manual", "F2025-0201", 12_000)
                again = dunning("allocate", "tx-amb", "--debtor", "B", env=env)
                assert again.returncode == 2 and "not in the unmatched queue" in again.stderr
            finally:
                watcher.stop()


def test_money_out_in_the_queue_is_only_marked_not_ours(tmp_path):
    from sqlalchemy.orm import Session

    from connectors.allocations import Allocation, AllocationRefused, allocation_event
    from projections.db import make_engine
    from projections.models import Debtor, UnmatchedPayment

    url = f"sqlite:///{tmp_path / 'read.db'}"
    migrate(url)
    engine = make_engine(url)
    with Session(engine) as session:
        session.add(UnmatchedPayment(transaction_id="tx-d", event_id="unmatched:bank-tx-d", booking_date=date(2025, 3, 3),
                                     amount_minor=4_500, currency="EUR", reason="a debit", direction="debit"))
        session.add(Debtor(debtor_id="A", name="A BV", kind="B2B", segment="smb", workflow="business", currency="EUR",
                           version=1, balance_minor=0, overdue_minor=0, credit_minor=0, aging_not_due_minor=0,
                           aging_1_30_minor=0, aging_31_60_minor=0, aging_61_90_minor=0, aging_over_90_minor=0,
                           limit_state="none"))
        session.commit()
    with pytest.raises(AllocationRefused, match="money out"):
        allocation_event(engine, Allocation("tx-d", debtor_id="A"))
    marked = allocation_event(engine, Allocation("tx-d", not_ours="refund to a customer"))
    assert (marked.debtor_id, marked.not_ours_reason, marked.payment_event_id) == (None, "refund to a customer", "bank-tx-d")
    with pytest.raises(AllocationRefused, match="not in the unmatched queue"):
        allocation_event(engine, Allocation("tx-nothing", debtor_id="A"))
