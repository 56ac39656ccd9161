"""Prometheus metrics of every consumer of the platform: the Faust worker and each process
on the consumer loop count the records they refuse and the failures they wait out here.
What only the worker measures is in ``streams.worker.metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DEAD_LETTERS = Counter("dunning_dead_letters_total", "Events sent to the dead-letter topic", ["topic", "field"])
TOMBSTONES = Counter("dunning_tombstones_skipped_total", "Records with no value (tombstones), skipped", ["topic"])
CONSUMER_RETRIES = Counter(
    "dunning_consumer_retries_total", "Chunks a consumer tried again after a failure that may pass", ["group"]
)
CONSUMER_LAG = Gauge(
    "dunning_consumer_lag", "Records on the topic not yet committed by the consumer group, summed over its partitions",
    ["group", "topic"],
)
