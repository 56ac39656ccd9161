"""Bank statement files (``connectors.bank_files``): real-shaped camt.053 and camt.054 in
versions 001.02 and 001.08 and Berlin Group JSON, kept in ``tests/bank_files/``: batch
entries, a debit, a reversal, pending transactions, non-ASCII names; broken and hostile
files refused with the element and the reason."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from connectors.bank_files import BankFileError, detect_format, read_statement

FILES = Path(__file__).parent / "bank_files"


def statement(name: str):
    return read_statement((FILES / name).read_bytes())


def test_camt053_001_02_every_entry_and_every_transaction_of_a_batch():
    read = statement("camt053_001_02.xml")
    assert read.format == "camt.053"
    assert [(p.transaction_id, p.amount_minor, p.direction, p.reversal) for p in read.payments] == [
        ("2025041500007", 139_150, "credit", False),
        ("2025041500008/1", 25_000, "credit", False),  # a batch entry: its AcctSvcrRef and the place
        ("2025041500008/2", 12_000, "credit", False),
        ("2025041500009", 4_500, "debit", False),  # a refund: recorded, not dropped
        ("2025041500010", 8_000, "debit", True),  # the reversal of an earlier credit
    ]
    first, rf, free, refund, _ = read.payments
    assert (first.payer_name, first.payer_iban, first.structured_reference, first.end_to_end_id) == (
        "Bakkerij Çelik & Zonen", "NL91ABNA0417164300", "5000056789012345", "F2025-0117")
    assert (first.booking_date, first.currency, first.account_iban) == (date(2025, 4, 15), "EUR", "NL20INGB0001234567")
    assert (rf.structured_reference, rf.payer_name, rf.end_to_end_id) == ("RF18539007547034", "Müller GmbH", None)
    assert (free.structured_reference, free.unstructured_remittance) == (None, "factuur F2025-0131 klantnr 4411")
    assert refund.payer_name == "Bloemenhuis Ærø"  # for a debit, the party paid
    assert (read.pending, read.rejected, read.duplicates) == (1, [], 0)
    assert len({p.event_id for p in read.payments}) == 5


def test_camt053_001_08_names_under_pty_and_amounts_per_transaction():
    read = statement("camt053_001_08.xml")
    assert [(p.transaction_id, p.amount_minor, p.payer_name) for p in read.payments] == [
        ("RABO-0416-000321-1", 12_100, "Zoë van Dijk"),  # the transaction's own AcctSvcrRef
        ("RABO-0416-000322/1", 2_500, "Café ’t Hoekje"),
        ("RABO-0416-000322/2", 3_500, None),
    ]
    assert read.payments[0].booking_date == date(2025, 4, 16)  # from BookgDt/DtTm
    assert read.payments[0].structured_reference == "RF19AB2G59X56V543"


@pytest.mark.parametrize("name, reference, payer", [
    ("camt054_001_02.xml", "4812345678", "Ørsted Service B.V."),
    ("camt054_001_08.xml", "5000 0567 8901 2345", "Šimon Novák"),
])
def test_camt054_notifications(name, reference, payer):
    read = statement(name)
    assert read.format == "camt.054"
    (payment,) = read.payments
    assert (payment.structured_reference, payment.payer_name, payment.direction) == (reference, payer, "credit")


def test_berlin_group_json_both_shapes_of_structured_remittance_a_debit_and_a_pending_one():
    read = statement("psd2_transactions.json")
    assert read.format == "psd2-json"
    assert [(p.transaction_id, p.amount_minor, p.direction, p.structured_reference) for p in read.payments] == [
        ("TX-20250415-0001", 139_150, "credit", "5000056789012345"),  # the string shape
        ("TX-20250415-0002", 25_000, "credit", "RF18539007547034"),  # the object shape
        ("TX-20250415-0003", 4_500, "debit", None),  # a negative amount: money out
    ]
    assert read.payments[2].payer_name == "Bloemenhuis Ærø"
    assert (read.pending, read.rejected) == (1, [])


def test_reading_the_same_file_twice_gives_the_same_ids():
    assert statement("camt053_001_02.xml").payments == statement("camt053_001_02.xml").payments


def test_a_transaction_twice_in_one_file_is_published_once():
    text = (FILES / "camt054_001_02.xml").read_text(encoding="utf-8")
    start, end = text.index("<Ntry>"), text.index("</Ntry>") + len("</Ntry>")
    twice = text[:end] + text[start:end] + text[end:]
    read = read_statement(twice.encode())
    assert (len(read.payments), read.duplicates) == (1, 1)


def test_a_broken_entry_is_rejected_whole_with_its_element_and_the_others_go_on():
    text = (FILES / "camt053_001_02.xml").read_text(encoding="utf-8")
    broken = text.replace('<Amt Ccy="EUR">120.00</Amt>', '<Amt Ccy="EUR">12O.00</Amt>')  # a letter O
    read = read_statement(broken.encode())
    # Neither transaction of the batch entry is published; the entries around it are.
    assert [p.transaction_id for p in read.payments] == ["2025041500007", "2025041500009", "2025041500010"]
    (rejected,) = read.rejected
    assert rejected.where.endswith("Ntry[2]/NtryDtls/TxDtls[2]/AmtDtls/TxAmt/Amt")
    assert "'12O.00' is not a number" in rejected.reason


@pytest.mark.parametrize("change, where, says", [
    (('<Amt Ccy="EUR">1391.50</Amt>\n        <CdtDbtInd>CRDT', '<Amt Ccy="EUR">1391.50</Amt>\n        <CdtDbtInd>XXXX'),
     "Ntry[1]/CdtDbtInd", "neither CRDT nor DBIT"),
    (('<Amt Ccy="EUR">1391.50</Amt>\n        <CdtDbtInd>', '<Amt Ccy="EUR">1391.505</Amt>\n        <CdtDbtInd>'),
     "Ntry[1]/Amt", "more decimals than EUR has (2)"),
    (("<BookgDt><Dt>2025-04-15</Dt></BookgDt>\n        <ValDt>", "<BookgDt><Dt>2025-13-15</Dt></BookgDt>\n        <ValDt>"),
     "Ntry[1]/BookgDt", "is not a date"),
    (("<IBAN>NL91ABNA0417164300</IBAN></Id></DbtrAcct>\n", "<IBAN>NL91ABNA0417164301</IBAN></Id></DbtrAcct>\n"),
     "Ntry[1]", "payer_iban"),
])
def test_each_mistake_is_named_where_it_is(change, where, says):
    text = (FILES / "camt053_001_02.xml").read_text(encoding="utf-8")
    assert change[0] in text
    read = read_statement(text.replace(change[0], change[1], 1).encode())
    (rejected,) = read.rejected
    assert rejected.where.endswith(where) and says in rejected.reason, rejected
    assert "2025041500007" not in {p.transaction_id for p in read.payments}


HOSTILE = {
    "external entity": b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                       b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&x;</Document>',
    "billion laughs": b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
                      b'<!ENTITY c "&b;&b;&b;&b;&b;&b;">]>'
                      b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&c;</Document>',
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_xml_is_refused_whole(kind):
    with pytest.raises(BankFileError, match="declares a DTD or entities"):
        read_statement(HOSTILE[kind])


@pytest.mark.parametrize("data, says", [
    (b"hello", "neither XML"),
    (b"<Document", "not well-formed XML"),
    (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"/>', "not a camt.053 or camt.054"),
    (b'{"account": {}}', 'no "transactions" object'),
    (b'{"transactions": ', "not JSON"),
])
def test_what_is_no_bank_statement_is_refused_with_the_reason(data, says):
    with pytest.raises(BankFileError, match=says):
        read_statement(data)


def test_the_format_is_detected_and_can_be_named():
    assert detect_format((FILES / "camt054_001_08.xml").read_bytes()) == "camt.054"
    with pytest.raises(BankFileError, match="not a camt.054"):
        read_statement((FILES / "camt053_001_02.xml").read_bytes(), "camt.054")


def _without_acctsvcrref(statement_id: str) -> bytes:
    """The 001.02 statement under another statement Id, with the banks' own references taken out:
    only the entries' NtryRef (1, 2, ...) is left to tell them apart."""
    import re

    text = (FILES / "camt053_001_02.xml").read_text(encoding="utf-8")
    text = re.sub(r"<AcctSvcrRef>[^<]*</AcctSvcrRef>", "", text)
    text = re.sub(r"(<Stmt>\s*<Id>)[^<]*(</Id>)", rf"\g<1>{statement_id}\g<2>", text, count=1)
    return text.encode()


def test_an_entry_numbered_only_within_its_statement_gets_the_statement_in_its_id():
    monday, tuesday = (read_statement(_without_acctsvcrref(sid)) for sid in ("STMT-0414", "STMT-0415"))
    assert monday.payments and not monday.rejected
    assert all(p.transaction_id.startswith("STMT-0414/") for p in monday.payments)
    # Entry 1 of the next statement is another payment, never a repeat of Monday's.
    assert not {p.event_id for p in monday.payments} & {p.event_id for p in tuesday.payments}
    assert [p.event_id for p in read_statement(_without_acctsvcrref("STMT-0414")).payments] == [
        p.event_id for p in monday.payments]  # and the same statement again gives the same ids


def test_a_psd2_value_of_the_wrong_json_type_rejects_its_transaction_not_the_file():
    import json

    document = json.loads((FILES / "psd2_transactions.json").read_bytes())
    document["transactions"]["booked"][0]["debtorAccount"] = {"iban": 12}
    read = read_statement(json.dumps(document).encode())
    (rejected,) = read.rejected
    assert rejected.where == "transactions.booked[0]" and rejected.reason.startswith("a value of the wrong type")
    assert read.payments  # the others still go
