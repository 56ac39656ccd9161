"""Invoice files (``connectors.invoice_files``): real-shaped Peppol BIS 3.0 UBL invoices and a
credit note, and one open-item export per package (Exact Online, Twinfield, Moneybird,
e-Boekhouden) kept in ``tests/invoice_files/``: non-ASCII names, decimal commas, Exact's
/Date(ms)/, a BOM, credit notes as negative amounts, rows that are not open; malformed rows
and documents rejected with their line or element; hostile XML refused with nothing read."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from connectors.amounts import Unreadable, plain_number
from connectors.invoice_files import InvoiceFileError, InvoiceReader, detect_format, read_invoices
from connectors.invoice_import import read_invoice_path
from streams.core import events as ev

FILES = Path(__file__).parent / "invoice_files"
UBL = FILES / "ubl"


def listing(name: str, **kwargs):
    return read_invoices((FILES / name).read_bytes(), name=name, **kwargs)


def ubl(name: str, text: str | None = None):
    data = (UBL / name).read_bytes() if text is None else text.encode()
    return read_invoices(data, name=name)


def invoices(read) -> list[tuple]:
    return [(i.event_id, i.debtor_id, i.invoice_id, i.issue_date, i.due_date, i.amount_minor, i.currency,
             i.payment_reference) for i in read.invoices]


def credits(read) -> list[tuple]:
    return [(c.event_id, c.debtor_id, c.credit_note_id, c.invoice_id, c.issue_date, c.amount_minor)
            for c in read.credit_notes]


# --------------------------------------------------------------------------- UBL


def test_a_peppol_invoice_gives_its_debtor_and_the_invoice_with_its_betalingskenmerk():
    read = ubl("F2025-0117.xml")
    assert read.format == "ubl" and (read.files, read.documents, read.rejected) == (1, 1, [])
    (debtor,) = read.debtors
    assert (debtor.debtor_id, debtor.name, debtor.kind, debtor.email, debtor.currency) == (
        "12345678", "Bakkerij Çelik & Zonen", "B2B", "crediteuren@celik.example", "EUR")  # EndpointID, PartyName
    assert debtor.event_id.startswith("ubl:debtor:12345678:")
    assert invoices(read) == [("ubl:inv:F2025-0117", "12345678", "F2025-0117", date(2025, 4, 1), date(2025, 4, 15),
                               139_150, "EUR", "5000056789012345")]
    assert read.listed == set()  # UBL documents are not an open-item list


def test_the_amount_is_what_is_still_payable_and_the_name_may_come_from_the_legal_entity():
    read = ubl("F2025-0118.xml")
    (invoice,) = read.invoices
    assert (invoice.amount_minor, invoice.payment_reference) == (25_000, "RF18539007547034")  # 300.00 less 50.00 prepaid
    assert read.debtors[0].name == "Müller Bäckereibedarf GmbH"  # no PartyName: the RegistrationName


def test_a_credit_note_credits_the_invoice_of_its_billing_reference():
    read = ubl("C2025-0007.xml")
    assert read.invoices == [] and credits(read) == [
        ("ubl:cn:C2025-0007", "12345678", "C2025-0007", "F2025-0117", date(2025, 4, 4), 3_630)]


def test_a_folder_registers_each_debtor_once_and_reads_the_same_ids_twice():
    first, again = read_invoice_path(UBL), read_invoice_path(UBL)
    assert (first.files, first.documents, first.rejected) == (3, 3, [])
    assert [d.debtor_id for d in first.debtors] == ["12345678", "DE123456789"]
    assert [i.invoice_id for i in first.invoices] == ["F2025-0117", "F2025-0118"]
    assert [c.credit_note_id for c in first.credit_notes] == ["C2025-0007"]
    assert first.events() == again.events()


def test_a_payment_id_that_is_no_valid_reference_is_left_out():
    text = (UBL / "F2025-0117.xml").read_text(encoding="utf-8").replace(
        "<cbc:PaymentID>5000056789012345</cbc:PaymentID>", "<cbc:PaymentID>Factuur F2025-0117</cbc:PaymentID>")
    (invoice,) = ubl("F2025-0117.xml", text).invoices
    assert invoice.payment_reference is None


def test_a_debtor_without_endpoint_id_is_known_by_its_company_id():
    text = (UBL / "F2025-0117.xml").read_text(encoding="utf-8").replace(
        '<cbc:EndpointID schemeID="0106">12345678</cbc:EndpointID>\n      <cac:PartyIdentification>', "<cac:PartyIdentification>")
    assert ubl("F2025-0117.xml", text).debtors[0].debtor_id == "12345678"


@pytest.mark.parametrize("change, where, says", [
    (('<cbc:PayableAmount currencyID="EUR">1391.50', '<cbc:PayableAmount currencyID="EUR">1391.505'),
     "Invoice/cac:LegalMonetaryTotal/cbc:PayableAmount", "more decimals than EUR has (2)"),
    (('<cbc:PayableAmount currencyID="EUR">1391.50', '<cbc:PayableAmount currencyID="USD">1391.50'),
     "Invoice/cac:LegalMonetaryTotal/cbc:PayableAmount", "differs from the DocumentCurrencyCode"),
    (("<cbc:DueDate>2025-04-15</cbc:DueDate>", ""), "Invoice/cbc:DueDate", "dunning counts from the due date"),
    (("<cbc:DueDate>2025-04-15</cbc:DueDate>", "<cbc:DueDate>2025-03-15</cbc:DueDate>"), "Invoice/cbc:DueDate",
     "before the issue date"),
    (("<cbc:IssueDate>2025-04-01</cbc:IssueDate>", "<cbc:IssueDate>01-04-2025</cbc:IssueDate>"), "Invoice/cbc:IssueDate",
     "is not a date"),
    (("crediteuren@celik.example", "crediteuren at celik"),
     "Invoice/cac:AccountingCustomerParty/cac:Party/cac:Contact/cbc:ElectronicMail", "email: "),
    (("<cbc:Name>Bakkerij Çelik &amp; Zonen</cbc:Name>", "<cbc:Name>Bakkerij Çelik &#x202E;Zonen</cbc:Name>"),
     "Invoice/cac:AccountingCustomerParty/cac:Party/cac:PartyName/cbc:Name", "name: contains a control character"),
])
def test_a_broken_document_is_rejected_with_its_element_and_nothing_of_it_is_kept(change, where, says):
    text = (UBL / "F2025-0117.xml").read_text(encoding="utf-8")
    assert change[0] in text
    read = ubl("F2025-0117.xml", text.replace(change[0], change[1], 1))
    (rejected,) = read.rejected
    assert rejected.where == f"F2025-0117.xml: {where}" and says in rejected.reason, rejected
    assert read.events() == []


def test_a_credit_note_must_name_the_invoice_it_credits():
    text = (UBL / "C2025-0007.xml").read_text(encoding="utf-8")
    start, end = text.index("<cac:BillingReference>"), text.index("</cac:BillingReference>") + 23
    (rejected,) = ubl("C2025-0007.xml", text[:start] + text[end:]).rejected
    assert rejected.where.endswith("CreditNote/cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID")
    assert "the invoice the credit note credits" in rejected.reason


HOSTILE = sorted((FILES / "hostile").iterdir())


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.stem)
def test_hostile_xml_is_refused_whole(path):
    with pytest.raises(InvoiceFileError, match="declares a DTD or entities"):
        read_invoices(path.read_bytes())


def test_in_a_folder_a_hostile_file_is_refused_and_the_others_go_on(tmp_path):
    for source in [*UBL.iterdir(), *HOSTILE]:
        (tmp_path / source.name).write_bytes(source.read_bytes())
    read = read_invoice_path(tmp_path)
    assert sorted((Path(r.where).name, "declares a DTD" in r.reason) for r in read.rejected) == [
        ("billion_laughs.xml", True), ("external_entity.xml", True)]
    assert (read.files, read.documents, len(read.invoices), len(read.credit_notes)) == (5, 3, 2, 1)
    assert not any("F2025-666" in e.event_id for e in read.events())


@pytest.mark.parametrize("data, fmt, says", [
    (b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.02'/>", None, "not a UBL 2.1 Invoice or CreditNote"),
    (b"<Invoice", None, "not well-formed XML"),
    (b"Klant;Bedrag\n1001;12,00\n", None, "neither UBL XML nor a known open-item export"),
    (b"AccountCode,Amount,InvoiceNumber\n1001,1.00,1\n", None, "not an Exact Online export: no column AccountName"),
    (b"", None, "empty"),
    ("MutDatum;MutFactuur;RelCode;RelBedrijf;Openstaand\n01-04-2025;F1;1;Caf\u00e9;1,00\n".encode("cp1252"), None,
     "not UTF-8: byte 0xe9"),
    ((FILES / "exact_receivables.csv").read_bytes(), "ubl", "not XML"),
    ((UBL / "F2025-0117.xml").read_bytes(), "exact", "XML, not an Exact Online CSV export"),
    ((FILES / "exact_receivables.csv").read_bytes(), "twinfield", "not a Twinfield export: no column dim2"),
])
def test_what_is_no_invoice_file_is_refused_with_the_reason(data, fmt, says):
    with pytest.raises(InvoiceFileError, match=says):
        read_invoices(data, fmt)


def test_a_folder_needs_xml_files_and_is_read_as_ubl(tmp_path):
    with pytest.raises(InvoiceFileError, match="no .xml files"):
        read_invoice_path(tmp_path)
    with pytest.raises(InvoiceFileError, match="a folder is read as UBL"):
        read_invoice_path(UBL, "exact")


# --------------------------------------------------------------------------- open-item exports


@pytest.mark.parametrize("name, fmt", [("ubl/F2025-0117.xml", "ubl"), ("ubl/C2025-0007.xml", "ubl"),
                                       ("exact_receivables.csv", "exact"), ("twinfield_browse100.csv", "twinfield"),
                                       ("moneybird_sales_invoices.csv", "moneybird"),
                                       ("eboekhouden_openposten.csv", "eboekhouden")])
def test_the_format_is_detected_from_the_content(name, fmt):
    assert detect_format((FILES / name).read_bytes()) == fmt


def test_exact_receivables_open_amounts_ms_dates_a_credit_note_and_a_padded_account_code():
    read = listing("exact_receivables.csv")
    assert (read.format, read.documents, read.not_open, read.rejected) == ("exact", 6, 1, [])
    assert [(d.debtor_id, d.name, d.currency) for d in read.debtors] == [
        ("1001", "Bakkerij Çelik & Zonen", "EUR"), ("1002", "Zoë van Dijk Interieur", "EUR"),
        ("1003", "Ørsted Service ApS", "USD")]
    assert invoices(read) == [
        ("exact:inv:20250117", "1001", "20250117", date(2025, 4, 1), date(2025, 4, 15), 139_150, "EUR", None),
        ("exact:inv:20250121", "1001", "20250121", date(2025, 4, 1), date(2025, 5, 1), 60_500, "EUR", None),
        ("exact:inv:20250119", "1002", "20250119", date(2025, 3, 21), date(2025, 4, 20), 242_000, "EUR", None),
        # /Date(1746050400000+0200)/: 22:00 UTC on 30 April, midnight on 1 May where it was written
        ("exact:inv:20250122", "1003", "20250122", date(2025, 4, 1), date(2025, 5, 1), 125_000, "USD", None),
    ]
    # -242 is a credit note, booked on the debtor's open invoice in the export that is due first
    assert credits(read) == [("exact:cn:20250125", "1002", "20250125", "20250119", date(2025, 4, 3), 24_200)]
    assert read.listed == {"20250117", "20250121", "20250119", "20250122"}  # not the credit note, not the paid one


def test_twinfield_browse_bom_semicolons_decimal_commas_and_match_status():
    read = listing("twinfield_browse100.csv")
    assert (read.format, read.documents, read.rejected) == ("twinfield", 6, [])
    assert read.not_open == 2  # the matched line, and the payment on account without an invoice number
    assert invoices(read) == [
        ("twinfield:inv:F2025-0117", "1001", "F2025-0117", date(2025, 4, 1), date(2025, 4, 15), 139_150, "EUR", None),
        ("twinfield:inv:F2025-0120", "1001", "F2025-0120", date(2025, 4, 2), date(2025, 5, 2), 121_000, "EUR", None),
        # 484,00 invoiced, 184,00 open: the open amount
        ("twinfield:inv:F2025-0104", "1004", "F2025-0104", date(2025, 2, 24), date(2025, 3, 10), 18_400, "EUR", None),
    ]
    assert credits(read) == [("twinfield:cn:C2025-0005", "1004", "C2025-0005", "F2025-0104", date(2025, 4, 4), 6_050)]
    assert read.debtors[1].name == "Café ’t Hoekje"


def test_moneybird_states_payment_references_and_a_person():
    read = listing("moneybird_sales_invoices.csv")
    assert (read.documents, read.not_open, read.rejected) == (6, 2, [])  # paid and draft left out
    assert [(i.invoice_id, i.amount_minor, i.payment_reference) for i in read.invoices] == [
        ("2025-0117", 139_150, "4812345678"),  # a betalingskenmerk
        ("2025-0118", 12_100, None),  # "2025-0118" is no structured reference
        ("2025-0121", 40_500, "RF18539007547034"),  # 605.0 less 200.0 paid
    ]
    company, person = read.debtors
    assert (company.debtor_id, company.name, company.kind, company.email) == (
        "260703856", "Bakkerij Çelik & Zonen", "B2B", "crediteuren@celik.example")
    assert (person.name, person.kind) == ("Jeroen Šimonović", "B2C")  # no company name: a consumer
    assert credits(read) == [("moneybird:cn:2025-0123", "260703856", "2025-0123", "2025-0117", date(2025, 4, 4),
                              12_100)]


def test_eboekhouden_open_posts_get_the_term_as_due_date():
    read = listing("eboekhouden_openposten.csv")
    assert (read.documents, read.not_open, read.rejected) == (4, 1, [])
    assert [(i.invoice_id, i.debtor_id, i.issue_date, i.due_date, i.amount_minor) for i in read.invoices] == [
        ("F2025-0117", "1001", date(2025, 4, 1), date(2025, 5, 1), 139_150),
        ("F2025-0098", "1005", date(2025, 3, 15), date(2025, 4, 14), 117_800),
    ]
    assert credits(read) == [("eboekhouden:cn:C2025-0004", "1005", "C2025-0004", "F2025-0098", date(2025, 4, 3),
                              21_780)]
    assert listing("eboekhouden_openposten.csv", term_days=14).invoices[0].due_date == date(2025, 4, 15)
    assert read.debtors[1].name == "Håkansson Houtbouw"


def test_malformed_rows_are_rejected_with_line_and_column_and_the_others_go_on():
    read = listing("exact_malformed.csv")
    assert [(r.where, r.reason) for r in read.rejected] == [
        ("exact_malformed.csv: line 3, column DueDate", "'/Date(yesterday)/' is not a date"),
        ("exact_malformed.csv: line 4", "has 5 fields, the header 7"),
        ("exact_malformed.csv: line 5, column Amount", "amount '12O.00' is not a number"),
        ("exact_malformed.csv: line 6, column AccountName", "name: must not be empty"),
        ("exact_malformed.csv: line 7, column CurrencyCode",
         "'EURO' is not an ISO 4217 currency code (3 upper-case letters, e.g. EUR)"),
        ("exact_malformed.csv: line 8, column DueDate", "due date 2025-03-27 is before the issue date 2025-04-10"),
    ]
    assert [i.invoice_id for i in read.invoices] == ["20250117", "20250120"]
    assert [d.debtor_id for d in read.debtors] == ["1001", "1008"]  # no registration for a rejected row
    # Rows that cannot be read still count as listed: their invoices are not "no longer listed".
    assert {"20250119", "20250110", "20250111", "20250112", "20250113"} <= read.listed


def test_a_row_twice_is_published_once_and_a_conflicting_one_is_rejected():
    lines = (FILES / "exact_receivables.csv").read_text(encoding="utf-8").splitlines()
    conflicting = lines[1].replace(",1391.5,", ",1391.6,")
    read = read_invoices("\n".join([*lines, lines[1], conflicting]).encode(), name="x.csv")
    assert read.duplicates == 1
    (rejected,) = read.rejected
    assert rejected.where == "x.csv: line 9, column InvoiceNumber" and "appears again with other content" in rejected.reason
    assert "first at x.csv: line 2" in rejected.reason


def test_one_currency_per_debtor_and_a_credit_note_needs_an_open_invoice():
    text = ("AccountCode,AccountName,Amount,CurrencyCode,DueDate,InvoiceDate,InvoiceNumber\n"
            "1001,Bakkerij Çelik & Zonen,10.00,EUR,2025-04-15,2025-04-01,1\n"
            "1001,Bakkerij Çelik & Zonen,10.00,USD,2025-04-15,2025-04-01,2\n"
            "1009,Alleen Krediet B.V.,-10.00,EUR,2025-04-15,2025-04-01,3\n")
    read = read_invoices(text.encode(), name="x.csv")
    assert [(r.where, r.reason.split(":")[0]) for r in read.rejected] == [
        ("x.csv: line 3, column CurrencyCode", "currency USD differs from EUR of debtor '1001''s other documents in "
                                               "this import"),
        ("x.csv: line 4", "a credit note (negative amount) of debtor '1009', who has no open invoice in this export "
                          "to book it on")]
    assert [d.debtor_id for d in read.debtors] == ["1001"] and read.credit_notes == []


def test_every_event_passes_the_bounds_the_worker_applies():
    from streams.core import bounds

    for name in ("exact_receivables.csv", "twinfield_browse100.csv", "moneybird_sales_invoices.csv",
                 "eboekhouden_openposten.csv"):
        for event in listing(name).events():
            bounds.check(event)
            assert isinstance(event, (ev.DebtorRegistered, ev.InvoiceIssued, ev.CreditNoteIssued))
    reader = InvoiceReader("ubl")
    for path in sorted(UBL.iterdir()):
        reader.add_file(path.name, path.read_bytes())
    for event in reader.finish().events():
        bounds.check(event)


@pytest.mark.parametrize("text, decimal_comma, plain", [
    ("1.391,50", True, "1391.50"), ("1391,50", True, "1391.50"), ("1391.50", True, "1391.50"),
    ("1,391.50", False, "1391.50"), ("1391.5", False, "1391.5"), ("-217,80", True, "-217.80"),
    ("1.500", True, "1500"), ("1.500", False, "1.500"), ("1,500", False, "1500"), ("2.178", True, "2178"),
    ("1.391.234,56", True, "1391234.56"), (" 605 ", False, "605"),
])
def test_amounts_in_the_packages_notations(text, decimal_comma, plain):
    assert plain_number(text, decimal_comma, "here") == plain


@pytest.mark.parametrize("text", ["12O,00", "1,2,3", "12345.678", "1.39,50", "€ 12,00", "", "1e3", "--1"])
def test_what_is_no_amount_is_refused(text):
    with pytest.raises(Unreadable, match="is not a number"):
        plain_number(text, True, "here")
