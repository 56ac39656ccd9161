"""Send bookkeeping per action, so a redelivered action is never sent twice.

One row per action id in the ``outbox`` table of the read-model database. A sender
claims the action before sending and marks how far it got:

- no row, or "failed"/"deferred"  -> ``claim`` takes it ("sending", one attempt more): send;
- "sending" or "handed_over" within the lease -> another sender is at it: ``BUSY``, later;
- "sending" past the lease        -> an attempt that died before the message was handed
  over: nothing reached the server, so it is sent again without doubt;
- "handed_over" past the lease    -> an attempt that died after handing the message over
  and before hearing back: it may have arrived. It is sent again (a reminder lost is worse
  than one twice) with the same Message-ID, and ``claim`` says so: ``RESEND_UNCERTAIN``;
- "sent"                          -> ``ALREADY_SENT``: nothing is sent.

Every claim carries its attempt number, and marking needs it: a sender whose claim was
taken over (it outlived its lease) cannot hand its message over any more, so two senders
never both complete one action. The window in which a crash repeats a message is the
time between handing the last byte of it to the server and recording the server's
answer: one round trip and one database write.

The table is defined with the read models (``projections.models.Outbox``) and created
by their migrations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from projections.db import for_writing
from projections.models import Outbox as OutboxRow

SENDING = "sending"
HANDED_OVER = "handed_over"
SENT = "sent"
DEFERRED = "deferred"  # a failure that may pass: tried again
FAILED = "failed"  # refused for good, or given up on
DEFAULT_LEASE = timedelta(seconds=90)


class Claim(enum.Enum):
    SEND = "send"
    RESEND_UNCERTAIN = "resend_uncertain"
    ALREADY_SENT = "already_sent"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class Claimed:
    outcome: Claim
    attempt: int = 0

    @property
    def may_send(self) -> bool:
        return self.outcome in (Claim.SEND, Claim.RESEND_UNCERTAIN)

# Long errors (a whole SMTP transcript) are cut; the start says what went wrong.
MAX_ERROR_LENGTH = 2000

outbox_table = OutboxRow.__table__  # defined once, with the read models and their migrations


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    action_id: str
    channel: str
    status: str
    attempts: int
    message_id: Optional[str]
    last_error: Optional[str]
    updated_at: datetime


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Outbox:
    def __init__(self, engine: Engine, clock: Callable[[], datetime] = _utc_now, lease: timedelta = DEFAULT_LEASE):
        self._engine = for_writing(engine)
        self._clock = clock
        self.lease = lease

    def claim(self, action_id: str, channel: str) -> Claimed:
        now = self._clock()
        with self._engine.begin() as connection:
            row = connection.execute(
                select(outbox_table.c.status, outbox_table.c.attempts, outbox_table.c.updated_at)
                .where(outbox_table.c.action_id == action_id)
                .with_for_update()
            ).one_or_none()
            if row is None:
                try:
                    with connection.begin_nested():
                        connection.execute(insert(outbox_table).values(
                            action_id=action_id, channel=channel, status=SENDING, attempts=1, updated_at=now))
                except IntegrityError:  # a racing claimer inserted it first
                    return Claimed(Claim.BUSY)
                return Claimed(Claim.SEND, 1)
            if row.status == SENT:
                return Claimed(Claim.ALREADY_SENT)
            in_flight = row.status in (SENDING, HANDED_OVER)
            if in_flight and _as_utc(row.updated_at) > now - self.lease:
                return Claimed(Claim.BUSY)
            attempt = row.attempts + 1
            connection.execute(
                update(outbox_table)
                .where(outbox_table.c.action_id == action_id)
                .values(status=SENDING, channel=channel, attempts=attempt, updated_at=now)
            )
        return Claimed(Claim.RESEND_UNCERTAIN if row.status == HANDED_OVER else Claim.SEND, attempt)

    def hand_over(self, action_id: str, attempt: int) -> bool:
        """Just before the last byte goes out: True if this attempt still holds the claim."""
        return self._finish(action_id, attempt, status=HANDED_OVER) == 1

    def mark_sent(self, action_id: str, attempt: int, message_id: str) -> bool:
        """False if a later attempt took the claim over meanwhile (this one outlived its lease)."""
        return self._finish(action_id, attempt, status=SENT, message_id=message_id, last_error=None,
                            required=True) == 1

    def mark_deferred(self, action_id: str, attempt: int, error: str) -> None:
        self._finish(action_id, attempt, status=DEFERRED, last_error=error[:MAX_ERROR_LENGTH])

    def mark_failed(self, action_id: str, error: str, attempt: Optional[int] = None) -> None:
        self._finish(action_id, attempt, status=FAILED, last_error=error[:MAX_ERROR_LENGTH], required=attempt is None)

    def get(self, action_id: str) -> Optional[OutboxEntry]:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(outbox_table).where(outbox_table.c.action_id == action_id)
            ).one_or_none()
        if row is None:
            return None
        updated_at = _as_utc(row.updated_at)
        return OutboxEntry(
            action_id=row.action_id,
            channel=row.channel,
            status=row.status,
            attempts=row.attempts,
            message_id=row.message_id,
            last_error=row.last_error,
            updated_at=updated_at,
        )

    def _finish(self, action_id: str, attempt: Optional[int], required: bool = False, **values) -> int:
        """Update the row if ``attempt`` (when given) still holds the claim; the number of rows updated."""
        condition = outbox_table.c.action_id == action_id
        if attempt is not None:
            condition = condition & (outbox_table.c.attempts == attempt) & (outbox_table.c.status != SENT)
        with self._engine.begin() as connection:
            updated = connection.execute(
                update(outbox_table).where(condition).values(updated_at=self._clock(), **values)
            ).rowcount
            if required and not updated and connection.execute(
                    select(outbox_table.c.action_id).where(outbox_table.c.action_id == action_id)).first() is None:
                raise LookupError(f"action {action_id!r} was never claimed in the outbox")
        return updated


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)  # SQLite keeps no offset
