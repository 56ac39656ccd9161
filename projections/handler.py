"""The projector as a handler of the shared consumer loop (``streams.kafka.consumer_loop``):
a chunk of output events is one transaction. While the database is out of reach the
chunk is tried again until it is back; a record the database refuses for good (a value
it cannot store) is dead-lettered and the read models go on."""

from __future__ import annotations

import time

from projections import metrics
from projections.db import is_transient_database_error
from projections.projector import Projector
from schemas import topics
from streams.kafka import faults
from streams.kafka.consumer_loop import Incoming

PROJECTED = (topics.ACTIONS, topics.ALERTS, topics.UNMATCHED, topics.SNAPSHOTS, topics.DELIVERIES)


class ProjectorHandler:
    group = "dunning-projector"
    topics = PROJECTED
    chunk_size = 2000
    retry_for = None  # the read models wait for their database, however long it takes

    def __init__(self, projector: Projector):
        self.projector = projector

    def handle(self, records: list[Incoming]) -> list[object]:
        self.projector.apply_batch([record.event for record in records])
        now = time.time()
        for record in records[::max(1, len(records) // 16)]:  # a few samples: a chunk's records lag alike
            if record.timestamp:
                metrics.EVENT_LAG_SECONDS.observe(max(0.0, now - record.timestamp))
        return []

    def is_transient(self, error: BaseException) -> bool:
        return is_transient_database_error(error) or faults.is_transient(error)

    def give_up(self, record: Incoming, reason: str) -> list[object]:
        return []
