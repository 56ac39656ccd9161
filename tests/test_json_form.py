"""The JSON form integrators write for ``dunning publish`` and ``dunning simulate``."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import orjson
import pytest

from schemas.json_form import JsonFormError, event_from_json, event_to_json, parse_json_line
from streams.core import events as ev

D = "2025-03-14"

# One realistic line per event type, as an integrator or a replay file would have it.
LINES = {
    "DebtorRegistered": {"event_id": "e1", "debtor_id": "D-1", "name": "Bakkerij Jansen B.V.", "kind": "B2B",
                         "segment": "smb", "email": "ap@jansen.nl", "credit_limit_minor": 500000, "intercompany": False},
    "InvoiceIssued": {"event_id": "e2", "debtor_id": "D-1", "invoice_id": "INV-1", "issue_date": "2025-03-01",
                      "due_date": "2025-03-31", "amount_minor": 121000, "payment_reference": "RF18539007547034"},
    "CreditNoteIssued": {"event_id": "e3", "debtor_id": "D-1", "credit_note_id": "CN-1", "invoice_id": "INV-1",
                         "issue_date": D, "amount_minor": 21000, "currency": "EUR"},
    "PaymentReceived": {"event_id": "e4", "transaction_id": "T-1", "booking_date": D, "amount_minor": 100000,
                        "payer_iban": "NL91ABNA0417164300", "structured_reference": "RF18539007547034"},
    "DisputeOpened": {"event_id": "e5", "debtor_id": "D-1", "dispute_id": "DS-1", "invoice_id": "INV-1",
                      "opened_on": D, "kind": "complaint", "amount_minor": None, "reason": "late delivery"},
    "DisputeResolved": {"event_id": "e6", "debtor_id": "D-1", "dispute_id": "DS-1", "resolved_on": D},
    "PromiseToPayMade": {"event_id": "e7", "debtor_id": "D-1", "promise_id": "P-1", "made_on": D,
                         "promised_date": "2025-03-28", "amount_minor": 50000, "invoice_ids": ["INV-1", "INV-2"]},
    "CreditLimitSet": {"event_id": "e8", "debtor_id": "D-1", "amount_minor": 0, "source": "insurer",
                       "effective_date": "2025-04-01"},
    "DayStarted": {"event_id": "e9", "business_date": D},
    "ReferenceIssued": {"event_id": "e10", "reference": "RF18539007547034", "debtor_id": "D-1", "invoice_id": "INV-1"},
    "ReferenceRetired": {"event_id": "e10b", "reference": "RF18539007547034", "debtor_id": "D-1", "invoice_id": "INV-1",
                         "kind": "payment_reference", "number": "INV1"},
    "PaymentMatched": {"event_id": "e11", "debtor_id": "D-1", "invoice_id": "INV-1", "transaction_id": "T-1",
                       "booking_date": D, "amount_minor": 100000, "payer_iban": None, "more_invoice_ids": ["INV-2"],
                       "reason": "the text names INV-1, INV-2", "confidence_pct": 98},
    "PaymentAllocated": {"event_id": "e3b", "transaction_id": "T-9", "payment_event_id": "bank-T-9", "booking_date": D,
                         "amount_minor": 999, "currency": "EUR", "debtor_id": "D-1", "invoice_ids": ["INV-1"],
                         "allocated_by": "anouk"},
    "PayerLearned": {"event_id": "e11b", "iban": "NL91ABNA0417164300", "debtor_id": "D-1"},
    "PaymentProbe": {"event_id": "e11c", "transaction_id": "T-2", "booking_date": D, "amount_minor": 100000,
                     "currency": "EUR", "unstructured_remittance": "factuur INV-0001", "route": ["no:INV0001"],
                     "hits": [{"debtor_id": "D-1", "invoice_id": "INV-0001", "via": "invoice_number"}]},
    "DunningActionDue": {"action_id": "A-1", "debtor_id": "D-1", "business_date": D, "workflow": "b2b-standard",
                         "step": 1, "step_name": "reminder", "channel": "email", "template": "reminder_1",
                         "tone": "friendly", "language": "nl", "debtor_name": "Bakkerij Jansen B.V.",
                         "debtor_kind": "B2B", "currency": "EUR", "total_minor": 121000,
                         "items": [{"invoice_id": "INV-1", "due_date": "2025-03-01", "open_minor": 121000,
                                    "days_overdue": 13, "payment_reference": "RF18539007547034",
                                    "principal_minor": 117000, "costs_minor": 4000}],
                         "email": "ap@jansen.nl", "collection_costs_minor": 4000},
    "LimitWarning": {"event_id": "e12", "debtor_id": "D-1", "business_date": D, "credit_limit_minor": 500000,
                     "exposure_minor": 410000, "utilisation_bp": 8200, "currency": "EUR", "source": "own"},
    "LimitBreached": {"event_id": "e13", "debtor_id": "D-1", "business_date": None, "credit_limit_minor": 500000,
                      "exposure_minor": 510000, "utilisation_bp": 10200, "currency": "EUR", "source": "own"},
    "LimitCleared": {"event_id": "e14", "debtor_id": "D-1", "business_date": D, "credit_limit_minor": 500000,
                     "exposure_minor": 10000, "utilisation_bp": 200, "currency": "EUR", "source": "insurer"},
    "PromiseKept": {"event_id": "e15", "debtor_id": "D-1", "promise_id": "P-1", "promised_date": D,
                    "amount_minor": 50000, "paid_minor": 50000, "currency": "EUR", "business_date": D},
    "PromiseBroken": {"event_id": "e16", "debtor_id": "D-1", "promise_id": "P-1", "promised_date": D,
                      "amount_minor": 50000, "paid_minor": 0, "currency": "EUR", "business_date": D},
    "PaymentReversed": {"event_id": "e16b", "debtor_id": "D-1", "transaction_id": "T-8", "reversed_transaction_id": "T-7",
                        "booking_date": D, "amount_minor": 8000, "currency": "EUR", "invoice_ids": ["INV-1"],
                        "credit_minor": 0, "reason": "the same amount; it came from the same account"},
    "PaymentUnmatched": {"event_id": "e17", "transaction_id": "T-9", "booking_date": D, "amount_minor": 999,
                         "currency": "EUR", "reason": "no open invoice with this reference",
                         "candidates": [{"debtor_id": "D-1", "invoice_id": None, "via": "payer_iban"}]},
    "PaymentResolved": {"event_id": "e17b", "transaction_id": "T-9", "resolution": "not_ours", "debtor_id": None,
                        "invoice_id": None, "reason": "a refund from our insurer"},
    "DebtorSnapshot": {"event_id": "e18", "debtor_id": "D-1", "version": 7, "business_date": D, "name": "Jansen",
                       "kind": "B2B", "segment": "smb", "workflow": "b2b-standard", "currency": "EUR",
                       "balance_minor": -5000, "overdue_minor": 0, "credit_minor": 5000,
                       "aging_not_due_minor": 0, "aging_1_30_minor": 0, "aging_31_60_minor": 0,
                       "aging_61_90_minor": 0, "aging_over_90_minor": 0, "credit_limit_minor": None,
                       "utilisation_bp": None, "limit_state": "none",
                       "items": [{"invoice_id": "INV-1", "issue_date": "2025-03-01", "due_date": "2025-03-31",
                                  "amount_minor": 1000, "paid_minor": 0, "credited_minor": 0, "disputed_minor": 0,
                                  "open_minor": 1000, "dunning_step": 0, "paused": "promise",
                                  "payment_reference": None, "principal_open_minor": 1000, "costs_minor": 0,
                                  "costs_open_minor": 0}],
                       "disputes": [{"dispute_id": "DS-1", "invoice_id": "INV-1", "kind": "dispute",
                                     "amount_minor": 1000, "opened_on": D, "reason": None, "owner": None}],
                       "promises": [{"promise_id": "P-1", "made_on": D, "promised_date": "2025-03-28",
                                     "amount_minor": 1000, "paid_minor": 0, "status": "running"}]},
    "DeliveryResult": {"event_id": "e19", "action_id": "A-1", "debtor_id": "D-1", "channel": "email",
                       "status": "sent", "attempted_at": "2025-03-14T09:30:00.123000+00:00"},
    "DeadLetter": {"event_id": "e20", "source_topic": "dunning.ledger", "partition": 3, "offset": 1234,
                   "reason": "bad magic byte 123", "original_key": None, "original_value": "eyJhIjoxfQ==",
                   "failed_at": "2025-03-14T10:00:00+01:00"},
}


def _line(type_name: str, **changes) -> str:
    obj = {"type": type_name, **LINES[type_name], **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not _DROP})


_DROP = object()


def test_there_is_a_happy_line_for_every_event_type():
    assert set(LINES) == set(ev.EVENT_TYPES_BY_NAME)


@pytest.mark.parametrize("type_name", sorted(LINES))
def test_happy_line_parses_and_round_trips(type_name):
    event = parse_json_line(_line(type_name), 1)
    assert type(event).__name__ == type_name
    as_json = event_to_json(event)
    assert as_json["type"] == type_name
    for name, value in LINES[type_name].items():
        if name.endswith("_at"):  # date-times come back normalised, as the same instant
            assert datetime.fromisoformat(as_json[name]) == datetime.fromisoformat(value)
        else:
            assert as_json[name] == value, name
    assert parse_json_line(orjson.dumps(as_json).decode(), 2) == event


def test_values_become_python_objects_and_defaults_apply():
    invoice = parse_json_line(_line("InvoiceIssued"), 1)
    assert invoice == ev.InvoiceIssued("e2", "D-1", "INV-1", date(2025, 3, 1), date(2025, 3, 31), 121000,
                                       "EUR", "RF18539007547034")
    debtor = parse_json_line(_line("DebtorRegistered"), 1)
    assert (debtor.language, debtor.currency, debtor.phone) == ("nl", "EUR", None)
    promise = parse_json_line(_line("PromiseToPayMade"), 1)
    assert promise.invoice_ids == ("INV-1", "INV-2")
    action = parse_json_line(_line("DunningActionDue"), 1)
    assert action.items == (ev.ActionItem("INV-1", date(2025, 3, 1), 121000, 13, "RF18539007547034", 117000, 4000),)
    dead = parse_json_line(_line("DeadLetter"), 1)
    assert dead.original_value == b'{"a":1}'
    assert dead.failed_at == datetime(2025, 3, 14, 9, 0, tzinfo=timezone.utc)
    assert event_to_json(dead)["original_value"] == "eyJhIjoxfQ=="


def test_the_message_names_line_and_field():
    with pytest.raises(JsonFormError) as refused:
        parse_json_line(_line("InvoiceIssued", due_date="2025-13-01"), 7)
    assert str(refused.value) == 'line 7, field "due_date": "2025-13-01" is not a date (YYYY-MM-DD)'
    assert (refused.value.line, refused.value.field) == (7, "due_date")
    assert refused.value.reason == '"2025-13-01" is not a date (YYYY-MM-DD)'


def test_event_from_json_errors_have_no_line():
    with pytest.raises(JsonFormError) as refused:
        event_from_json({"type": "DayStarted", "event_id": "e", "business_date": "14-03-2025"})
    assert refused.value.line is None
    assert str(refused.value) == 'field "business_date": "14-03-2025" is not a date (YYYY-MM-DD)'


ERRORS = [
    # (line text, field, words in the reason)
    ('{"type": "InvoiceIsued", "event_id": "e"}', "type", 'unknown event type "InvoiceIsued" (did you mean "InvoiceIssued"?)'),
    ('{"type": "ActionItem", "invoice_id": "i"}', "type", "unknown event type"),  # nested types are no events
    ('{"type": 3}', "type", "unknown event type 3"),
    ('{"event_id": "e"}', "type", "missing required field"),
    (_line("InvoiceIssued", debtor_id=_DROP), "debtor_id", "missing required field"),
    (_line("DayStarted", business_day=D), "business_day", "unknown field of DayStarted"),
    (_line("InvoiceIssued", amount_minor="1210.00"), "amount_minor", '"1210.00" is not an integer'),
    (_line("InvoiceIssued", amount_minor=1210.5), "amount_minor", "1210.5 is not an integer: amounts are exact"),
    (_line("InvoiceIssued", amount_minor=1210.0), "amount_minor", "1210.0 is not an integer"),
    (_line("InvoiceIssued", amount_minor=True), "amount_minor", "true is not an integer"),
    (_line("DunningActionDue", step=False), "step", "false is not an integer"),
    (_line("DebtorRegistered", intercompany="no"), "intercompany", '"no" is not a boolean'),
    (_line("DebtorRegistered", intercompany=0), "intercompany", "0 is not a boolean"),
    (_line("InvoiceIssued", invoice_id=17), "invoice_id", "17 is not a string"),
    (_line("InvoiceIssued", event_id=None), "event_id", "must not be null"),
    (_line("InvoiceIssued", due_date="2025-02-30"), "due_date", '"2025-02-30" is not a date (YYYY-MM-DD)'),
    (_line("InvoiceIssued", due_date="20250301"), "due_date", "is not a date (YYYY-MM-DD)"),
    (_line("InvoiceIssued", issue_date=20250301), "issue_date", "20250301 is not a date"),
    (_line("DeliveryResult", attempted_at="2025-03-14T09:30:00"), "attempted_at", "has no UTC offset"),
    (_line("DeliveryResult", attempted_at="yesterday"), "attempted_at", "is not an ISO 8601 date-time"),
    (_line("DeadLetter", original_value="not base64!"), "original_value", "is not base64"),
    (_line("InvoiceIssued", amount_minor=-1), "amount_minor", "-1 is negative"),
    (_line("CreditNoteIssued", amount_minor=-100), "amount_minor", "-100 is negative"),
    (_line("PaymentReceived", amount_minor=-5), "amount_minor", "-5 is negative"),
    (_line("PromiseToPayMade", amount_minor=-5), "amount_minor", "-5 is negative"),
    (_line("CreditLimitSet", amount_minor=-5), "amount_minor", "-5 is negative"),
    (_line("DisputeOpened", amount_minor=-5), "amount_minor", "-5 is negative"),
    (_line("InvoiceIssued", currency="eur"), "currency", '"eur" is not an ISO 4217 currency code'),
    (_line("InvoiceIssued", currency="EURO"), "currency", '"EURO" is not an ISO 4217 currency code'),
    (_line("LimitWarning", currency="E1R"), "currency", "is not an ISO 4217 currency code"),
    (_line("DebtorRegistered", kind="b2b"), "kind", '"b2b" is not a debtor kind (B2B or B2C)'),
    (_line("DebtorRegistered", kind="B2G"), "kind", "is not a debtor kind"),
    (_line("PromiseToPayMade", invoice_ids=["INV-1", 2]), "invoice_ids[1]", "2 is not a string"),
    (_line("PromiseToPayMade", invoice_ids="INV-1"), "invoice_ids", '"INV-1" is not an array'),
    (_line("DunningActionDue", items=[{**LINES["DunningActionDue"]["items"][0], "due_date": "soon"}]),
     "items[0].due_date", '"soon" is not a date'),
    (_line("DunningActionDue", items=[{"invoice_id": "INV-1"}]), "items[0].due_date", "missing required field"),
    (_line("DebtorSnapshot", promises=[{**LINES["DebtorSnapshot"]["promises"][0], "extra": 1}]),
     "promises[0].extra", "unknown field of SnapshotPromise"),
]


@pytest.mark.parametrize(("text", "field", "reason"), ERRORS)
def test_bad_line_is_refused_with_line_and_field(text, field, reason):
    with pytest.raises(JsonFormError) as refused:
        parse_json_line(text, 12)
    error = refused.value
    assert (error.line, error.field) == (12, field)
    assert reason in error.reason
    assert str(error) == f'line 12, field "{field}": {error.reason}'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("InvoiceIssued e1 D-1", "not JSON"),
        ('{"type": "DayStarted", "event_id": "e", ', "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "expected a JSON object, got an array"),
        ('"DayStarted"', "expected a JSON object, got a string"),
    ],
)
def test_a_line_that_is_no_json_object_is_refused_with_its_line(text, reason):
    with pytest.raises(JsonFormError) as refused:
        parse_json_line(text, 3)
    assert (refused.value.line, refused.value.field) == (3, None)
    assert reason in refused.value.reason
    assert str(refused.value).startswith("line 3: ")


def test_amounts_that_may_be_negative_are_accepted():
    # A disputed amount may be left out (the whole invoice) and snapshots carry negative balances.
    dispute = parse_json_line(_line("DisputeOpened", amount_minor=None), 1)
    assert dispute.amount_minor is None
    snapshot = parse_json_line(_line("DebtorSnapshot"), 1)
    assert snapshot.balance_minor == -5000
    matched = parse_json_line(_line("PaymentMatched", amount_minor=-100), 1)
    assert matched.amount_minor == -100
