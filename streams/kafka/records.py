"""Records as every consumer of the platform sees them, and the two things each does with
one: decode it into an event that belongs on its topic, or dead-letter it with the reason.
The Faust worker (``streams.worker.processor``) and the consumer loop
(``streams.kafka.consumer_loop``) share these, so a record is refused alike everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from aiokafka.partitioner import murmur2

from schemas import topics
from schemas.codec import Codec, DecodeError
from streams.core import events as ev


@dataclass(slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]  # None: a tombstone
    timestamp: float  # seconds since the epoch, from the record
    origin: Any = None  # the Faust message, so its state write lands in its partition


@dataclass(slots=True)
class Output:
    topic: str
    key: Optional[bytes]
    value: bytes
    partition: Optional[int] = None


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the murmur2 partitioner (Java, aiokafka, librdkafka murmur2) picks."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def outputs_of(codec: Codec, event: object) -> list[Output]:
    """An output event as the records to produce: its topic, its key (or keys,
    ``topics.keys_of``), its value, encoded once."""
    topic = topics.output_topic(event).name
    value = codec.encode(topic, event)
    return [Output(topic, key.encode() if key is not None else None, value) for key in topics.keys_of(event)]


class Unusable(ValueError):
    """A record that can never become an event of its topic; ``field`` labels the dead letter."""

    def __init__(self, reason: str, field: str):
        super().__init__(reason)
        self.reason, self.field = reason, field


def decode_for(codec: Codec, topic: str, value: bytes, allowed: tuple[type, ...]) -> object:
    """The event in ``value``, when it decodes and belongs on ``topic``; ``Unusable``
    otherwise. A registry out of reach is not the record's fault: that ``DecodeError``
    (``transient``) is raised as it is, to be tried again."""
    try:
        event = codec.decode(value)
    except DecodeError as exc:
        if exc.transient:
            raise
        raise Unusable(f"cannot decode: {exc}", "decode") from exc
    if not isinstance(event, allowed):
        raise Unusable(f"{type(event).__name__} does not belong on {topic}", "type")
    return event


MAX_REASON_LENGTH = 2000  # a reason names what is wrong in its first words
# A dead letter must fit where its record did: an original this large stays where it was.
MAX_ORIGINAL_BYTES = topics.MAX_RECORD_BYTES - 64 * 1024


def dead_letter_for(topic: str, partition: int, offset: int, key: Optional[bytes], value: bytes,
                    reason: str) -> ev.DeadLetter:
    """What goes to the dead-letter topic: where the record was, why, and its original bytes."""
    reason = reason[:MAX_REASON_LENGTH]
    if len(value) > MAX_ORIGINAL_BYTES:
        reason += f" (the original, {len(value):,} bytes, is not copied: it is at {topic} {partition}/{offset})"
        value = b""
    return ev.DeadLetter(
        event_id=f"dead:{topic}:{partition}:{offset}",
        source_topic=topic,
        partition=partition,
        offset=offset,
        reason=reason,
        original_key=key,
        original_value=value,
        failed_at=datetime.now(timezone.utc),
    )


def dead_letter_output(codec: Codec, record: Record, reason: str) -> Output:
    letter = dead_letter_for(record.topic, record.partition, record.offset, record.key, record.value or b"", reason)
    return Output(topics.DEAD_LETTERS.name, record.key, codec.encode(topics.DEAD_LETTERS.name, letter))
