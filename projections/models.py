"""The read models: tables that credit controllers query, filled by the projector.

Rows are denormalised copies of what the stream processors publish, so there are no
foreign keys: events from different topics arrive in any order, and a delivery result
may land before the action it reports on. Money is integer minor units next to its
currency, as in the events.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Integer, MetaData, String, Text, false, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so later migrations can refer to them on every dialect.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back as an aware UTC datetime.

    SQLite keeps no offset, so values are normalised on the way in (naive means UTC)
    and tagged on the way out; PostgreSQL gets a ``timestamptz`` either way.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)


# Minor units of a large ledger pass 2**31.
Money = BigInteger


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Debtor(Base):
    """One row per debtor: the latest snapshot's figures (the overview)."""

    __tablename__ = "debtors"

    debtor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(8))
    segment: Mapped[str] = mapped_column(String(64))
    workflow: Mapped[str | None] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    balance_minor: Mapped[int] = mapped_column(Money)
    overdue_minor: Mapped[int] = mapped_column(Money, index=True)
    credit_minor: Mapped[int] = mapped_column(Money)
    aging_not_due_minor: Mapped[int] = mapped_column(Money)
    aging_1_30_minor: Mapped[int] = mapped_column(Money)
    aging_31_60_minor: Mapped[int] = mapped_column(Money)
    aging_61_90_minor: Mapped[int] = mapped_column(Money)
    aging_over_90_minor: Mapped[int] = mapped_column(Money)
    credit_limit_minor: Mapped[int | None] = mapped_column(Money)
    # balance_minor is principal_open_minor + costs_open_minor - credit_minor
    principal_open_minor: Mapped[int] = mapped_column(Money, server_default="0")
    costs_open_minor: Mapped[int] = mapped_column(Money, server_default="0")
    utilisation_bp: Mapped[int | None] = mapped_column(BigInteger)
    limit_state: Mapped[str] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(64))
    branch: Mapped[str | None] = mapped_column(String(64))
    salesperson: Mapped[str | None] = mapped_column(String(128))
    business_date: Mapped[date | None]
    # The snapshot's version: a snapshot at or below it is stale and ignored.
    version: Mapped[int] = mapped_column(BigInteger)


class OpenItem(Base):
    """An invoice with money still open, as of the debtor's latest snapshot."""

    __tablename__ = "open_items"

    debtor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    issue_date: Mapped[date]
    due_date: Mapped[date]
    amount_minor: Mapped[int] = mapped_column(Money)
    paid_minor: Mapped[int] = mapped_column(Money)
    credited_minor: Mapped[int] = mapped_column(Money)
    disputed_minor: Mapped[int] = mapped_column(Money)
    open_minor: Mapped[int] = mapped_column(Money)  # principal_open_minor + costs_open_minor
    principal_open_minor: Mapped[int] = mapped_column(Money, server_default="0")
    costs_minor: Mapped[int] = mapped_column(Money, server_default="0")  # collection costs booked
    costs_open_minor: Mapped[int] = mapped_column(Money, server_default="0")
    dunning_step: Mapped[int] = mapped_column(Integer)
    paused: Mapped[str | None] = mapped_column(String(16))
    payment_reference: Mapped[str | None] = mapped_column(String(64))


class Action(Base):
    """A dunning action and what became of its delivery.

    The action's own columns are nullable because a delivery result may arrive first;
    it is kept in a minimal row that the action fills in later.
    """

    __tablename__ = "actions"

    action_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    debtor_id: Mapped[str] = mapped_column(String(64), index=True)
    business_date: Mapped[date | None]
    workflow: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[int | None] = mapped_column(Integer)
    step_name: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(16))
    template: Mapped[str | None] = mapped_column(String(128))
    tone: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str | None] = mapped_column(String(3))
    total_minor: Mapped[int | None] = mapped_column(Money)
    invoice_ids: Mapped[list[str] | None] = mapped_column(JSON)
    delivery_status: Mapped[str] = mapped_column(String(16), server_default="pending")
    delivery_detail: Mapped[str | None] = mapped_column(Text)
    # When the reported delivery attempt happened (also for a failed attempt).
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Task(Base):
    """Work for a person or an outside party: an SMS, letter, call or collection hand-over."""

    __tablename__ = "tasks"

    action_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    debtor_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    business_date: Mapped[date]
    total_minor: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    debtor_name: Mapped[str] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now())


class Dispute(Base):
    """An open dispute or complaint, as of the debtor's latest snapshot."""

    __tablename__ = "disputes"

    dispute_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    debtor_id: Mapped[str] = mapped_column(String(64), index=True)
    invoice_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(Money)
    opened_on: Mapped[date]
    reason: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(128))


class Promise(Base):
    """A promise to pay. ``made_on`` is unknown when a kept/broken alert comes first."""

    __tablename__ = "promises"

    promise_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    debtor_id: Mapped[str] = mapped_column(String(64), index=True)
    made_on: Mapped[date | None]
    promised_date: Mapped[date]
    amount_minor: Mapped[int] = mapped_column(Money)
    paid_minor: Mapped[int] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(16))  # running, kept, broken


class LimitEvent(Base):
    """A credit-limit warning, breach or clearance."""

    __tablename__ = "limit_events"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    debtor_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # warning, breached, cleared
    business_date: Mapped[date | None]
    credit_limit_minor: Mapped[int] = mapped_column(Money)
    exposure_minor: Mapped[int] = mapped_column(Money)
    utilisation_bp: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    source: Mapped[str] = mapped_column(String(16))


class UnmatchedPayment(Base):
    """A bank transaction the matcher could not allocate: the queue a person works off."""

    __tablename__ = "unmatched_payments"

    transaction_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128))
    booking_date: Mapped[date]
    amount_minor: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text)
    payer_iban: Mapped[str | None] = mapped_column(String(34))
    payer_name: Mapped[str | None] = mapped_column(String(255))
    structured_reference: Mapped[str | None] = mapped_column(String(64))
    unstructured_remittance: Mapped[str | None] = mapped_column(Text)
    end_to_end_id: Mapped[str | None] = mapped_column(String(64))
    debtor_id: Mapped[str | None] = mapped_column(String(64))
    # JSON: [{"debtor_id", "invoice_id", "via"}, ...], what the matcher considered
    candidates: Mapped[str] = mapped_column(Text, server_default="[]")
    direction: Mapped[str] = mapped_column(String(8), server_default="credit")
    reversal: Mapped[bool] = mapped_column(Boolean, server_default=false())


class PaymentReversal(Base):
    """A payment the bank took back (``PaymentReversed``): what was open again, and why that payment."""

    __tablename__ = "payment_reversals"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    debtor_id: Mapped[str] = mapped_column(String(64), index=True)
    transaction_id: Mapped[str] = mapped_column(String(128))
    reversed_transaction_id: Mapped[str] = mapped_column(String(128))
    booking_date: Mapped[date]
    amount_minor: Mapped[int] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    invoice_ids: Mapped[str] = mapped_column(Text, server_default="[]")  # JSON: the invoices it had paid
    credit_minor: Mapped[int] = mapped_column(Money, server_default="0")
    reason: Mapped[str | None] = mapped_column(Text)


class Outbox(Base):
    """What a sink has sent per action, so redelivery never sends twice."""

    __tablename__ = "outbox"

    action_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # sending, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    message_id: Mapped[str | None] = mapped_column(String(255))
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.now(), onupdate=func.now())


class ProjectionOffset(Base):
    """The next Kafka offset to read, written in the same transaction as the read models."""

    __tablename__ = "projection_offsets"

    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
