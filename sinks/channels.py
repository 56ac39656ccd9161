"""The channel sink: deliver one dunning action and report what happened.

E-mail is sent here, guarded by the outbox so redelivery sends nothing twice. SMS,
letter, call and collection actions become tasks: the projector writes the tasks table
from the action itself, so the sink only reports them as recorded.
"""

from __future__ import annotations

import smtplib
from datetime import datetime, timezone
from typing import Callable, Optional

import structlog
from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import Engine

from sinks.email import EmailSender, build_email, mail_from_env
from sinks.metrics import MESSAGES
from sinks.outbox import Outbox
from sinks.render import UnknownTemplateError, render_message
from streams.core.events import DeliveryResult, DunningActionDue

EMAIL = "email"
TASK_CHANNELS = frozenset({"sms", "letter", "call", "collection"})

SENT = "sent"
RECORDED = "recorded"
FAILED = "failed"
SKIPPED = "skipped"

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
    ):
        self._outbox = Outbox(engine, clock)
        self._sender = sender
        self._clock = clock
        self._mail_from = mail_from or mail_from_env()
        self._environment = environment

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    def handle(self, action: DunningActionDue) -> DeliveryResult:
        if action.channel == EMAIL:
            status, detail, metric_status = self._send_email(action)
        elif action.channel in TASK_CHANNELS:
            status, detail = RECORDED, f"{action.channel} task recorded"
            metric_status = status
        else:
            status, detail = SKIPPED, f"unknown channel {action.channel!r}"
            metric_status = status
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

    def _send_email(self, action: DunningActionDue) -> tuple[str, Optional[str], str]:
        """(status, detail, metric status); a redelivery is counted apart as "duplicate"."""
        if not action.email:
            return FAILED, "no e-mail address", FAILED
        if not self._outbox.claim(action.action_id, EMAIL):
            return SENT, "already sent", "duplicate"
        try:
            rendered = render_message(action, self._environment)
            message = build_email(action, rendered, self._mail_from, sent_at=self._clock())
        except (UnknownTemplateError, TemplateError, ValueError) as exc:
            return self._failed(action, f"cannot build message: {exc}")
        try:
            self._sender.send(message)
        except (smtplib.SMTPException, OSError) as exc:
            return self._failed(action, f"{type(exc).__name__}: {exc}")
        self._outbox.mark_sent(action.action_id, str(message["Message-ID"]))
        return SENT, None, SENT

    def _failed(self, action: DunningActionDue, error: str) -> tuple[str, str, str]:
        self._outbox.mark_failed(action.action_id, error)
        return FAILED, error, FAILED
