"""Bounds on input (streams/core/bounds.py): each rule, and the same refusal at every edge of
the core: ``dunning publish`` (the JSON form), ``dunning simulate`` (``simulate``) and the
worker (the processors, which dead-letter). Also the ledger's bound on a debtor's sums."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import String

from projections import models
from schemas import topics
from schemas.codec import Codec
from schemas.json_form import JsonFormError, event_to_json, parse_json_line
from streams.core import bounds
from streams.core import events as ev
from streams.core.bounds import MAX_AMOUNT_MINOR, MAX_BALANCE_MINOR
from streams.core.dunning import action_id_for
from streams.core.ledger import apply
from streams.core.simulate import Rejected, simulate
from streams.core.snapshot import snapshot
from streams.core.state import DebtorState
from streams.kafka.records import Record, partition_of
from streams.worker.processor import BankProcessor, LedgerProcessor, MatchingProcessor
from tests.scenario import sample_policy

POLICY = sample_policy()
D = date(2025, 3, 3)
REGISTRATION = ev.DebtorRegistered("reg-1", "D1", "Bakkerij Jansen B.V.", "B2B", email="ap@jansen.nl",
                                   phone="+31 6 12345678")
INVOICE = ev.InvoiceIssued("inv-1", "D1", "F-1", D, D + timedelta(days=30), 121_000,
                           payment_reference="RF18539007547034")
PAYMENT = ev.PaymentReceived("pay-1", "T-1", D, 121_000, structured_reference="RF18539007547034",
                             unstructured_remittance="Factuur F-1")


def refusal(event) -> ev.InvalidEvent:
    with pytest.raises(ev.InvalidEvent) as raised:
        bounds.check(event)
    return raised.value


# --------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("name", [
    "x" * 255,
    "Café De Ĳssel & Zonen",
    "Jan\u00a0Jansen",  # a no-break space (str.isprintable refuses it)
    "\u0645\u062d\u0645\u062f\u200c\u0631\u0636\u0627",  # a zero-width non-joiner, as Persian names use
    "\u200eShop",  # a left-to-right mark
])
def test_names_that_fit_pass(name):
    bounds.check(replace(REGISTRATION, name=name))


@pytest.mark.parametrize("name, reason", [
    ("x" * 256, "is 256 characters long, more than the 255 allowed"),
    ("x" * 300, "is 300 characters long, more than the 255 allowed"),
    ("", "must not be empty"),
    ("Jansen\x00", "contains NUL (U+0000) at position 7"),
    ("Jansen\r\nBV", "contains a carriage return (U+000D) at position 7"),
    ("Jansen\nBV", "contains a line feed (U+000A)"),
    ("Jansen\tBV", "contains a tab (U+0009)"),
    ("Jansen\x85BV", "contains a control character (U+0085)"),  # C1 next line
    ("Jansen\x7f", "contains a control character (U+007F)"),
    ("Jansen\u2028BV", "contains a line separator (U+2028)"),
    ("Jansen\u2029BV", "contains a paragraph separator (U+2029)"),
    ("Jansen \u202eVB\u202c", "contains a control character (U+202E)"),  # right-to-left override
    ("Jansen\ud800", "contains a control character (U+D800)"),  # a lone surrogate: no UTF-8 for it
])
def test_names_that_do_not_fit_are_refused(name, reason):
    refused = refusal(replace(REGISTRATION, name=name))
    assert refused.field == "name"
    assert reason in refused.reason


def _forbidden_by_category(text: str) -> bool:
    """The rule as the Unicode categories say it, to hold the regular expression to."""
    bidi_controls = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    return any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") or c in bidi_controls for c in text)


@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=20))
def test_text_is_refused_exactly_for_the_forbidden_characters(text):
    rule = bounds.Text(255)
    try:
        rule.check(text, "name")
        refused = False
    except ev.InvalidEvent:
        refused = True
    assert refused == _forbidden_by_category(text)
    # The compiled quick test never lets through what the rule refuses.
    if eval(rule.test, {"v": text}):  # noqa: S307 - the rule's own expression
        assert not refused


@pytest.mark.parametrize("email", ["ap@jansen.nl", "J.Jansen+dunning@Bakkerij-Jansen.NL", "jörg@müller.de"])
def test_one_e_mail_address_passes_as_given(email):
    event = parse_json_line(json.dumps(event_to_json(replace(REGISTRATION, email=email))), 1)
    assert event.email == email  # not normalised


@pytest.mark.parametrize("email", [
    "a@x.nl, b@y.nl",
    "a@x.nl; b@y.nl",
    "a@x.nl b@y.nl",
    "a@x.nl\r\nBcc: c@z.nl",
    "Jan <j@x.nl>",
    "jansen.nl",
    "j@localhost",
    "j@jansen.local",
    "",
    "j@" + "x" * 250 + ".nl",
])
def test_anything_but_one_e_mail_address_is_refused(email):
    assert refusal(replace(REGISTRATION, email=email)).field == "email"


@given(st.from_regex(r"[a-z0-9]{1,8}(?:[._+-][A-Za-z0-9]{1,6}){0,2}@(?:[a-z0-9]{1,8}(?:-[a-z0-9]{1,5})?\.){1,3}"
                     r"(?:[a-zA-Z]{2,6}|test|local|localhost|invalid|onion|arpa)", fullmatch=True))
def test_a_plain_address_taken_without_the_validator_is_one_the_validator_takes(address):
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(address, check_deliverability=False)
        valid = True
    except EmailNotValidError:
        valid = False
    if bounds._is_plain_email(address):
        assert valid
    assert valid == _accepted(replace(REGISTRATION, email=address))


def _accepted(event) -> bool:
    try:
        bounds.check(event)
        return True
    except ev.InvalidEvent:
        return False


@pytest.mark.parametrize("phone", ["+31 6 12345678", "+31612345678", "0612345678", "020 123 4567", "112",
                                   "+" + "1" * 15])
def test_phone_numbers_that_fit_pass(phone):
    bounds.check(replace(REGISTRATION, phone=phone))


@pytest.mark.parametrize("phone", ["06-12345678", "(020) 1234567", "+31  6 12345678", " 0612345678",
                                   "0612345678 ", "+31 6 1234\r\n", "12", "+" + "1" * 16, "++31612345678",
                                   "+31 6 1234567x", "٠٦١٢٣٤٥٦٧٨"])
def test_phone_numbers_that_do_not_fit_are_refused(phone):
    refused = refusal(replace(REGISTRATION, phone=phone))
    assert refused.field == "phone" and "is not a phone number" in refused.reason


@pytest.mark.parametrize("day", [bounds.FIRST_DATE, bounds.LAST_DATE, date(2025, 12, 31)])
def test_dates_from_1900_to_2199_pass(day):
    bounds.check(replace(INVOICE, issue_date=day, due_date=day))
    bounds.check(ev.DayStarted("day", day))


@pytest.mark.parametrize("day", [date(1, 1, 1), date(1899, 12, 31), date(2200, 1, 1), date(9999, 12, 31)])
def test_dates_outside_1900_to_2199_are_refused_naming_both_ends(day):
    for event, field in [(replace(INVOICE, due_date=day), "due_date"), (ev.DayStarted("day", day), "business_date"),
                         (replace(PAYMENT, booking_date=day), "booking_date")]:
        refused = refusal(event)
        assert refused.field == field
        assert refused.reason == f"{day.isoformat()} is not between 1900-01-01 and 2199-12-31"


@pytest.mark.parametrize("amount", [0, 1, MAX_AMOUNT_MINOR])
def test_amounts_up_to_the_maximum_pass(amount):
    bounds.check(replace(INVOICE, amount_minor=amount))
    bounds.check(replace(REGISTRATION, credit_limit_minor=amount))


@pytest.mark.parametrize("amount, reason", [
    (MAX_AMOUNT_MINOR + 1, "is more than 10,000,000,000,000, the largest amount accepted"),
    (2**62, "is more than 10,000,000,000,000"),
    (2**63 - 1, "is more than 10,000,000,000,000"),
    (-1, "-1 is negative"),
])
def test_amounts_outside_the_bounds_are_refused(amount, reason):
    for event in [replace(INVOICE, amount_minor=amount), replace(PAYMENT, amount_minor=amount),
                  ev.CreditLimitSet("lim", "D1", amount), replace(REGISTRATION, credit_limit_minor=amount),
                  ev.PaymentMatched("pay:x", "D1", "F-1", "T-1", D, amount)]:
        refused = refusal(event)
        assert refused.field in ("amount_minor", "credit_limit_minor")
        assert reason in refused.reason


@pytest.mark.parametrize("currency", ["eur", "EURO", "EU", "E1R", "ÄUR", "€"])
def test_currency_must_be_three_upper_case_letters(currency):
    refused = refusal(replace(INVOICE, currency=currency))
    assert refused.field == "currency" and "is not an ISO 4217 currency code" in refused.reason


@pytest.mark.parametrize("event, field", [
    (replace(INVOICE, debtor_id="D" * 65), "debtor_id"),
    (replace(INVOICE, invoice_id="F" * 65), "invoice_id"),
    (replace(INVOICE, invoice_id=""), "invoice_id"),
    (replace(INVOICE, event_id="e" * 119), "event_id"),  # "unmatched:" + 118 fills a String(128) column
    (replace(PAYMENT, transaction_id="T" * 129), "transaction_id"),
    (replace(PAYMENT, payer_iban="NL" + "0" * 33), "payer_iban"),
    (replace(PAYMENT, unstructured_remittance="x" * 1_001), "unstructured_remittance"),
    (replace(PAYMENT, unstructured_remittance="Factuur F-1\nen F-2"), "unstructured_remittance"),
    (replace(INVOICE, payment_reference="ß" * 40), "payment_reference"),  # "SS" * 40 in upper case
    (replace(REGISTRATION, kind="B2G"), "kind"),
    (replace(REGISTRATION, segment="s" * 65), "segment"),
    (replace(REGISTRATION, salesperson="s" * 129), "salesperson"),
    (replace(REGISTRATION, language=""), "language"),
    (ev.DisputeOpened("d", "D1", "DS-1", "F-1", D, reason="r" * 1_001), "reason"),
    (ev.DisputeOpened("d", "D1", "DS-1", "F-1", D, kind="k" * 17), "kind"),
    (ev.DisputeResolved("d", "D1", "DS-1", D, outcome="\x00"), "outcome"),
    (ev.PromiseToPayMade("p", "D1", "P-1", D, D, 100, invoice_ids=("F-1", "F" * 65)), "invoice_ids[1]"),
    (ev.PromiseToPayMade("p", "D1", "P-1", D, D, 100, invoice_ids=("F",) * 1_001), "invoice_ids"),
    (ev.ReferenceIssued("r" * 129, "RF18539007547034", "D1", "F-1"), "event_id"),
    (ev.ReferenceIssued("ref:inv-1", "", "D1", "F-1"), "reference"),
    (ev.PaymentMatched("pay:x", "D1", "F-1", "T-1", D, 100, method="m" * 65), "method"),
])
def test_each_field_is_refused_by_its_own_bound(event, field):
    assert refusal(event).field == field


def test_the_internal_hops_take_the_longest_input_event_id_with_its_prefix():
    longest = "e" * 118
    bounds.check(replace(INVOICE, event_id=longest))
    bounds.check(ev.ReferenceIssued(f"ref:{longest}", "RF18539007547034", "D1", "F-1"))
    bounds.check(ev.PaymentMatched(f"pay:{longest}", "D1", "F-1", "T-1", D, 100))


def test_every_field_of_every_checked_type_has_a_bound():
    import dataclasses

    assert set(bounds.CHECKED_TYPES) == {*ev.INPUT_TYPES, ev.ReferenceIssued, ev.ReferenceRetired, ev.PaymentMatched,
                                         ev.PayerLearned}
    for cls in bounds.CHECKED_TYPES:
        for f in dataclasses.fields(cls):
            bounds.rule_for(cls, f.name)  # raises LookupError for a field left out
    with pytest.raises(LookupError):
        bounds.rule_for(ev.InvoiceIssued, "a_field_nobody_bounded")


def test_outputs_of_the_core_pass_unchecked():
    bounds.check(ev.PaymentUnmatched("unmatched:x", "T", D, -5, "EUR", "x" * 300))


# --------------------------------------------------------------------------- fits the read models


# Which input fills the rows of each read model (and, by name, which of its fields a column
# holds); the other columns hold what the core or the policy made (workflow, status, ...).
_SOURCES = {
    "debtors": ev.DebtorRegistered,
    "tasks": ev.DebtorRegistered,
    "actions": ev.DebtorRegistered,
    "open_items": ev.InvoiceIssued,  # payment_reference in its normalised form
    "disputes": ev.DisputeOpened,
    "promises": ev.PromiseToPayMade,
    "limit_events": ev.CreditLimitSet,
    "unmatched_payments": ev.PaymentReceived,
}
_RENAMED = {("tasks", "debtor_name"): "name"}
_BUILT_BY_THE_CORE = {("limit_events", "event_id"), ("unmatched_payments", "event_id")}  # see the test below


def _longest(rule) -> int:
    if isinstance(rule, bounds.Phone):
        return 1 + bounds.PHONE_DIGITS[1] * 2 - 1  # "+", the digits, a space between every two
    if isinstance(rule, (bounds.Email, bounds.Iban)):
        return rule._text.max_length
    if isinstance(rule, bounds.OneOf):
        return max(map(len, rule.choices))
    if isinstance(rule, bounds.Currency):
        return 3
    return rule.max_length


def test_every_input_value_fits_the_column_it_lands_in():
    checked, too_long = set(), []
    for table in models.Base.metadata.sorted_tables:
        source = _SOURCES.get(table.name)
        for column in table.columns:
            if source is None or not isinstance(column.type, String) or not column.type.length:
                continue
            if (table.name, column.name) in _BUILT_BY_THE_CORE:
                continue
            field = _RENAMED.get((table.name, column.name), column.name)
            if field not in source.__dataclass_fields__:
                continue
            checked.add(f"{table.name}.{column.name}")
            if _longest(bounds.rule_for(source, field)) > column.type.length:
                too_long.append(f"{table.name}.{column.name}")
    assert too_long == []
    assert {"debtors.name", "debtors.email", "debtors.phone", "debtors.kind", "debtors.salesperson",
            "tasks.debtor_name", "open_items.invoice_id", "open_items.payment_reference", "disputes.owner",
            "disputes.kind", "limit_events.source", "unmatched_payments.payer_iban",
            "unmatched_payments.transaction_id", "unmatched_payments.structured_reference"} <= checked


def test_ids_the_core_builds_from_input_ids_fit_their_columns():
    # unmatched_payments.event_id holds "unmatched:" + the PaymentReceived's event id.
    assert len("unmatched:") + bounds.rule_for(ev.PaymentReceived, "event_id").max_length <= 128
    # limit_events.event_id: "<debtor id>:limit:<version>:<state>".
    assert len(f"{'D' * 64}:limit:{2**63}:breached") <= 128
    # actions.action_id (and tasks, outbox): a hash, however long the ids it is built from.
    longest = action_id_for("D" * 64, "w" * 64, 99, ["F" * 64] * 1_000)
    assert longest == action_id_for("D" * 64, "w" * 64, 99, list(reversed(["F" * 64] * 1_000)))
    assert len(longest) == 24 <= 128


def test_a_debtor_at_the_balance_bound_still_encodes():
    # The smallest limit there is: the utilisation in basis points is the largest figure.
    codec = Codec()
    state, outputs = apply(DebtorState("D1"), replace(REGISTRATION, credit_limit_minor=1), POLICY)
    for n in range(MAX_BALANCE_MINOR // MAX_AMOUNT_MINOR):
        state, emitted = apply(state, replace(INVOICE, event_id=f"inv-{n}", invoice_id=f"F-{n}",
                                              amount_minor=MAX_AMOUNT_MINOR, payment_reference=None), POLICY)
        outputs += emitted
    state, emitted = apply(state, ev.DayStarted("day", date(2026, 1, 1)), POLICY)
    outputs += emitted
    summary = snapshot(state, POLICY)
    assert summary.balance_minor == summary.aging_over_90_minor == MAX_BALANCE_MINOR
    assert summary.utilisation_bp == MAX_BALANCE_MINOR * 10_000
    for event in [summary, *outputs]:
        topic = topics.OUTPUT_TOPIC[type(event)].name
        assert codec.decode(codec.encode(topic, event)) == event
    assert any(isinstance(o, ev.LimitBreached) for o in outputs)


# --------------------------------------------------------------------------- the ledger's bound on sums


def _registered() -> DebtorState:
    state, _ = apply(DebtorState("D1"), REGISTRATION, POLICY)
    return state


def test_invoices_whose_sum_passes_the_balance_bound_are_refused_by_the_ledger():
    half = MAX_BALANCE_MINOR // 2 + 1  # the ledger guards the sum even where no bounds were checked
    state, _ = apply(_registered(), replace(INVOICE, amount_minor=half), POLICY)
    second = replace(INVOICE, event_id="inv-2", invoice_id="F-2", amount_minor=half)
    with pytest.raises(ev.InvalidEvent) as refused:
        apply(state, second, POLICY)
    assert refused.value.field == "amount_minor"
    assert f"would take the debtor's open amount to {2 * half:,}" in refused.value.reason
    assert state.open_minor == half and "F-2" not in state.items


def test_one_invoice_of_2_to_the_62_is_refused_by_the_ledger_too():
    state = _registered()
    with pytest.raises(ev.InvalidEvent) as refused:
        apply(state, replace(INVOICE, amount_minor=2**62), POLICY)
    assert refused.value.field == "amount_minor"


@pytest.mark.parametrize("second", [
    ev.PaymentMatched("pay-2", "D1", "F-NONE", "T-2", D, MAX_BALANCE_MINOR // 2 + 1),
    ev.CreditNoteIssued("cn-2", "D1", "CN-2", "F-1", D, MAX_BALANCE_MINOR // 2 + 1 + 121_000),
])
def test_credit_past_the_balance_bound_is_refused(second):
    state, _ = apply(_registered(), INVOICE, POLICY)
    # The first payment pays F-1 (the only open item) and leaves the rest as credit.
    state, _ = apply(state, ev.PaymentMatched("pay-1", "D1", "F-NONE", "T-1", D, MAX_BALANCE_MINOR // 2 + 1 + 121_000),
                     POLICY)
    assert state.credit_minor == MAX_BALANCE_MINOR // 2 + 1 and state.item("F-1").open_minor == 0
    with pytest.raises(ev.InvalidEvent) as refused:
        apply(state, second, POLICY)
    assert refused.value.field == "amount_minor"
    assert "would take the debtor's unallocated credit to" in refused.value.reason
    assert state.credit_minor == MAX_BALANCE_MINOR // 2 + 1 and state.item("F-1").open_minor == 0


def test_simulate_books_up_to_the_balance_bound_and_rejects_the_invoice_past_it():
    n = MAX_BALANCE_MINOR // MAX_AMOUNT_MINOR
    invoices = [replace(INVOICE, event_id=f"inv-{i}", invoice_id=f"F-{i}", amount_minor=MAX_AMOUNT_MINOR,
                        payment_reference=None) for i in range(n + 1)]
    outputs = list(simulate([REGISTRATION, *invoices], POLICY, snapshots=True))
    (rejected,) = [o for o in outputs if isinstance(o, Rejected)]
    assert (rejected.position, rejected.event_id, rejected.field) == (n + 2, f"inv-{n}", "amount_minor")
    (final,) = [o for o in outputs if isinstance(o, ev.DebtorSnapshot)]
    assert final.balance_minor == MAX_BALANCE_MINOR


# --------------------------------------------------------------------------- the same at every edge

# (event, field, words of the reason): refused alike by the JSON form, simulate and the worker.
BAD = [
    (replace(REGISTRATION, name="x" * 300), "name", "is 300 characters long, more than the 255 allowed"),
    (replace(REGISTRATION, name="Jansen\x00"), "name", "contains NUL (U+0000)"),
    (replace(REGISTRATION, name="Jansen\r\nBV"), "name", "contains a carriage return (U+000D)"),
    (replace(REGISTRATION, email="a@x.nl, b@y.nl"), "email", "is not one e-mail address"),
    (replace(REGISTRATION, email="a@x.nl\r\nBcc: c@z.nl"), "email", "contains a carriage return"),
    (replace(REGISTRATION, phone="06-12345678"), "phone", "is not a phone number"),
    (replace(REGISTRATION, kind="B2G"), "kind", '"B2G" is not a debtor kind (B2B or B2C)'),
    (replace(INVOICE, issue_date=date(1, 1, 1)), "issue_date", "0001-01-01 is not between 1900-01-01 and 2199-12-31"),
    (replace(INVOICE, due_date=date(9999, 12, 31)), "due_date", "9999-12-31 is not between 1900-01-01 and 2199-12-31"),
    (replace(INVOICE, amount_minor=2**62), "amount_minor", "is more than 10,000,000,000,000"),
    (replace(INVOICE, debtor_id="D" * 65), "debtor_id", "is 65 characters long, more than the 64 allowed"),
    (ev.DayStarted("day", date(9999, 1, 1)), "business_date", "is not between 1900-01-01 and 2199-12-31"),
    (replace(PAYMENT, amount_minor=2**62), "amount_minor", "is more than 10,000,000,000,000"),
    (replace(PAYMENT, payer_name="Jansen\u2028BV"), "payer_name", "contains a line separator"),
]
_IDS = [f"{type(e).__name__}.{f}" for e, f, _ in BAD]


@pytest.mark.parametrize("event, field, reason", BAD, ids=_IDS)
def test_dunning_publish_refuses_the_line_naming_line_and_field(event, field, reason):
    line = json.dumps(event_to_json(event))
    with pytest.raises(JsonFormError) as refused:
        parse_json_line(line, 7)
    assert (refused.value.line, refused.value.field) == (7, field)
    assert reason in refused.value.reason
    assert str(refused.value) == f'line 7, field "{field}": {refused.value.reason}'


@pytest.mark.parametrize("event, field, reason", BAD, ids=_IDS)
def test_simulate_rejects_the_event_with_its_field(event, field, reason):
    events = [REGISTRATION, INVOICE, event] if not isinstance(event, ev.DebtorRegistered) else [event, INVOICE]
    outputs = list(simulate(events, POLICY))
    rejected = [o for o in outputs if isinstance(o, Rejected)]
    position = events.index(event) + 1
    assert rejected[0] == Rejected(position, event.event_id, rejected[0].reason, field)
    assert rejected[0].reason.startswith(f"{type(event).__name__} {field}: ") and reason in rejected[0].reason
    if isinstance(event, ev.DebtorRegistered):  # never registered: its invoice is refused too
        assert [r.field for r in rejected] == [field, "debtor_id"]


class _Worker:
    """The worker's processors over dicts standing in for its tables, fed Avro records."""

    PARTITIONS = 4

    def __init__(self):
        self.codec = Codec()
        self.ledger = LedgerProcessor(self.codec, POLICY, self.PARTITIONS)
        self.bank = BankProcessor(self.codec)
        self.matching = MatchingProcessor(self.codec, self.PARTITIONS)
        self.table: dict[bytes, bytes] = {}
        self.offset = 0

    def record(self, topic: str, event) -> Record:
        self.offset += 1
        key = topics.key_of(event)
        key = key.encode() if key is not None else None
        partition = partition_of(key, self.PARTITIONS) if key else 0
        return Record(topic, partition, self.offset, key, self.codec.encode(topic, event), 0.0)

    def feed(self, event) -> list:
        if isinstance(event, ev.PaymentReceived):
            result = self.bank.process([self.record(topics.BANK.name, event)])
        elif isinstance(event, ev.ReferenceIssued):
            result = self.matching.process([self.record(topics.MATCHING.name, event)], {}.get, dict().items)
        else:
            result = self.ledger.process([self.record(topics.LEDGER.name, event)], self.table.get,
                                         lambda: list(self.table))
            for key, (raw, _) in result.states.items():
                self.table[key] = raw
        return [(out.topic, out.value) for out in result.outputs]

    def decoded(self, outputs) -> list:
        return [self.codec.decode(value) if topic != topics.MATCHING.name else (topic, value)
                for topic, value in outputs]


@pytest.mark.parametrize("event, field, reason", BAD, ids=_IDS)
def test_the_worker_dead_letters_the_record_with_the_reason(event, field, reason):
    worker = _Worker()
    if not isinstance(event, ev.DebtorRegistered):
        worker.feed(REGISTRATION)
    before = dict(worker.table)
    (letter,) = worker.decoded(worker.feed(event))  # the dead letter only: nothing applied, nothing passed on
    assert isinstance(letter, ev.DeadLetter)
    assert letter.reason.startswith(f"{type(event).__name__} {field}: ") and reason in letter.reason
    assert letter.original_value == worker.codec.encode(letter.source_topic, event)
    assert worker.table == before


def test_the_worker_passes_what_fits_on():
    worker = _Worker()
    assert any(isinstance(o, ev.DebtorSnapshot) for o in worker.decoded(worker.feed(REGISTRATION)))
    assert [topic for topic, _ in worker.feed(PAYMENT)] == [topics.MATCHING.name]


def test_the_matcher_dead_letters_a_reference_out_of_bounds():
    worker = _Worker()
    (letter,) = worker.decoded(worker.feed(ev.ReferenceIssued("ref:x", "RF" + "1" * 70, "D1", "F-1")))
    assert isinstance(letter, ev.DeadLetter) and letter.reason.startswith("ReferenceIssued reference: ")


def test_the_three_edges_give_the_same_reason():
    event, field, _ = BAD[0]
    with pytest.raises(JsonFormError) as refused:
        parse_json_line(json.dumps(event_to_json(event)), 1)
    (rejected,) = [o for o in simulate([event], POLICY) if isinstance(o, Rejected)]
    worker = _Worker()
    (letter,) = worker.decoded(worker.feed(event))
    expected = f"DebtorRegistered {field}: {refused.value.reason}"
    assert rejected.reason == letter.reason == expected


# --------------------------------------------------------------------------- what stays valid


def test_the_sample_ledger_is_within_bounds():
    from harness.sample_ledger import sample_events

    events = list(sample_events())
    for event in events:
        bounds.check(event)
        parse_json_line(json.dumps(event_to_json(event)), 1)
    assert not [o for o in simulate(events, POLICY) if isinstance(o, Rejected)]


GUIDE = Path(__file__).resolve().parents[1] / "docs" / "integrators.md"


def test_the_integrator_guide_documents_every_bound():
    text = GUIDE.read_text(encoding="utf-8")
    section = re.search(r"^### Bounds on input\n(.*?)(?=^##)", text, re.S | re.M).group(1)
    for key in bounds.BOUNDS:
        field = key if isinstance(key, str) else key[1]
        if field not in ("intercompany", "reversal"):  # booleans
            assert f"`{field}`" in section, field
    for figure in (f"{MAX_AMOUNT_MINOR:,}", f"{MAX_BALANCE_MINOR:,}", "1900-01-01", "2199-12-31", "118", "1,000"):
        assert figure in section, figure
