"""Per-debtor state: open items, disputes, promises, limit, and what follows from them.

States are values. ``apply`` never changes the state it is given: it works on a copy
(``DebtorState.copy``, which shares the containers) and replaces a container whole
when it changes one, so the state before an event stays as it was. That keeps the
ledger pure without rebuilding every field for every event.

One figure is kept in step instead of summed, since the limit check needs it after
every event: ``open_minor``, the open amount of all items, updated wherever an item is
added or replaced; property tests check it against the sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from itertools import chain
from typing import NamedTuple, Optional

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
    # The attributes a policy matches on, in ``ATTRIBUTE_NAMES`` order: looked up after
    # every event, so built once.
    attribute_values: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "attribute_values", (
            self.kind, self.segment, self.language, self.currency, self.intercompany, self.branch, self.salesperson))

    def attributes(self) -> dict:
        return dict(zip(ATTRIBUTE_NAMES, self.attribute_values))


class Item(NamedTuple):
    """An invoice and everything booked against it: a tuple of plain values, small and cheap
    to copy, as a worker holds millions. (The garbage collector keeps looking at instances of
    a tuple subclass, unlike plain tuples: ``dunning.runtime`` collects seldom for that.)

    What the debtor owes on it has two parts, each kept as booked and paid: the principal
    (the invoice less credit notes) and the collection costs booked on it. Money paid on the
    invoice goes to the costs first, then to the principal (BW 6:44): ``with_paid``."""

    invoice_id: str
    event_id: str  # of the InvoiceIssued, to tell a duplicate from a conflicting re-use
    issue_date: date
    due_date: date
    amount_minor: int
    paid_minor: int = 0  # on the principal
    credited_minor: int = 0
    payment_reference: Optional[str] = None
    dunning_step: int = 0  # how many workflow steps have been passed
    last_step_date: Optional[date] = None
    costs_minor: int = 0  # collection costs booked on the invoice
    costs_paid_minor: int = 0
    costs_named_minor: int = 0  # its share of the costs a consumer's letter named: no more is booked

    @property
    def principal_open_minor(self) -> int:
        open_minor = self.amount_minor - self.paid_minor - self.credited_minor
        return open_minor if open_minor > 0 else 0

    @property
    def costs_open_minor(self) -> int:
        return self.costs_minor - self.costs_paid_minor

    @property
    def open_minor(self) -> int:
        """What is owed on the invoice: principal and costs (written out: read on every event)."""
        open_minor = self.amount_minor - self.paid_minor - self.credited_minor
        return (open_minor if open_minor > 0 else 0) + self.costs_minor - self.costs_paid_minor

    @property
    def money_paid_minor(self) -> int:
        """What payments put on it, costs and principal: what a reversal may take back."""
        return self.paid_minor + self.costs_paid_minor

    def with_paid(self, amount_minor: int) -> Item:
        """``amount_minor`` more paid on it, the costs first (BW 6:44); a negative amount is
        taken back, the principal first, so that a reversal undoes the last booking first."""
        costs_paid = self.costs_paid_minor
        if amount_minor >= 0:
            to_costs = min(amount_minor, self.costs_minor - costs_paid)
        else:
            to_costs = -min(-amount_minor - min(-amount_minor, self.paid_minor), costs_paid)
        return Item(self.invoice_id, self.event_id, self.issue_date, self.due_date, self.amount_minor,
                    self.paid_minor + amount_minor - to_costs, self.credited_minor, self.payment_reference,
                    self.dunning_step, self.last_step_date, self.costs_minor, costs_paid + to_costs,
                    self.costs_named_minor)

    def with_credited(self, credited_minor: int) -> Item:
        return self._replace(credited_minor=credited_minor)  # seldom: the frequent copies are written out

    def with_costs(self, costs_minor: int) -> Item:
        return self._replace(costs_minor=costs_minor)  # seldom: the frequent copies are written out

    def with_costs_named(self, costs_named_minor: int) -> Item:
        return self._replace(costs_named_minor=costs_named_minor)  # seldom: the frequent copies are written out

    def at_step(self, dunning_step: int, last_step_date: Optional[date]) -> Item:
        return Item(self.invoice_id, self.event_id, self.issue_date, self.due_date, self.amount_minor,
                    self.paid_minor, self.credited_minor, self.payment_reference, dunning_step, last_step_date,
                    self.costs_minor, self.costs_paid_minor, self.costs_named_minor)


class Booked(NamedTuple):
    """A payment the debtor was credited with, kept for a while (``ledger.RETENTION``) so
    that a reversal by the bank can take exactly it back: where its money went, the
    portions by invoice in the order they were booked, the rest to credit on account, and
    what counted towards which promise. The state keeps each as one flat tuple of plain
    values (``booked_record``; ``of`` reads one back): the garbage collector stops looking at such
    a tuple once it has seen it, never at an instance of a tuple subclass, and every tuple
    a payment leaves behind is work for it until then."""

    event_id: str  # of the PaymentMatched
    transaction_id: str
    booking_date: date
    amount_minor: int
    payer_iban: Optional[str]
    portions: tuple  # (invoice_id, amount_minor), ...
    credit_minor: int  # the rest, to credit on account
    promised: tuple = ()  # (promise_id, amount_minor), ...

    @classmethod
    def of(cls, record: tuple) -> Booked:
        """The payment a ``booked_record`` holds."""
        event_id, transaction_id, booking_date, amount_minor, payer_iban, credit_minor, promised, *portions = record
        return cls(event_id, transaction_id, booking_date, amount_minor, payer_iban, _pairs(portions), credit_minor,
                   _pairs(promised))


# Where a booked_record keeps its event id, its credit on account and the start of its portions.
BOOKED_EVENT_ID, BOOKED_CREDIT, BOOKED_PORTIONS = 0, 5, 7


def booked_record(event_id: str, transaction_id: str, booking_date: date, amount_minor: int,
                  payer_iban: Optional[str], portions: dict[str, int], credit_minor: int,
                  promised: list[tuple[str, int]]) -> tuple:
    """A booked payment as the state keeps it: event_id, transaction_id, booking_date,
    amount_minor, payer_iban, credit_minor, the promised pairs flat, then the portions flat."""
    return (event_id, transaction_id, booking_date, amount_minor, payer_iban, credit_minor,
            tuple(chain.from_iterable(promised)) if promised else (), *chain.from_iterable(portions.items()))


def _pairs(flat) -> tuple:
    return tuple(zip(flat[::2], flat[1::2]))


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
    reopened: int = 0  # times a reversal took back the payment that kept it: its next outcome has an id of its own

    def covers(self, invoice_id: str) -> bool:
        return self.status == "running" and (not self.invoice_ids or invoice_id in self.invoice_ids)


def due_order(item: Item) -> tuple[date, str]:
    return item.due_date, item.invoice_id


@dataclass(slots=True)
class DebtorState:
    debtor_id: str
    debtor: Optional[Debtor] = None
    # Open and recently settled invoices by invoice id, in due-date order (then invoice id).
    items: dict[str, Item] = field(default_factory=dict)
    disputes: tuple[Dispute, ...] = ()  # open disputes only
    promises: tuple[Promise, ...] = ()  # running ones and the last settled ones
    credit_minor: int = 0  # payments and credit notes not absorbed by an invoice
    credit_limit_minor: Optional[int] = None
    limit_source: str = "own"
    limit_state: str = LIMIT_NONE
    today: Optional[date] = None  # the business date of the last DayStarted seen
    version: int = 0  # events applied
    # Ids of applied registrations, payments, credit notes and limit changes, and of
    # resolved disputes and made promises, with the business date they were applied on:
    # redelivered events are recognised and ignored; old ids are pruned.
    seen: dict[str, date] = field(default_factory=dict)
    open_minor: int = 0  # the open amount of all items, kept in step by add_item and replace_item
    # Payments the matching cascade handed to this debtor, decided at the next day tick.
    pending: tuple = ()  # of events.PaymentProbe
    payer_ibans: tuple[str, ...] = ()  # accounts learned from its confirmed matches, the most recent last
    payments: tuple[tuple, ...] = ()  # booked_records within RETENTION, the oldest first
    # (workflow, date ordinal): before that date no step of that workflow can move, so a
    # day tick need not look at the items. A hint, not part of the state: not stored,
    # not compared; None means look.
    steps_quiet_until: Optional[tuple] = field(default=None, compare=False, repr=False)

    def copy(self) -> DebtorState:
        """A shallow copy to change: containers are shared and must be replaced, not changed."""
        return DebtorState(self.debtor_id, self.debtor, self.items, self.disputes, self.promises,
                           self.credit_minor, self.credit_limit_minor, self.limit_source, self.limit_state,
                           self.today, self.version, self.seen, self.open_minor, self.pending, self.payer_ibans,
                           self.payments, self.steps_quiet_until)

    # ---- changing a copy

    def add_item(self, item: Item) -> None:
        """Add a new item, in due order (a new dict: the old one may be shared)."""
        items = self.items
        self.open_minor += item.open_minor
        if items:
            last = next(reversed(items.values()))
            if item.due_date < last.due_date or (item.due_date == last.due_date and item.invoice_id < last.invoice_id):
                self.items = {i.invoice_id: i for i in sorted((*items.values(), item), key=due_order)}
                return
        self.items = items = items.copy()
        items[item.invoice_id] = item  # last, as most new invoices are

    def replace_item(self, old: Item, new: Item) -> None:
        """Put ``new`` in the place of ``old``, the same invoice (a new dict, as above)."""
        self.open_minor += new.open_minor - old.open_minor
        self.items = items = self.items.copy()
        items[new.invoice_id] = new

    def keep_items(self, items: dict[str, Item]) -> None:
        """Replace all items by ``items`` (in due-date order)."""
        self.items = items
        self.open_minor = sum(i.open_minor for i in items.values())

    # ---- derived figures

    @property
    def currency(self) -> str:
        return self.debtor.currency if self.debtor else "EUR"

    @property
    def balance_minor(self) -> int:
        """What the debtor owes: open items less unallocated credit."""
        return self.open_minor - self.credit_minor

    def disputed_minor(self, invoice_id: str) -> int:
        return sum(d.amount_minor for d in self.disputes if d.invoice_id == invoice_id)

    def overdue_minor(self, today: Optional[date] = None) -> int:
        today = today or self.today
        if today is None:
            return 0
        return sum(i.open_minor for i in self.items.values() if i.due_date < today)

    def aging(self, today: Optional[date] = None) -> tuple[int, int, int, int, int]:
        """Open amounts: not due, 1-30, 31-60, 61-90 and over 90 days overdue."""
        today = today or self.today
        buckets = [0, 0, 0, 0, 0]
        for item in self.items.values():
            amount = item.open_minor
            if not amount:
                continue
            days = (today - item.due_date).days if today else 0
            index = 0 if days <= 0 else 1 if days <= 30 else 2 if days <= 60 else 3 if days <= 90 else 4
            buckets[index] += amount
        return tuple(buckets)  # type: ignore[return-value]

    def item(self, invoice_id: str) -> Optional[Item]:
        return self.items.get(invoice_id)
