"""The facts that flow through the platform, as frozen dataclasses.

Each class mirrors one Avro schema in ``schemas/`` (same name, same fields, same
order). Money is always an integer amount in minor units (cents) plus an ISO 4217
currency code; dates are ``datetime.date``; optional fields default to ``None``.

Inputs are published by integrators and connectors; outputs are produced by the
functional core; ``ReferenceIssued``, ``PayerLearned``, ``PaymentProbe`` and
``PaymentMatched`` are internal hops of the payment matcher.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from datetime import date, datetime
from typing import Optional, Union, dataclass_transform


@dataclass_transform()
def event(cls):
    """A frozen, slotted dataclass, built quickly. A frozen dataclass's ``__init__`` sets
    every field through ``object.__setattr__``, which looks the attribute up on the type
    each time; for the few events the core builds per input that was about 7 % of its
    instructions. This ``__init__`` (same parameters and defaults) writes each slot
    through its descriptor instead; the instance is as frozen as before."""
    cls = dataclass(frozen=True, slots=True)(cls)
    names = [f.name for f in fields(cls)]
    scope = {f"_set_{name}": getattr(cls, name).__set__ for name in names}
    parameters = []
    for f in fields(cls):
        if f.default is MISSING:
            parameters.append(f.name)
        else:
            scope[f"_default_{f.name}"] = f.default
            parameters.append(f"{f.name}=_default_{f.name}")
    body = "".join(f"    _set_{name}(self, {name})\n" for name in names)
    exec(f"def __init__(self, {', '.join(parameters)}):\n{body}", scope)  # noqa: S102 - built from field names
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init
    return cls

# --------------------------------------------------------------------------- inputs


@event
class DebtorRegistered:
    """A debtor (customer) is created or its master data changes."""

    event_id: str
    debtor_id: str
    name: str
    kind: str  # "B2B" or "B2C"
    segment: str = "default"  # free label the policy matches on, e.g. "smb", "enterprise"
    language: str = "nl"  # "nl" or "en"
    currency: str = "EUR"
    email: Optional[str] = None
    phone: Optional[str] = None
    credit_limit_minor: Optional[int] = None
    intercompany: bool = False
    branch: Optional[str] = None
    salesperson: Optional[str] = None


@event
class InvoiceIssued:
    event_id: str
    debtor_id: str
    invoice_id: str
    issue_date: date
    due_date: date
    amount_minor: int
    currency: str = "EUR"
    payment_reference: Optional[str] = None  # betalingskenmerk or ISO 11649 RF reference


@event
class CreditNoteIssued:
    event_id: str
    debtor_id: str
    credit_note_id: str
    invoice_id: str  # the credited invoice
    issue_date: date
    amount_minor: int
    currency: str = "EUR"


@event
class PaymentReceived:
    """A booked bank transaction, before it is matched to a debtor: a credit, or a debit
    (money out) that is recorded for a person and never booked on an invoice."""

    event_id: str
    transaction_id: str
    booking_date: date
    amount_minor: int
    currency: str = "EUR"
    payer_iban: Optional[str] = None
    payer_name: Optional[str] = None
    structured_reference: Optional[str] = None
    unstructured_remittance: Optional[str] = None
    end_to_end_id: Optional[str] = None
    account_iban: Optional[str] = None  # the creditor's own account it was booked on
    direction: str = "credit"  # "debit": money out, recorded for a person, never booked on an invoice
    reversal: bool = False  # the bank reverses an earlier transaction with this one


@event
class PaymentAllocated:
    """A person's decision on a payment from the unmatched queue (``dunning allocate``): to
    the invoices named (then by the law's order), on account of a debtor (no invoices), or
    not a debtor's payment at all (``not_ours_reason``). Published to the bank topic."""

    event_id: str
    transaction_id: str
    payment_event_id: str  # the PaymentReceived's event id
    booking_date: date
    amount_minor: int
    currency: str = "EUR"
    structured_reference: Optional[str] = None  # as the payment had it: where the matcher keeps it
    payer_iban: Optional[str] = None
    debtor_id: Optional[str] = None
    invoice_ids: tuple[str, ...] = ()
    not_ours_reason: Optional[str] = None
    allocated_by: Optional[str] = None


@event
class DisputeOpened:
    event_id: str
    debtor_id: str
    dispute_id: str
    invoice_id: str
    opened_on: date
    kind: str = "dispute"  # "dispute" or "complaint"
    amount_minor: Optional[int] = None  # None: the whole open amount of the invoice
    reason: Optional[str] = None
    owner: Optional[str] = None


@event
class DisputeResolved:
    event_id: str
    debtor_id: str
    dispute_id: str
    resolved_on: date
    outcome: Optional[str] = None


@event
class PromiseToPayMade:
    event_id: str
    debtor_id: str
    promise_id: str
    made_on: date
    promised_date: date
    amount_minor: int
    currency: str = "EUR"
    invoice_ids: tuple[str, ...] = ()  # empty: all of the debtor's open invoices


@event
class CreditLimitSet:
    event_id: str
    debtor_id: str
    amount_minor: int
    currency: str = "EUR"
    source: str = "own"  # "own" or "insurer"
    effective_date: Optional[date] = None


@event
class DayStarted:
    """The business date advances. Published by ``dunning clock`` to every partition."""

    event_id: str
    business_date: date


# --------------------------------------------------------------------------- internal hops


@event
class ReferenceIssued:
    """An invoice's payment reference, re-keyed by reference for the matcher."""

    event_id: str
    reference: str  # normalised: upper case, no spaces
    debtor_id: str
    invoice_id: str
    currency: str = "EUR"
    kind: str = "payment_reference"  # or "invoice_number": the invoice's number, for the matching cascade
    # With a payment reference, the invoice's number as well (``cascade.number_token``): one
    # event, written under both keys (``matching.index_keys``).
    number: Optional[str] = None


@event
class ReferenceRetired:
    """A settled invoice the debtor no longer keeps (``ledger.RETENTION``): its index entries
    go, under the same keys its ``ReferenceIssued`` was written under."""

    event_id: str
    reference: str
    debtor_id: str
    invoice_id: str
    kind: str = "payment_reference"
    number: Optional[str] = None


@event
class PayerLearned:
    """A payer's account seen on a confirmed match, re-keyed by IBAN for the matcher: the
    next payment from it without a reference points to this debtor."""

    event_id: str
    iban: str
    debtor_id: str


@event
class MatchCandidate:
    """A debtor (and invoice) a payment may belong to, and what points to it."""

    debtor_id: str
    invoice_id: Optional[str] = None
    # "invoice_number" (in the text), "payer_iban" (a learned account), "open_item" (of the debtor) or
    # "payment_reference" (a valid reference the text contradicts)
    via: str = "invoice_number"


@event
class PaymentProbe:
    """A payment without a usable structured reference on its way through the matcher's
    indexes (``route``: the keys still to visit), collecting what they know (``hits``);
    with ``debtor_id`` set, handed to that debtor, who decides at the next day tick."""

    event_id: str
    transaction_id: str
    booking_date: date
    amount_minor: int
    currency: str
    payer_iban: Optional[str] = None
    payer_name: Optional[str] = None
    structured_reference: Optional[str] = None
    unstructured_remittance: Optional[str] = None
    end_to_end_id: Optional[str] = None
    account_iban: Optional[str] = None
    payment_event_id: str = ""  # the PaymentReceived's own event id
    route: tuple[str, ...] = ()
    hits: tuple[MatchCandidate, ...] = ()
    debtor_id: Optional[str] = None
    reported: bool = False  # in the unmatched queue already: a match takes it out (PaymentResolved)
    reversal: bool = False  # the bank takes back an earlier credit: the debtor undoes that payment


@event
class PaymentMatched:
    """A bank transaction matched to a debtor's invoice, re-keyed by debtor."""

    event_id: str
    debtor_id: str
    invoice_id: str
    transaction_id: str
    booking_date: date
    amount_minor: int
    currency: str = "EUR"
    method: str = "structured_reference"  # or invoice_number, payer_iban_amount, payer_iban_combination, manual
    payer_iban: Optional[str] = None
    more_invoice_ids: tuple[str, ...] = ()  # further invoices the payment pays, after invoice_id, in this order
    reason: Optional[str] = None  # why the matcher chose this invoice
    confidence_pct: int = 100  # how sure: 100 for a structured reference, less for the cascade's later steps


# --------------------------------------------------------------------------- outputs


@event
class ActionItem:
    invoice_id: str
    due_date: date
    open_minor: int
    days_overdue: int
    payment_reference: Optional[str] = None
    principal_minor: int = 0  # of open_minor: the principal asked for
    costs_minor: int = 0  # of open_minor: the collection costs booked on the invoice


@event
class DunningActionDue:
    action_id: str
    debtor_id: str
    business_date: date
    workflow: str
    step: int  # 1-based position of the step in its workflow
    step_name: str
    channel: str  # email, sms, letter, call, collection
    template: str
    tone: str
    language: str
    debtor_name: str
    debtor_kind: str
    currency: str
    total_minor: int
    items: tuple[ActionItem, ...]
    email: Optional[str] = None
    phone: Optional[str] = None
    # The collection costs the message names: those booked on its invoices (included in
    # total_minor), or those a consumer's 14-day letter announces if its term passes unpaid.
    collection_costs_minor: int = 0
    term_days: int = 0  # days the message gives to pay, from the day after receipt


@event
class _LimitEvent:
    event_id: str
    debtor_id: str
    business_date: Optional[date]
    credit_limit_minor: int
    exposure_minor: int
    utilisation_bp: int  # basis points: 10000 = 100 %
    currency: str
    source: str  # "own" or "insurer"


@event
class LimitWarning(_LimitEvent):
    """Utilisation reached the warning share of the limit."""


@event
class LimitBreached(_LimitEvent):
    """Exposure went over the limit."""


@event
class LimitCleared(_LimitEvent):
    """Back under the warning share."""


@event
class _PromiseOutcome:
    event_id: str
    debtor_id: str
    promise_id: str
    promised_date: date
    amount_minor: int
    paid_minor: int
    currency: str
    business_date: Optional[date]


@event
class PromiseKept(_PromiseOutcome):
    """Paid in full by the promised date."""


@event
class PromiseBroken(_PromiseOutcome):
    """The promised date passed without full payment; dunning resumes."""


@event
class PaymentReversed:
    """The bank took back a payment the debtor had been credited with (camt RvslInd, a
    returned transfer): what it paid is open again and the workflow takes it up."""

    event_id: str
    debtor_id: str
    transaction_id: str  # of the reversal
    reversed_transaction_id: str  # of the payment it takes back
    booking_date: date
    amount_minor: int
    currency: str
    invoice_ids: tuple[str, ...] = ()  # the invoices open again, in the order they were paid
    credit_minor: int = 0  # of the amount, what came back off credit on account
    reason: Optional[str] = None  # why this payment: what the reversal and it share


@event
class PaymentUnmatched:
    event_id: str
    transaction_id: str
    booking_date: date
    amount_minor: int
    currency: str
    reason: str
    payer_iban: Optional[str] = None
    payer_name: Optional[str] = None
    structured_reference: Optional[str] = None
    unstructured_remittance: Optional[str] = None
    end_to_end_id: Optional[str] = None
    debtor_id: Optional[str] = None  # set when the debtor is known but no open invoice fits
    candidates: tuple[MatchCandidate, ...] = ()  # the debtors and invoices the matcher considered
    direction: str = "credit"  # as the bank booked it: "debit" is money out
    reversal: bool = False


@event
class PaymentResolved:
    """A payment reported unmatched has been settled: it leaves the unmatched queue."""

    event_id: str
    transaction_id: str
    resolution: str  # "matched" (its invoice was issued after all), "allocated" or "not_ours" (by a person)
    debtor_id: Optional[str] = None
    invoice_id: Optional[str] = None
    reason: Optional[str] = None  # "not_ours": why not


@event
class SnapshotItem:
    invoice_id: str
    issue_date: date
    due_date: date
    amount_minor: int
    paid_minor: int
    credited_minor: int
    disputed_minor: int
    open_minor: int
    dunning_step: int  # 0: no step fired yet
    paused: Optional[str] = None  # "dispute", "promise" or None
    payment_reference: Optional[str] = None
    principal_open_minor: int = 0  # open_minor is principal_open_minor + costs_open_minor
    costs_minor: int = 0  # collection costs booked on the invoice
    costs_open_minor: int = 0


@event
class SnapshotDispute:
    dispute_id: str
    invoice_id: str
    kind: str
    amount_minor: int
    opened_on: date
    reason: Optional[str] = None
    owner: Optional[str] = None


@event
class SnapshotPromise:
    promise_id: str
    made_on: date
    promised_date: date
    amount_minor: int
    paid_minor: int
    status: str  # "running", "kept", "broken"


@event
class DebtorSnapshot:
    event_id: str
    debtor_id: str
    version: int  # number of events applied; a projection keeps the highest
    business_date: Optional[date]
    name: str
    kind: str
    segment: str
    workflow: Optional[str]
    currency: str
    balance_minor: int
    overdue_minor: int
    credit_minor: int  # unallocated payments and credit notes
    aging_not_due_minor: int
    aging_1_30_minor: int
    aging_31_60_minor: int
    aging_61_90_minor: int
    aging_over_90_minor: int
    credit_limit_minor: Optional[int]
    utilisation_bp: Optional[int]
    limit_state: str  # "none", "ok", "warning", "breached"
    items: tuple[SnapshotItem, ...] = ()
    disputes: tuple[SnapshotDispute, ...] = ()
    promises: tuple[SnapshotPromise, ...] = ()
    email: Optional[str] = None
    phone: Optional[str] = None
    branch: Optional[str] = None
    salesperson: Optional[str] = None
    principal_open_minor: int = 0  # of the open items: balance_minor is principal and costs less credit
    costs_open_minor: int = 0  # collection costs booked and still open


@event
class DeliveryResult:
    event_id: str
    action_id: str
    debtor_id: str
    channel: str
    status: str  # "sent", "recorded" (task created), "failed", "skipped"
    attempted_at: datetime
    detail: Optional[str] = None


@event
class DeadLetter:
    event_id: str
    source_topic: str
    partition: int
    offset: int
    reason: str
    original_key: Optional[bytes]
    original_value: bytes
    failed_at: datetime


InputEvent = Union[
    DebtorRegistered,
    InvoiceIssued,
    CreditNoteIssued,
    PaymentReceived,
    DisputeOpened,
    DisputeResolved,
    PromiseToPayMade,
    CreditLimitSet,
    DayStarted,
]

LedgerEvent = Union[
    DebtorRegistered,
    InvoiceIssued,
    CreditNoteIssued,
    PaymentMatched,
    DisputeOpened,
    DisputeResolved,
    PromiseToPayMade,
    CreditLimitSet,
    DayStarted,
]

OutputEvent = Union[
    DunningActionDue,
    LimitWarning,
    LimitBreached,
    LimitCleared,
    PromiseKept,
    PromiseBroken,
    PaymentReversed,
    PaymentUnmatched,
    PaymentResolved,
    DebtorSnapshot,
    DeliveryResult,
    ReferenceIssued,
    PaymentMatched,
]

INPUT_TYPES = (
    DebtorRegistered,
    InvoiceIssued,
    CreditNoteIssued,
    PaymentReceived,
    PaymentAllocated,
    DisputeOpened,
    DisputeResolved,
    PromiseToPayMade,
    CreditLimitSet,
    DayStarted,
)

ALL_TYPES = INPUT_TYPES + (
    ReferenceIssued,
    ReferenceRetired,
    PayerLearned,
    PaymentProbe,
    PaymentMatched,
    DunningActionDue,
    LimitWarning,
    LimitBreached,
    LimitCleared,
    PromiseKept,
    PromiseBroken,
    PaymentReversed,
    PaymentUnmatched,
    PaymentResolved,
    DebtorSnapshot,
    DeliveryResult,
    DeadLetter,
)

# Nested record types, for codecs that convert to and from dicts.
NESTED_TYPES = {
    (DunningActionDue, "items"): ActionItem,
    (DebtorSnapshot, "items"): SnapshotItem,
    (DebtorSnapshot, "disputes"): SnapshotDispute,
    (DebtorSnapshot, "promises"): SnapshotPromise,
    (PaymentUnmatched, "candidates"): MatchCandidate,
    (PaymentProbe, "hits"): MatchCandidate,
}

EVENT_TYPES_BY_NAME = {cls.__name__: cls for cls in ALL_TYPES}


class InvalidEvent(ValueError):
    """An event that the core refuses: it goes to the dead-letter topic with this reason."""

    def __init__(self, reason: str, field: str | None = None):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field

