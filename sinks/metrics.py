"""Prometheus metrics of the sinks, registered once when the module is imported."""

from __future__ import annotations

from prometheus_client import Counter

# Exposed as dunning_sink_messages_total{channel,status}. Status is the delivery
# status ("sent", "recorded", "failed", "skipped", "deferred": tried again later), except that a redelivered action
# that was sent before counts as "duplicate", so "sent" counts real sends only.
MESSAGES = Counter(
    "dunning_sink_messages",
    "Dunning actions handled by the channel sink, by channel and delivery status.",
    ["channel", "status"],
)

# The messages sent again after an attempt that handed them over died before the server
# answered: each may have reached the debtor twice (same Message-ID). See sinks.outbox.
UNCERTAIN_RESENDS = Counter(
    "dunning_sink_uncertain_resends",
    "Messages sent again after an attempt that may have delivered them died before the server answered.",
    ["channel"],
)
