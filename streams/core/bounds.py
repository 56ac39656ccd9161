"""Bounds on every field of the events that enter the core: only values the whole pipeline can hold.

A value that the core accepts travels on: into the debtor's state and its Avro changelog,
into snapshots and actions, into e-mail headers, and into the read-model columns of
``projections/models.py``. Whatever does not fit one of those must be refused where it
comes in, with the field it is in, not fail later where nobody can fix it (a projector
that stops on a string too long for its column, a worker that cannot encode a balance).

``check(event)`` raises ``InvalidEvent(reason, field)`` for the first field of ``event``
outside its bounds. It is called at every edge of the core, where events come in, so that
``dunning publish`` (``schemas.json_form``), ``dunning simulate`` (``streams.core.simulate``)
and the worker (``streams.worker.processor``, right after decoding) refuse alike; the in-memory
topology (``Pipeline``) takes the events it is given as checked. The inputs and the matcher's
two internal hops are checked (``CHECKED_TYPES``); the core's own outputs pass.

The bounds are declared once, in ``BOUNDS``: field name -> rule, with ``(type, field)``
for a field whose bound differs in one type. A field of a checked type without a rule
fails at import, so a field added to an event cannot go unbounded.

Speed: ``check`` runs for every event (the core does about 100,000 a second), so it is
one function compiled from the table (``_compile``): it picks the event's type and runs
a cheap test per field (``len``, ``str.isprintable``, comparisons). Only when that test
fails does the rule itself run, to decide (the cheap test may be stricter than the rule)
and to say why.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from datetime import date
from typing import Callable

import email_validator
from email_validator import EmailNotValidError, validate_email
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from streams.core import events as ev
from streams.core.references import normalise

# One amount: 10^13 minor units, 100 billion in major units of a currency with cents (and
# still 10^13 units of one without, such as JPY). No single invoice, payment or limit
# comes near it, and ten such amounts on one debtor stay within MAX_BALANCE_MINOR.
MAX_AMOUNT_MINOR = 10**13
# What one debtor may owe, and may hold as unallocated credit (the ledger checks it, as
# it is a sum): 10^14, a trillion in major units with cents. Every amount is carried in an
# Avro ``long`` and SQL ``BIGINT`` (2^63 - 1, about 9.2 * 10^18): 92,000 debtors at this
# bound still sum to less; times 10,000, the utilisation in basis points against a limit
# of one minor unit still fits; and below 2^53 every per-debtor figure is exact even as a
# double (JSON readers, metrics).
MAX_BALANCE_MINOR = 10**14
# Dates: any real invoice, payment or promise, and headroom for the core's date arithmetic
# (retention, terms, catch-up), which would overflow near the years 1 and 9999.
FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(2199, 12, 31)
# A promise to pay names at most this many invoices (none: all the debtor's open invoices).
MAX_PROMISED_INVOICES = 1_000

# Refused in any text: the C0 controls (NUL, TAB, LF, CR, ...), DEL and the C1 controls;
# the line and paragraph separators U+2028/2029; the bidirectional embeddings, overrides
# and isolates U+202A-202E, U+2066-2069, which make a name, reference or IBAN display
# otherwise than it reads to the program ("Trojan Source"); and lone surrogates, which
# cannot be encoded as UTF-8. Everything else printable is fine, including what
# ``str.isprintable`` refuses but names and addresses use: no-break and other spaces,
# zero-width joiners (needed in some scripts and emoji), soft hyphens, LRM/RLM marks.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\x00": "NUL", "\t": "a tab", "\n": "a line feed", "\r": "a carriage return",
          "\u2028": "a line separator", "\u2029": "a paragraph separator"}
_PHONE = re.compile(r"\+?[0-9]+(?: [0-9]+)*")  # ASCII digits, in groups of single spaces
PHONE_DIGITS = (3, 15)  # E.164: at most 15 digits, country code included


def _show(value: object) -> str:
    """A value for a message: JSON-quoted, short, and with what the rules refuse escaped,
    so that the message itself can go anywhere (a dead letter, a log line)."""
    text = _FORBIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False))
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- rules
# A rule has ``check(value, field)``, which raises InvalidEvent, and ``test``: a Python
# expression over ``v`` that is true only for values the rule accepts (it may refuse more:
# then ``check`` decides), or None to always run ``check``.


class Text:
    """A string of ``min_length`` to ``max_length`` characters without control characters."""

    def __init__(self, max_length: int, min_length: int = 0):
        self.max_length, self.min_length = max_length, min_length
        low = "v and " if min_length == 1 else f"{min_length} <= len(v) and " if min_length else ""
        self.test = f"{low}len(v) <= {max_length} and v.isprintable()"

    def check(self, value: str, field: str) -> None:
        if len(value) < self.min_length:
            raise ev.InvalidEvent("must not be empty", field)
        if len(value) > self.max_length:
            raise ev.InvalidEvent(f"is {len(value)} characters long, more than the {self.max_length} allowed", field)
        bad = _FORBIDDEN.search(value)
        if bad:
            char = bad.group()
            what = _NAMED.get(char, "a control character")
            raise ev.InvalidEvent(f"contains {what} (U+{ord(char):04X}) at position {bad.start() + 1}: "
                                  "text must be one line without control characters", field)


class Id(Text):
    """An identifier: text that is not empty."""

    def __init__(self, max_length: int):
        super().__init__(max_length, min_length=1)


class Reference(Text):
    """A payment reference: it is indexed and stored normalised (upper case, letters and
    digits only), and upper case can be longer than the text (``"ß".upper() == "SS"``)."""

    def __init__(self, max_length: int, min_length: int = 0):
        super().__init__(max_length, min_length)
        self.test += " and v.isascii()"  # ASCII keeps its length in upper case

    def check(self, value: str, field: str) -> None:
        super().check(value, field)
        if len(normalise(value)) > self.max_length:
            raise ev.InvalidEvent(f"is {len(normalise(value))} characters long in upper case, "
                                  f"more than the {self.max_length} allowed", field)


class Ids:
    """A list of identifiers, each an ``Id(max_length)``, at most ``max_count`` of them."""

    test = None

    def __init__(self, max_length: int, max_count: int):
        self.each, self.max_count = Id(max_length), max_count

    def check(self, value: tuple, field: str) -> None:
        if len(value) > self.max_count:
            raise ev.InvalidEvent(f"names {len(value)} entries, more than the {self.max_count} allowed", field)
        for i, item in enumerate(value):
            self.each.check(item, f"{field}[{i}]")


class OneOf:
    def __init__(self, what: str, choices: tuple[str, ...]):
        self.what, self.choices = what, choices
        self.test = f"v in {set(choices)!r}"  # compiled to a frozenset constant

    def check(self, value: str, field: str) -> None:
        if value not in self.choices:
            raise ev.InvalidEvent(f"{_show(value)} is not {self.what} ({' or '.join(self.choices)})", field)


class Between:
    """A whole number from ``low`` to ``high``."""

    def __init__(self, low: int, high: int):
        self.low, self.high = low, high
        self.test = f"{low} <= v <= {high}"

    def check(self, value: int, field: str) -> None:
        if not self.low <= value <= self.high:
            raise ev.InvalidEvent(f"{value} is not from {self.low} to {self.high}", field)


# Currency codes once accepted: one set lookup instead of four tests, a tenth of ``check``'s
# time for an invoice. A handful of codes ever occur (26^3 at the most).
_CURRENCIES_ACCEPTED: set[str] = set()


class Currency:
    """The shape of an ISO 4217 code: three upper-case letters A-Z."""

    test = "v in CURRENCIES_ACCEPTED"

    def check(self, value: str, field: str) -> None:
        if not (len(value) == 3 and value.isalpha() and value.isupper() and value.isascii()):
            raise ev.InvalidEvent(
                f"{_show(value)} is not an ISO 4217 currency code (3 upper-case letters, e.g. EUR)", field)
        _CURRENCIES_ACCEPTED.add(value)


class Amount:
    """An amount in minor units: 0 to ``MAX_AMOUNT_MINOR``."""

    test = f"0 <= v <= {MAX_AMOUNT_MINOR}"

    def check(self, value: int, field: str) -> None:
        if value < 0:
            raise ev.InvalidEvent(f"{value} is negative: this amount must be 0 or more", field)
        if value > MAX_AMOUNT_MINOR:
            raise ev.InvalidEvent(f"{value} is more than {MAX_AMOUNT_MINOR:,}, the largest amount accepted", field)


class Day:
    """A date from ``FIRST_DATE`` to ``LAST_DATE``."""

    test = "FIRST_DATE <= v <= LAST_DATE"

    def check(self, value: date, field: str) -> None:
        if not FIRST_DATE <= value <= LAST_DATE:
            raise ev.InvalidEvent(f"{value.isoformat()} is not between {FIRST_DATE.isoformat()} "
                                  f"and {LAST_DATE.isoformat()}", field)


class Email:
    """Exactly one address, its syntax checked by ``email-validator`` (no DNS). The address
    is kept as given: the validator's normalised form only changes the case of the
    domain and the Unicode normal form, which do not matter for delivery."""

    test = None
    _text = Text(254, min_length=1)  # RFC 5321: at most 254 characters in a path

    def check(self, value: str, field: str) -> None:
        self._text.check(value, field)
        if _is_plain_email(value):
            return
        try:
            validate_email(value, check_deliverability=False)
        except EmailNotValidError as exc:
            raise ev.InvalidEvent(f"{_show(value)} is not one e-mail address: {exc}", field) from None


class Iban:
    """An IBAN whose country, length and check digits ``schwifty`` accepts (ISO 13616):
    a payer's account that fails them was misread, and would be matched or refunded wrongly."""

    test = None
    _text = Text(34, min_length=1)  # the longest IBAN

    def check(self, value: str, field: str) -> None:
        self._text.check(value, field)
        try:
            IBAN(value)
        except SchwiftyException as exc:
            raise ev.InvalidEvent(f"{_show(value)} is not a valid IBAN: {exc}", field) from None


# The validator takes 30 to 50 µs an address, more than the core takes for an event. Most
# addresses are plain: ASCII letters and digits with single dots, hyphens, pluses or
# underscores between them, at a domain of such labels (no "--", so no punycode) under a
# top-level domain of letters. Such an address of at most 64 characters (so that every
# length limit holds) is one the validator accepts, unless its domain is one of the
# validator's own special-use names; tests/test_bounds.py holds the validator to that.
# Any other address goes to the validator.
_PLAIN_EMAIL = re.compile(r"[a-z0-9]+(?:[._+-][a-z0-9]+)*@((?:[a-z0-9]+(?:-[a-z0-9]+)*\.)+[a-z]{2,})", re.I | re.A)


def _is_plain_email(address: str) -> bool:
    plain = len(address) <= 64 and _PLAIN_EMAIL.fullmatch(address)
    if not plain:
        return False
    domain = plain.group(1).lower()
    return not any(domain == d or domain.endswith("." + d) for d in email_validator.SPECIAL_USE_DOMAIN_NAMES)


class Phone:
    """An E.164-like number: an optional +, then 3 to 15 digits in groups separated by
    single spaces (e.g. "+31 6 12345678", "0612345678")."""

    test = None

    def check(self, value: str, field: str) -> None:
        digits = len(value) - value.count(" ") - value.startswith("+")  # if it matches
        if not (_PHONE.fullmatch(value) and PHONE_DIGITS[0] <= digits <= PHONE_DIGITS[1]):
            raise ev.InvalidEvent(f"{_show(value)} is not a phone number: an optional + and "
                                  f"{PHONE_DIGITS[0]} to {PHONE_DIGITS[1]} digits, groups separated by "
                                  "single spaces (e.g. +31 6 12345678)", field)


CURRENCY = Currency()
AMOUNT = Amount()
DAY = Day()
FREE_TEXT = Text(1_000)  # a Text column: long enough for any note, still bounded

# --------------------------------------------------------------------------- the bounds

# Field -> rule, for every field of the checked types (a (type, field) key wins over the
# field name). Lengths are those of the read-model columns the value (or a value built
# from it) lands in; fields no column holds get the bound of their kin.
BOUNDS: dict = {
    # ids: String(64) columns (debtors, open items, disputes, promises); a credit note id
    # lands nowhere but is an id like the others.
    "debtor_id": Id(64),
    "invoice_id": Id(64),
    "credit_note_id": Id(64),
    "dispute_id": Id(64),
    "promise_id": Id(64),
    "invoice_ids": Ids(64, MAX_PROMISED_INVOICES),
    "transaction_id": Id(128),  # unmatched_payments.transaction_id
    "end_to_end_id": Text(64),  # SEPA allows 35
    # Event ids: the matcher's PaymentUnmatched is "unmatched:" + the payment's event id,
    # kept in a String(128) column; the internal hops are "ref:" / "pay:" + an input's id.
    "event_id": Id(118),
    (ev.ReferenceIssued, "event_id"): Id(128),
    (ev.ReferenceRetired, "event_id"): Id(128),
    (ev.PaymentMatched, "event_id"): Id(128),
    (ev.PaymentResolved, "event_id"): Id(128),
    (ev.PayerLearned, "event_id"): Id(128),
    (ev.PaymentAllocated, "event_id"): Id(128),
    "payment_event_id": Id(118),
    (ev.PaymentMatched, "invoice_id"): Text(64),  # empty: a payment on account (a manual allocation)
    "not_ours_reason": FREE_TEXT,
    "allocated_by": Text(128),
    (ev.PaymentMatched, "more_invoice_ids"): Ids(64, MAX_PROMISED_INVOICES),
    (ev.PaymentMatched, "confidence_pct"): Between(0, 100),
    (ev.ReferenceIssued, "kind"): OneOf("an index kind", ("payment_reference", "invoice_number")),
    (ev.ReferenceRetired, "kind"): OneOf("an index kind", ("payment_reference", "invoice_number")),
    # names and labels
    "name": Text(255, min_length=1),
    "payer_name": Text(255),
    "segment": Text(64),
    "branch": Text(64),
    "salesperson": Text(128),
    "owner": Text(128),
    "language": Text(16, min_length=1),  # which languages have templates is the sink's to say
    (ev.DebtorRegistered, "kind"): OneOf("a debtor kind", ("B2B", "B2C")),
    (ev.PaymentReceived, "direction"): OneOf("a direction", ("credit", "debit")),
    (ev.PaymentReceived, "reversal"): None,  # a boolean: nothing to bound
    (ev.DisputeOpened, "kind"): Text(16),  # 'dispute' or 'complaint': the ledger's rule
    "source": Text(16),  # 'own' or 'insurer': the ledger's rule
    "method": Text(64),
    "intercompany": None,  # a boolean: nothing to bound
    # free text, in Text columns
    "reason": FREE_TEXT,
    "outcome": FREE_TEXT,
    "unstructured_remittance": FREE_TEXT,
    # contact
    "email": Email(),
    "phone": Phone(),  # phone columns are String(64)
    # references and accounts
    "payment_reference": Reference(64),
    "structured_reference": Reference(64),
    "reference": Reference(64, min_length=1),  # ReferenceIssued: the normalised form
    (ev.ReferenceIssued, "number"): Reference(64),  # an invoice id's letters and digits (invoice_id: 64)
    (ev.ReferenceRetired, "number"): Reference(64),
    "payer_iban": Iban(),
    "iban": Iban(),  # PayerLearned
    "account_iban": Iban(),
    # money
    "currency": CURRENCY,
    "amount_minor": AMOUNT,
    "credit_limit_minor": AMOUNT,
    # dates
    "issue_date": DAY,
    "due_date": DAY,
    "booking_date": DAY,
    "opened_on": DAY,
    "resolved_on": DAY,
    "made_on": DAY,
    "promised_date": DAY,
    "effective_date": DAY,
    "business_date": DAY,
}

# The inputs and the matcher's internal hops, the most frequent first (``check`` tries them
# in this order).
CHECKED_TYPES = (ev.InvoiceIssued, ev.PaymentReceived, ev.PaymentMatched, ev.ReferenceIssued, ev.ReferenceRetired,
                 ev.DayStarted, ev.PayerLearned,
                 ev.PaymentAllocated,
                 ev.CreditNoteIssued, ev.DebtorRegistered, ev.DisputeOpened, ev.DisputeResolved,
                 ev.PromiseToPayMade, ev.CreditLimitSet)


def rule_for(cls: type, field: str):
    key = (cls, field)
    if key in BOUNDS:
        return BOUNDS[key]
    if field in BOUNDS:
        return BOUNDS[field]
    raise LookupError(f"streams.core.bounds: no bound for {cls.__name__}.{field}")


def _compile() -> Callable[[object], None]:
    """``check``: one function, built from ``BOUNDS``, that finds the event's type and tests
    each of its fields in order, e.g.

        kind = type(event)
        if kind is InvoiceIssued:
            v = event.event_id
            if not (v and len(v) <= 118 and v.isprintable()): rule_0_0.check(v, 'event_id')
            ...
            return
        if kind is PaymentReceived:
            ...

    One Python call per event, not one per type and field: a call costs about as much as
    the tests of two fields."""
    scope: dict = {"FIRST_DATE": FIRST_DATE, "LAST_DATE": LAST_DATE, "CURRENCIES_ACCEPTED": _CURRENCIES_ACCEPTED}
    lines = ["def check(event):", "    kind = type(event)"]
    for t, cls in enumerate(CHECKED_TYPES):
        scope[cls.__name__] = cls
        lines.append(f"    if kind is {cls.__name__}:")
        for n, f in enumerate(fields(cls)):
            rule = rule_for(cls, f.name)
            if rule is None:
                continue
            name = f"rule_{t}_{n}"
            scope[name] = rule
            conditions = ["v is not None"] if f.default is None else []  # an optional field left out
            if rule.test:
                conditions.append(f"not ({rule.test})")
            call = f"{name}.check(v, {f.name!r})"
            lines.append(f"        v = event.{f.name}")
            lines.append(f"        if {' and '.join(conditions)}: {call}" if conditions else f"        {call}")
        lines.append("        return")
    exec("\n".join(lines) + "\n", scope)  # noqa: S102 - built from the table above
    return scope["check"]


# check(event) -> None
check = _compile()
check.__doc__ = """Raise ``InvalidEvent(reason, field)`` for the first field of ``event`` outside
its bounds; the core's own outputs pass."""
