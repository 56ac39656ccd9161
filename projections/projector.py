"""The projector: applies a batch of output events to the read models in one transaction.

Every write is an upsert keyed by a stable id (debtor, action, event, transaction), so
a redelivered or replayed batch leaves the same rows. Order between topics is not
guaranteed, so each table protects itself: debtors keep the highest snapshot version,
a settled promise is never reopened by an older snapshot, and an action keeps its
newest delivery attempt.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, delete, or_, select

from projections import metrics, rows
from projections.db import for_writing
from projections.models import (
    Action,
    Debtor,
    Dispute,
    LimitEvent,
    OpenItem,
    PaymentReversal,
    ProjectionOffset,
    Promise,
    Task,
    UnmatchedPayment,
    as_utc,
)
from projections.upsert import ROWS_KEY, insert_missing, unique_by, upsert
from streams.core import events as ev

DEBTORS = Debtor.__table__
OPEN_ITEMS = OpenItem.__table__
DISPUTES = Dispute.__table__
PROMISES = Promise.__table__
ACTIONS = Action.__table__
TASKS = Task.__table__
LIMIT_EVENTS = LimitEvent.__table__
PAYMENT_REVERSALS = PaymentReversal.__table__
UNMATCHED = UnmatchedPayment.__table__
OFFSETS = ProjectionOffset.__table__

# Channels a person or an outside party works off; e-mail is sent by its sink alone.
# Keeps "IN (...)" lists well under SQLite's limit on bound parameters.
IN_LIST_SIZE = 500

Offsets = Mapping[tuple[str, int], int]


@dataclass
class _Sorted:
    """A batch split by what each event changes; other event types are ignored."""

    snapshots: list[ev.DebtorSnapshot] = field(default_factory=list)
    actions: list[ev.DunningActionDue] = field(default_factory=list)
    deliveries: list[ev.DeliveryResult] = field(default_factory=list)
    limit_events: list[Any] = field(default_factory=list)
    promise_outcomes: list[ev.PromiseKept | ev.PromiseBroken] = field(default_factory=list)
    unmatched: list[ev.PaymentUnmatched] = field(default_factory=list)
    resolved: list[ev.PaymentResolved] = field(default_factory=list)
    reversals: list[ev.PaymentReversed] = field(default_factory=list)

    @classmethod
    def of(cls, events: Iterable[object]) -> _Sorted:
        batch = cls()
        for event in events:
            kind = type(event)
            if kind is ev.DebtorSnapshot:
                batch.snapshots.append(event)
            elif kind is ev.DunningActionDue:
                batch.actions.append(event)
            elif kind is ev.DeliveryResult:
                batch.deliveries.append(event)
            elif kind in rows.LIMIT_KINDS:
                batch.limit_events.append(event)
            elif kind in rows.PROMISE_OUTCOMES:
                batch.promise_outcomes.append(event)
            elif kind is ev.PaymentUnmatched:
                batch.unmatched.append(event)
            elif kind is ev.PaymentResolved:
                batch.resolved.append(event)
            elif kind is ev.PaymentReversed:
                batch.reversals.append(event)
        return batch


class Projector:
    """Writes the read models from output events. Safe to feed the same events again."""

    def __init__(self, engine: Engine, task_channels: Collection[str]) -> None:
        """``task_channels``: the channels whose actions leave a task for a person
        (``sinks.registry.task_channels()``, handed in by whoever builds the projector)."""
        self.engine = for_writing(engine)
        self.task_channels = frozenset(task_channels)

    def apply_batch(self, events: Sequence[object], offsets: Offsets | None = None) -> None:
        """Apply ``events`` in one transaction; with ``offsets`` ({(topic, partition):
        next offset}) store the consumer position in that same transaction."""
        batch = _Sorted.of(events)
        with self.engine.begin() as connection:
            connection.info.pop(ROWS_KEY, None)  # left by a transaction that failed
            _apply_snapshots(connection, batch.snapshots)
            # Actions before deliveries, so a result in the same batch finds its action.
            _apply_actions(connection, batch.actions, self.task_channels)
            _apply_deliveries(connection, batch.deliveries)
            _apply_promise_outcomes(connection, batch.promise_outcomes)
            insert_missing(
                connection,
                LIMIT_EVENTS,
                unique_by(map(rows.limit_event_row, batch.limit_events), ["event_id"]),
                keys=["event_id"],
            )
            insert_missing(
                connection,
                PAYMENT_REVERSALS,
                unique_by(map(rows.payment_reversal_row, batch.reversals), ["event_id"]),
                keys=["event_id"],
            )
            upsert(
                connection,
                UNMATCHED,
                unique_by(map(rows.unmatched_payment_row, batch.unmatched), ["transaction_id"]),
                keys=["transaction_id"],
            )
            # Resolved payments leave the queue (their topic partition keeps them after their report).
            resolved = sorted({r.transaction_id for r in batch.resolved})
            for start in range(0, len(resolved), IN_LIST_SIZE):
                connection.execute(delete(UNMATCHED).where(
                    UNMATCHED.c.transaction_id.in_(resolved[start:start + IN_LIST_SIZE])))
            if offsets:
                _store_offsets(connection, offsets)
            written = connection.info.pop(ROWS_KEY, {})
        for table, count in written.items():
            metrics.ROWS_WRITTEN.labels(table).inc(count)

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """The stored consumer positions: where to resume after a restart."""
        with self.engine.connect() as connection:
            found = connection.execute(select(OFFSETS.c.topic, OFFSETS.c.partition, OFFSETS.c.next_offset))
            return {(topic, partition): offset for topic, partition, offset in found}


def _apply_snapshots(connection: Connection, snapshots: list[ev.DebtorSnapshot]) -> None:
    latest: dict[str, ev.DebtorSnapshot] = {}
    for snapshot in snapshots:
        held = latest.get(snapshot.debtor_id)
        if held is None or snapshot.version > held.version:
            latest[snapshot.debtor_id] = snapshot

    # Keep only the snapshots newer than what is stored. PostgreSQL locks the stored
    # rows; on SQLite a writer that commits in between makes this batch fail (busy
    # snapshot) rather than write on a stale read, and the batch is applied again.
    versions = _stored_versions(connection, list(latest))
    newer = [
        snapshot
        for debtor_id, snapshot in latest.items()
        if debtor_id not in versions or versions[debtor_id] < snapshot.version
    ]
    if not newer:
        return
    # The version guard stays in the statement too: it is what the table promises.
    upsert(
        connection,
        DEBTORS,
        [rows.debtor_row(snapshot) for snapshot in newer],
        keys=["debtor_id"],
        only_if=lambda stored, new: stored.c.version < new.version,
    )

    for chunk in _chunks([snapshot.debtor_id for snapshot in newer]):
        connection.execute(delete(OPEN_ITEMS).where(OPEN_ITEMS.c.debtor_id.in_(chunk)))
        connection.execute(delete(DISPUTES).where(DISPUTES.c.debtor_id.in_(chunk)))
    upsert(
        connection,
        OPEN_ITEMS,
        unique_by(_flatten(rows.open_item_rows, newer), ["debtor_id", "invoice_id"]),
        keys=["debtor_id", "invoice_id"],
    )
    upsert(
        connection,
        DISPUTES,
        unique_by(_flatten(rows.dispute_rows, newer), ["dispute_id"]),
        keys=["dispute_id"],
    )
    # Promises are history, not replaced: a kept or broken one may have dropped out of
    # the snapshot. An older "running" view must not undo an outcome already recorded.
    upsert(
        connection,
        PROMISES,
        unique_by(_flatten(rows.snapshot_promise_rows, newer), ["promise_id"]),
        keys=["promise_id"],
        only_if=lambda stored, new: or_(stored.c.status == "running", new.status != "running"),
    )


def _stored_versions(connection: Connection, debtor_ids: list[str]) -> dict[str, int]:
    # One SELECT instead of UPSERT ... RETURNING: psycopg parses a 1,000-row VALUES
    # statement far slower than it pipelines 1,000 small ones.
    versions: dict[str, int] = {}
    for chunk in _chunks(debtor_ids):
        found = connection.execute(
            select(DEBTORS.c.debtor_id, DEBTORS.c.version)
            .where(DEBTORS.c.debtor_id.in_(chunk))
            .with_for_update()
        )
        versions.update({debtor_id: version for debtor_id, version in found})
    return versions


def _apply_actions(connection: Connection, actions: list[ev.DunningActionDue], task_channels: frozenset[str]) -> None:
    # Only the action's own columns are written on conflict, so a delivery result
    # that arrived first keeps its status.
    upsert(connection, ACTIONS, unique_by(map(rows.action_row, actions), ["action_id"]), keys=["action_id"])
    # Tasks are created once: a controller may have closed one since.
    insert_missing(
        connection,
        TASKS,
        unique_by((rows.task_row(action) for action in actions if action.channel in task_channels), ["action_id"]),
        keys=["action_id"],
    )


def _apply_deliveries(connection: Connection, results: list[ev.DeliveryResult]) -> None:
    """Record each action's newest delivery attempt.

    A result whose action is not projected yet creates a minimal action row (ids,
    channel, delivery columns); the action fills in the rest when it arrives.
    """
    newest: dict[str, ev.DeliveryResult] = {}
    for result in results:
        held = newest.get(result.action_id)
        if held is None or as_utc(result.attempted_at) >= as_utc(held.attempted_at):
            newest[result.action_id] = result
    upsert(
        connection,
        ACTIONS,
        [rows.delivery_row(result) for result in newest.values()],
        keys=["action_id"],
        update=["delivery_status", "delivery_detail", "delivered_at"],
        only_if=lambda stored, new: or_(
            stored.c.delivered_at.is_(None), stored.c.delivered_at <= new.delivered_at
        ),
    )


def _apply_promise_outcomes(
    connection: Connection, outcomes: list[ev.PromiseKept | ev.PromiseBroken]
) -> None:
    upsert(
        connection,
        PROMISES,
        unique_by(map(rows.promise_outcome_row, outcomes), ["promise_id"]),
        keys=["promise_id"],
        update=["promised_date", "amount_minor", "paid_minor", "status"],
    )


def _store_offsets(connection: Connection, offsets: Offsets) -> None:
    upsert(
        connection,
        OFFSETS,
        [
            {"topic": topic, "partition": partition, "next_offset": offset}
            for (topic, partition), offset in offsets.items()
        ],
        keys=["topic", "partition"],
    )


def _flatten(rows_of, snapshots: list[ev.DebtorSnapshot]) -> Iterator[dict[str, Any]]:
    for snapshot in snapshots:
        yield from rows_of(snapshot)


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), IN_LIST_SIZE):
        yield values[start : start + IN_LIST_SIZE]
