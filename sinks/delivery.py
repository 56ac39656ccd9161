"""What every channel shares: the outcome of delivering one action, the failure that may
pass, and the parts a channel is built from (``sinks.registry``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Optional, Protocol

from jinja2.sandbox import SandboxedEnvironment

from sinks.outbox import Outbox
from streams.core.events import DunningActionDue

SENT = "sent"
RECORDED = "recorded"
FAILED = "failed"
SKIPPED = "skipped"


class SendDeferred(Exception):
    """The action could not be sent now, for a reason that may pass: try it again later."""


@dataclass(frozen=True)
class Outcome:
    status: str  # SENT, RECORDED, FAILED, SKIPPED
    detail: Optional[str]
    metric_status: str  # as status, but a redelivery of what was sent counts as "duplicate"


@dataclass(frozen=True)
class SinkParts:
    """What a channel may use: built once by the sink, shared by its channels."""

    outbox: Outbox
    clock: Callable[[], datetime]
    email_sender: object  # sinks.email.EmailSender
    mail_from: str
    environment: Optional[SandboxedEnvironment]


class Deliverer(Protocol):
    def deliver(self, action: DunningActionDue) -> Outcome:
        """Deliver the action, idempotently per action id; ``SendDeferred`` when it may pass."""

    def give_up(self, action: DunningActionDue, reason: str) -> None:
        """Record that the action is given up on (a failure that did not pass in time)."""
