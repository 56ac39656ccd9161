"""A reader of the platform's own topics, for the demo, the benchmark and the tests:
it follows what the worker has produced, without joining a consumer group."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from schemas.codec import Codec, DecodeError
from streams import topics


class TopicWatcher:
    """Reads the given topics from the beginning in a background thread and hands each
    decoded event to ``seen``; also keeps them by type for simple questions."""

    def __init__(self, bootstrap: str, codec: Codec, topic_names: list[str],
                 seen: Callable[[object, float], None] | None = None):
        self.codec = codec
        self.topic_names = topic_names
        self.by_type: dict[str, list] = defaultdict(list)
        self._callback = seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "dunning-watch",
                                   "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        metadata = self._consumer.list_topics(timeout=10)
        self._consumer.assign([
            TopicPartition(name, p, OFFSET_BEGINNING)
            for name in topic_names
            for p in metadata.topics[name].partitions
        ])
        self._thread = threading.Thread(target=self._run, name="topic-watcher", daemon=True)

    def start(self) -> "TopicWatcher":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(1000, 0.1):
                if message.error() is not None:
                    continue
                try:
                    event = self.codec.decode(message.value())
                except DecodeError:
                    continue
                received = time.time()
                with self._lock:
                    self.by_type[type(event).__name__].append(event)
                if self._callback:
                    self._callback(event, received)
        self._consumer.close()

    def events(self, type_name: str) -> list:
        with self._lock:
            return list(self.by_type.get(type_name, ()))

    def wait_for(self, condition: Callable[["TopicWatcher"], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def pipeline_watcher(bootstrap: str, codec: Codec, **kwargs) -> TopicWatcher:
    names = [topics.LEDGER.name, topics.MATCHING.name, topics.UNMATCHED.name, topics.ACTIONS.name,
             topics.ALERTS.name, topics.SNAPSHOTS.name, topics.DEAD_LETTERS.name, topics.DELIVERIES.name]
    return TopicWatcher(bootstrap, codec, names, **kwargs)
