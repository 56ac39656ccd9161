"""Replaying dead letters once their cause is fixed: ``dunning replay-dead-letters``.

Reads ``dunning.dead-letters`` from its beginning up to its end as of the start (what
arrives meanwhile, including the letters of records that fail again, is left for the
next replay), keeps the letters that match every filter given, and puts each one's
original key and value back on its source topic, in the partition it came from (a day
tick has no key; the partition is what placed it). Every event has a stable id, so a
record replayed twice, or one whose first attempt partly took effect, changes nothing
the second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterator, Optional

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.publisher import Publisher
from schemas import topics
from schemas.codec import Codec, DecodeError
from streams.core import events as ev
from streams.kafka.clients import base_config


@dataclass(frozen=True)
class LetterFilter:
    source_topic: Optional[str] = None
    reason_contains: Optional[str] = None  # case-insensitive
    key: Optional[str] = None
    since: Optional[datetime] = None  # failed at or after
    until: Optional[datetime] = None  # failed before

    def matches(self, letter: ev.DeadLetter) -> bool:
        key = (letter.original_key or b"").decode("utf-8", "replace")
        failed_at = letter.failed_at
        return ((self.source_topic is None or letter.source_topic == self.source_topic)
                and (self.reason_contains is None or self.reason_contains.lower() in letter.reason.lower())
                and (self.key is None or key == self.key)
                and (self.since is None or failed_at >= self.since)
                and (self.until is None or failed_at < self.until))


@dataclass
class ReplayReport:
    letters: int = 0  # read from the dead-letter topic
    matched: int = 0
    replayed: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    unreadable: int = 0  # letters that are not dead letters themselves
    not_copied: int = 0  # matching letters whose record was too large to copy: still on its topic

    def to_json(self) -> dict:
        return {"letters": self.letters, "matched": self.matched, "replayed": self.replayed,
                "by_topic": dict(sorted(self.by_topic.items())), "unreadable": self.unreadable,
                "not_copied": self.not_copied}


def read_letters(bootstrap: str, codec: Codec, ends: dict[tuple[str, int], int]) -> Iterator[Optional[ev.DeadLetter]]:
    """The dead letters up to ``ends`` (next offset per partition); None for a record that
    does not decode as one."""
    open_partitions = {tp: end for tp, end in ends.items() if end > 0}
    if not open_partitions:
        return
    consumer = Consumer({**base_config(bootstrap), "group.id": "dunning-replay-dead-letters",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    try:
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in open_partitions])
        while open_partitions:
            for message in consumer.consume(500, 1.0):
                if message.error() is not None:
                    continue
                tp = (message.topic(), message.partition())
                end = open_partitions.get(tp)
                if end is None or message.offset() >= end:
                    continue
                if message.offset() + 1 >= end:
                    del open_partitions[tp]
                try:
                    letter = codec.decode(message.value() or b"")
                except DecodeError:
                    letter = None
                yield letter if isinstance(letter, ev.DeadLetter) else None
    finally:
        consumer.close()


def replay(bootstrap: str, codec: Codec, publisher: Publisher, ends: dict[tuple[str, int], int],
           letter_filter: LetterFilter, dry_run: bool = False) -> ReplayReport:
    report = ReplayReport()
    replayable = {spec.name for spec in topics.ALL if spec is not topics.DEAD_LETTERS}
    for letter in read_letters(bootstrap, codec, ends):
        report.letters += 1
        if letter is None or letter.source_topic not in replayable:
            report.unreadable += letter is None
            continue
        if not letter_filter.matches(letter):
            continue
        report.matched += 1
        if not letter.original_value:  # too large to copy (see streams.worker.processor.dead_letter_for)
            report.not_copied += 1
            continue
        report.by_topic[letter.source_topic] = report.by_topic.get(letter.source_topic, 0) + 1
        if dry_run:
            continue
        publisher.send([(letter.source_topic, letter.original_key, letter.original_value, letter.partition)])
        report.replayed += 1
    publisher.wait()
    if publisher.failed:
        raise RuntimeError(f"{publisher.failed} replayed records were not delivered: {publisher.first_error}")
    return report
