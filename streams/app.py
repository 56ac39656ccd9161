"""The Faust app: three thin agents over ``streams.processor``.

- ``ledger``: debtor events and day ticks (topic dunning.ledger, keyed by debtor id);
  state in the table ``debtor-state``.
- ``bank``: bank transactions, re-keyed by payment reference.
- ``matching``: invoice references and payments keyed by reference; the index lives in
  the table ``payment-references``; matched payments go back to the ledger topic.

Each agent takes a batch of events, lets the processor work on it, writes each changed
key once, sends all outputs and waits for the broker to have them before the next batch,
so that offsets are only committed for events whose outputs are safe (at least once;
the core and the sinks make redelivery harmless).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Iterable

import faust
import structlog
from faust.streams import _current_event  # the context var Faust's tables read the partition from

from dunning.config import Settings
from schemas.codec import Codec
from streams import metrics, topics
from streams.core.policy import Policy
from streams.processor import BankProcessor, BatchResult, LedgerProcessor, MatchingProcessor, Record, lag_seconds

log = structlog.get_logger(__name__)

BATCH_SIZE = 1000
BATCH_WITHIN = 0.05  # seconds to wait for a batch to fill


def create_app(settings: Settings, bootstrap: str, policy: Policy, codec: Codec) -> faust.App:
    app = faust.App(
        "dunning-worker",
        broker=f"kafka://{bootstrap}",
        store=settings.store,
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        # Short group timeouts: a group joins in seconds instead of minutes.
        broker_rebalance_timeout=10,
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
        broker_max_poll_interval=10,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=8192,
        web_enabled=False,
        table_standby_replicas=0,
    )

    def topic(spec: topics.TopicSpec) -> faust.TopicT:
        return app.topic(spec.name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", partitions=settings.partitions)

    def table(name: str) -> faust.Table:
        # Keys and values are bytes (the "raw" serializer) everywhere, so changelog
        # recovery restores them exactly as they were written.
        return app.Table(name, key_type=bytes, value_type=bytes, partitions=settings.partitions)

    debtor_states = table("debtor-state")
    references = table("payment-references")
    ledger = LedgerProcessor(codec, policy, settings.partitions)
    bank = BankProcessor(codec)
    matching = MatchingProcessor(codec)

    @app.agent(topic(topics.LEDGER), name="ledger")
    async def ledger_agent(stream):
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):
            records = _records(events)
            with metrics.BATCH_SECONDS.time():
                result = ledger.process(records, debtor_states.get, debtor_states.keys)
                _write(debtor_states, result)
            await _send(app, result)
            lag_seconds(records)

    @app.agent(topic(topics.BANK), name="bank")
    async def bank_agent(stream):
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):
            records = _records(events)
            await _send(app, bank.process(records))
            lag_seconds(records)

    @app.agent(topic(topics.MATCHING), name="matching")
    async def matching_agent(stream):
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):
            records = _records(events)
            result = matching.process(records, references.get)
            _write(references, result)
            await _send(app, result)
            lag_seconds(records)

    # Output topics are declared too, so they exist before anyone subscribes.
    for spec in (topics.ACTIONS, topics.ALERTS, topics.UNMATCHED, topics.SNAPSHOTS,
                 topics.DELIVERIES, topics.DEAD_LETTERS):
        topic(spec)
    return app


def _records(events: Iterable) -> list[Record]:
    return [
        Record(e.message.topic, e.message.partition, e.message.offset, e.key, e.value,
               e.message.timestamp, e)
        for e in events
    ]


def _write(table: faust.Table, result: BatchResult) -> None:
    """One table write per changed key, attributed to the event that last changed it, so the
    changelog record lands in that event's partition (Faust reads it from the context)."""
    for key, (value, record) in result.states.items():
        token = _current_event.set(weakref.ref(record.origin))
        try:
            table[key] = value
        finally:
            _current_event.reset(token)


async def _send(app: faust.App, result: BatchResult) -> None:
    if not result.outputs:
        return
    producer = app.producer
    pending = [
        await producer.send(out.topic, out.key, out.value, out.partition, None, None)
        for out in result.outputs
    ]
    await asyncio.gather(*pending)
