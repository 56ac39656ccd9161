"""The business clock against the embedded broker: one DayStarted per partition per date,
and metrics that say how many ticks went out and which business date was last."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from prometheus_client import REGISTRY

from connectors.clock import run_range
from connectors.publisher import Publisher
from harness.embedded import EmbeddedBroker
from harness.watch import TopicWatcher
from schemas import topics
from schemas.codec import Codec
from streams.kafka.clients import ensure_topics

pytestmark = [pytest.mark.broker]
PARTITIONS = 4


def test_a_range_of_days_reaches_every_partition_and_the_metrics():
    codec = Codec()
    ticks_before = REGISTRY.get_sample_value("dunning_clock_ticks_total") or 0
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, PARTITIONS)
        watcher = TopicWatcher(broker.bootstrap, codec, [topics.LEDGER.name]).start()
        try:
            run_range(Publisher(broker.bootstrap, codec, PARTITIONS), date(2025, 3, 1), days=3, interval=0)
            watcher.wait_for(lambda w: len(w.events("DayStarted")) == 3 * PARTITIONS, 30, "the ticks")
        finally:
            watcher.stop()

    dates = sorted(tick.business_date for tick in watcher.events("DayStarted"))
    assert dates == [date(2025, 3, day) for day in (1, 2, 3) for _ in range(PARTITIONS)]
    assert REGISTRY.get_sample_value("dunning_clock_ticks_total") - ticks_before == 3
    last = datetime(2025, 3, 3, tzinfo=timezone.utc).timestamp()
    assert REGISTRY.get_sample_value("dunning_clock_business_date_timestamp_seconds") == last
