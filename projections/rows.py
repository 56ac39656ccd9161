"""Event dataclasses turned into table rows (plain dicts keyed by column name)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Table

from projections.models import (
    Debtor,
    Dispute,
    LimitEvent,
    OpenItem,
    PaymentReversal,
    Promise,
    Task,
    UnmatchedPayment,
)
from streams.core import events as ev

Row = dict[str, Any]

LIMIT_KINDS: dict[type, str] = {
    ev.LimitWarning: "warning",
    ev.LimitBreached: "breached",
    ev.LimitCleared: "cleared",
}
PROMISE_OUTCOMES: dict[type, str] = {ev.PromiseKept: "kept", ev.PromiseBroken: "broken"}


def _pick(source: object, table: Table, **given: Any) -> Row:
    """Every column of ``table``: from ``given`` if there, else the same-named attribute."""
    return {
        column.name: given[column.name] if column.name in given else getattr(source, column.name)
        for column in table.columns
    }


def debtor_row(snapshot: ev.DebtorSnapshot) -> Row:
    return _pick(snapshot, Debtor.__table__)


def open_item_rows(snapshot: ev.DebtorSnapshot) -> list[Row]:
    # Settled items are history, not work: the read model keeps only what is still open.
    return [
        _pick(item, OpenItem.__table__, debtor_id=snapshot.debtor_id)
        for item in snapshot.items
        if item.open_minor != 0
    ]


def dispute_rows(snapshot: ev.DebtorSnapshot) -> list[Row]:
    return [_pick(dispute, Dispute.__table__, debtor_id=snapshot.debtor_id) for dispute in snapshot.disputes]


def snapshot_promise_rows(snapshot: ev.DebtorSnapshot) -> list[Row]:
    return [_pick(promise, Promise.__table__, debtor_id=snapshot.debtor_id) for promise in snapshot.promises]


def promise_outcome_row(outcome: ev.PromiseKept | ev.PromiseBroken) -> Row:
    """The columns an outcome knows; ``made_on`` is left to the snapshots."""
    return {
        "promise_id": outcome.promise_id,
        "debtor_id": outcome.debtor_id,
        "promised_date": outcome.promised_date,
        "amount_minor": outcome.amount_minor,
        "paid_minor": outcome.paid_minor,
        "status": PROMISE_OUTCOMES[type(outcome)],
    }


ACTION_COLUMNS = (
    "action_id",
    "debtor_id",
    "business_date",
    "workflow",
    "step",
    "step_name",
    "channel",
    "template",
    "tone",
    "currency",
    "total_minor",
)


def action_row(action: ev.DunningActionDue) -> Row:
    """The action's own columns; the delivery columns belong to ``DeliveryResult``."""
    row = {name: getattr(action, name) for name in ACTION_COLUMNS}
    row["invoice_ids"] = [item.invoice_id for item in action.items]
    return row


def task_row(action: ev.DunningActionDue) -> Row:
    # status and created_at take their server defaults.
    return {
        column.name: getattr(action, column.name)
        for column in Task.__table__.columns
        if column.name not in ("status", "created_at")
    }


def delivery_row(result: ev.DeliveryResult) -> Row:
    return {
        "action_id": result.action_id,
        "debtor_id": result.debtor_id,
        "channel": result.channel,
        "delivery_status": result.status,
        "delivery_detail": result.detail,
        "delivered_at": result.attempted_at,
    }


def limit_event_row(alert: ev.LimitWarning | ev.LimitBreached | ev.LimitCleared) -> Row:
    return _pick(alert, LimitEvent.__table__, kind=LIMIT_KINDS[type(alert)])


def payment_reversal_row(reversal: ev.PaymentReversed) -> Row:
    return _pick(reversal, PaymentReversal.__table__, invoice_ids=json.dumps(list(reversal.invoice_ids),
                                                                             ensure_ascii=False))


def unmatched_payment_row(payment: ev.PaymentUnmatched) -> Row:
    candidates = [{"debtor_id": c.debtor_id, "invoice_id": c.invoice_id, "via": c.via} for c in payment.candidates]
    return _pick(payment, UnmatchedPayment.__table__, candidates=json.dumps(candidates, ensure_ascii=False))
