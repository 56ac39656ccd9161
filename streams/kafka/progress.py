"""How far a consumer group has got: what a day tick waits for before it goes out.

A group has processed a topic when it has committed every partition up to the partition's
end (``clients.EndReader``: read rather than asked for). The stream worker commits a record
only once its outputs are on the broker; so once it has committed its topics
(``schemas.topics.WORKER_INPUTS``) to ends that did not move meanwhile, every payment
published before the tick has met every reference issued before it, and its match is on
the ledger ahead of the tick.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Optional

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas import topics
from streams.kafka.clients import EndReader, end_offsets, make_admin

POLL_SECONDS = 0.05
SAY_EVERY_SECONDS = 30.0


def processed(admin: AdminClient, bootstrap: str, group: str, names: Iterable[str],
              ends: Optional[dict[tuple[str, int], int]] = None) -> bool:
    """``group`` has committed every partition of the topics ``names`` up to ``ends`` (by
    default their ends now)."""
    names = list(names)
    ends = end_offsets(bootstrap, names) if ends is None else ends
    if not any(ends.values()):
        return True
    committed = committed_offsets(admin, group, ends)
    return all(committed.get(tp, -1) >= end for tp, end in ends.items() if end > 0)


def committed_offsets(admin: AdminClient, group: str, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """The offsets ``group`` committed on ``partitions`` (-1 or absent: none)."""
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(name, p) for name, p in partitions])
    result = admin.list_consumer_group_offsets([request])[group].result()
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}


class WorkerProgress:
    """Waits until the stream worker has processed everything published so far: call it
    before publishing a day tick. It reads the ends of the worker's topics, waits until the
    group has committed them, and reads the ends again: when nothing was added meanwhile
    (no hop the worker sent itself, from the ledger to the matcher or back), everything is
    processed; otherwise it goes round again. It waits as long as it takes (a worker that is
    down holds the clock back, as it should: the day's payments are not applied yet);
    ``waiting(seconds)`` hears every ``SAY_EVERY_SECONDS``."""

    def __init__(self, bootstrap: str, group: str = topics.WORKER_GROUP,
                 inputs: tuple[topics.TopicSpec, ...] = topics.WORKER_INPUTS,
                 waiting: Callable[[float], None] = lambda seconds: None, timeout: Optional[float] = None):
        self.bootstrap, self.group, self.names = bootstrap, group, [spec.name for spec in inputs]
        self.waiting, self.timeout = waiting, timeout
        self._admin: AdminClient | None = None
        self._reader: EndReader | None = None

    def between_phases(self) -> None:
        """Before the second phase of a tick (``connectors.publisher``): waits as ``__call__``
        does, unless the worker has never committed anything. Then it has parked no payment
        for the first phase to send on, and a first tick published before any worker runs
        does not wait for one."""
        admin = self._admin = self._admin or make_admin(self.bootstrap)
        ends = end_offsets(self.bootstrap, self.names)
        if any(offset >= 0 for offset in committed_offsets(admin, self.group, ends).values()):
            self()

    def __call__(self) -> None:
        admin = self._admin = self._admin or make_admin(self.bootstrap)
        reader = self._reader = self._reader or EndReader(self.bootstrap)
        started = said = time.monotonic()
        ends = reader.read(self.names)
        while True:
            while not processed(admin, self.bootstrap, self.group, self.names, ends):
                now = time.monotonic()
                if self.timeout is not None and now - started > self.timeout:
                    raise TimeoutError(f"the worker ({self.group}) did not process {', '.join(self.names)} "
                                       f"within {self.timeout:g} s")
                if now - said >= SAY_EVERY_SECONDS:
                    said = now
                    self.waiting(now - started)
                time.sleep(POLL_SECONDS)
            again = reader.read(self.names)
            if again == ends:
                return
            ends = again
