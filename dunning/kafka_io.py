"""Kafka clients outside Faust: topic creation, a producer, a batch consumer.

Everything here uses confluent-kafka (librdkafka). The producer uses the murmur2
partitioner, the Java and aiokafka default, so that a debtor's events land on the
partition the Faust worker expects.
"""

from __future__ import annotations

import time
from typing import Iterable

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams import topics

# The embedded broker joins a group in seconds only with short rebalance timeouts
# (librdkafka uses max.poll.interval.ms as the rebalance timeout).
GROUP_TIMEOUTS = {"session.timeout.ms": 10_000, "max.poll.interval.ms": 10_000, "heartbeat.interval.ms": 1_000}


def ensure_topics(bootstrap: str, partitions: int, specs: Iterable[topics.TopicSpec] = topics.ALL) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
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


def make_producer(bootstrap: str, **extra) -> Producer:
    config = {
        "bootstrap.servers": bootstrap,
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.max.bytes": topics.MAX_RECORD_BYTES + 64 * 1024,  # a dead letter carries the record it is about
    }
    config.update(extra)
    return Producer(config)


def consumer_config(bootstrap: str, **extra) -> dict:
    """A consumer group member's settings (the group id comes from its user)."""
    return {
        "bootstrap.servers": bootstrap,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        # The embedded broker holds a fetch it has no records for until the wait runs out,
        # even when records arrive: librdkafka's 500 ms would delay every e-mail that long.
        "fetch.wait.max.ms": 100,
        **GROUP_TIMEOUTS,
        **extra,
    }


def end_offsets(bootstrap: str, topic_names: list[str], timeout: float = 60.0) -> dict[tuple[str, int], int]:
    """The offset after the last record of each partition, read rather than asked for:
    the embedded broker reports a partition's end as the first offset of its last record
    batch + 1, so the reported end is only where reading starts. Each partition is read
    until the consumer reports its end (``enable.partition.eof``), not until a quiet
    moment: on a busy machine a fetch can take longer than any quiet moment would."""
    from confluent_kafka import TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "dunning-end-offsets",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        metadata = consumer.list_topics(timeout=10)
        ends: dict[tuple[str, int], int] = {}
        start = []
        for name in topic_names:
            for partition in metadata.topics[name].partitions:
                reported = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=10)[1]
                ends[(name, partition)] = reported
                if reported > 0:
                    start.append(TopicPartition(name, partition, reported - 1))
        if not start:
            return ends
        consumer.assign(start)
        open_partitions = {(tp.topic, tp.partition) for tp in start}
        deadline = time.monotonic() + timeout
        while open_partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(f"partitions {sorted(open_partitions)} not read to their end in {timeout} s")
            for message in consumer.consume(1000, 0.5):
                tp = (message.topic(), message.partition())
                if message.error() is not None:
                    open_partitions.discard(tp)  # end of partition reached
                    continue
                ends[tp] = max(ends[tp], message.offset() + 1)
        return ends
    finally:
        consumer.close()
