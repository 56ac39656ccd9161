"""The read side for credit controllers: plain dicts, ready for an API or a template.

Money stays in minor units next to its currency; totals are never summed across
currencies.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from projections.models import (
    Action,
    Debtor,
    Dispute,
    LimitEvent,
    PaymentReversal,
    Promise,
    Task,
    UnmatchedPayment,
)

Row = dict[str, Any]

DEBTOR_ORDERINGS = {
    "overdue": (Debtor.overdue_minor.desc(), Debtor.debtor_id),
    "balance": (Debtor.balance_minor.desc(), Debtor.debtor_id),
    "utilisation": (Debtor.utilisation_bp.desc().nulls_last(), Debtor.debtor_id),
    "name": (Debtor.name, Debtor.debtor_id),
}
PROMISE_STATUSES = ("running", "kept", "broken")
AGING_BUCKETS = {
    "not_due": Debtor.aging_not_due_minor,
    "1_30": Debtor.aging_1_30_minor,
    "31_60": Debtor.aging_31_60_minor,
    "61_90": Debtor.aging_61_90_minor,
    "over_90": Debtor.aging_over_90_minor,
}


def _all(session: Session, statement: Select[Any]) -> list[Row]:
    return [dict(row) for row in session.execute(statement).mappings()]


def _columns(model: type) -> list[Any]:
    return list(model.__table__.columns)


def debtors_overview(session: Session, order_by: str = "overdue", limit: int | None = None) -> list[Row]:
    """Every debtor's figures; ``order_by`` is overdue, balance, utilisation or name."""
    if order_by not in DEBTOR_ORDERINGS:
        raise ValueError(f"order_by must be one of {sorted(DEBTOR_ORDERINGS)}, not {order_by!r}")
    statement = select(*_columns(Debtor)).order_by(*DEBTOR_ORDERINGS[order_by]).limit(limit)
    return _all(session, statement)


def largest_overdue(session: Session, n: int = 10) -> list[Row]:
    """The ``n`` debtors with the most money overdue (only those with any)."""
    statement = (
        select(*_columns(Debtor))
        .where(Debtor.overdue_minor > 0)
        .order_by(*DEBTOR_ORDERINGS["overdue"])
        .limit(n)
    )
    return _all(session, statement)


def call_list(session: Session) -> list[Row]:
    """Open call tasks, oldest first, the larger amount first within a day."""
    statement = (
        select(*_columns(Task))
        .where(Task.channel == "call", Task.status == "open")
        .order_by(Task.business_date, Task.total_minor.desc(), Task.action_id)
    )
    return _all(session, statement)


def open_disputes(session: Session) -> list[Row]:
    """Open disputes and complaints, oldest first, with the debtor's name."""
    statement = (
        select(*_columns(Dispute), Debtor.name.label("debtor_name"), Debtor.currency)
        .outerjoin(Debtor, Debtor.debtor_id == Dispute.debtor_id)
        .order_by(Dispute.opened_on, Dispute.dispute_id)
    )
    return _all(session, statement)


def promise_agenda(session: Session) -> dict[str, list[Row]]:
    """Promises by status (running, kept, broken), each by promised date."""
    statement = (
        select(*_columns(Promise), Debtor.name.label("debtor_name"), Debtor.currency)
        .outerjoin(Debtor, Debtor.debtor_id == Promise.debtor_id)
        .order_by(Promise.promised_date, Promise.promise_id)
    )
    agenda: dict[str, list[Row]] = {status: [] for status in PROMISE_STATUSES}
    for row in _all(session, statement):
        agenda.setdefault(row["status"], []).append(row)
    return agenda


def unmatched_payments(session: Session) -> list[Row]:
    """Bank transactions waiting for a person to allocate them, newest first."""
    statement = select(*_columns(UnmatchedPayment)).order_by(
        UnmatchedPayment.booking_date.desc(), UnmatchedPayment.transaction_id
    )
    return _all(session, statement)


def actions_log(session: Session, debtor_id: str | None = None) -> list[Row]:
    """Dunning actions with their delivery outcome, newest first; one debtor's if given."""
    statement = select(*_columns(Action)).order_by(
        Action.business_date.desc().nulls_first(), Action.action_id
    )
    if debtor_id is not None:
        statement = statement.where(Action.debtor_id == debtor_id)
    return _all(session, statement)


def aging_totals(session: Session) -> dict[str, dict[str, int]]:
    """Per currency: the sum of each aging bucket, the total and the number of debtors."""
    buckets = [func.coalesce(func.sum(column), 0).label(name) for name, column in AGING_BUCKETS.items()]
    statement = (
        select(Debtor.currency, func.count().label("debtors"), *buckets)
        .group_by(Debtor.currency)
        .order_by(Debtor.currency)
    )
    totals: dict[str, dict[str, int]] = {}
    for row in session.execute(statement).mappings():
        figures = {name: int(row[name]) for name in AGING_BUCKETS}
        figures["total"] = sum(figures.values())
        figures["debtors"] = row["debtors"]
        totals[row["currency"]] = figures
    return totals


def limit_events(session: Session, debtor_id: str | None = None) -> list[Row]:
    """Limit warnings, breaches and clearances, newest business date first."""
    statement = select(*_columns(LimitEvent)).order_by(
        LimitEvent.business_date.desc().nulls_last(), LimitEvent.event_id
    )
    if debtor_id is not None:
        statement = statement.where(LimitEvent.debtor_id == debtor_id)
    return _all(session, statement)


def payment_reversals(session: Session, debtor_id: str | None = None) -> list[Row]:
    """Payments the bank took back, newest booking date first; ``invoice_ids`` as a list."""
    statement = select(*_columns(PaymentReversal)).order_by(
        PaymentReversal.booking_date.desc(), PaymentReversal.event_id
    )
    if debtor_id is not None:
        statement = statement.where(PaymentReversal.debtor_id == debtor_id)
    return [{**row, "invoice_ids": json.loads(row["invoice_ids"])} for row in _all(session, statement)]


def action_counts(session: Session) -> list[Row]:
    """How many actions went out per workflow step (and its channel)."""
    statement = (
        select(Action.workflow, Action.step, Action.step_name, Action.channel, func.count().label("actions"))
        .where(Action.step.is_not(None))  # rows that so far only hold a delivery result
        .group_by(Action.workflow, Action.step, Action.step_name, Action.channel)
        .order_by(Action.workflow, Action.step)
    )
    return _all(session, statement)
