"""The batch processor around the core, without Faust: records in, states and outputs out."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from schemas import topics
from schemas.codec import Codec
from streams.core import events as ev
from streams.kafka.records import Record, partition_of
from streams.worker.processor import LedgerProcessor
from streams.worker.state_codec import decode_state
from tests.scenario import sample_policy

PARTITIONS = 4
START = date(2025, 3, 1)


@pytest.fixture
def codec():
    return Codec()


class Ledger:
    """A LedgerProcessor over a dict standing in for the worker's table."""

    def __init__(self, codec: Codec):
        self.codec = codec
        self.processor = LedgerProcessor(codec, sample_policy(), PARTITIONS)
        self.table: dict[bytes, bytes] = {}
        self.offset = 0

    def record(self, event, partition: int, key: bytes | None = None, value: bytes | None = None) -> Record:
        self.offset += 1
        if value is None:
            value = self.codec.encode(topics.LEDGER.name, event)
        if key is None and not isinstance(event, ev.DayStarted):
            key = event.debtor_id.encode()
        return Record(topics.LEDGER.name, partition, self.offset, key, value, 0.0)

    def batch(self, records: list[Record]) -> list:
        result = self.processor.process(records, self.table.get, lambda: list(self.table))
        for key, (raw, _) in result.states.items():
            self.table[key] = raw
        return [self.codec.decode(out.value) for out in result.outputs]


def test_a_debtor_created_earlier_in_the_batch_gets_the_later_ticks_of_that_batch(codec):
    ledger = Ledger(codec)
    partition = partition_of(b"P1", PARTITIONS)
    registration = ev.DebtorRegistered("p-reg", "P1", "Pieter", "B2B", segment="smb", email="p@example.nl")
    invoice = ev.InvoiceIssued("p-inv", "P1", "P-F1", START, START + timedelta(days=10), 50_000)
    ticks = [ev.DayStarted(f"day-{n}", START + timedelta(days=n)) for n in range(12)]
    records = [ledger.record(ticks[0], partition), ledger.record(registration, partition),
               ledger.record(invoice, partition)] + [ledger.record(t, partition) for t in ticks[1:]]
    outputs = ledger.batch(records)

    actions = [o for o in outputs if isinstance(o, ev.DunningActionDue)]
    assert [(a.step_name, a.business_date) for a in actions] == [
        ("pre-due", START + timedelta(days=7)),
        ("first reminder", START + timedelta(days=11)),
    ]
    snapshots = [o for o in outputs if isinstance(o, ev.DebtorSnapshot)]
    assert len(snapshots) == 1, "one snapshot per changed debtor per batch"
    assert snapshots[0].business_date == START + timedelta(days=11)
    assert decode_state(ledger.table[b"P1"]).today == START + timedelta(days=11)


def test_a_tick_reaches_only_the_debtors_of_its_partition(codec):
    ledger = Ledger(codec)
    ids = [f"Q{n}" for n in range(12)]
    ledger.batch([ledger.record(ev.DebtorRegistered(f"q-{d}", d, d, "B2B"), partition_of(d.encode(), PARTITIONS))
                  for d in ids])
    outputs = ledger.batch([ledger.record(ev.DayStarted("day-q", START), 0)])
    touched = {o.debtor_id for o in outputs if isinstance(o, ev.DebtorSnapshot)}
    assert touched == {d for d in ids if partition_of(d.encode(), PARTITIONS) == 0}
    assert touched  # the sample of ids has debtors on partition 0


def test_bad_records_are_dead_lettered_and_the_rest_of_the_batch_goes_on(codec):
    ledger = Ledger(codec)
    partition = partition_of(b"R1", PARTITIONS)
    good = ev.DebtorRegistered("r-reg", "R1", "Rosa", "B2C")
    wrong_key = ev.DebtorRegistered("r-reg-2", "R2", "Ruud", "B2C")
    records = [
        ledger.record(None, partition, key=b"R1", value=b"\x00\x00\x00\x00\x63garbage"),
        ledger.record(ev.InvoiceIssued("r-inv", "R9", "R-F1", START, START, 100), partition),
        ledger.record(wrong_key, partition, key=b"R1"),
        ledger.record(good, partition),
    ]
    outputs = ledger.batch(records)
    letters = [o for o in outputs if isinstance(o, ev.DeadLetter)]
    assert [(letter.offset, letter.source_topic) for letter in letters] == [
        (records[0].offset, topics.LEDGER.name), (records[1].offset, topics.LEDGER.name),
        (records[2].offset, topics.LEDGER.name),
    ]
    assert "cannot decode" in letters[0].reason and letters[0].original_value == records[0].value
    assert "unknown debtor 'R9'" in letters[1].reason
    assert "is not the debtor_id 'R2'" in letters[2].reason
    assert [o.debtor_id for o in outputs if isinstance(o, ev.DebtorSnapshot)] == ["R1"]


def test_a_state_written_by_another_worker_is_decoded_not_taken_from_the_cache(codec):
    ledger = Ledger(codec)
    partition = partition_of(b"S1", PARTITIONS)
    ledger.batch([ledger.record(ev.DebtorRegistered("s-reg", "S1", "Sanne", "B2B"), partition)])
    # Another worker changed the debtor (a rebalance moved it away and back): the table
    # holds bytes this processor did not write.
    other = Ledger(codec)
    other.table = dict(ledger.table)
    other.batch([other.record(ev.InvoiceIssued("s-inv", "S1", "S-F1", START, START + timedelta(days=5), 700),
                              partition)])
    ledger.table = dict(other.table)
    outputs = ledger.batch([ledger.record(ev.InvoiceIssued("s-inv-2", "S1", "S-F2", START, START, 300), partition)])
    snapshot = next(o for o in outputs if isinstance(o, ev.DebtorSnapshot))
    assert {i.invoice_id for i in snapshot.items} == {"S-F1", "S-F2"}


def test_an_unreachable_schema_registry_stops_the_batch_instead_of_dead_lettering_good_data(codec):
    from schemas.codec import DecodeError
    from schemas.registry import SchemaRegistry
    from tests.support import free_port

    offline = Codec(SchemaRegistry(f"http://127.0.0.1:{free_port()}", timeout=1.0))
    processor = LedgerProcessor(offline, sample_policy(), PARTITIONS)
    value = codec.encode(topics.LEDGER.name, ev.DebtorRegistered("t-reg", "T1", "Tess", "B2B"))
    record = Record(topics.LEDGER.name, 0, 1, b"T1", value, 0.0)
    with pytest.raises(DecodeError) as raised:
        processor.process([record], {}.get, lambda: [])
    assert raised.value.transient


def test_metrics_count_the_batch_once_it_is_done(codec):
    from prometheus_client import REGISTRY

    def value(name: str, **labels) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    ledger = Ledger(codec)
    ids = ["M1", "M2"]
    before = {
        "invoices": value("dunning_events_in_total", topic=topics.LEDGER.name, type="InvoiceIssued"),
        "snapshots": value("dunning_outputs_total", type="DebtorSnapshot"),
        "dead": value("dunning_dead_letters_total", topic=topics.LEDGER.name, field="amount_minor"),
        "open": value("dunning_open_amount_minor", currency="EUR"),
        "debtors": value("dunning_debtors"),
    }
    ledger.batch([ledger.record(ev.DebtorRegistered(f"m-{d}", d, d, "B2B"), partition_of(d.encode(), PARTITIONS))
                  for d in ids])
    invoices = [ev.InvoiceIssued(f"m-inv-{n}", ids[n % 2], f"M-F{n}", START, START, 1_000 * (n + 1)) for n in range(5)]
    bad = ev.InvoiceIssued("m-bad", "M1", "M-BAD", START, START, -5)
    ledger.batch([ledger.record(i, partition_of(i.debtor_id.encode(), PARTITIONS)) for i in [*invoices, bad]])
    ledger.batch([ledger.record(ev.PaymentMatched("m-pay", "M1", "M-F0", "T", START, 1_000),
                                partition_of(b"M1", PARTITIONS))])

    assert value("dunning_events_in_total", topic=topics.LEDGER.name, type="InvoiceIssued") - before["invoices"] == 6
    assert value("dunning_outputs_total", type="DebtorSnapshot") - before["snapshots"] == 2 + 2 + 1
    assert value("dunning_dead_letters_total", topic=topics.LEDGER.name, field="amount_minor") - before["dead"] == 1
    # The gauge follows each debtor's open amount: 15,000 invoiced, 1,000 paid.
    assert value("dunning_open_amount_minor", currency="EUR") - before["open"] == 14_000
    assert value("dunning_debtors") - before["debtors"] == 2


def test_a_revoked_partition_leaves_the_gauges(codec):
    from prometheus_client import REGISTRY

    def value(name: str, **labels) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    ledger = Ledger(codec)
    kept, gone = "G1", next(d for d in (f"G{n}" for n in range(2, 50))
                            if partition_of(d.encode(), PARTITIONS) != partition_of(b"G1", PARTITIONS))
    for debtor, amount in ((kept, 3_000), (gone, 5_000)):
        partition = partition_of(debtor.encode(), PARTITIONS)
        ledger.batch([ledger.record(ev.DebtorRegistered(f"g-{debtor}", debtor, debtor, "B2B"), partition),
                      ledger.record(ev.InvoiceIssued(f"g-inv-{debtor}", debtor, f"{debtor}-F", START, START, amount),
                                    partition)])
    before = value("dunning_open_amount_minor", currency="EUR"), value("dunning_debtors")

    ledger.processor.forget({partition_of(gone.encode(), PARTITIONS)})

    assert value("dunning_open_amount_minor", currency="EUR") == before[0] - 5_000
    assert value("dunning_debtors") == before[1] - 1
    # Taken over again later, the debtor counts anew when it changes.
    partition = partition_of(gone.encode(), PARTITIONS)
    ledger.batch([ledger.record(ev.InvoiceIssued(f"g-inv2-{gone}", gone, f"{gone}-F2", START, START, 1_000), partition)])
    assert value("dunning_open_amount_minor", currency="EUR") == before[0] + 1_000
    assert value("dunning_debtors") == before[1]


def test_a_dead_letter_of_a_record_too_large_to_copy_points_to_it_instead(codec):
    from streams.kafka.records import MAX_ORIGINAL_BYTES, dead_letter_for

    letter = dead_letter_for(topics.LEDGER.name, 2, 41, b"K", b"x" * (MAX_ORIGINAL_BYTES + 1), "cannot decode: y" * 500)
    assert letter.original_value == b""
    assert letter.reason.startswith("cannot decode") and letter.reason.endswith(
        f"(the original, {MAX_ORIGINAL_BYTES + 1:,} bytes, is not copied: it is at dunning.ledger 2/41)")
    assert len(codec.encode(topics.DEAD_LETTERS.name, letter)) < 10_000
    kept = dead_letter_for(topics.LEDGER.name, 2, 42, b"K", b"x" * 100, "cannot decode: y")
    assert kept.original_value == b"x" * 100
