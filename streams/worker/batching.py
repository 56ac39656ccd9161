"""Faust agents that take what the consumer fetched, a whole batch at a time.

Faust hands a stream one message at a time: per message its fetch loop
(``Consumer._drain_messages``) starts two tasks and an ``asyncio.wait``, the conductor
builds an event and queues it, and the stream takes it off the queue again. Measured on
this project's machine, an agent doing nothing behind ``stream.take_events`` consumed
11,500 messages/s; the same agent fed here took 117,000 messages/s. The agents of this
app work on batches anyway (one state write per debtor per batch), so the consumer below
hands each agent the list of records it fetched for that agent's topic.

``BatchConsumer._drain_messages`` takes the place of Faust's loop of that name (it keeps
its bookkeeping of read offsets, gaps and commits), which is why pyproject.toml holds
faust-streaming to 0.15.x. Everything else stays Faust's: group membership and the
copartitioned assignment, the fetcher, offsets (a record is tracked the moment it is
fetched and acked once its agent has returned; Faust commits what is acked), rebalances
(which wait for the batch in hand, as they wait for events in a stream), and tables with
their changelog recovery (whose records still take Faust's own path).

Each agent works off its batches in order in a task of its own, so that one agent
waiting for the broker to acknowledge its writes does not hold up the others. A batch
whose agent raises is not acked. A failure that may pass (an unreachable schema registry
or broker) gets the same batch again after a growing pause, and loses nothing; any other
failure would come back however often the batch is tried, so the records are tried one
by one and a record that fails alone is dead-lettered with the reason, and the agent goes
on. On shutdown a batch that is still failing is abandoned, not acked: it is done again
by whoever owns its partitions next.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import faust
import structlog
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import Message

from streams.kafka import metrics as consumer_metrics
from streams.kafka.faults import describe, is_transient, retry_pause
from streams.kafka.records import Record
from streams.worker import metrics

log = structlog.get_logger(__name__)

LAG_REPORT_SECONDS = 1.0
LANE_DEPTH = 2  # fetched batches an agent may have waiting
STOP_GRACE_SECONDS = 5.0  # on shutdown, how long a batch in hand may take to finish


@dataclass(frozen=True)
class BatchAgent:
    process: Callable[[list[Record]], Awaitable[None]]  # a batch of one topic's records, in order
    dead_letter: Callable[[Record, str], Awaitable[None]]  # a record that cannot be processed, and why


def batch_agent(app: faust.App, topic: faust.TopicT,
                dead_letter: Callable[[Record, str], Awaitable[None]]) -> Callable:
    """Register the decorated coroutine to receive the records of ``topic`` in batches;
    ``dead_letter`` takes a record that cannot be processed, with the reason."""

    def register(process: Callable[[list[Record]], Awaitable[None]]):
        transport = app.transport
        if not isinstance(transport, Transport):
            raise TypeError("call use_batch_agents(app) before registering batch agents")
        for name in topic.topics:
            transport.batch_agents[name] = BatchAgent(process, dead_letter)
        app.topics.add(topic)  # the conductor subscribes to it
        return process

    return register


def use_batch_agents(app: faust.App, fetch_max_wait_ms: int | None = None) -> None:
    """Give ``app`` the consumer that feeds batch agents. ``fetch_max_wait_ms``: how long a
    fetch may wait for records (None: aiokafka's default). The embedded broker answers a
    fetch with no records only when that wait runs out, even if records arrive meanwhile,
    which adds up to the wait to every hop; a real broker answers as records arrive."""
    app.transport = Transport(app.conf.broker_consumer, app)
    app.transport.fetch_max_wait_ms = fetch_max_wait_ms


class _ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        if transport.fetch_max_wait_ms is not None:
            consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms  # read by the fetcher it creates on start
        # Records of aborted transactions are not facts: read only committed ones, as the
        # consumer loop (librdkafka's default) does. Faust reads uncommitted ones unless it
        # runs exactly-once itself.
        consumer._isolation_level = "read_committed"
        return consumer


class BatchConsumer(aiokafka_driver.Consumer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lanes: dict[str, _Lane] = {}
        self._lag_reporter: asyncio.Task | None = None

    async def _report_lag_every_second(self) -> None:
        """A task of its own: the gauge must move on while the agents are stuck, which is
        when an operator needs it."""
        while not self._stopped.is_set():
            try:
                self._report_lag(self.transport.batch_agents)
            except Exception as exc:  # noqa: BLE001 - a gauge is not worth stopping the worker for
                log.warning("consumer lag not reported", error=describe(exc))
            await asyncio.sleep(LAG_REPORT_SECONDS)

    def _report_lag(self, agents: dict) -> None:
        """The records of each agent's topic not yet committed, over the partitions held."""
        lag: dict[str, int] = {topic: 0 for topic in agents}
        for tp in self.assignment():
            if tp.topic not in agents:
                continue
            high = self.highwater(tp)
            if high is not None:
                lag[tp.topic] += max(0, high - (self._committed_offset.get(tp) or 0))
        for topic, value in lag.items():
            consumer_metrics.CONSUMER_LAG.labels(self.app.conf.id, topic).set(value)

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher) -> None:  # replaces Faust's per-message loop
        if self._lag_reporter is None or self._lag_reporter.done():
            self._lag_reporter = asyncio.ensure_future(self._report_lag_every_second())
        agents: dict[str, BatchAgent] = self.transport.batch_agents
        lanes = self._lanes
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                await self.sleep(0)
                batches: dict[str, list[Message]] = {}
                others: list[Message] = []  # table changelogs during recovery: Faust's own path
                async for tp, message in self.getmany(timeout=1.0):
                    if message.topic not in agents:
                        # A changelog read by the table recovery, which skips what it has
                        # applied by offset itself. Not filtered here: a recovery that starts
                        # again seeks back to what it applied, and records dropped as read
                        # already would leave it waiting for them for ever.
                        others.append(message)
                        continue
                    last = read_offset[tp]
                    if last is not None and message.offset < last:
                        continue  # handed out already (Faust drops these too)
                    if last is not None and message.offset - last > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, last + 1, message.offset)
                    read_offset[tp] = message.offset
                    # Tracked now, so that a rebalance starting while the agent works waits for it.
                    self.track_message(message)
                    batches.setdefault(message.topic, []).append(message)
                for message in others:
                    await self.wait_first(self.callback(message), self.suspend_flow.wait())
                for topic, messages in batches.items():
                    lane = lanes.get(topic)
                    if lane is None:
                        lane = lanes[topic] = _Lane(self, agents[topic])
                    await lane.queue.put(messages)  # waits while the agent is LANE_DEPTH batches behind
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def wait_empty(self) -> None:
        """On shutdown the batches in hand get ``STOP_GRACE_SECONDS`` to finish; one that
        is still failing then is abandoned, unacked and so uncommitted. (Faust's own wait,
        kept for rebalances, lasts until every batch in hand is acked, which a batch that
        keeps failing never is.)"""
        if not self.app.should_stop:
            return await super().wait_empty()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(lane.busy for lane in self._lanes.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for lane in self._lanes.values():
            lane.stop()
        await self.commit()  # what is acked


class _Lane:
    """One agent's queue of fetched batches, worked off in order by a task of its own, so
    that one agent waiting for the broker does not hold up the others."""

    def __init__(self, consumer: BatchConsumer, agent: BatchAgent):
        self.consumer = consumer
        self.runner = BatchRunner(agent)
        self.queue: asyncio.Queue[list[Message]] = asyncio.Queue(maxsize=LANE_DEPTH)
        consumer.add_future(self._work())  # cancelled when the consumer stops

    @property
    def busy(self) -> bool:
        return self.runner.busy

    def stop(self) -> None:
        self.runner.stopping.set()

    async def _work(self) -> None:
        consumer = self.consumer
        while True:
            messages = await self.queue.get()
            try:
                await self.runner.run([Record(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp, m)
                                       for m in messages])
            except Abandoned:
                return  # not acked, so not committed: whoever owns the partitions next does it again
            for message in messages:
                consumer.ack(message)
            now = time.monotonic()
            inbound = consumer.app.monitor.stream_inbound_time  # read by Faust's check for stalled streams
            for tp in {message.tp for message in messages}:
                inbound[tp] = now


class BatchRunner:
    """Runs an agent on a batch until it is done: a failure that may pass is tried again
    after a growing pause; a failure that cannot pass (``is_transient``) is narrowed down
    to its record, each record alone, and a record that still fails alone is dead-lettered
    with the reason, so the records behind it go on. ``stopping`` ends the pauses: the
    batch is then abandoned (``Abandoned``)."""

    def __init__(self, agent: BatchAgent):
        self.agent = agent
        self.stopping = asyncio.Event()
        self.busy = False

    async def run(self, records: list[Record]) -> None:
        self.busy = True
        try:
            await self._process(records)
        finally:
            self.busy = False

    async def _process(self, records: list[Record]) -> None:
        try:
            await self._retrying(records[0].topic, self.agent.process, records)
            return
        except Abandoned:
            raise
        except Exception as exc:  # noqa: BLE001 - not transient: it fails again however often it is tried
            if len(records) == 1:
                await self._dead_letter(records[0], exc)
                return
            log.warning("batch failed for good, tried again record by record", topic=records[0].topic,
                        records=len(records), error=describe(exc))
        for record in records:
            await self._process([record])

    async def _dead_letter(self, record: Record, error: BaseException) -> None:
        log.error("record cannot be processed, dead-lettered", topic=record.topic, partition=record.partition,
                  offset=record.offset, error=describe(error), exc_info=error)
        consumer_metrics.DEAD_LETTERS.labels(record.topic, "processing").inc()
        # Only the broker can refuse a dead letter, and the broker comes back: tried until it takes it.
        await self._retrying(record.topic, self.agent.dead_letter, record, f"cannot be processed: {describe(error)}",
                             gives_up=lambda _: False)

    async def _retrying(self, topic: str, call, *args, gives_up: Callable[[BaseException], bool] | None = None):
        """``call(*args)`` until it returns. A failure that ``gives_up`` (by default: one that
        is not transient) is raised; any other is tried again after a growing pause."""
        gives_up = gives_up or (lambda error: not is_transient(error))
        failures = 0
        while not self.stopping.is_set():
            try:
                return await call(*args)
            except Exception as exc:  # noqa: BLE001 - sorted by gives_up
                if gives_up(exc):
                    raise
                pause = retry_pause(failures)
                failures += 1
                metrics.BATCH_FAILURES.labels(topic).inc()
                log.error("batch failed, tried again after a pause", topic=topic, pause_seconds=pause,
                          error=describe(exc))
                try:
                    await asyncio.wait_for(self.stopping.wait(), pause)
                except asyncio.TimeoutError:
                    pass
        raise Abandoned()


class Abandoned(Exception):
    """The worker is stopping: the batch in hand stays unacked."""


class Transport(aiokafka_driver.Transport):
    Consumer = BatchConsumer

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_agents: dict[str, BatchAgent] = {}
        self.fetch_max_wait_ms: int | None = None
