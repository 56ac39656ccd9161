"""The matcher's state stays bounded: a settled invoice its debtor lets go of (``ledger.RETENTION``
past its due date) takes its index entries with it (``ReferenceRetired``, under the keys its
``ReferenceIssued`` was written under), and a payment whose reference no invoice carries waits
only as long; in the in-memory topology and through the worker's processors alike."""

from __future__ import annotations

from datetime import date, timedelta

from schemas import topics
from schemas.codec import Codec
from streams.core import events as ev
from streams.core.ledger import RETENTION
from streams.core.pipeline import Pipeline
from streams.core.references import betalingskenmerk_for
from streams.kafka.records import Record, partition_of
from streams.worker.processor import LedgerProcessor, MatchingProcessor
from streams.worker.state_codec import decode_slot, encode_slot
from tests.scenario import sample_policy

START = date(2025, 3, 3)
REFERENCE = betalingskenmerk_for("20250101")
NUMBER_KEY = "no:F20250101"


def on(n: int) -> date:
    return START + timedelta(days=n)


def tick(n: int) -> ev.DayStarted:
    return ev.DayStarted(f"day:{on(n).isoformat()}", on(n))


def opening() -> list:
    return [ev.DebtorRegistered("reg-A", "A", "Bedrijf A", "B2B", segment="smb"), tick(0),
            ev.InvoiceIssued("inv-1", "A", "F2025-0101", on(0), on(14), 10_000, payment_reference=REFERENCE),
            tick(1), ev.PaymentReceived("bank-tx-1", "tx-1", on(1), 10_000, structured_reference=REFERENCE)]


def test_a_settled_invoice_let_go_of_takes_its_reference_and_number_out_of_the_matcher():
    pipeline = Pipeline(sample_policy())
    outputs = [o for e in opening() for o in pipeline.process(e)]
    assert {REFERENCE, NUMBER_KEY} <= set(pipeline.slots)
    last = 14 + RETENTION.days + 1  # the first day its due date is past the horizon
    for n in range(2, last + 1):
        outputs += pipeline.process(tick(n))
    retired = [o for o in outputs if type(o) is ev.ReferenceRetired]
    assert [(r.reference, r.number, r.invoice_id) for r in retired] == [(REFERENCE, "F20250101", "F2025-0101")]
    assert "F2025-0101" not in pipeline.debtors["A"].items
    assert REFERENCE not in pipeline.slots and NUMBER_KEY not in pipeline.slots
    # A payment that quotes it now waits like one for a reference no invoice carries.
    late = ev.PaymentReceived("bank-tx-2", "tx-2", on(last), 10_000, structured_reference=REFERENCE)
    assert pipeline.process(late) == []
    [reported] = [o for o in pipeline.process(tick(last + 1)) if type(o) is ev.PaymentUnmatched]
    assert reported.reason.startswith(f"no invoice carries reference {REFERENCE} (yet)")


def test_a_payment_waits_for_its_reference_as_long_as_a_settled_invoice_is_kept_then_only_the_queue_has_it():
    unknown = betalingskenmerk_for("77777777")
    pipeline = Pipeline(sample_policy())
    events = [*opening()[:2], ev.PaymentReceived("bank-tx-9", "tx-9", on(0), 5_000, structured_reference=unknown),
              tick(1)]
    outputs = [o for e in events for o in pipeline.process(e)]
    assert [o.transaction_id for o in outputs if type(o) is ev.PaymentUnmatched] == ["tx-9"]
    for n in range(2, RETENTION.days + 2):
        pipeline.process(tick(n))
    assert pipeline.slots[unknown].waiting  # reported on day 1: still waiting on day 121
    pipeline.process(tick(RETENTION.days + 2))  # its wait is over
    assert unknown not in pipeline.slots and unknown not in pipeline.waiting


def test_a_payment_booked_long_ago_waits_as_long_from_the_day_it_was_reported():
    """A statement imported months late, before the invoices: its payments still wait for them."""
    pipeline = Pipeline(sample_policy())
    old = ev.PaymentReceived("bank-tx-old", "tx-old", on(0), 10_000, structured_reference=REFERENCE)
    events = [ev.DebtorRegistered("reg-A", "A", "Bedrijf A", "B2B", segment="smb"), tick(200), old,
              *[tick(n) for n in range(201, 230)],
              ev.InvoiceIssued("inv-1", "A", "F2025-0101", on(0), on(14), 10_000, payment_reference=REFERENCE)]
    outputs = [o for e in events[:4] for o in pipeline.process(e)]
    slot = pipeline.slots[REFERENCE]
    assert slot.waiting[0].since == on(201) and decode_slot(encode_slot(slot)) == slot
    outputs += [o for e in events[4:] for o in pipeline.process(e)]
    [matched] = [o for o in outputs if type(o) is ev.PaymentMatched]
    assert (matched.transaction_id, matched.invoice_id) == ("tx-old", "F2025-0101")


def test_the_worker_writes_the_retirement_under_both_keys_and_the_matcher_deletes_both_entries():
    codec, partitions = Codec(), 4
    ledger = LedgerProcessor(codec, sample_policy(), partitions)
    ledger_table: dict[bytes, bytes] = {}
    to_matcher = []
    events = [e for e in opening() if type(e) is not ev.PaymentReceived]
    events.append(ev.PaymentMatched("pay:bank-tx-1", "A", "F2025-0101", "tx-1", on(1), 10_000))
    events += [tick(n) for n in range(2, 14 + RETENTION.days + 2)]
    for offset, event in enumerate(events):
        key = b"A" if hasattr(event, "debtor_id") else None
        result = ledger.process([Record(topics.LEDGER.name, partition_of(b"A", partitions), offset, key,
                                        codec.encode(topics.LEDGER.name, event), 0.0)],
                                ledger_table.get, lambda: list(ledger_table))
        ledger_table.update({k: raw for k, (raw, _) in result.states.items()})
        to_matcher += [out for out in result.outputs if out.topic == topics.MATCHING.name]
    issued = [out for out in to_matcher if type(codec.decode(out.value)) is ev.ReferenceIssued]
    retired = [out for out in to_matcher if type(codec.decode(out.value)) is ev.ReferenceRetired]
    assert sorted(out.key for out in retired) == sorted([REFERENCE.encode(), NUMBER_KEY.encode()])
    matcher = MatchingProcessor(codec, partitions)
    stored: dict[bytes, bytes] = {}
    for offset, out in enumerate(issued):
        result = matcher.process([Record(out.topic, partition_of(out.key, partitions), offset, out.key, out.value,
                                         0.0)], stored.get, lambda: list(stored.items()))
        stored.update({k: raw for k, (raw, _) in result.states.items()})
    assert decode_slot(stored[NUMBER_KEY.encode()]) == ("A", "F2025-0101")
    for offset, out in enumerate(retired):
        result = matcher.process([Record(out.topic, partition_of(out.key, partitions), 10 + offset, out.key,
                                         out.value, 0.0)], stored.get, lambda: list(stored.items()))
        assert result.states[out.key][0] is None  # the key is deleted
