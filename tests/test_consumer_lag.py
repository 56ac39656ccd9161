"""Every consumer group reports its lag per topic: the consumer loop from librdkafka's
statistics, the worker from its fetcher's high watermarks. Against the embedded broker."""

from __future__ import annotations

import threading

import pytest

from harness.embedded import EmbeddedBroker
from schemas import topics
from schemas.codec import Codec
from streams.core import events as ev
from streams.kafka import metrics
from streams.kafka.clients import EMBEDDED, consumer_config, ensure_topics, make_producer
from streams.kafka.consumer_loop import ConsumerLoop, Incoming
from tests.support import wait_until

pytestmark = [pytest.mark.broker]
RECORDS = 30


class HeldHandler:
    """Takes one record at a time and holds the first until released."""

    group = "lag-test"
    topics = (topics.DELIVERIES,)
    chunk_size = 1
    retry_for = None

    def __init__(self) -> None:
        self.release = threading.Event()
        self.handled: list[Incoming] = []

    def handle(self, records: list[Incoming]) -> list[object]:
        self.release.wait(120)
        self.handled.extend(records)
        return []

    def is_transient(self, error: BaseException) -> bool:
        return False

    def give_up(self, record: Incoming, reason: str) -> list[object]:
        return []


def lag() -> float:
    return metrics.CONSUMER_LAG.labels(HeldHandler.group, topics.DELIVERIES.name)._value.get()


def test_the_consumer_loop_reports_its_lag_per_topic_and_it_falls_to_zero():
    from datetime import datetime, timezone

    codec = Codec()
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, 1, [topics.DELIVERIES, topics.DEAD_LETTERS])
        producer = make_producer(broker.bootstrap)
        for n in range(RECORDS):
            result = ev.DeliveryResult(f"delivery:a{n}:sent", f"a{n}", "D1", "email", "sent",
                                       datetime(2026, 1, 1, tzinfo=timezone.utc))
            producer.produce(topics.DELIVERIES.name, key=f"a{n}".encode(),
                             value=codec.encode(topics.DELIVERIES.name, result))
        assert producer.flush(30) == 0

        handler = HeldHandler()
        loop = ConsumerLoop(consumer_config(broker.bootstrap, EMBEDDED), make_producer(broker.bootstrap), codec,
                            handler, fetch_size=100)
        runner = threading.Thread(target=loop.run, daemon=True)
        runner.start()
        try:
            # Held on the first record: nothing committed, the whole topic is lag.
            wait_until(lambda: lag() == RECORDS, 60, f"a lag of {RECORDS} while the first record is held")
            handler.release.set()
            wait_until(lambda: len(handler.handled) == RECORDS, 60, "every record handled")
            wait_until(lambda: lag() == 0, 60, "the lag back at 0 once every record is committed")
        finally:
            handler.release.set()
            loop.stop()
            runner.join(30)


def test_the_worker_reports_its_lag_per_topic_on_its_metrics_endpoint(tmp_path):
    import httpx

    from connectors.publisher import Publisher
    from harness.stack import Stack
    from tests.support import free_port

    def worker_lag(port: int) -> dict[str, float]:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return {}
        lags = {}
        for line in text.splitlines():
            if line.startswith('dunning_consumer_lag{group="dunning-worker"'):
                labels, value = line.rsplit(" ", 1)
                lags[labels.split('topic="', 1)[1].split('"', 1)[0]] = float(value)
        return lags

    port = free_port()
    codec = Codec()
    backlog = 20_000  # published before the worker starts: it takes seconds to work off
    with Stack(tmp_path, 2, {}) as stack:
        Publisher(stack.bootstrap, codec, 2).publish_all(
            [ev.DebtorRegistered(f"lag-reg-{n}", f"LAG{n}", f"Debiteur {n}", "B2B", segment="smb")
             for n in range(backlog)])
        stack.start("worker", extra_env={"METRICS_PORT": str(port)})
        seen: list[float] = []

        def caught_up() -> bool:
            lags = worker_lag(port)
            seen.append(lags.get(topics.LEDGER.name, -1))
            return len(lags) == 3 and set(lags.values()) == {0.0} and max(seen) > 0

        # The backlog shows as lag on dunning.ledger, then the lag falls to 0 on all three topics.
        wait_until(caught_up, 180, "the worker's lag to rise with the backlog and fall to 0")
        assert max(seen) <= backlog
