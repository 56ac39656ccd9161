"""The channel sink: deliver one dunning action through its channel and report what
happened. Which channels there are, and how each delivers, is ``sinks.registry``.

A failure that may pass (the mail server out of reach, a 4xx answer, another sender at
the same action) raises ``SendDeferred``: whoever called tries the action again later.
A failure for good (no address, a template error, a 5xx answer, a login refused) is a
"failed" result.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

import structlog
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import Engine

from sinks import registry
from sinks.delivery import FAILED, RECORDED, SENT, SKIPPED, Outcome, SendDeferred, SinkParts
from sinks.email import DEFAULT_MAIL_FROM, EmailSender
from sinks.metrics import MESSAGES
from sinks.outbox import Outbox
from streams.core.events import DeliveryResult, DunningActionDue

__all__ = ["ChannelSink", "SendDeferred", "SENT", "RECORDED", "FAILED", "SKIPPED"]

log = structlog.get_logger(__name__)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class ChannelSink:
    def __init__(
        self,
        engine: Engine,
        sender: EmailSender,
        clock: Callable[[], datetime] = _utc_now,
        mail_from: Optional[str] = None,
        environment: Optional[SandboxedEnvironment] = None,
        lease: Optional[timedelta] = None,
    ):
        self._outbox = Outbox(engine, clock, **({"lease": lease} if lease is not None else {}))
        self._clock = clock
        parts = SinkParts(self._outbox, clock, sender, mail_from or DEFAULT_MAIL_FROM, environment)
        self._channels = {channel.name: channel.build(parts) for channel in registry.CHANNELS}

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    def handle(self, action: DunningActionDue) -> DeliveryResult:
        channel = self._channels.get(action.channel)
        if channel is None:
            outcome = Outcome(SKIPPED, f"unknown channel {action.channel!r}", SKIPPED)
        else:
            outcome = channel.deliver(action)
        return self._result(action, outcome.status, outcome.detail, outcome.metric_status)

    def failed(self, action: DunningActionDue, reason: str) -> DeliveryResult:
        """The action given up on (a failure that did not pass in time): recorded as failed."""
        channel = self._channels.get(action.channel)
        if channel is not None:
            channel.give_up(action, reason)
        return self._result(action, FAILED, reason, FAILED)

    def _result(self, action: DunningActionDue, status: str, detail: Optional[str], metric_status: str) -> DeliveryResult:
        MESSAGES.labels(channel=action.channel, status=metric_status).inc()
        log_method = log.warning if status in (FAILED, SKIPPED) else log.info
        log_method(
            "dunning action delivered" if status != FAILED else "dunning action not delivered",
            action_id=action.action_id,
            debtor_id=action.debtor_id,
            channel=action.channel,
            status=status,
            detail=detail,
        )
        return DeliveryResult(
            event_id=f"delivery:{action.action_id}:{status}",
            action_id=action.action_id,
            debtor_id=action.debtor_id,
            channel=action.channel,
            status=status,
            attempted_at=self._clock(),
            detail=detail,
        )
