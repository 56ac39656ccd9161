"""The Faust app: three thin agents over ``streams.worker.processor``.

- ``ledger``: debtor events and day ticks (topic dunning.ledger, keyed by debtor id);
  state in the table ``debtor-state``.
- ``bank``: bank transactions, re-keyed by payment reference.
- ``matching``: invoice references, payments keyed by reference, and day ticks; the matcher's slots (a reference's invoice, the payments waiting for
  it) live in the table ``payment-references``; matched payments go back to the ledger topic.

Each agent receives a batch of records as Faust's consumer fetched them
(``streams.worker.batching``) and lets the processor work on it; then it sends all outputs and
waits until the broker has them, then sends each changed key's new value once to its
table's changelog and waits again, and only then puts the new values into the table
itself. The batch's offsets are acked after that, and committed by Faust. So a batch's
changes become visible together or not at all: a batch that fails anywhere on the way
(a record too large for the broker, the broker out of reach) leaves the table as it was,
and doing the batch again applies its events again. A crash replays what was not
committed and sends the same outputs again (same ids; the sinks and projections ignore
repeats). No state and no output is lost: at least once, made idempotent.
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path

import faust
import structlog
from faust.streams import _current_event  # the context var Faust's tables read the partition from

from schemas import topics
from schemas.codec import Codec
from streams.core.policy import Policy
from streams.kafka.clients import Profile
from streams.kafka.producer import BatchProducer
from streams.kafka.records import Record, dead_letter_output
from streams.worker import metrics
from streams.worker.batching import batch_agent, use_batch_agents
from streams.worker.processor import BankProcessor, BatchResult, LedgerProcessor, MatchingProcessor, lag_seconds

log = structlog.get_logger(__name__)

BATCH_SIZE = 2000  # records per fetch, over all topics and partitions


def create_app(bootstrap: str, profile: Profile, policy: Policy, codec: Codec, *, partitions: int,
               store: str, data_dir: Path) -> faust.App:
    app = faust.App(
        topics.WORKER_GROUP,
        broker=f"kafka://{bootstrap}",
        store=store,
        datadir=str(data_dir / "faust"),
        topic_partitions=partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        **profile.faust,  # the embedded broker's short group timeouts
        broker_max_poll_interval=120,  # a long batch under load must not cost the group membership
        broker_commit_interval=profile.commit_interval_seconds,
        broker_max_poll_records=BATCH_SIZE,
        consumer_max_fetch_size=topics.MAX_RECORD_BYTES,  # a partition's fetch holds its largest record
        web_enabled=False,
        table_standby_replicas=0,
    )
    use_batch_agents(app, profile.fetch_max_wait_ms)

    def topic(spec: topics.TopicSpec) -> faust.TopicT:
        return app.topic(spec.name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=partitions)

    def table(name: str) -> faust.Table:
        # Keys and values are bytes (the "raw" serializer) everywhere, so changelog
        # recovery restores them exactly as they were written.
        return app.Table(name, key_type=bytes, value_type=bytes, partitions=partitions,
                         extra_topic_configs=topics.TOPIC_CONFIG)

    producer = BatchProducer(bootstrap)

    @app.on_before_shutdown.connect
    async def close_producer(sender, **kwargs) -> None:  # after the consumer stopped
        await asyncio.to_thread(producer.close)

    debtor_states = table("debtor-state")
    references = table("payment-references")
    ledger = LedgerProcessor(codec, policy, partitions)
    bank = BankProcessor(codec)
    matching = MatchingProcessor(codec, partitions)

    @app.on_partitions_assigned.connect
    async def say_assigned(sender, assigned, **kwargs) -> None:  # what an operator (and a test) waits for
        log.info("partitions assigned", ledger_partitions=sorted(
            tp.partition for tp in assigned if tp.topic == topics.LEDGER.name), partitions=len(assigned))

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender, revoked, **kwargs) -> None:  # after the batches in hand are done
        ledger.forget({tp.partition for tp in revoked if tp.topic == topics.LEDGER.name})

    async def dead_letter(record: Record, reason: str) -> None:
        await _send(producer, BatchResult(outputs=[dead_letter_output(codec, record, reason)]))

    @batch_agent(app, topic(topics.LEDGER), dead_letter)
    async def ledger_agent(records: list[Record]) -> None:
        with metrics.BATCH_SECONDS.time():
            result = ledger.process(records, debtor_states.get, debtor_states.keys)
        await _send(producer, result)
        await _write(producer, debtor_states, result, profile.seal_changelog)
        lag_seconds(records)

    @batch_agent(app, topic(topics.BANK), dead_letter)
    async def bank_agent(records: list[Record]) -> None:
        await _send(producer, bank.process(records))
        lag_seconds(records)

    @batch_agent(app, topic(topics.MATCHING), dead_letter)
    async def matching_agent(records: list[Record]) -> None:
        result = matching.process(records, references.get, references.items)
        await _send(producer, result)
        await _write(producer, references, result, profile.seal_changelog)
        lag_seconds(records)

    # Output topics are declared too, so they exist before anyone subscribes.
    for spec in (topics.ACTIONS, topics.ALERTS, topics.UNMATCHED, topics.SNAPSHOTS,
                 topics.DELIVERIES, topics.DEAD_LETTERS):
        topic(spec)
    return app


class _AtPartition:
    """Stands in for the current event: Faust's RocksDB store reads the partition of a
    write from ``current_event().message``."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, message):
        self.message = message


async def _write(producer: BatchProducer, table: faust.Table, result: BatchResult, seal: bool) -> None:
    """One write per changed key: to the changelog in the partition of the event that last
    changed it, and once the broker has every record, into the local store. The records
    are sent here and awaited, rather than through ``table[key] = value``: Faust queues
    those in a buffer whose flush before an offset commit gives up after 100 ms without a
    send (``Producer.flush_atmost``), so a crash could lose state for committed events;
    and the store is written last, so a batch whose changelog write fails leaves it as it
    was and is applied again when it is tried again."""
    if not result.states:
        return
    changelog = table.changelog_topic.get_topic_name()
    await producer.send_all((changelog, key, value, record.partition) for key, (value, record) in result.states.items())
    if seal:
        await _seal_changelog(producer, changelog, result)
    for key, (value, record) in result.states.items():
        # The RocksDB store picks its per-partition database from the current event.
        at = _AtPartition(record.origin)
        token = _current_event.set(weakref.ref(at))
        try:
            if value is None:  # deleted: the changelog holds a tombstone, which recovery applies as a delete
                table.data.pop(key, None)
            else:
                table.data[key] = value
        finally:
            _current_event.reset(token)


async def _seal_changelog(producer: BatchProducer, changelog: str, result: BatchResult) -> None:
    """Repeat the last record of each changelog partition written, alone in its own
    produce request. The embedded broker reports a partition's end offset as the first
    offset of its last record batch + 1, and Faust restores a table up to that end: without
    this the tail of the last batch was missing after a restart. The repeat is the same
    key and value again, so it changes nothing on a broker that reports the end right."""
    last: dict[int, tuple[bytes, bytes]] = {}
    for key, (value, record) in result.states.items():
        last[record.partition] = (key, value)
    # Sent after the others were acknowledged: one record per partition, a batch of its own.
    await producer.send_all((changelog, key, value, partition) for partition, (key, value) in last.items())


async def _send(producer: BatchProducer, result: BatchResult) -> None:
    if result.outputs:
        await producer.send_all((out.topic, out.key, out.value, out.partition) for out in result.outputs)
