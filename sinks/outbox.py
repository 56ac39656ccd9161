"""Send bookkeeping per action, so a redelivered action is never sent twice.

One row per action id in the ``outbox`` table of the read-model database. A sink
claims the action before sending and marks it sent or failed afterwards:

- no row yet               -> claim inserts ("sending") and the caller sends;
- row "failed"/"sending"   -> a retry (or a crash before ``mark_sent``): claim again;
- row "sent"               -> claim refuses, the caller sends nothing.

A crash between the send and ``mark_sent`` leads to a second send on redelivery;
the deterministic Message-ID lets mail servers and readers drop that copy.

The table belongs to the read-model migrations (``projections``); ``outbox_table``
below is a column-compatible definition for code and tests that run without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional

from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.exc import IntegrityError

from projections.db import for_writing

SENDING = "sending"
SENT = "sent"
FAILED = "failed"

# Long errors (a whole SMTP transcript) are cut; the start says what went wrong.
MAX_ERROR_LENGTH = 2000

metadata = MetaData()

outbox_table = Table(
    "outbox",
    metadata,
    Column("action_id", String(128), primary_key=True),
    Column("channel", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("message_id", String(255)),
    Column("last_error", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


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
    def __init__(self, engine: Engine, clock: Callable[[], datetime] = _utc_now):
        self._engine = for_writing(engine)
        self._clock = clock

    def claim(self, action_id: str, channel: str) -> bool:
        """True if the caller should send now; False if the action was already sent."""
        # Retry first: an UPDATE guarded on the status never lets a "sent" row through.
        with self._engine.begin() as connection:
            retried = connection.execute(
                update(outbox_table)
                .where(outbox_table.c.action_id == action_id, outbox_table.c.status != SENT)
                .values(
                    status=SENDING,
                    channel=channel,
                    attempts=outbox_table.c.attempts + 1,
                    updated_at=self._clock(),
                )
            ).rowcount
        if retried:
            return True
        # First attempt: the primary key decides between two racing claimers.
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(outbox_table).values(
                        action_id=action_id,
                        channel=channel,
                        status=SENDING,
                        attempts=1,
                        updated_at=self._clock(),
                    )
                )
        except IntegrityError:
            return False
        return True

    def mark_sent(self, action_id: str, message_id: str) -> None:
        self._finish(action_id, status=SENT, message_id=message_id, last_error=None)

    def mark_failed(self, action_id: str, error: str) -> None:
        self._finish(action_id, status=FAILED, last_error=error[:MAX_ERROR_LENGTH])

    def get(self, action_id: str) -> Optional[OutboxEntry]:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(outbox_table).where(outbox_table.c.action_id == action_id)
            ).one_or_none()
        if row is None:
            return None
        updated_at = row.updated_at
        if updated_at.tzinfo is None:  # SQLite keeps no offset; we always write UTC
            updated_at = updated_at.replace(tzinfo=timezone.utc)
        return OutboxEntry(
            action_id=row.action_id,
            channel=row.channel,
            status=row.status,
            attempts=row.attempts,
            message_id=row.message_id,
            last_error=row.last_error,
            updated_at=updated_at,
        )

    def _finish(self, action_id: str, **values: Optional[str]) -> None:
        with self._engine.begin() as connection:
            updated = connection.execute(
                update(outbox_table)
                .where(outbox_table.c.action_id == action_id)
                .values(updated_at=self._clock(), **values)
            ).rowcount
        if not updated:
            raise LookupError(f"action {action_id!r} was never claimed in the outbox")
