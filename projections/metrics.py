"""Prometheus metrics of the projector (its consumer lag is ``dunning_consumer_lag``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ROWS_WRITTEN = Counter("dunning_projection_rows_written", "Read-model rows inserted or updated, by table",
                       ["table"])
EVENT_LAG_SECONDS = Histogram(
    "dunning_projection_lag_seconds",
    "From an event's record timestamp until its read-model rows are committed",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
