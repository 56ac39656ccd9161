"""Prometheus metrics of the stream worker (what every consumer counts is in ``streams.kafka.metrics``)."""

from __future__ import annotations

import collections

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("dunning_events_in_total", "Events consumed, by topic and type", ["topic", "type"])
OUTPUTS = Counter("dunning_outputs_total", "Events produced, by type", ["type"])
ACTIONS = Counter("dunning_actions_total", "Dunning actions emitted, by workflow, step (its name) and channel",
                  ["workflow", "step", "channel"])
BATCH_FAILURES = Counter(
    "dunning_batch_failures_total", "Batches whose processing failed and that are tried again after a pause", ["topic"]
)
BATCH_SECONDS = Histogram(
    "dunning_batch_seconds", "Time to process one batch of events",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENT_LAG_SECONDS = Histogram(
    "dunning_event_lag_seconds",
    "From a record's timestamp until its batch's outputs and state are on the broker (up to 64 records a batch)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
OPEN_AMOUNT = Gauge("dunning_open_amount_minor", "Open amount of the debtors this worker owns", ["currency"])
OVERDUE_AMOUNT = Gauge("dunning_overdue_amount_minor", "Overdue amount of the debtors this worker owns", ["currency"])
DEBTORS = Gauge("dunning_debtors", "Debtors whose state this worker holds")
LAST_DAY_STARTED = Gauge(
    "dunning_last_day_started_timestamp_seconds",
    "When this worker last applied a DayStarted tick (wall clock, seconds since the epoch)",
)


class Tally:
    """Increments gathered over a batch and published at once: a metric's ``labels()``
    takes a lock and a lookup, too much to do for every event. Gauges take negative
    amounts too."""

    def __init__(self) -> None:
        self._amounts: collections.Counter = collections.Counter()

    def add(self, metric, *labels: str, amount: float = 1) -> None:
        self._amounts[metric, labels] += amount

    def publish(self) -> None:
        for (metric, labels), amount in self._amounts.items():
            if amount:
                (metric.labels(*labels) if labels else metric).inc(amount)
        self._amounts.clear()
