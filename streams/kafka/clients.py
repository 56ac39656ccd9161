"""Every Kafka client of the platform is made here: the worker's, the publisher's, the
consumer loop's, the admin's. All are confluent-kafka (librdkafka), which logs through
the ``librdkafka`` logger (JSON, like every other line), and produce with the murmur2
partitioner, the Java and aiokafka default, so that a debtor's records land on the
partition the Faust worker expects.

Two profiles (``KAFKA_PROFILE``): ``kafka`` leaves the clients' defaults (librdkafka's for
the consumer loop, Faust's for the worker), which suit a real cluster; ``embedded`` has the
short group timeouts and the workarounds the embedded broker needs (``harness.embedded``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from schemas import topics

LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
MAX_REQUEST_BYTES = topics.MAX_RECORD_BYTES + 64 * 1024  # a dead letter carries the record it is about
QUEUE_FULL_PAUSE = 0.05


@dataclass(frozen=True)
class Profile:
    name: str
    consumer: dict = field(default_factory=dict)  # librdkafka consumer settings
    faust: dict = field(default_factory=dict)  # faust.App settings of the worker
    fetch_max_wait_ms: Optional[int] = None  # the worker's fetch wait; None: Faust's 1,500 ms
    # Repeat the last changelog record of each partition in a produce request of its own
    # (``streams.worker.app._seal_changelog``): the embedded broker reports a partition's
    # end as the first offset of its last record batch + 1.
    seal_changelog: bool = False
    # How often the worker commits what it has done. A day tick waits until the worker has
    # committed everything before it (``streams.kafka.progress``), three stages in a row.
    commit_interval_seconds: float = 1.0


EMBEDDED = Profile(
    "embedded",
    consumer={
        # A group joins in seconds only with short rebalance timeouts (librdkafka uses
        # max.poll.interval.ms as the rebalance timeout); the consumer loop polls often.
        "session.timeout.ms": 10_000, "max.poll.interval.ms": 10_000, "heartbeat.interval.ms": 1_000,
        # A fetch with no records is answered only when its wait runs out, even when
        # records arrive meanwhile: librdkafka's 500 ms would delay every e-mail that long.
        "fetch.wait.max.ms": 100,
    },
    faust={
        "broker_rebalance_timeout": 10,
        "broker_session_timeout": 10,
        "broker_heartbeat_interval": 1,
    },
    fetch_max_wait_ms=50,
    seal_changelog=True,
    commit_interval_seconds=0.2,  # replays and tests tick many days a minute
)
KAFKA = Profile("kafka")
PROFILES = {profile.name: profile for profile in (EMBEDDED, KAFKA)}


def base_config(bootstrap: str) -> dict:
    return {"bootstrap.servers": bootstrap, "logger": LIBRDKAFKA_LOG}


def producer_config(bootstrap: str, **extra) -> dict:
    return {
        **base_config(bootstrap),
        "partitioner": "murmur2_random",
        "enable.idempotence": True,  # in order per partition, also across retries
        "linger.ms": 5,
        "message.max.bytes": MAX_REQUEST_BYTES,
        **extra,
    }


def make_producer(bootstrap: str, **extra) -> Producer:
    return Producer(producer_config(bootstrap, **extra))


def consumer_config(bootstrap: str, profile: Profile, **extra) -> dict:
    """A consumer group member's settings (the group id comes from its user)."""
    return {
        **base_config(bootstrap),
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        **profile.consumer,
        **extra,
    }


def make_admin(bootstrap: str) -> AdminClient:
    return AdminClient(base_config(bootstrap))


def produce(producer: Producer, topic: str, value: bytes, key: Optional[bytes], partition: Optional[int] = None,
            on_delivery: Optional[Callable] = None, while_full: Optional[Callable[[], None]] = None) -> None:
    """Hand one record to librdkafka. While its queue is full, serve delivery reports
    (``while_full``, by default a short ``poll``) and try again: the queue drains as the
    broker acknowledges. (The worker's producer waits with ``await`` instead,
    ``streams.kafka.producer``.)"""
    kwargs = {} if partition is None else {"partition": partition}
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery, **kwargs)
            return
        except BufferError:
            if while_full is None:
                producer.poll(QUEUE_FULL_PAUSE)
            else:
                while_full()


def ensure_topics(bootstrap: str, partitions: int, specs: Iterable[topics.TopicSpec] = topics.ALL) -> None:
    admin = make_admin(bootstrap)
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(spec.name, partitions, 1,
                 config={**topics.TOPIC_CONFIG, **({"cleanup.policy": "compact"} if spec.compacted else {})})
        for spec in specs
        if spec.name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted).items():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise


def end_offsets(bootstrap: str, topic_names: list[str], timeout: float = 60.0) -> dict[tuple[str, int], int]:
    """The offset after the last record of each partition of ``topic_names`` (``EndReader``)."""
    reader = EndReader(bootstrap)
    try:
        return reader.read(topic_names, timeout)
    finally:
        reader.close()


class EndReader:
    """Reads where partitions end, rather than asking: the embedded broker reports a
    partition's end as the first offset of its last record batch + 1, so the reported end
    is only where reading starts. Each partition is read until the consumer reports its
    end (``enable.partition.eof``), not until a quiet moment: on a busy machine a fetch can
    take longer than any quiet moment would. One reader serves many reads (a day tick
    reads the ends of the worker's topics several times)."""

    def __init__(self, bootstrap: str):
        # A fetch at the end is answered only when its wait runs out (on the embedded
        # broker): a short wait, so that reaching the end takes milliseconds.
        self.consumer = Consumer({**base_config(bootstrap), "group.id": "dunning-end-offsets",
                                  "enable.auto.commit": False, "enable.partition.eof": True,
                                  "fetch.wait.max.ms": 10})
        self._partitions: dict[str, list[int]] = {}

    def read(self, topic_names: list[str], timeout: float = 60.0) -> dict[tuple[str, int], int]:
        consumer = self.consumer
        missing = [name for name in topic_names if name not in self._partitions]
        if missing:
            metadata = consumer.list_topics(timeout=10)
            for name in missing:
                self._partitions[name] = sorted(metadata.topics[name].partitions)
        ends: dict[tuple[str, int], int] = {}
        start = []
        for name in topic_names:
            for partition in self._partitions[name]:
                reported = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=10)[1]
                ends[(name, partition)] = reported
                if reported > 0:
                    start.append(TopicPartition(name, partition, reported - 1))
        if not start:
            return ends
        consumer.assign(start)
        try:
            open_partitions = {(tp.topic, tp.partition) for tp in start}
            deadline = time.monotonic() + timeout
            while open_partitions:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"partitions {sorted(open_partitions)} not read to their end in {timeout} s")
                # consume() waits for all 1,000 or its timeout: a short timeout, called again.
                for message in consumer.consume(1000, 0.02):
                    tp = (message.topic(), message.partition())
                    if message.error() is not None:
                        open_partitions.discard(tp)  # end of partition reached
                        continue
                    ends[tp] = max(ends[tp], message.offset() + 1)
        finally:
            consumer.unassign()  # no fetching between reads
        return ends

    def close(self) -> None:
        self.consumer.close()
