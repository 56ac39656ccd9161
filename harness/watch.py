"""A reader of the platform's own topics, for the demo, the benchmark and the tests:
it follows what the worker has produced, without joining a consumer group."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Callable

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from schemas import topics
from schemas.codec import Codec, DecodeError
from streams.kafka.clients import base_config, end_offsets


class TopicWatcher:
    """Reads the given topics from the beginning (or, ``from_end``, only what comes next) in a
    background thread and hands each decoded event to ``seen``; also keeps them by type
    for simple questions, unless ``keep`` is False (large events, many of them)."""

    def __init__(self, bootstrap: str, codec: Codec, topic_names: list[str],
                 seen: Callable[[object, float], None] | None = None, from_end: bool = False, keep: bool = True):
        self.codec = codec
        self.keep = keep
        self.topic_names = topic_names
        self.by_type: dict[str, list] = defaultdict(list)
        self._callback = seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # A short fetch wait: the embedded broker holds an empty fetch that long even when
        # records arrive meanwhile, which would count as the platform's latency.
        config = {**base_config(bootstrap), "group.id": "dunning-watch", "fetch.wait.max.ms": 10,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        self._consumer = Consumer(config)
        self._bootstrap = bootstrap
        metadata = self._consumer.list_topics(timeout=10)
        self._partitions = [(name, p) for name in topic_names for p in metadata.topics[name].partitions]
        start = OFFSET_END if from_end else OFFSET_BEGINNING
        self._consumer.assign([TopicPartition(name, p, start) for name, p in self._partitions])
        self._next_offset: dict[tuple[str, int], int] = {}
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
                    event = None  # not ours to judge here; it still counts as read
                received = time.time()
                with self._lock:
                    if event is not None and self.keep:
                        self.by_type[type(event).__name__].append(event)
                    self._next_offset[(message.topic(), message.partition())] = message.offset() + 1
                if self._callback and event is not None:
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

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Wait until everything on the watched topics as of now has been read."""
        ends = end_offsets(self._bootstrap, self.topic_names)

        def caught_up(_) -> bool:
            with self._lock:
                return all(self._next_offset.get(tp, 0) >= end for tp, end in ends.items() if end > 0)

        self.wait_for(caught_up, timeout, "the watched topics to be read to their end")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def pipeline_watcher(bootstrap: str, codec: Codec, **kwargs) -> TopicWatcher:
    names = [topics.LEDGER.name, topics.MATCHING.name, topics.UNMATCHED.name, topics.ACTIONS.name,
             topics.ALERTS.name, topics.SNAPSHOTS.name, topics.DEAD_LETTERS.name, topics.DELIVERIES.name]
    return TopicWatcher(bootstrap, codec, names, **kwargs)
