"""Invoices, credit notes and their debtors from accounting files: UBL 2.1 / Peppol BIS Billing
3.0 documents (``Invoice`` and ``CreditNote``) and the open-item exports of four Dutch
accounting packages (Exact Online's ReceivablesList, Twinfield's browse 100, Moneybird's
sales invoices, e-Boekhouden's GetOpenPosten) as CSV.

Every document (UBL) or row (CSV) becomes an ``InvoiceIssued`` or a ``CreditNoteIssued``, and
each debtor in the file one ``DebtorRegistered`` (from its first document), published before
them. Event ids come from the source's own numbers (``ubl:inv:F2025-0117``,
``exact:cn:20250125``; a debtor's from its id and a digest of what is registered), so
importing the same file twice publishes the same ids, which the platform applies once.

- UBL: the amount is the ``PayableAmount`` (what is still to be paid), the debtor id the
  customer's ``EndpointID`` (else a ``CompanyID``), the payment reference the
  ``PaymentMeans/PaymentID`` when it is a valid betalingskenmerk or RF reference (else none:
  a reference that fails its check digits is never matched on). A credit note credits the
  invoice of its ``BillingReference``.
- Open-item exports: the amount is the OPEN amount. A negative one is a credit note; as
  these exports do not say which invoice it credits, it is booked on the debtor's open
  invoice in the same export that is due first (the one BW 6:43 lid 2 would give it to).
  Rows that are not open (paid, a draft, nothing left open, a payment on account without an
  invoice number) are counted and left out; ``listed`` holds the invoices the export lists
  as open, for ``connectors.invoice_import`` to compare with the export before it.
- Every event is checked with the bounds the worker applies (``streams.core.bounds``): a
  document or row that fails, or cannot be read, is rejected with its file and element
  path (UBL) or line and column (CSV) and the reason, and the others go on. A file that is
  not such a document or export, is not UTF-8 (CSV), or is XML that declares a DTD
  (external entities, entity expansion: defusedxml refuses both), is refused whole.

This module reads; ``connectors.invoice_import`` publishes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Optional, Union

from connectors import safe_xml
from connectors.amounts import Unreadable, minor_units, plain_number
from streams.core import bounds
from streams.core import events as ev
from streams.core.references import is_valid_reference

FORMATS = ("ubl", "exact", "twinfield", "moneybird", "eboekhouden")
OPEN_ITEM_FORMATS = FORMATS[1:]
DEFAULT_TERM_DAYS = 30  # BW 6:119a: the term between businesses when none was agreed

Item = Union[ev.InvoiceIssued, ev.CreditNoteIssued]


class InvoiceFileError(ValueError):
    """The file cannot be read at all: nothing of it is published."""


@dataclass(frozen=True)
class Rejected:
    where: str  # the file and the element path (UBL) or line and column (CSV)
    reason: str


@dataclass
class Listing:
    """What an import holds: the events to publish (debtors first), what was left out and why,
    and for an open-item export the invoices it lists as open."""

    format: Optional[str] = None
    files: int = 0
    documents: int = 0  # UBL documents or CSV rows read, rejected and not open ones included
    debtors: list[ev.DebtorRegistered] = field(default_factory=list)
    invoices: list[ev.InvoiceIssued] = field(default_factory=list)
    credit_notes: list[ev.CreditNoteIssued] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    duplicates: int = 0  # the same document twice: published once
    not_open: int = 0  # rows (or documents) with nothing to collect: paid, drafts, nothing open
    listed: set[str] = field(default_factory=set)  # open-item exports: invoice numbers listed as open
    origin: dict[str, str] = field(default_factory=dict)  # event id -> where it was read

    @property
    def open_items(self) -> bool:
        return self.format in OPEN_ITEM_FORMATS

    def events(self) -> list:
        return [*self.debtors, *self.invoices, *self.credit_notes]


def read_invoices(data: bytes, fmt: str | None = None, name: str = "file",
                  term_days: int = DEFAULT_TERM_DAYS) -> Listing:
    """One file: a UBL document or an open-item export (``fmt`` None: detected)."""
    reader = InvoiceReader(fmt, term_days)
    reader.add_file(name, data)
    return reader.finish()


def detect_format(data: bytes) -> str:
    """ubl, exact, twinfield, moneybird or eboekhouden, from the root element or the CSV header."""
    if _is_xml(data):
        _ubl_kind(_parse_xml(data))
        return "ubl"
    return _Csv(_utf8(data), None).format


class InvoiceReader:
    """Reads the files of one import, a UBL folder or one file, into a ``Listing``:
    ``add_file`` for each, then ``finish``."""

    def __init__(self, fmt: str | None = None, term_days: int = DEFAULT_TERM_DAYS):
        if fmt is not None and fmt not in FORMATS:
            raise InvoiceFileError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self.listing = Listing(fmt)
        self.term_days = term_days
        self._documents: list[_Document] = []
        self._rejected: list[tuple[int, Rejected]] = []  # (place in the import, what): reported in file order
        self._place = 0

    def add_file(self, name: str, data: bytes) -> None:
        """Reads one file; ``InvoiceFileError`` when it cannot be read at all (then nothing of
        it is kept)."""
        self.listing.files += 1
        fmt = self.listing.format
        if _is_xml(data):
            if fmt not in (None, "ubl"):
                raise InvoiceFileError(f"XML, not {_PACKAGES[fmt]} CSV export (a UBL document is --format ubl)")
            self.listing.format = "ubl"
            self._ubl(name, _parse_xml(data))
            return
        if fmt == "ubl":
            raise InvoiceFileError("not XML: a UBL document starts with '<'")
        table = _Csv(_utf8(data), fmt)
        self.listing.format = table.format
        self._csv(name, table)

    def refuse(self, name: str, reason: str) -> None:
        """A file of a folder that cannot be read: rejected whole, the others go on."""
        self._reject(self._next(), name, reason)

    def _next(self) -> int:
        self._place += 1
        return self._place

    def _reject(self, place: int, where: str, reason: str) -> None:
        self._rejected.append((place, Rejected(where, reason)))

    def finish(self) -> Listing:
        """Checks every event with the bounds, drops repeats, books the open-item credit notes
        and registers each debtor once (from its first document that passes)."""
        listing = self.listing
        debtors: dict[str, ev.DebtorRegistered] = {}
        seen: dict[str, tuple[Item, str]] = {}  # "inv:" / "cn:" + number -> (event, where)
        for document in self._documents:
            if document.item is not None:
                self._accept(document, debtors, seen)
        due_first: dict[str, ev.InvoiceIssued] = {}  # debtor id -> its open invoice due first
        for invoice in listing.invoices:
            known = due_first.get(invoice.debtor_id)
            if known is None or (invoice.due_date, invoice.invoice_id) < (known.due_date, known.invoice_id):
                due_first[invoice.debtor_id] = invoice
        for document in self._documents:
            if document.item is not None:
                continue
            # An open-item credit note: booked on the debtor's invoice due first.
            first = due_first.get(document.debtor.debtor_id)
            if first is None:
                self._reject(document.seq, document.where(None), (
                    f"a credit note (negative amount) of debtor {document.debtor.debtor_id!r}, who has no open "
                    "invoice in this export to book it on"))
                continue
            document.item = document.credit(first.invoice_id)
            self._accept(document, debtors, seen)
        listing.rejected = [rejected for _, rejected in sorted(self._rejected, key=lambda r: r[0])]
        return listing

    # ----------------------------------------------------------------------- checks

    def _accept(self, document: "_Document", debtors: dict, seen: dict) -> None:
        listing, item, debtor = self.listing, document.item, document.debtor
        try:
            bounds.check(debtor)  # as the worker checks them: refused here, with the place, not there
            bounds.check(item)
        except ev.InvalidEvent as exc:
            self._reject(document.seq, document.where(exc.field),
                         f"{exc.field}: {exc.reason}" if exc.field else exc.reason)
            return
        registered = debtors.get(debtor.debtor_id)
        if registered is not None and registered.currency != item.currency:
            self._reject(document.seq, document.where("currency"), (
                f"currency {item.currency} differs from {registered.currency} of debtor {debtor.debtor_id!r}'s "
                "other documents in this import: the platform keeps one currency per debtor"))
            return
        is_invoice = isinstance(item, ev.InvoiceIssued)
        number = item.invoice_id if is_invoice else item.credit_note_id
        key = ("inv:" if is_invoice else "cn:") + number
        if key in seen:
            earlier, where = seen[key]
            if earlier == item:
                listing.duplicates += 1
            else:
                self._reject(document.seq, document.where("invoice_id" if is_invoice else "credit_note_id"), (
                    f"{'invoice' if is_invoice else 'credit note'} {number!r} appears again with other content "
                    f"(first at {where})"))
            return
        seen[key] = (item, document.where(None))
        if registered is None:
            debtors[debtor.debtor_id] = debtor
            listing.debtors.append(debtor)
            listing.origin[debtor.event_id] = document.where(None)
        (listing.invoices if is_invoice else listing.credit_notes).append(item)
        listing.origin[item.event_id] = document.where(None)

    # ----------------------------------------------------------------------- UBL

    def _ubl(self, name: str, root) -> None:
        kind = _ubl_kind(root)
        document = _Node(root, "Invoice" if kind == "invoice" else "CreditNote")
        self.listing.documents += 1
        seq = self._next()
        places: dict[str, str] = {}
        try:
            built = _ubl_document(document, kind, places)
        except Unreadable as exc:
            self._reject(seq, f"{name}: {exc.where or document.path}", exc.reason)
            return
        if built is None:
            self.listing.not_open += 1
            return
        debtor, item = built
        self._documents.append(_Document(seq, name, document.path, places, debtor, item))

    # ----------------------------------------------------------------------- CSV

    def _csv(self, name: str, table: "_Csv") -> None:
        read_row = _ROW_READERS[table.format]
        for line, cells in table.rows():
            self.listing.documents += 1
            seq = self._next()
            row = _Row(table, line, cells)
            try:
                if len(cells) < len(table.header) or any(c.strip() for c in cells[len(table.header):]):
                    raise Unreadable(f"has {len(cells)} fields, the header {len(table.header)}", f"line {line}")
                parsed = read_row(row, self.term_days)
                if parsed is not None and parsed.amount > 0 and parsed.due < parsed.issued:
                    raise Unreadable(f"due date {parsed.due} is before the issue date {parsed.issued}",
                                     row.places.get("due_date"))
            except Unreadable as exc:
                if row.number is not None and not row.negative:
                    self.listing.listed.add(row.number)  # listed, even though it cannot be read now
                self._reject(seq, f"{name}: {exc.where or f'line {line}'}", exc.reason)
                continue
            if parsed is None:
                self.listing.not_open += 1
                continue
            self._documents.append(_open_item(seq, table.format, name, row, parsed, self.listing))


@dataclass
class _Document:
    """One document or row, read: its debtor, and its invoice or credit note (an open-item
    credit note gets its invoice in ``finish``: ``credit(invoice_id)`` builds it)."""

    seq: int  # its place in the import
    name: str  # the file
    place: str  # the document's root element, or "line N"
    places: dict[str, str]  # event field -> the element or "line N, column C" it was read from
    debtor: ev.DebtorRegistered
    item: Optional[Item]
    credit: Optional[Callable[[str], ev.CreditNoteIssued]] = None

    def where(self, event_field: str | None) -> str:
        return f"{self.name}: {self.places.get(event_field or '', self.place)}"


def _debtor(fmt: str, debtor_id: str, name: str, kind: str, currency: str, email: str | None) -> ev.DebtorRegistered:
    # The id carries a digest of what is registered: the same data again is a repeat the
    # platform skips; changed data (a new e-mail address) is a new registration it applies.
    digest = hashlib.sha256(json.dumps([name, kind, currency, email], ensure_ascii=False).encode()).hexdigest()[:12]
    return ev.DebtorRegistered(f"{fmt}:debtor:{debtor_id}:{digest}", debtor_id, name, kind, currency=currency,
                               email=email)


def _reference(text: str | None) -> str | None:
    """A payment reference worth matching on: a valid betalingskenmerk or RF reference."""
    return text if text and is_valid_reference(text) else None


# --------------------------------------------------------------------------- UBL 2.1 / Peppol BIS 3.0

_UBL = {
    "ubl": None,
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
_UBL_ROOTS = {
    "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice": "invoice",
    "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote": "credit_note",
}
_XSD_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:Z|[+-]\d{2}:\d{2})?")


def _is_xml(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"


def _parse_xml(data: bytes):
    try:
        return safe_xml.parse(data, "an invoice")
    except safe_xml.XmlRefused as exc:
        raise InvoiceFileError(str(exc)) from None


def _ubl_kind(root) -> str:
    kind = _UBL_ROOTS.get(root.tag)
    if kind is None:
        raise InvoiceFileError(f"not a UBL 2.1 Invoice or CreditNote (root element {root.tag})")
    return kind


class _Node:
    """An element with its path, for finding children by their prefixed names (cac:, cbc:)."""

    def __init__(self, element, path: str):
        self.element, self.path = element, path

    @staticmethod
    def _qualified(path: str) -> str:
        return "/".join(f"{{{_UBL[p.split(':')[0]]}}}{p.split(':')[1]}" for p in path.split("/"))

    def find(self, path: str) -> Optional["_Node"]:
        element = self.element.find(self._qualified(path))
        return None if element is None else _Node(element, f"{self.path}/{path}")

    def all(self, path: str) -> list["_Node"]:
        found = self.element.findall(self._qualified(path))
        return [_Node(e, f"{self.path}/{path}[{n}]" if len(found) > 1 else f"{self.path}/{path}")
                for n, e in enumerate(found, start=1)]

    def text(self, path: str) -> Optional[str]:
        found = self.find(path)
        if found is None or found.element.text is None:
            return None
        return found.element.text.strip() or None

    def required(self, path: str, why: str = "missing") -> "_Node":
        found = self.find(path)
        if found is None or not (found.element.text or "").strip():
            raise Unreadable(why, f"{self.path}/{path}")
        return found

    def day(self, path: str) -> date:
        node = self.required(path)
        match = _XSD_DATE.fullmatch(node.element.text.strip())
        try:
            return date.fromisoformat(match.group(1)) if match else _not_a_date(node.element.text, node.path)
        except ValueError:
            return _not_a_date(node.element.text, node.path)


def _not_a_date(text: str, where: str):
    raise Unreadable(f"{text.strip()!r} is not a date (YYYY-MM-DD)", where)


def _ubl_document(doc: _Node, kind: str, places: dict[str, str]) -> Optional[tuple[ev.DebtorRegistered, Item]]:
    """The debtor and the invoice or credit note of one UBL document (None: nothing to collect)."""
    number = doc.required("cbc:ID").element.text.strip()
    places.update(invoice_id=f"{doc.path}/cbc:ID", credit_note_id=f"{doc.path}/cbc:ID", event_id=f"{doc.path}/cbc:ID")
    issued = doc.day("cbc:IssueDate")
    places["issue_date"] = f"{doc.path}/cbc:IssueDate"
    currency_node = doc.required("cbc:DocumentCurrencyCode")
    currency = currency_node.element.text.strip()
    places["currency"] = currency_node.path
    payable = doc.required("cac:LegalMonetaryTotal/cbc:PayableAmount")
    places["amount_minor"] = payable.path
    stated = payable.element.get("currencyID")
    if stated is not None and stated != currency:
        raise Unreadable(f"currencyID {stated!r} differs from the DocumentCurrencyCode {currency!r}", payable.path)
    amount = minor_units(payable.element.text, currency, payable.path)
    if amount < 0:
        raise Unreadable(f"a negative amount due ({payable.element.text.strip()}): a credit is a CreditNote (381) "
                         "that names the invoice it credits", payable.path)

    party = doc.find("cac:AccountingCustomerParty/cac:Party")
    if party is None:
        raise Unreadable("missing: the customer", f"{doc.path}/cac:AccountingCustomerParty/cac:Party")
    for path in ("cbc:EndpointID", "cac:PartyLegalEntity/cbc:CompanyID", "cac:PartyTaxScheme/cbc:CompanyID"):
        debtor_id = party.text(path)
        if debtor_id:
            places["debtor_id"] = f"{party.path}/{path}"
            break
    else:
        raise Unreadable("no EndpointID, PartyLegalEntity/CompanyID or PartyTaxScheme/CompanyID to know the debtor by",
                         party.path)
    for path in ("cac:PartyName/cbc:Name", "cac:PartyLegalEntity/cbc:RegistrationName"):
        name = party.text(path)
        if name:
            places["name"] = f"{party.path}/{path}"
            break
    else:
        raise Unreadable("no PartyName/Name nor PartyLegalEntity/RegistrationName", party.path)
    email = party.text("cac:Contact/cbc:ElectronicMail")
    places["email"] = f"{party.path}/cac:Contact/cbc:ElectronicMail"
    debtor = _debtor("ubl", debtor_id, name, "B2B", currency, email)  # Peppol's buyers are businesses
    if amount == 0:
        return None

    if kind == "credit_note":
        credited = doc.required("cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID",
                                "missing: the invoice the credit note credits")
        places["invoice_id"] = credited.path
        return debtor, ev.CreditNoteIssued(f"ubl:cn:{number}", debtor_id, number, credited.element.text.strip(),
                                           issued, amount, currency)
    due_path = "cbc:DueDate" if doc.text("cbc:DueDate") else "cac:PaymentMeans/cbc:PaymentDueDate"
    if doc.text(due_path) is None:
        raise Unreadable("missing (nor cac:PaymentMeans/cbc:PaymentDueDate): dunning counts from the due date",
                         f"{doc.path}/cbc:DueDate")
    due = doc.day(due_path)
    places["due_date"] = f"{doc.path}/{due_path}"
    if due < issued:
        raise Unreadable(f"due date {due} is before the issue date {issued}", places["due_date"])
    reference = None
    for means in doc.all("cac:PaymentMeans"):
        reference = _reference(means.text("cbc:PaymentID"))
        if reference:
            places["payment_reference"] = f"{means.path}/cbc:PaymentID"
            break
    return debtor, ev.InvoiceIssued(f"ubl:inv:{number}", debtor_id, number, issued, due, amount, currency, reference)


# --------------------------------------------------------------------------- CSV exports


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvoiceFileError(f"not UTF-8: byte 0x{data[exc.start]:02x} at byte {exc.start + 1}; export the file "
                               "as UTF-8") from None


# Per package, as it spells them: the columns it must have (the first three tell it apart) and
# the optional ones read (both matched in any case), and whether its numbers use a decimal
# comma (Dutch) where they are ambiguous.
_SPELLING = {
    "exact": (("AccountCode", "InvoiceNumber", "Amount", "AccountName", "InvoiceDate", "DueDate"),
              ("CurrencyCode",), False),
    "twinfield": (("dim2", "invnumber", "openbasevaluesigned", "dim2name", "datedue"),
                  ("date", "matchstatus", "curcode", "openvaluesigned"), True),
    "moneybird": (("invoice_id", "contact_id", "total_unpaid", "invoice_date", "due_date"),
                  ("state", "currency", "payment_reference", "contact.company_name", "company_name", "contact_name",
                   "contact.firstname", "firstname", "contact.lastname", "lastname", "contact.email", "email"), False),
    "eboekhouden": (("MutFactuur", "RelCode", "Openstaand", "RelBedrijf", "MutDatum"), ("Vervaldatum",), True),
}
_COLUMNS = {fmt: (tuple(map(str.lower, required)), tuple(map(str.lower, optional)), comma)
            for fmt, (required, optional, comma) in _SPELLING.items()}
_PACKAGES = {"exact": "an Exact Online", "twinfield": "a Twinfield", "moneybird": "a Moneybird",
             "eboekhouden": "an e-Boekhouden"}
_PREFIXES = ("fin.trs.line.", "fin.trs.head.")  # Twinfield's browse fields, as its API names them


def _key(column: str) -> str:
    key = column.strip().lower()
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


class _Csv:
    """A CSV export: its format (from the header unless given), its delimiter (; or , or a
    tab, whichever splits the header into the most known columns) and its rows."""

    def __init__(self, text: str, fmt: str | None):
        self.text = text
        first = next((line for line in text.splitlines() if line.strip()), None)
        if first is None:
            raise InvoiceFileError("empty: no header line")
        known = {c for required, optional, _ in _COLUMNS.values() for c in (*required, *optional)}

        def score(delimiter: str) -> int:
            return sum(_key(c) in known for c in next(csv.reader([first], delimiter=delimiter)))

        self.delimiter = max((";", ",", "\t"), key=score)
        self.header = next(csv.reader([first], delimiter=self.delimiter))
        self.columns: dict[str, int] = {}
        for index, column in enumerate(self.header):
            self.columns.setdefault(_key(column), index)
        if fmt is None:
            fmt = next((f for f, (required, _, _) in _COLUMNS.items() if set(required[:3]) <= self.columns.keys()),
                       None)
            if fmt is None:
                raise InvoiceFileError(
                    "neither UBL XML nor a known open-item export: the CSV header has none of "
                    + "; ".join(f"{f} ({', '.join(r[:3])})" for f, (r, _, _) in _SPELLING.items()))
        _, _, self.decimal_comma = _COLUMNS[fmt]
        missing = [c for c in _SPELLING[fmt][0] if c.lower() not in self.columns]
        if missing:
            raise InvoiceFileError(f"not {_PACKAGES[fmt]} export: no column {', '.join(missing)} "
                                   f"(the header has {', '.join(c.strip() for c in self.header)})")
        self.format = fmt

    def rows(self):
        """(line number, cells) of each row that is not blank, after the header."""
        reader = csv.reader(io.StringIO(self.text, newline=""), delimiter=self.delimiter)
        line, header_seen = 0, False
        try:
            for cells in reader:
                start, line = line + 1, reader.line_num
                if not any(cell.strip() for cell in cells):
                    continue
                if not header_seen:
                    header_seen = True
                    continue
                yield start, cells
        except csv.Error as exc:
            raise InvoiceFileError(f"line {reader.line_num}: not CSV: {exc}") from None


class _Row:
    def __init__(self, table: _Csv, line: int, cells: list[str]):
        self.table, self.line, self.cells = table, line, cells
        self.number: str | None = None  # the invoice number, once read
        self.negative = False  # a credit note, once known
        self.places: dict[str, str] = {}

    def column(self, key: str) -> str:
        return self.table.header[self.table.columns[key]].strip()

    def place(self, key: str) -> str:
        return f"line {self.line}, column {self.column(key)}"

    def text(self, key: str, event_field: str | None = None) -> str | None:
        index = self.table.columns.get(key)
        if index is None or index >= len(self.cells):
            return None
        if event_field:
            self.places[event_field] = self.place(key)
        return self.cells[index].strip() or None

    def first(self, keys: tuple[str, ...], event_field: str) -> str | None:
        for key in keys:
            value = self.text(key)
            if value:
                self.places[event_field] = self.place(key)
                return value
        return None

    def required(self, key: str, event_field: str) -> str:
        value = self.text(key, event_field)
        if value is None:
            raise Unreadable("missing", self.place(key))
        return value

    def day(self, key: str, event_field: str) -> date:
        text = self.required(key, event_field)
        day = _day(text)
        if day is None:
            raise Unreadable(f"{text!r} is not a date", self.place(key))
        return day

    def amount(self, key: str, currency: str) -> int:
        if not (len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.isupper()):
            raise Unreadable(f"{currency!r} is not an ISO 4217 currency code (3 upper-case letters, e.g. EUR)",
                             self.places.get("currency", f"line {self.line}"))
        text = self.required(key, "amount_minor")
        minor = minor_units(plain_number(text, self.table.decimal_comma, self.place(key)), currency, self.place(key))
        self.negative = minor < 0
        return minor


_MS_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{2})?(\d{2})?\)/")  # Exact's JSON dates: ms since 1970 UTC
_DUTCH_DATE = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})")


def _day(text: str) -> date | None:
    """2025-04-15 (and 2025-04-15T00:00:00), 20250415 (Twinfield), 15-04-2025 (Dutch exports)
    or /Date(1744675200000)/ (Exact)."""
    try:
        if match := _MS_DATE.fullmatch(text):  # an offset, if any, says which day it was there
            hours, minutes = match.group(2) or "+00", int(match.group(3) or 0)
            offset = (-1 if hours.startswith("-") else 1) * timedelta(hours=abs(int(hours)), minutes=minutes)
            moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=int(match.group(1)))
            return (moment + offset).date()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?", text):
            return date.fromisoformat(text[:10])
        if re.fullmatch(r"\d{8}", text):
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        if match := _DUTCH_DATE.fullmatch(text):
            return date(int(match.group(3)), int(match.group(2)), int(match.group(1)))
    except (ValueError, OverflowError):
        return None
    return None


@dataclass
class _OpenItem:
    debtor_id: str
    name: str
    kind: str
    email: Optional[str]
    number: str
    issued: date
    due: date
    amount: int  # the open amount, minor units; negative: a credit note
    currency: str
    reference: Optional[str] = None


def _number(row: _Row, key: str) -> str | None:
    """The invoice (or credit note) number, kept on the row: a row that cannot be read
    further still counts as listed."""
    row.number = row.text(key, "invoice_id")
    row.places["credit_note_id"] = row.places["event_id"] = row.places["invoice_id"]
    return row.number


def _required_number(row: _Row, key: str, number: str | None) -> str:
    if number is None:
        raise Unreadable("missing: an open item needs its invoice number", row.place(key))
    return number


def _exact(row: _Row, term_days: int) -> Optional[_OpenItem]:
    number = _number(row, "invoicenumber")
    currency = row.text("currencycode", "currency") or "EUR"
    amount = row.amount("amount", currency)
    if amount == 0 or (amount < 0 and number is None):  # nothing open, or a payment on account
        return None
    number = _required_number(row, "invoicenumber", number)
    return _OpenItem(row.required("accountcode", "debtor_id"), row.text("accountname", "name") or "", "B2B", None,
                     number, row.day("invoicedate", "issue_date"), row.day("duedate", "due_date"), amount, currency)


def _twinfield(row: _Row, term_days: int) -> Optional[_OpenItem]:
    if (row.text("matchstatus") or "").lower() == "matched":
        return None
    number = _number(row, "invnumber")
    # The open amount in the transaction's currency where the browse has it, else in the
    # administration's base currency, taken as EUR.
    by_transaction = row.text("openvaluesigned") is not None and row.text("curcode") is not None
    currency = row.text("curcode", "currency") if by_transaction else "EUR"
    amount = row.amount("openvaluesigned" if by_transaction else "openbasevaluesigned", currency)
    if amount == 0 or (amount < 0 and number is None):  # nothing open, or a payment on account
        return None
    number = _required_number(row, "invnumber", number)
    due = row.day("datedue", "due_date")
    issued = row.day("date", "issue_date") if row.text("date") else due  # browse 100 need not show it
    return _OpenItem(row.required("dim2", "debtor_id"), row.text("dim2name", "name") or "", "B2B", None,
                     number, issued, due, amount, currency)


_MONEYBIRD_NOT_OPEN = {"draft", "scheduled", "paid", "uncollectible"}


def _moneybird(row: _Row, term_days: int) -> Optional[_OpenItem]:
    if (row.text("state") or "").lower() in _MONEYBIRD_NOT_OPEN:
        return None
    number = _number(row, "invoice_id")
    currency = row.text("currency", "currency") or "EUR"
    amount = row.amount("total_unpaid", currency)
    if amount == 0:
        return None
    number = _required_number(row, "invoice_id", number)
    contact = row.required("contact_id", "debtor_id")
    company = row.first(("contact.company_name", "company_name", "contact_name"), "name")
    person = " ".join(p for p in (row.first(("contact.firstname", "firstname"), "name"),
                                  row.first(("contact.lastname", "lastname"), "name")) if p)
    kind = "B2B" if company or not person else "B2C"  # a contact without a company is a person
    reference_text = row.text("payment_reference", "payment_reference")
    return _OpenItem(contact, company or person or contact, kind, row.first(("contact.email", "email"), "email"),
                     number, row.day("invoice_date", "issue_date"), row.day("due_date", "due_date"), amount, currency,
                     _reference(reference_text))


def _eboekhouden(row: _Row, term_days: int) -> Optional[_OpenItem]:
    number = _number(row, "mutfactuur")
    amount = row.amount("openstaand", "EUR")
    if amount == 0 or (amount < 0 and number is None):  # nothing open, or a payment on account
        return None
    number = _required_number(row, "mutfactuur", number)
    issued = row.day("mutdatum", "issue_date")
    # GetOpenPosten gives no due date: the agreed term, counted from the invoice date.
    due = row.day("vervaldatum", "due_date") if row.text("vervaldatum") else issued + timedelta(days=term_days)
    return _OpenItem(row.required("relcode", "debtor_id"), row.text("relbedrijf", "name") or "", "B2B", None,
                     number, issued, due, amount, "EUR")


_ROW_READERS: dict[str, Callable[[_Row, int], Optional[_OpenItem]]] = {
    "exact": _exact, "twinfield": _twinfield, "moneybird": _moneybird, "eboekhouden": _eboekhouden,
}


def _open_item(seq: int, fmt: str, name: str, row: _Row, item: _OpenItem, listing: Listing) -> _Document:
    row.places.setdefault("currency", f"line {row.line}")
    debtor = _debtor(fmt, item.debtor_id, item.name, item.kind, item.currency, item.email)
    if item.amount > 0:
        listing.listed.add(item.number)
        invoice = ev.InvoiceIssued(f"{fmt}:inv:{item.number}", item.debtor_id, item.number, item.issued, item.due,
                                   item.amount, item.currency, item.reference)
        return _Document(seq, name, f"line {row.line}", row.places, debtor, invoice)

    def credit(invoice_id: str) -> ev.CreditNoteIssued:
        return ev.CreditNoteIssued(f"{fmt}:cn:{item.number}", item.debtor_id, item.number, invoice_id, item.issued,
                                   -item.amount, item.currency)

    return _Document(seq, name, f"line {row.line}", row.places, debtor, None, credit)
