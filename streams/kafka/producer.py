"""The worker's producer: librdkafka (confluent-kafka) behind one awaitable call per batch.

An agent hands over all records of a batch without waiting, then waits once until the
broker has acknowledged every one of them. Faust's own producer (aiokafka) costs tens of
microseconds of Python per record on the worker's one busy core; librdkafka builds and
sends the requests in its own threads. Keys are partitioned with murmur2, as Faust,
aiokafka and Java do, so a debtor's records land where its state is; records with a
partition of their own (table changelogs) go there.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Iterable, Optional

from confluent_kafka import KafkaError, KafkaException, Producer

from streams.kafka.clients import producer_config

POLL_SECONDS = 0.05
QUEUE_FULL_PAUSE = 0.005


# Errors that come back however often the records are sent again.
PERMANENT_ERRORS = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_MSG_SIZE,
    KafkaError.INVALID_RECORD, KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError._INVALID_ARG,
})


class DeliveryFailed(RuntimeError):
    """The broker did not take some records of a batch. ``permanent`` when sending them
    again cannot help (a record too large); otherwise the batch is done again later."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class BatchProducer:
    def __init__(self, bootstrap: str, **config):
        self._producer = Producer(producer_config(bootstrap, **{"linger.ms": 1, **config}))
        self._stopped = threading.Event()
        # Delivery reports are handed out by poll(): a thread of its own keeps calling it.
        self._poller = threading.Thread(target=self._poll, name="delivery-reports", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stopped.is_set():
            self._producer.poll(POLL_SECONDS)

    async def send_all(self, records: Iterable[tuple[str, Optional[bytes], bytes, Optional[int]]]) -> None:
        """Send ``(topic, key, value, partition)`` records; return once all are acknowledged."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        waiting = _Delivery(loop, done)
        produce = self._producer.produce
        for topic, key, value, partition in records:
            waiting.expect()
            while True:
                try:
                    if partition is None:
                        produce(topic, value, key, on_delivery=waiting.report)
                    else:
                        produce(topic, value, key, partition, on_delivery=waiting.report)
                    break
                except BufferError:  # librdkafka's queue is full: let it drain, serving the event loop
                    await asyncio.sleep(QUEUE_FULL_PAUSE)
                except KafkaException as exc:  # refused before sending, e.g. a record too large
                    waiting.report(exc.args[0], None)
                    break
        waiting.all_handed_over()
        await done

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._stopped.set()
        self._poller.join(timeout)


class _Delivery:
    """Counts the delivery reports of one batch; settles its future from the poll thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future):
        self._loop, self._done = loop, done
        self._lock = threading.Lock()
        self._outstanding = 0
        self._handed_over = False
        self._errors: list[KafkaError] = []

    def expect(self) -> None:
        with self._lock:
            self._outstanding += 1

    def report(self, error: Optional[KafkaError], _message) -> None:
        with self._lock:
            self._outstanding -= 1
            if error is not None:
                self._errors.append(error)
            settled = self._handed_over and self._outstanding == 0
        if settled:
            self._loop.call_soon_threadsafe(self._settle)

    def all_handed_over(self) -> None:
        with self._lock:
            self._handed_over = True
            settled = self._outstanding == 0
        if settled:
            self._settle()

    def _settle(self) -> None:
        if self._done.done():
            return
        if self._errors:
            permanent = any(error.code() in PERMANENT_ERRORS for error in self._errors)
            self._done.set_exception(
                DeliveryFailed(f"{len(self._errors)} records not delivered: {self._errors[0]}", permanent))
        else:
            self._done.set_result(None)
