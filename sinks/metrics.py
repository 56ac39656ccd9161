"""Prometheus metrics of the sinks, registered once when the module is imported."""

from __future__ import annotations

from prometheus_client import Counter

# Exposed as dunning_sink_messages_total{channel,status}. Status is the delivery
# status ("sent", "recorded", "failed", "skipped"), except that a redelivered action
# that was sent before counts as "duplicate", so "sent" counts real sends only.
MESSAGES = Counter(
    "dunning_sink_messages",
    "Dunning actions handled by the channel sink, by channel and delivery status.",
    ["channel", "status"],
)
