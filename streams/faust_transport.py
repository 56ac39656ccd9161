"""A Faust transport whose consumer hands messages to the streams without a task per message.

Faust's fetch loop (``Consumer._drain_messages``) passes every message to the streams as
``wait_first(callback(message), suspend_flow.wait())``: four futures and an ``asyncio.wait``
per message, so that a rebalance (which suspends the flow) is never held up by a callback
blocked on a full stream buffer. Most of the time the flow is not suspended; then this
consumer awaits the callback directly. Our agents drain their streams in batches without
waiting on a rebalance, so a blocked callback frees up as soon as the agent takes its next
batch. ``wait_first`` of the consumer is called from that loop only.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as aiokafka_driver
from mode.services import WaitResults


class DirectCallbackConsumer(aiokafka_driver.Consumer):
    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        if len(coros) == 2 and timeout is None and not self.suspend_flow.is_set() and not self.should_stop:
            callback, flow_suspended = coros
            flow_suspended.close()  # the suspend_flow.wait() coroutine, never started
            result = await callback
            return WaitResults([callback], [result], False)
        return await super().wait_first(*coros, timeout=timeout)


class Transport(aiokafka_driver.Transport):
    Consumer = DirectCallbackConsumer


def use_direct_callback_transport(app) -> None:
    app.transport = Transport(app.conf.broker_consumer, app)
