"""The worker under faults: a batch's changes are visible together or not at all, a record
that can never succeed is dead-lettered and the agent goes on, a debtor with 50,000 open
items survives a SIGKILL. (A worker stuck on a failing batch stopping on SIGTERM:
``test_worker_retry.py``.)

The batch runner is tested on its own (plain coroutines stand in for an agent); the
rest runs against the embedded broker and the real worker process."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from datetime import date, timedelta

import pytest

from connectors.publisher import Publisher
from harness.embedded import EmbeddedBroker
from harness.stack import Stack
from harness.watch import TopicWatcher
from schemas import topics
from schemas.codec import Codec
from streams.core import events as ev
from streams.core.pipeline import Pipeline
from streams.core.references import betalingskenmerk_for
from streams.kafka import faults
from streams.kafka.clients import EMBEDDED, end_offsets, ensure_topics, make_producer
from streams.kafka.producer import BatchProducer, DeliveryFailed
from streams.kafka.records import Record
from streams.worker.app import _write, create_app
from streams.worker.batching import Abandoned, BatchAgent, BatchRunner
from streams.worker.processor import BatchResult
from tests.scenario import sample_policy

PARTITIONS = 4
START = date(2025, 3, 3)


# --------------------------------------------------------------------------- the batch runner


class Agent:
    """Records what it is given; ``fail(records)`` decides whether a call raises."""

    def __init__(self, fail):
        self.fail = fail
        self.calls: list[list[int]] = []
        self.done: list[int] = []
        self.dead: list[tuple[int, str]] = []

    async def process(self, records: list[Record]) -> None:
        offsets = [r.offset for r in records]
        self.calls.append(offsets)
        error = self.fail(offsets, len(self.calls))
        if error is not None:
            raise error
        self.done.extend(offsets)

    async def dead_letter(self, record: Record, reason: str) -> None:
        self.dead.append((record.offset, reason))

    def as_batch_agent(self) -> BatchAgent:
        return BatchAgent(self.process, self.dead_letter)


def records(n: int) -> list[Record]:
    return [Record(topics.LEDGER.name, 0, offset, b"K", b"v", 0.0) for offset in range(n)]


@pytest.fixture
def short_pauses(monkeypatch):
    monkeypatch.setattr(faults, "RETRY_PAUSE_SECONDS", (0.01, 0.02))


def test_a_failure_that_passes_is_tried_again_and_nothing_is_dead_lettered(short_pauses):
    agent = Agent(lambda offsets, call: OSError("registry out of reach") if call <= 3 else None)
    asyncio.run(BatchRunner(agent.as_batch_agent()).run(records(5)))
    assert agent.calls == [[0, 1, 2, 3, 4]] * 4
    assert agent.done == [0, 1, 2, 3, 4]
    assert agent.dead == []


def test_a_record_that_cannot_succeed_is_dead_lettered_and_the_others_go_on(short_pauses):
    agent = Agent(lambda offsets, call: ValueError("amount does not fit") if 3 in offsets else None)
    asyncio.run(BatchRunner(agent.as_batch_agent()).run(records(6)))
    assert agent.calls[0] == [0, 1, 2, 3, 4, 5]  # the batch, then each record alone
    assert agent.calls[1:] == [[0], [1], [2], [3], [4], [5]]
    assert agent.done == [0, 1, 2, 4, 5]
    assert agent.dead == [(3, "cannot be processed: ValueError: amount does not fit")]


def test_a_record_alone_that_meets_a_passing_failure_is_tried_again_not_dead_lettered(short_pauses):
    def fail(offsets, call):
        if len(offsets) > 1:
            return ValueError("one record is bad")  # isolate
        if offsets == [1] and call < 5:
            return OSError("broker out of reach")  # passes
        return ValueError("bad") if offsets == [2] else None

    agent = Agent(fail)
    asyncio.run(BatchRunner(agent.as_batch_agent()).run(records(3)))
    assert agent.done == [0, 1]
    assert [offset for offset, _ in agent.dead] == [2]


def test_stopping_abandons_a_batch_that_keeps_failing(monkeypatch):
    monkeypatch.setattr(faults, "RETRY_PAUSE_SECONDS", (30,))
    agent = Agent(lambda offsets, call: OSError("registry out of reach"))
    runner = BatchRunner(agent.as_batch_agent())

    async def run_then_stop() -> float:
        task = asyncio.create_task(runner.run(records(2)))
        while not agent.calls:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        runner.stopping.set()
        with pytest.raises(Abandoned):
            await task
        return time.monotonic() - started

    assert asyncio.run(run_then_stop()) < 1.0  # not the 30 s pause
    assert agent.done == [] and agent.dead == []


# --------------------------------------------------------------------------- against the broker


@pytest.mark.broker
def test_a_failed_changelog_write_leaves_the_table_as_it_was(tmp_path):
    """The worker's write path: the table takes a batch's new states only once the
    changelog has them, so a batch that is done again finds its events not yet applied."""
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, PARTITIONS)
        app = create_app(broker.bootstrap, EMBEDDED, sample_policy(), Codec(), partitions=PARTITIONS, store="memory://",
                         data_dir=tmp_path)
        table = app.tables["debtor-state"]
        record = Record(topics.LEDGER.name, 1, 7, b"D1", b"", 0.0)
        result = BatchResult(states={b"D1": (b"x" * 5000, record)})

        async def write_twice() -> None:
            refusing = BatchProducer(broker.bootstrap, **{"message.max.bytes": 2000})
            with pytest.raises(DeliveryFailed) as failed:
                await _write(refusing, table, result, seal=True)
            assert failed.value.permanent
            assert b"D1" not in table.data
            await asyncio.to_thread(refusing.close)
            producer = BatchProducer(broker.bootstrap)
            await _write(producer, table, result, seal=True)
            await asyncio.to_thread(producer.close)

        asyncio.run(write_twice())
        assert table.data[b"D1"] == b"x" * 5000
        changelog = table.changelog_topic.get_topic_name()
        assert sum(end_offsets(broker.bootstrap, [changelog]).values()) >= 1


def _big_debtor(invoices: int) -> list:
    events: list = [ev.DebtorRegistered("big-reg", "BIG", "Groot BV", "B2B", segment="smb", email="ap@groot.example")]
    for n in range(invoices):
        number = str(5_000_000 + n)
        events.append(ev.InvoiceIssued(f"big-inv-{n}", "BIG", f"G{number}", START, START + timedelta(days=30),
                                       10_000 + n, payment_reference=betalingskenmerk_for(number)))
    return events


@pytest.mark.broker
def test_a_debtor_with_50000_open_items_survives_a_kill_and_takes_one_more(tmp_path):
    events = _big_debtor(50_000)
    last = _big_debtor(50_001)[-1]
    pipeline = Pipeline(sample_policy())
    for event in [*events, last]:
        pipeline.process(event)
    expected = pipeline.snapshots()[0]

    codec = Codec()
    latest: dict[str, ev.DebtorSnapshot] = {}
    lock = threading.Lock()

    def seen(event, _received) -> None:
        with lock:
            held = latest.get(event.debtor_id)
            if held is None or event.version > held.version:
                latest[event.debtor_id] = event

    def items_of_big() -> int:
        with lock:
            return len(latest["BIG"].items) if "BIG" in latest else 0

    with Stack(tmp_path, PARTITIONS) as stack:
        stack.start("worker")
        watcher = TopicWatcher(stack.bootstrap, codec, [topics.SNAPSHOTS.name], seen=seen, keep=False).start()
        try:
            publisher = Publisher(stack.bootstrap, codec, PARTITIONS)
            publisher.publish_all(events)
            watcher.wait_for(lambda _: items_of_big() == 50_000, 300, "a snapshot with 50,000 open items")

            stack.kill("worker", signal.SIGKILL)
            stack.start("worker", name="worker-restarted")
            publisher.publish_all([last])
            watcher.wait_for(lambda _: items_of_big() == 50_001, 300, "a snapshot with 50,001 open items")
            dead_letters = end_offsets(stack.bootstrap, [topics.DEAD_LETTERS.name])
        finally:
            watcher.stop()
    assert latest["BIG"] == expected
    assert sum(dead_letters.values()) == 0


@pytest.mark.broker
def test_records_that_can_never_succeed_are_dead_lettered_and_the_agents_go_on(tmp_path):
    codec = Codec()
    registration = ev.DebtorRegistered("p-reg", "P1", "Pil BV", "B2B", segment="smb", email="ap@pil.example")
    huge = [ev.InvoiceIssued(f"p-huge-{n}", "P1", f"P-H{n}", START, START + timedelta(days=14), 2**62)
            for n in range(2)]
    fine = ev.InvoiceIssued("p-fine", "P1", "P-F1", START, START + timedelta(days=14), 12_345)
    with Stack(tmp_path, PARTITIONS) as stack:
        stack.start("worker")
        watcher = TopicWatcher(stack.bootstrap, codec, [topics.SNAPSHOTS.name, topics.DEAD_LETTERS.name]).start()
        try:
            producer = make_producer(stack.bootstrap)
            for spec in (topics.LEDGER, topics.BANK, topics.MATCHING):  # tombstones, as compaction leaves them
                producer.produce(spec.name, key=b"P1", value=None)
            producer.produce(topics.LEDGER.name, key=b"P1", value=b"\x00\x00\x00\x00\x07not avro")
            producer.flush(10)
            publisher = Publisher(stack.bootstrap, codec, PARTITIONS)
            # Encoded as they are, past the edge's checks: the worker has to hold its own.
            for event in [registration, *huge, fine]:
                producer.produce(topics.LEDGER.name, key=b"P1", value=codec.encode(topics.LEDGER.name, event))
            producer.flush(10)
            watcher.wait_for(lambda w: any([i.invoice_id for i in s.items] == ["P-F1"]
                                           for s in w.events("DebtorSnapshot")), 120,
                             "the invoice behind the bad records in a snapshot")
            watcher.wait_for(lambda w: len(w.events("DeadLetter")) >= 3, 60, "three dead letters")
            publisher.flush()
        finally:
            watcher.stop()
    letters = watcher.events("DeadLetter")
    assert sorted(letter.offset for letter in letters) == [1, 3, 4]  # the undecodable record and both huge ones
    assert all(letter.source_topic == topics.LEDGER.name and letter.reason for letter in letters)
    final = max(watcher.events("DebtorSnapshot"), key=lambda s: s.version)
    assert final.balance_minor == 12_345
