"""Publishing input events to their topics: what ``dunning publish`` and the demo use.

Each event type goes to its topic (``streams.topics.INPUT_TOPIC``) keyed by debtor id
(bank transactions by transaction id); a DayStarted goes to every ledger partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from confluent_kafka import Producer

from dunning.kafka_io import make_producer
from schemas.codec import Codec
from schemas.json_form import JsonFormError, parse_json_line
from streams import topics
from streams.core import events as ev


class Publisher:
    def __init__(self, bootstrap: str, codec: Codec, partitions: int, producer: Producer | None = None):
        self.codec = codec
        self.partitions = partitions
        self.producer = producer or make_producer(bootstrap)

    def publish(self, event) -> None:
        spec = topics.INPUT_TOPIC.get(type(event))
        if spec is None:
            raise ValueError(f"{type(event).__name__} is not an input event")
        value = self.codec.encode(spec.name, event)
        if isinstance(event, ev.DayStarted):
            for partition in range(self.partitions):
                self._produce(spec.name, None, value, partition)
            return
        self._produce(spec.name, topics.key_of(event).encode(), value, None)

    def publish_all(self, events: Iterable) -> int:
        count = 0
        for event in events:
            self.publish(event)
            count += 1
        self.flush()
        return count

    def _produce(self, topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
        kwargs = {"partition": partition} if partition is not None else {}
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, **kwargs)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self.producer.poll(0.1)
        self.producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self.producer.flush(timeout)
        if remaining:
            raise TimeoutError(f"{remaining} records were not delivered within {timeout} s")


@dataclass
class FileReport:
    published: int = 0
    errors: list[JsonFormError] = field(default_factory=list)


def read_events(path: Path) -> tuple[list, list[JsonFormError]]:
    """Events of a JSON-lines file, and the errors of the lines that are not valid."""
    events, errors = [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                events.append(parse_json_line(line, number))
            except JsonFormError as exc:
                errors.append(exc)
    return events, errors


def publish_file(publisher: Publisher, path: Path) -> FileReport:
    """Publishes every valid line; each invalid line is reported and nothing of it is sent."""
    events, errors = read_events(path)
    return FileReport(publisher.publish_all(events), errors)
