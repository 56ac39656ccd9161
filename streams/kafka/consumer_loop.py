"""The one consumer loop of every process outside the Faust worker: the channel sink, the
projector, and each later channel or read model is a ``Handler`` plugged into it.

What the loop owns, so that no handler has to get it right alone:

- decoding: a tombstone (a record with no value) is skipped and counted; a record that
  does not decode, or whose type does not belong on its topic, is dead-lettered;
- retry: a failure that may pass (``Handler.is_transient``: the database, the mail server,
  the schema registry or the broker out of reach) is tried again after a growing pause,
  for ``Handler.retry_for`` seconds (None: until it passes), then given up;
- what cannot succeed: a failure that is not transient is narrowed down to its record
  (each record of the chunk alone); that record, or one given up on, is dead-lettered
  with the reason, ``Handler.give_up`` adds what else to record, and the loop goes on;
- group membership while it waits: the handler runs in a thread of its own while the
  loop keeps polling the consumer with its partitions paused, so neither a slow send
  nor a long retry makes the member miss ``max.poll.interval.ms`` and lose its partitions;
- commits: a chunk's offsets are committed once its outputs are on the broker. A crash
  repeats what was not committed; handlers take repeats as no-ops (outbox, upserts);
- a rebalance: what is left of a fetch for partitions taken away is left to their next
  owner; a chunk whose handler call is on its way finishes (its commit may be refused:
  the next owner then does it again, a no-op), one waiting to be tried again is abandoned;
- stopping: SIGTERM or SIGINT ends the loop within ``STOP_GRACE_SECONDS``: the chunk in
  hand finishes, or is abandoned uncommitted and done again after the restart.
"""

from __future__ import annotations

import contextvars
import json
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Protocol

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from schemas import topics
from schemas.codec import Codec
from streams.kafka import metrics
from streams.kafka.clients import produce
from streams.kafka.faults import describe, retry_pause
from streams.kafka.records import Unusable, dead_letter_for, decode_for, outputs_of

log = structlog.get_logger(__name__)

POLL_SECONDS = 0.1  # how often the loop polls the consumer while a handler works or waits
STOP_GRACE_SECONDS = 5.0
STATISTICS_MS = 5000  # how often librdkafka reports the consumer lag
FLUSH_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    event: object
    timestamp: float = 0.0  # seconds since the epoch, from the record


class Handler(Protocol):
    group: str  # the consumer group
    topics: tuple[topics.TopicSpec, ...]
    chunk_size: int  # records per call of ``handle``; offsets are committed after each call
    retry_for: Optional[float]  # seconds a passing failure is tried again; None: until it passes

    def handle(self, records: list[Incoming]) -> list[object]:
        """Do the work for ``records``, idempotently; return the events to produce (each
        goes to its topic, ``schemas.topics.OUTPUT_TOPIC``)."""

    def is_transient(self, error: BaseException) -> bool:
        """Whether trying again later may succeed."""

    def give_up(self, record: Incoming, reason: str) -> list[object]:
        """What to record besides the dead letter when ``record`` cannot be done."""


class Abandoned(Exception):
    """The chunk in hand is left uncommitted: the loop is stopping, or lost its partitions."""


class _Failed(Exception):
    def __init__(self, error: BaseException, given_up: bool):
        super().__init__(str(error))
        self.error, self.given_up = error, given_up


class ConsumerLoop:
    def __init__(self, consumer_config: dict, producer: Producer, codec: Codec, handler: Handler,
                 fetch_size: int = 500):
        self.handler = handler
        self.codec = codec
        self.producer = producer
        self.fetch_size = fetch_size
        self.consumer = Consumer({**consumer_config, "group.id": handler.group, "enable.auto.commit": False,
                                  "statistics.interval.ms": STATISTICS_MS, "stats_cb": self._statistics})
        self.allowed = {spec.name: spec.types for spec in handler.topics}
        self.stopping = threading.Event()
        self._stop_requested_at: Optional[float] = None
        self._revoked: set[tuple[str, int]] = set()
        self._working = False  # a chunk is in hand: partitions assigned meanwhile start paused

    # ------------------------------------------------------------------ running

    def stop(self, *_signal) -> None:
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        """Consume until stopped (or ``until()`` is true); then leave the group."""
        self.consumer.subscribe(list(self.allowed), on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("consuming", group=self.handler.group, topics=sorted(self.allowed))
        try:
            while not self.stopping.is_set() and not until():
                messages = self.consumer.consume(self.fetch_size, 0.5)
                records = [m for m in messages if self._usable(m)]
                if records:
                    self._work_off(records)
        finally:
            self.consumer.close()
            self.producer.flush(FLUSH_SECONDS)
            log.info("stopped consuming", group=self.handler.group)

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error", group=self.handler.group, error=str(error))
        return False

    def _work_off(self, messages: list[Message]) -> None:
        assignment = self.consumer.assignment()
        self.consumer.pause(assignment)
        self._working = True
        self._revoked.clear()
        size = max(1, self.handler.chunk_size)
        done = 0
        try:
            for start in range(0, len(messages), size):
                chunk = [m for m in messages[start:start + size]
                         if (m.topic(), m.partition()) not in self._revoked]
                if chunk:
                    self._finish(chunk, self._process(chunk))
                done = start + size
        except Abandoned:
            if not self.stopping.is_set():
                self._rewind(messages[done:])
        finally:
            self._working = False
            self.consumer.resume(self.consumer.assignment())

    def _rewind(self, left: list[Message]) -> None:
        """Read again what was fetched and not done, on the partitions still held (those
        taken away are read by their next owner from the committed offsets)."""
        first: dict[tuple[str, int], int] = {}
        for message in left:
            tp = (message.topic(), message.partition())
            if tp not in self._revoked and tp not in first:
                first[tp] = message.offset()
        for (topic, partition), offset in first.items():
            self.consumer.seek(TopicPartition(topic, partition, offset))

    # ------------------------------------------------------------------ one chunk

    def _process(self, chunk: list[Message]) -> list[tuple[str, Optional[bytes], bytes]]:
        """The records to produce for ``chunk``: the handler's outputs and dead letters."""
        try:
            return self._attempt(chunk)
        except _Failed as failed:
            if len(chunk) == 1:
                return self._dead_letter(chunk[0], failed.error, given_up=failed.given_up)
            log.warning("chunk failed for good, tried again record by record", group=self.handler.group,
                        records=len(chunk), error=describe(failed.error))
            return [out for message in chunk for out in self._process([message])]

    def _attempt(self, chunk: list[Message]) -> list[tuple[str, Optional[bytes], bytes]]:
        """Decode ``chunk`` and hand it to the handler, tried again while its failure passes."""
        first_failure: Optional[float] = None
        failures = 0
        while True:
            try:
                out: list[tuple[str, Optional[bytes], bytes]] = []
                incoming = self._decode(chunk, out)
                if incoming:
                    out.extend(self._encode(self._call(self.handler.handle, incoming)))
                return out
            except Abandoned:
                raise
            except Exception as exc:  # noqa: BLE001 - sorted below
                transient = self.handler.is_transient(exc)
                now = time.monotonic()
                first_failure = first_failure or now
                retry_for = self.handler.retry_for
                if not transient or (retry_for is not None and now - first_failure >= retry_for):
                    raise _Failed(exc, given_up=transient) from exc
                pause = retry_pause(failures)
                failures += 1
                metrics.CONSUMER_RETRIES.labels(self.handler.group).inc()
                log.warning("failed, tried again after a pause", group=self.handler.group, records=len(chunk),
                            pause_seconds=pause, error=describe(exc))
                self._pause(pause, chunk)

    def _decode(self, chunk: list[Message], out: list) -> list[Incoming]:
        incoming = []
        for message in chunk:
            value = message.value()
            if value is None:
                metrics.TOMBSTONES.labels(message.topic()).inc()
                continue
            try:
                event = decode_for(self.codec, message.topic(), value, self.allowed[message.topic()])
            except Unusable as exc:
                out.extend(self._dead_letter(message, exc, field=exc.field))
                continue
            incoming.append(Incoming(message.topic(), message.partition(), message.offset(), message.key(), event,
                                     message.timestamp()[1] / 1000))
        return incoming

    def _encode(self, events: Iterable[object]) -> list[tuple[str, Optional[bytes], bytes]]:
        return [(output.topic, output.key, output.value) for event in events for output in outputs_of(self.codec, event)]

    def _dead_letter(self, message: Message, error: BaseException, given_up: bool = False,
                     field: str = "processing") -> list[tuple[str, Optional[bytes], bytes]]:
        if isinstance(error, Unusable):  # worded as the worker words it
            reason = error.reason
        else:
            reason = f"{'gave up' if given_up else 'cannot be processed'}: {describe(error)}"
        log.error("record dead-lettered", group=self.handler.group, topic=message.topic(),
                  partition=message.partition(), offset=message.offset(), reason=reason)
        metrics.DEAD_LETTERS.labels(message.topic(), field).inc()
        outputs: list[object] = []
        if field == "processing":
            try:
                record = Incoming(message.topic(), message.partition(), message.offset(), message.key(),
                                  self.codec.decode(message.value()))
                outputs = self._call(self.handler.give_up, record, reason)
            except Abandoned:
                raise
            except Exception as exc:  # noqa: BLE001 - the dead letter still goes out
                log.error("could not record the failure", group=self.handler.group, error=describe(exc))
        letter = dead_letter_for(message.topic(), message.partition(), message.offset(), message.key(),
                                 message.value() or b"", reason)
        return [*self._encode(outputs), *self._encode([letter])]

    def _finish(self, chunk: list[Message], outputs: list[tuple[str, Optional[bytes], bytes]]) -> None:
        """Outputs on the broker, then the chunk's offsets committed."""
        failures = 0
        while outputs:
            failed: list[tuple[str, Optional[bytes], bytes]] = []
            for record in outputs:
                self._produce(record, failed)
            while self.producer.flush(POLL_SECONDS):  # records still on their way
                self._keep_membership()
                self._abandon_if_stopped()
            if failed:  # the broker was out of reach for longer than the producer waits
                log.warning("outputs not delivered, sent again", group=self.handler.group, records=len(failed))
                self._pause(retry_pause(failures), chunk)
                failures += 1
            outputs = failed
        offsets: dict[tuple[str, int], int] = {}
        for message in chunk:
            offsets[message.topic(), message.partition()] = message.offset() + 1
        try:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                 asynchronous=False)
        except KafkaException as exc:  # partitions lost meanwhile: their next owner does the chunk again
            log.warning("commit refused", group=self.handler.group, error=str(exc))

    def _produce(self, record: tuple[str, Optional[bytes], bytes], failed: list) -> None:
        topic, key, value = record

        def report(error, _message) -> None:
            if error is not None:
                failed.append(record)

        def while_full() -> None:  # librdkafka's queue drains as the broker acknowledges
            self.producer.poll(0.05)
            self._keep_membership(0)

        produce(self.producer, topic, value, key, on_delivery=report, while_full=while_full)

    # ------------------------------------------------------------------ waiting

    def _call(self, function, *args):
        """``function(*args)`` in a thread of its own, polling the consumer meanwhile."""
        future: Future = Future()
        context = contextvars.copy_context()  # the log context (process name) goes along

        def run() -> None:
            try:
                future.set_result(context.run(function, *args))
            except BaseException as exc:  # noqa: BLE001 - handed to the loop
                future.set_exception(exc)

        threading.Thread(target=run, name=f"{self.handler.group}-handler", daemon=True).start()
        while not future.done():
            self._keep_membership()
            self._abandon_if_stopped()  # the thread may still finish; its work is idempotent
        return future.result()

    def _abandon_if_stopped(self) -> None:
        if self._stop_requested_at is not None and time.monotonic() - self._stop_requested_at > STOP_GRACE_SECONDS:
            raise Abandoned()

    def _pause(self, seconds: float, chunk: list[Message]) -> None:
        """Wait, polling; abandon ``chunk`` if the loop is stopping or lost its partitions."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.stopping.is_set():
                raise Abandoned()
            if any((m.topic(), m.partition()) in self._revoked for m in chunk):
                raise Abandoned()
            self._keep_membership(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))

    def _keep_membership(self, seconds: float = POLL_SECONDS) -> None:
        """Poll with the partitions paused: it serves the group (heartbeats, rebalances, the
        poll interval) and hands out no records, but for partitions assigned meanwhile,
        which are put back to be read later."""
        message = self.consumer.poll(seconds)
        if message is not None and message.error() is None:
            at = TopicPartition(message.topic(), message.partition(), message.offset())
            self.consumer.pause([at])
            self.consumer.seek(at)

    def _statistics(self, report: str) -> None:
        """From librdkafka's statistics: per topic, the records after the group's committed
        offset of each partition held (from the partition's start while nothing is committed,
        where librdkafka's own ``consumer_lag`` says -1)."""
        for topic, figures in json.loads(report).get("topics", {}).items():
            lag = 0
            for partition, held in figures.get("partitions", {}).items():
                high = held.get("hi_offset", -1)
                if partition == "-1" or high < 0 or held.get("fetch_state") == "none":  # not held
                    continue
                committed = held.get("committed_offset", -1)
                lag += max(0, high - (committed if committed >= 0 else max(held.get("lo_offset", 0), 0)))
            metrics.CONSUMER_LAG.labels(self.handler.group, topic).set(lag)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.assign(partitions)
        # Paused while a chunk is in hand; resumed otherwise: librdkafka keeps a partition
        # paused across its revocation, so one paused in the last assignment would stay so.
        (consumer.pause if self._working else consumer.resume)(partitions)
        log.info("partitions assigned", group=self.handler.group, partitions=len(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._revoked.update((tp.topic, tp.partition) for tp in partitions)
        log.info("partitions revoked", group=self.handler.group, partitions=len(partitions))
