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
whose agent raises is not acked: the agent gets the same batch again after a pause,
so a passing failure such as an unreachable schema registry delays it and loses
nothing; a lasting one stops the worker from taking more, loudly (log and metric).
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

import faust
import structlog
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import Message

from streams import metrics
from streams.processor import Record

log = structlog.get_logger(__name__)

BatchAgent = Callable[[list[Record]], Awaitable[None]]

# The embedded broker answers a fetch for which it has no records only when the wait
# runs out, even if records arrive meanwhile; Faust asks for 1,500 ms, which then adds
# up to that much to every hop. A real broker answers as soon as records arrive.
FETCH_MAX_WAIT_MS = 50
LANE_DEPTH = 2  # fetched batches an agent may have waiting
RETRY_PAUSE_SECONDS = (0.5, 1, 2, 5, 10, 30)


def batch_agent(app: faust.App, topic: faust.TopicT) -> Callable[[BatchAgent], BatchAgent]:
    """Register ``agent`` to receive the records of ``topic`` in batches."""

    def register(agent: BatchAgent) -> BatchAgent:
        transport = app.transport
        if not isinstance(transport, Transport):
            raise TypeError("call use_batch_agents(app) before registering batch agents")
        for name in topic.topics:
            transport.batch_agents[name] = agent
        app.topics.add(topic)  # the conductor subscribes to it
        return agent

    return register


def use_batch_agents(app: faust.App) -> None:
    """Give ``app`` the consumer that feeds batch agents."""
    app.transport = Transport(app.conf.broker_consumer, app)


class _ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by the fetcher it creates on start
        return consumer


class BatchConsumer(aiokafka_driver.Consumer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lanes: dict[str, _Lane] = {}

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher) -> None:  # replaces Faust's per-message loop
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
                    last = read_offset[tp]
                    if last is not None and message.offset < last:
                        continue  # handed out already (Faust drops these too)
                    if last and message.offset - last > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, last + 1, message.offset)
                    read_offset[tp] = message.offset
                    if message.topic in agents:
                        # Tracked now, so that a rebalance starting while the agent works waits for it.
                        self.track_message(message)
                        batches.setdefault(message.topic, []).append(message)
                    else:
                        others.append(message)
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


class _Lane:
    """One agent's queue of fetched batches, worked off in order by a task of its own, so
    that one agent waiting for the broker does not hold up the others."""

    def __init__(self, consumer: BatchConsumer, agent: BatchAgent):
        self.consumer = consumer
        self.agent = agent
        self.queue: asyncio.Queue[list[Message]] = asyncio.Queue(maxsize=LANE_DEPTH)
        consumer.add_future(self._work())  # cancelled when the consumer stops

    async def _work(self) -> None:
        consumer = self.consumer
        while True:
            messages = await self.queue.get()
            records = [Record(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp, m) for m in messages]
            failures = 0
            while True:
                try:
                    await self.agent(records)
                    break
                except Exception as exc:  # noqa: BLE001 - any failure: the same batch again, after a pause
                    metrics.BATCH_FAILURES.labels(messages[0].topic).inc()
                    log.error("batch failed, tried again after a pause", topic=messages[0].topic,
                              records=len(messages), error=f"{type(exc).__name__}: {exc}", exc_info=True)
                    await asyncio.sleep(RETRY_PAUSE_SECONDS[min(failures, len(RETRY_PAUSE_SECONDS) - 1)])
                    failures += 1
            for message in messages:
                consumer.ack(message)
            now = time.monotonic()
            inbound = consumer.app.monitor.stream_inbound_time  # read by Faust's check for stalled streams
            for tp in {message.tp for message in messages}:
                inbound[tp] = now


class Transport(aiokafka_driver.Transport):
    Consumer = BatchConsumer

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_agents: dict[str, BatchAgent] = {}
