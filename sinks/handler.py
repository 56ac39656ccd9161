"""The channel sink as a handler of the shared consumer loop (``streams.kafka.consumer_loop``):
one action at a time, so that its offset is committed right after it is sent, and a
slow mail server holds up one action, never the consumer group."""

from __future__ import annotations

from typing import Optional

from projections.db import is_transient_database_error
from schemas import topics
from sinks.channels import ChannelSink, SendDeferred
from streams.kafka import faults
from streams.kafka.consumer_loop import Incoming


class SinkHandler:
    group = "dunning-sink"
    topics = (topics.ACTIONS,)
    chunk_size = 1

    def __init__(self, sink: ChannelSink, retry_for: Optional[float]):
        self.sink = sink
        self.retry_for = retry_for

    def handle(self, records: list[Incoming]) -> list[object]:
        return [self.sink.handle(record.event) for record in records]

    def is_transient(self, error: BaseException) -> bool:
        return isinstance(error, SendDeferred) or is_transient_database_error(error) \
            or faults.is_transient(error)

    def give_up(self, record: Incoming, reason: str) -> list[object]:
        return [self.sink.failed(record.event, reason)]
