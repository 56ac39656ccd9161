"""Per-debtor state: open items, disputes, promises, limit, and what follows from them.

All values are immutable; the ledger builds a new state for every event. Derived
figures (balance, overdue, aging) are computed, not stored, so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date
from typing import Optional

LIMIT_NONE, LIMIT_OK, LIMIT_WARNING, LIMIT_BREACHED = "none", "ok", "warning", "breached"
ATTRIBUTE_NAMES = ("kind", "segment", "language", "currency", "intercompany", "branch", "salesperson")


@dataclass(frozen=True, slots=True)
class Debtor:
    name: str
    kind: str
    segment: str
    language: str
    currency: str
    email: Optional[str] = None
    phone: Optional[str] = None
    intercompany: bool = False
    branch: Optional[str] = None
    salesperson: Optional[str] = None

    def attribute_values(self) -> tuple:
        """The attributes a policy matches on, in ``ATTRIBUTE_NAMES`` order."""
        return (self.kind, self.segment, self.language, self.currency, self.intercompany, self.branch,
                self.salesperson)

    def attributes(self) -> dict:
        return dict(zip(ATTRIBUTE_NAMES, self.attribute_values()))


@dataclass(frozen=True, slots=True)
class Item:
    """An invoice and everything booked against it."""

    invoice_id: str
    event_id: str  # of the InvoiceIssued, to tell a duplicate from a conflicting re-use
    issue_date: date
    due_date: date
    amount_minor: int
    paid_minor: int = 0
    credited_minor: int = 0
    payment_reference: Optional[str] = None
    dunning_step: int = 0  # how many workflow steps have been passed
    last_step_date: Optional[date] = None

    @property
    def open_minor(self) -> int:
        return max(0, self.amount_minor - self.paid_minor - self.credited_minor)


@dataclass(frozen=True, slots=True)
class Dispute:
    dispute_id: str
    invoice_id: str
    kind: str
    amount_minor: int
    opened_on: date
    reason: Optional[str] = None
    owner: Optional[str] = None


@dataclass(frozen=True, slots=True)
class Promise:
    promise_id: str
    made_on: date
    promised_date: date
    amount_minor: int
    invoice_ids: tuple[str, ...] = ()
    paid_minor: int = 0
    status: str = "running"  # running, kept, broken

    def covers(self, invoice_id: str) -> bool:
        return self.status == "running" and (not self.invoice_ids or invoice_id in self.invoice_ids)


@dataclass(frozen=True, slots=True)
class DebtorState:
    debtor_id: str
    debtor: Optional[Debtor] = None
    items: tuple[Item, ...] = ()  # open and recently settled invoices, by due date
    disputes: tuple[Dispute, ...] = ()  # open disputes only
    promises: tuple[Promise, ...] = ()  # running ones and the last settled ones
    credit_minor: int = 0  # payments and credit notes not absorbed by an invoice
    credit_limit_minor: Optional[int] = None
    limit_source: str = "own"
    limit_state: str = LIMIT_NONE
    today: Optional[date] = None  # the business date of the last DayStarted seen
    version: int = 0  # events applied
    # ids of applied registrations, payments, credit notes and limit changes, and of
    # resolved disputes and made promises, with the business date they were applied on:
    # redelivered events are recognised and ignored; old ids are pruned.
    seen: tuple[tuple[str, date], ...] = field(default=())

    # ---- derived figures

    @property
    def currency(self) -> str:
        return self.debtor.currency if self.debtor else "EUR"

    @property
    def open_total_minor(self) -> int:
        return sum(item.open_minor for item in self.items)

    @property
    def balance_minor(self) -> int:
        """What the debtor owes: open items less unallocated credit."""
        return self.open_total_minor - self.credit_minor

    def disputed_minor(self, invoice_id: str) -> int:
        return sum(d.amount_minor for d in self.disputes if d.invoice_id == invoice_id)

    def overdue_minor(self, today: Optional[date] = None) -> int:
        today = today or self.today
        if today is None:
            return 0
        return sum(i.open_minor for i in self.items if i.due_date < today)

    def aging(self, today: Optional[date] = None) -> tuple[int, int, int, int, int]:
        """Open amounts: not due, 1-30, 31-60, 61-90 and over 90 days overdue."""
        today = today or self.today
        buckets = [0, 0, 0, 0, 0]
        for item in self.items:
            amount = item.open_minor
            if not amount:
                continue
            days = (today - item.due_date).days if today else 0
            index = 0 if days <= 0 else 1 if days <= 30 else 2 if days <= 60 else 3 if days <= 90 else 4
            buckets[index] += amount
        return tuple(buckets)  # type: ignore[return-value]

    def has_seen(self, event_id: str) -> bool:
        return any(seen_id == event_id for seen_id, _ in self.seen)

    def item(self, invoice_id: str) -> Optional[Item]:
        for item in self.items:
            if item.invoice_id == invoice_id:
                return item
        return None


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def evolve(obj, **changes):
    """``dataclasses.replace`` for the core's frozen slotted records, several times faster:
    it copies the fields instead of re-running ``__init__`` (the ledger builds a new state
    per event, so this is on the hot path)."""
    cls = type(obj)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    unknown = changes.keys() - set(names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
    new = object.__new__(cls)
    set_field = object.__setattr__
    for name in names:
        set_field(new, name, changes[name] if name in changes else getattr(obj, name))
    return new
