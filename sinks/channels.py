"""The channel sink: deliver one dunning action and report what happened.

E-mail is sent here, guarded by the outbox so redelivery sends nothing twice. SMS,
letter, call and collection actions become tasks: the projector writes the tasks table
from the action itself, so the sink only reports them as recorded.

A failure that may pass (the mail server out of reach, a 4xx answer, another sender at
the same action) raises ``SendDeferred``: whoever called tries the action again later.
A failure for good (no address, a template error, a 5xx answer, a login refused) is a
"failed" result.
"""

from __future__ import annotations

import smtplib
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

import structlog
from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import Engine

from sinks.email import EmailSender, HandOverRefused, build_email, is_transient_smtp_error, mail_from_env
from sinks.metrics import MESSAGES, UNCERTAIN_RESENDS
from sinks.outbox import Claim, Outbox
from sinks.render import UnknownTemplateError, render_message
from streams.core.events import DeliveryResult, DunningActionDue

EMAIL = "email"
TASK_CHANNELS = frozenset({"sms", "letter", "call", "collection"})

SENT = "sent"
RECORDED = "recorded"
FAILED = "failed"
SKIPPED = "skipped"

log = structlog.get_logger(__name__)


class SendDeferred(Exception):
    """The action could not be sent now, for a reason that may pass: try it again later."""


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
        return self._result(action, status, detail, metric_status)

    def failed(self, action: DunningActionDue, reason: str) -> DeliveryResult:
        """The action given up on (a failure that did not pass in time): recorded as failed."""
        if action.channel == EMAIL:
            self._outbox.mark_failed(action.action_id, reason)
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

    def _send_email(self, action: DunningActionDue) -> tuple[str, Optional[str], str]:
        """(status, detail, metric status); a redelivery is counted apart as "duplicate"."""
        if not action.email:
            return FAILED, "no e-mail address", FAILED
        claimed = self._outbox.claim(action.action_id, EMAIL)
        if claimed.outcome is Claim.ALREADY_SENT:
            return SENT, "already sent", "duplicate"
        if claimed.outcome is Claim.BUSY:
            raise SendDeferred(f"action {action.action_id} is being sent by another attempt")
        try:
            rendered = render_message(action, self._environment)
            message = build_email(action, rendered, self._mail_from, sent_at=self._clock())
        except (UnknownTemplateError, TemplateError, ValueError) as exc:
            return self._failed(action, claimed.attempt, f"cannot build message: {exc}")
        if claimed.outcome is Claim.RESEND_UNCERTAIN:
            # An earlier attempt handed this message over and died before it heard back.
            UNCERTAIN_RESENDS.labels(channel=EMAIL).inc()
            log.warning("sent again: an earlier attempt may have delivered it", action_id=action.action_id,
                        debtor_id=action.debtor_id, message_id=str(message["Message-ID"]))
        try:
            self._sender.send(message, lambda: self._outbox.hand_over(action.action_id, claimed.attempt))
        except HandOverRefused as exc:
            raise SendDeferred(str(exc)) from exc
        except (smtplib.SMTPException, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if is_transient_smtp_error(exc):
                self._outbox.mark_deferred(action.action_id, claimed.attempt, error)
                MESSAGES.labels(channel=EMAIL, status="deferred").inc()
                raise SendDeferred(error) from exc
            return self._failed(action, claimed.attempt, error)
        if not self._outbox.mark_sent(action.action_id, claimed.attempt, str(message["Message-ID"])):
            log.warning("sent, but a later attempt had taken the action over", action_id=action.action_id)
        return SENT, None, SENT

    def _failed(self, action: DunningActionDue, attempt: int, error: str) -> tuple[str, str, str]:
        self._outbox.mark_failed(action.action_id, error, attempt)
        return FAILED, error, FAILED
