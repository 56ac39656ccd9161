"""The Faust glue against the embedded broker: the batch agents of ``streams.worker.batching``
(Faust's per-message fetch loop replaced, its offsets, gaps, commits and rebalances kept)
and the write path of ``streams.worker.app._write`` (a batch's outputs, then its states in
the table's changelog, then in the table, then its offsets).

- a rebalance while a batch is in hand: the batch is held between its outputs and its
  changelog write, a second worker joins, the revocation waits for the batch; afterwards
  every event was applied once and every output is there, once;
- a batch that fails for want of the schema registry in the middle of a stream is tried
  again and applied once: the outputs and the final states of an uninterrupted run;
- offsets the worker never sees (transaction markers) are committed past, and the
  records behind them are processed;
- a worker stopped with SIGTERM, then one killed with SIGKILL: the next one restores the
  table exactly, byte for byte.

The worker runs as the real process (``harness.stack.Stack``) or, where a test has to
hold a batch or read the table itself, as the real Faust app (``create_app``) in a thread
of this process. Every wait is for something observable (a log line, a record, a
committed offset), with a timeout.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from connectors.publisher import Publisher
from harness import SAMPLE_POLICY
from harness.drive import drive, wait_until_day_done
from harness.sample_ledger import sample_days
from harness.stack import Stack
from harness.watch import TopicWatcher, pipeline_watcher
from schemas import topics
from schemas.codec import Codec
from schemas.registry import SchemaRegistry
from streams.core import events as ev
from streams.core.pipeline import Pipeline
from streams.core.policy import policy_from_yaml
from streams.kafka.clients import EMBEDDED, base_config, end_offsets, producer_config
from streams.kafka.producer import BatchProducer
from streams.kafka.records import partition_of
from streams.worker.app import create_app
from streams.worker.state_codec import decode_state, encode_state
from tests.support import start_schema_registry, wait_until

pytestmark = [pytest.mark.broker]

PARTITIONS = 4
GROUP = "dunning-worker"  # the worker's consumer group (its Faust app id)
STATE_CHANGELOG = f"{GROUP}-debtor-state-changelog"
START = date(2025, 3, 3)


def policy():
    return policy_from_yaml(SAMPLE_POLICY.read_text(), str(SAMPLE_POLICY))


# --------------------------------------------------------------------------- reading the broker


def read_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of ``topic`` as (partition, offset, key, value), each partition read
    until the consumer reports its end (offsets that hold no record, such as transaction
    markers, are never delivered, so counting up to the high watermark would not end)."""
    consumer = Consumer({**base_config(bootstrap), "group.id": "dunning-glue-test-reader", "enable.auto.commit": False,
                         "enable.partition.eof": True, "fetch.wait.max.ms": 10})
    records: list = []
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        unread = set(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in unread])
        deadline = time.monotonic() + timeout
        while unread:
            if time.monotonic() > deadline:
                raise TimeoutError(f"partitions {sorted(unread)} of {topic} not read to their end in {timeout} s")
            for message in consumer.consume(1000, 0.2):
                if message.error() is not None:
                    if message.error().code() == KafkaError._PARTITION_EOF:
                        unread.discard(message.partition())  # its end, as of now
                    continue
                records.append((message.partition(), message.offset(), message.key(), message.value()))
    finally:
        consumer.close()
    return records


def last_values(records) -> dict[bytes, bytes]:
    """The last value of each key (a compacted topic's content)."""
    latest: dict[bytes, bytes] = {}
    for _partition, _offset, key, value in sorted(records, key=lambda r: (r[0], r[1])):
        latest[key] = value
    return latest


def committed_offsets(bootstrap: str, topic: str, group: str = GROUP) -> dict[int, int]:
    """The offsets ``group`` committed on each partition of ``topic`` (negative: none), asked
    for by a client that does not join the group."""
    consumer = Consumer({**base_config(bootstrap), "group.id": group, "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        asked = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        return {tp.partition: tp.offset for tp in consumer.committed(asked, timeout=10)}
    finally:
        consumer.close()


def all_committed(bootstrap: str, topic: str) -> bool:
    """The worker's group has committed every partition of ``topic`` up to its end."""
    ends = {p: end for (_, p), end in end_offsets(bootstrap, [topic]).items()}
    committed = committed_offsets(bootstrap, topic)
    return all(end == 0 or committed.get(p, -1) >= end for p, end in ends.items())


# --------------------------------------------------------------------------- the worker


def ledger_assignments(log_file: Path) -> list[list[int]]:
    """The ledger partitions of each "partitions assigned" line the worker wrote to ``log_file``."""
    found = []
    for line in log_file.read_text(encoding="utf-8").splitlines() if log_file.exists() else []:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "partitions assigned":
            found.append(entry.get("ledger_partitions") or [])
    return found


def wait_for_ledger_partitions(log_file: Path, timeout: float = 90) -> list[int]:
    """Until the worker that writes ``log_file`` holds ledger partitions; returns them."""
    return wait_until(lambda: next((a for a in reversed(ledger_assignments(log_file)) if a), None), timeout,
                      f"{log_file.name}: ledger partitions assigned")


class InProcessWorker:
    """The worker's Faust app (``create_app``) on an event loop in a thread of this
    process: a test can hold its batches and read its table. It writes no log file; what it
    is assigned is kept in ``assignments`` and each rebalance it starts in ``rebalances``."""

    def __init__(self, bootstrap: str, data_dir: Path, codec: Codec | None = None):
        self.bootstrap, self.data_dir, self.codec = bootstrap, data_dir, codec or Codec()
        self.assignments: list[list[int]] = []
        self.rebalances = 0
        self.ledger_batches = 0  # ledger batches handed to the agent
        self.app = None
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="in-process-worker", daemon=True)

    def start(self, timeout: float = 90) -> "InProcessWorker":
        self._thread.start()
        wait_until(self._started.is_set, timeout, "the in-process worker to start (joined, assigned, tables recovered)")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.app = app = create_app(self.bootstrap, EMBEDDED, policy(), self.codec, partitions=PARTITIONS,
                                        store="memory://", data_dir=self.data_dir)

            @app.on_partitions_assigned.connect
            async def assigned(sender, assigned, **kwargs) -> None:
                self.assignments.append(sorted(tp.partition for tp in assigned if tp.topic == topics.LEDGER.name))

            rebalance_start = app.on_rebalance_start

            def counting_rebalance_start() -> None:  # called by the consumer thread as the group rebalances
                self.rebalances += 1
                rebalance_start()

            app.on_rebalance_start = counting_rebalance_start
            agents = app.transport.batch_agents
            ledger = agents[topics.LEDGER.name]

            async def counted(records) -> None:
                self.ledger_batches += 1
                await ledger.process(records)

            agents[topics.LEDGER.name] = type(ledger)(counted, ledger.dead_letter)
            self.loop.run_until_complete(app.start())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()

    def call(self, function, timeout: float = 30):
        """``function()`` on the worker's event loop, between its steps; returns its value."""

        async def run():
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def table(self, name: str = "debtor-state") -> dict[bytes, bytes]:
        return self.call(lambda: dict(self.app.tables[name].data.items()))

    def ledger_partitions(self) -> list[int]:
        return self.assignments[-1] if self.assignments else []

    def stop(self, timeout: float = 60) -> None:
        if self.app is not None and self._error is None and self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self.app.stop(), self.loop).result(timeout)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(timeout)


# --------------------------------------------------------------------------- what the outputs say


def latest_snapshots(watcher: TopicWatcher) -> dict[str, ev.DebtorSnapshot]:
    latest: dict = {}
    for snap in watcher.events("DebtorSnapshot"):
        if snap.debtor_id not in latest or snap.version > latest[snap.debtor_id].version:
            latest[snap.debtor_id] = snap
    return latest


def expected_run(events) -> tuple[Pipeline, list]:
    pipeline = Pipeline(policy())
    outputs = [o for event in events for o in pipeline.process(event)]
    return pipeline, outputs


def output_id(event) -> str:
    return event.action_id if isinstance(event, ev.DunningActionDue) else event.event_id


def assert_each_output_once(watcher: TopicWatcher, expected_outputs: list) -> None:
    """Every action and alert of the uninterrupted run is on its topic exactly once, and
    nothing else is; each debtor's snapshots (one partition, in offset order) have rising
    versions, so no batch was applied, or its snapshot sent, twice."""
    for type_name in ("DunningActionDue", "LimitWarning", "LimitBreached", "LimitCleared", "PromiseKept",
                      "PromiseBroken", "PaymentUnmatched"):
        seen = Counter(output_id(e) for e in watcher.events(type_name))
        wanted = Counter(output_id(o) for o in expected_outputs if type(o).__name__ == type_name)
        assert seen == wanted, f"{type_name}: missing {sorted(wanted - seen)}, extra {sorted(seen - wanted)}"
    versions: dict[str, list[int]] = defaultdict(list)
    for snap in watcher.events("DebtorSnapshot"):
        versions[snap.debtor_id].append(snap.version)
    repeated = {d: v for d, v in versions.items() if any(b <= a for a, b in zip(v, v[1:]))}
    assert repeated == {}, f"snapshot versions that do not rise: {repeated}"
    assert watcher.events("DeadLetter") == []


# --------------------------------------------------------------------------- 1. a rebalance while a batch is in hand


class ChangelogHold:
    """Holds the first debtor-state changelog write of this process once ``armed``: the
    batch's outputs are on the broker, its states are not yet in the changelog or the table,
    its offsets are not acked. ``release`` lets it go on."""

    def __init__(self):
        self.armed = False
        self.holding = threading.Event()
        self.release = threading.Event()
        self.records: list = []

    def install(self, monkeypatch) -> None:
        original = BatchProducer.send_all
        hold = self

        previous: set = set()

        async def send_all(producer, records):
            nonlocal previous
            records = list(records)
            if records and records[0][0] == STATE_CHANGELOG:
                # The seal repeats records of the write just before it: that write is the
                # batch's, and already through; hold a batch's own first write only.
                seal = set(records) <= previous
                previous = set(records)
                if hold.armed and not seal:
                    hold.armed = False
                    hold.records = records
                    hold.holding.set()
                    await asyncio.to_thread(hold.release.wait, 120)
            await original(producer, records)

        monkeypatch.setattr(BatchProducer, "send_all", send_all)


def test_a_rebalance_waits_for_the_batch_in_hand_and_every_event_is_applied_once(tmp_path, monkeypatch):
    hold = ChangelogHold()
    hold.install(monkeypatch)
    codec = Codec()
    timeline = sample_days(days=12)
    joined_on = 6
    with Stack(tmp_path, PARTITIONS) as stack:
        watcher = pipeline_watcher(stack.bootstrap, codec).start()
        first = InProcessWorker(stack.bootstrap, tmp_path / "first").start()
        try:
            wait_until(lambda: first.ledger_partitions() == list(range(PARTITIONS)) and not first.app.rebalancing,
                       90, "the in-process worker to hold every ledger partition")
            publisher = Publisher(stack.bootstrap, codec, PARTITIONS)
            drive(publisher, timeline[:joined_on], timeout=60)

            # The next day's first ledger batch is held after its outputs were sent.
            hold.armed = True
            publisher.publish(timeline[joined_on].tick)
            for event in timeline[joined_on].ledger:
                publisher.publish(event)
            publisher.flush()
            wait_until(hold.holding.is_set, 60, "a ledger batch held before its changelog write")
            held = {(key, value, partition) for _, key, value, partition in hold.records}
            assert held, "the held batch changed no state"
            # Its outputs are on the broker (each changed debtor's snapshot of the new state),
            # its states are not in the changelog yet.
            held_versions = {(k.decode(), decode_state(v).version) for k, v, _ in held}
            watcher.wait_for(lambda w: held_versions <= {(s.debtor_id, s.version) for s in w.events("DebtorSnapshot")},
                             60, "the held batch's snapshots")
            changelog_before = last_values(read_topic(stack.bootstrap, STATE_CHANGELOG))
            assert [k for k, v, _ in held if changelog_before.get(k) == v] == []

            rebalances = first.rebalances
            stack.start("worker", name="second")
            wait_until(lambda: first.rebalances > rebalances, 90, "the group to rebalance as the second worker joins")
            # The first worker cannot rejoin before its batch is done: nobody holds the partitions anew.
            assert [a for a in ledger_assignments(tmp_path / "second.log") if a] == []
            hold.release.set()

            taken = wait_for_ledger_partitions(tmp_path / "second.log")
            wait_until(lambda: first.ledger_partitions() and not first.app.rebalancing, 90,
                       "the first worker to be assigned what it keeps")
            kept = first.ledger_partitions()
            assert sorted(kept + taken) == list(range(PARTITIONS)), (kept, taken)

            # The held batch's states reached the changelog, which the second worker restored from.
            changelog = read_topic(stack.bootstrap, STATE_CHANGELOG)
            written = {(key, value, partition) for partition, _, key, value in changelog}
            assert held <= written

            # The rest of the day (its payments), then the days after.
            publisher.publish_all(timeline[joined_on].payments)
            drive(publisher, timeline[joined_on + 1:], timeout=60)
            pipeline, outputs = expected_run([e for day in timeline for e in day.events()])
            expected = {s.debtor_id: s for s in pipeline.snapshots()}
            wait_until_day_done(watcher, set(expected), timeline[-1].date, timeout=60)
            watcher.wait_for(lambda w: latest_snapshots(w) == expected, 60, "the final states of the in-memory run")
            wait_until(lambda: all_committed(stack.bootstrap, topics.LEDGER.name), 60,
                       "the ledger committed to its end")
            watcher.wait_caught_up(30)
        finally:
            hold.release.set()
            watcher.stop()
            first.stop()
    assert_each_output_once(watcher, outputs)
    # The second worker worked on what it took over, from the restored states.
    assert '"event": "day started"' in (tmp_path / "second.log").read_text()


# --------------------------------------------------------------------------- 2. a batch that fails and is tried again


def registered(debtor_id: str) -> ev.DebtorRegistered:
    return ev.DebtorRegistered(f"reg-{debtor_id}", debtor_id, f"Debiteur {debtor_id} BV", "B2B", segment="smb",
                               email=f"ap@{debtor_id.lower()}.example")


def invoice(debtor_id: str, n: int, issued: date, term: int = 7) -> ev.InvoiceIssued:
    return ev.InvoiceIssued(f"inv-{debtor_id}-{n}", debtor_id, f"F-{debtor_id}-{n}", issued,
                            issued + timedelta(days=term), 10_000 + 1_000 * n)


def tick(on: date) -> ev.DayStarted:
    return ev.DayStarted(f"day:{on.isoformat()}", on)


def test_a_batch_that_meets_a_registry_outage_mid_stream_is_applied_once_when_tried_again(tmp_path):
    debtors = [f"G{n:02d}" for n in range(12)]
    assert {partition_of(d.encode(), PARTITIONS) for d in debtors} == set(range(PARTITIONS))
    before = [tick(START), *[registered(d) for d in debtors], *[invoice(d, 1, START, term=4) for d in debtors],
              *[tick(START + timedelta(days=n)) for n in range(1, 4)]]
    credit_note = ev.CreditNoteIssued("cn-G05-1", "G05", "C-G05-1", "F-G05-1", START + timedelta(days=4), 4_000)
    # The batch that fails: records the worker can decode around the one it cannot (a credit
    # note, the stream's first, whose schema it has not read yet).
    failing = [tick(START + timedelta(days=4)), *[invoice(d, 2, START + timedelta(days=4)) for d in debtors[:6]],
               credit_note, *[invoice(d, 2, START + timedelta(days=4)) for d in debtors[6:]]]
    after = [*[tick(START + timedelta(days=n)) for n in range(5, 20)],
             *[invoice(d, 3, START + timedelta(days=19)) for d in debtors], tick(START + timedelta(days=20))]
    pipeline, outputs = expected_run([*before, *failing, *after])
    expected = {s.debtor_id: s for s in pipeline.snapshots()}
    assert any(type(o) is ev.DunningActionDue for o in outputs)

    server, registry = start_schema_registry()
    codec = Codec(SchemaRegistry(server.url))
    for event in [*before, *failing, *after]:
        codec.encode(topics.LEDGER.name, event)  # registered now: the publisher needs no registry later
    credit_note_schema = f"/schemas/ids/{codec.schema_id(topics.LEDGER.name, ev.CreditNoteIssued)}"
    try:
        with Stack(tmp_path, PARTITIONS, {"SCHEMA_REGISTRY_URL": server.url}) as stack:
            stack.start("worker")
            watcher = pipeline_watcher(stack.bootstrap, codec).start()
            try:
                wait_for_ledger_partitions(tmp_path / "worker.log")
                publisher = Publisher(stack.bootstrap, codec, PARTITIONS)
                publisher.publish_all(before)
                watcher.wait_for(lambda w: {s.debtor_id for s in w.events("DebtorSnapshot")
                                            if s.business_date == START + timedelta(days=3)} == set(debtors),
                                 60, "the snapshots of the stream's first part")
                watcher.wait_caught_up(30)

                registry.available = False
                publisher.publish_all(failing)
                wait_until(lambda: sum(path == credit_note_schema for _, path in registry.refused) >= 2, 60,
                           "the worker to try the credit note's batch twice")
                publisher.publish_all(after)  # queued behind the failing batch
                wait_until(lambda: sum(path == credit_note_schema for _, path in registry.refused) >= 3, 60,
                           "the worker to try the credit note's batch again, with the rest fetched")
                watcher.wait_caught_up(30)
                # Neither the failing batch nor what follows it got out, not even in part.
                assert not any(i.credited_minor for s in watcher.events("DebtorSnapshot") for i in s.items)
                assert not any(s.business_date and s.business_date > START + timedelta(days=4)
                               for s in watcher.events("DebtorSnapshot"))
                assert not any(a.business_date > START + timedelta(days=4) for a in watcher.events("DunningActionDue"))

                registry.available = True
                watcher.wait_for(lambda w: latest_snapshots(w) == expected, 90,
                                 "the final states of an uninterrupted run")
                wait_until(lambda: all_committed(stack.bootstrap, topics.LEDGER.name), 60,
                           "the ledger committed to its end")
                watcher.wait_caught_up(30)
            finally:
                watcher.stop()
            log = (tmp_path / "worker.log").read_text()
    finally:
        server.stop()
    assert "batch failed, tried again after a pause" in log
    assert_each_output_once(watcher, outputs)
    credited = [(i.invoice_id, i.credited_minor) for i in latest_snapshots(watcher)["G05"].items if i.credited_minor]
    assert credited == [("F-G05-1", 4_000)]  # the record the batch failed on, applied once


# --------------------------------------------------------------------------- 3. a gap in offsets


def test_offsets_the_worker_never_sees_are_committed_past_and_what_follows_is_processed(tmp_path):
    """Transaction markers take an offset each and are never delivered: the worker's read
    offsets jump over them. The first one follows the partition's first record (offset 0,
    where Faust's read offset is falsy); the first wave ends on one, so the worker that
    takes over after a SIGTERM starts at an offset that holds no record. Each time the group
    must commit the partition past its last record, and every record is applied once; an
    aborted transaction's record never counts."""
    codec = Codec()
    debtor = "T1"
    partition = partition_of(debtor.encode(), PARTITIONS)
    aborted = invoice(debtor, 99, START)
    with Stack(tmp_path, PARTITIONS) as stack:
        stack.start("worker")
        watcher = TopicWatcher(stack.bootstrap, codec, [topics.SNAPSHOTS.name, topics.DEAD_LETTERS.name]).start()
        try:
            transactional = Producer(producer_config(stack.bootstrap, **{"transactional.id": "glue-test-gaps"}))
            transactional.init_transactions(30)
            publisher = Publisher(stack.bootstrap, codec, PARTITIONS)

            def in_a_transaction(events, commit: bool = True) -> None:
                transactional.begin_transaction()
                for event in events:
                    transactional.produce(topics.LEDGER.name, key=debtor.encode(),
                                          value=codec.encode(topics.LEDGER.name, event))
                if commit:
                    transactional.commit_transaction(30)
                else:
                    transactional.abort_transaction(30)

            def offsets() -> list[int]:
                return sorted(o for p, o, _, _ in read_topic(stack.bootstrap, topics.LEDGER.name) if p == partition)

            def applied_and_committed(invoices: int, what: str) -> None:
                wanted = {f"F-{debtor}-{n}" for n in range(1, invoices + 1)}
                watcher.wait_for(lambda w: any({i.invoice_id for i in s.items} == wanted
                                               for s in w.events("DebtorSnapshot")), 60, f"{what}: every invoice applied")
                end = offsets()[-1] + 1
                wait_until(lambda: committed_offsets(stack.bootstrap, topics.LEDGER.name).get(partition, -1) == end,
                           60, f"{what}: partition {partition} committed to {end}, past its last record")

            wait_for_ledger_partitions(tmp_path / "worker.log")
            in_a_transaction([registered(debtor)])  # offset 0, its marker at 1
            publisher.publish_all([invoice(debtor, 1, START)])  # 2
            in_a_transaction([invoice(debtor, 2, START), invoice(debtor, 3, START)])  # 3, 4, marker at 5
            in_a_transaction([aborted], commit=False)
            for n in range(4, 16):  # a record and a marker each
                in_a_transaction([invoice(debtor, n, START)])
            first_wave = offsets()
            assert first_wave[:3] == [0, 2, 3] and first_wave[-1] + 1 - len(first_wave) >= 13, f"gaps: {first_wave}"
            applied_and_committed(15, "first wave")

            stack.kill("worker", signal.SIGTERM)
            stack.start("worker", name="second")
            wait_for_ledger_partitions(tmp_path / "second.log")
            for n in range(16, 26):
                in_a_transaction([invoice(debtor, n, START)])
            publisher.publish_all([invoice(debtor, 26, START)])
            applied_and_committed(26, "second wave")
        finally:
            watcher.stop()
    assert watcher.events("DeadLetter") == []
    final = latest_snapshots(watcher)[debtor]
    assert final.version == 27  # the registration and 26 invoices, each once; not the aborted one
    assert "F-T1-99" not in {i.invoice_id for i in final.items}
    versions = [s.version for s in watcher.events("DebtorSnapshot")]
    assert versions == sorted(set(versions)), "a record applied, or its snapshot sent, twice"


# --------------------------------------------------------------------------- 4. a restart restores the table exactly


def test_a_worker_stopped_then_one_killed_leave_the_table_to_be_restored_byte_for_byte(tmp_path):
    codec = Codec()
    timeline = sample_days(days=10)
    next_day = ev.DayStarted(f"day:{timeline[-1].date + timedelta(days=1)}", timeline[-1].date + timedelta(days=1))
    pipeline = Pipeline(policy())
    for day in timeline:
        for event in day.events():
            pipeline.process(event)
    before_stop = {d.encode(): encode_state(s) for d, s in pipeline.debtors.items()}
    expected_before = {s.debtor_id: s for s in pipeline.snapshots()}
    pipeline.process(next_day)
    after_tick = {d.encode(): encode_state(s) for d, s in pipeline.debtors.items()}
    expected_after = {s.debtor_id: s for s in pipeline.snapshots()}

    with Stack(tmp_path, PARTITIONS) as stack:
        stack.start("worker")
        watcher = pipeline_watcher(stack.bootstrap, codec).start()
        restored = None
        try:
            wait_for_ledger_partitions(tmp_path / "worker.log")
            publisher = Publisher(stack.bootstrap, codec, PARTITIONS)
            drive(publisher, timeline, timeout=60)
            watcher.wait_for(lambda w: latest_snapshots(w) == expected_before, 60, "the states of the in-memory run")
            wait_until(lambda: all_committed(stack.bootstrap, topics.LEDGER.name), 60, "the ledger committed")
            changelog = last_values(read_topic(stack.bootstrap, STATE_CHANGELOG))
            assert changelog == before_stop  # what the table holds, byte for byte

            worker = stack.processes["worker"]
            stopping = time.monotonic()
            stack.kill("worker", signal.SIGTERM)
            assert worker.returncode == 0 or worker.returncode == -signal.SIGTERM
            assert time.monotonic() - stopping < 20

            # The next worker restores the states and goes on from them: the next day's
            # snapshots are those of the in-memory run.
            stack.start("worker", name="after-sigterm")
            wait_for_ledger_partitions(tmp_path / "after-sigterm.log")
            publisher.publish_all([next_day])
            watcher.wait_for(lambda w: {d: s for d, s in latest_snapshots(w).items()
                                        if s.business_date == next_day.business_date} == expected_after,
                             60, "the next day's snapshots from the restored states")
            wait_until(lambda: all_committed(stack.bootstrap, topics.LEDGER.name), 60, "the ledger committed")
            stack.kill("after-sigterm", signal.SIGKILL)

            # A worker started after the kill restores exactly what was written, and has
            # nothing left to do.
            restored = InProcessWorker(stack.bootstrap, tmp_path / "after-sigkill").start()
            wait_until(lambda: restored.ledger_partitions() == list(range(PARTITIONS)) and not restored.app.rebalancing,
                       90, "the worker after the kill to hold every ledger partition")
            table = restored.table()  # recovery is over: the flow resumed and the rebalance ended
            changelog = last_values(read_topic(stack.bootstrap, STATE_CHANGELOG))
            ledger_batches = restored.ledger_batches
        finally:
            watcher.stop()
            if restored is not None:
                restored.stop()
    assert sorted(k for k in after_tick if table[k] != after_tick[k]) == []
    assert table == changelog == after_tick
    assert {k.decode(): decode_state(v) for k, v in table.items()} == pipeline.debtors
    assert ledger_batches == 0  # restored, not recomputed
