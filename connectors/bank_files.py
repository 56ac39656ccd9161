"""Bank statements to ``PaymentReceived``: ISO 20022 camt.053 / camt.054 (versions 001.02 and
001.08) and Berlin Group NextGenPSD2 account-information JSON.

Every booked transaction becomes one ``PaymentReceived`` with a stable id: the bank's own
reference of the transaction (its ``AcctSvcrRef``, or the PSD2 ``transactionId``), or the
entry's reference plus the transaction's place in a batch entry. Importing the same
statement twice gives the same ids, which the platform applies once.

- A credit is a payment in. A debit (a refund, a direct-debit return, a reversal of an
  earlier credit) is never dropped: it is published as a payment marked ``debit`` (and
  ``reversal`` when the bank says so). The matcher puts a debit in the unmatched queue for a
  person; a reversal of a credit goes to the debtor whose payment it takes back. Pending transactions are not payments yet: they are counted and left for the
  statement that books them.
- A transaction that cannot be read is rejected with the element (camt: its path, PSD2:
  its place in the list) and the reason; all transactions of a broken batch entry are
  rejected with it, so nothing goes out half-way from one entry. A file that is not XML
  or JSON of these kinds, or XML that declares a DTD (external entities, entity expansion:
  defusedxml refuses both), is refused whole.

The camt parsers on PyPI are 0.0.x releases of one author each; the elements read here
are few and named by the standard, so this module reads them with ElementTree behind
defusedxml rather than depend on one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Optional

from connectors import safe_xml
from connectors.amounts import Unreadable as _Broken  # a transaction that cannot be read, and where
from connectors.amounts import minor_units
from streams.core import bounds
from streams.core import events as ev

FORMATS = ("camt.053", "camt.054", "psd2-json")
_CAMT_NAMESPACES = {
    f"urn:iso:std:iso:20022:tech:xsd:{kind}.001.{version}": kind
    for kind in ("camt.053", "camt.054") for version in ("02", "08")
}


class BankFileError(ValueError):
    """The file cannot be read at all: nothing of it is published."""


@dataclass(frozen=True)
class Rejected:
    where: str  # the element (camt) or the place in the list (PSD2)
    reason: str


@dataclass
class Statement:
    """What a bank file holds: the payments to publish, in the file's order, and what was
    left out, with why."""

    format: str
    payments: list[ev.PaymentReceived] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    pending: int = 0  # not booked yet
    duplicates: int = 0  # the same transaction twice in the file: published once


def detect_format(data: bytes) -> str:
    """camt.053, camt.054 or psd2-json, from the content."""
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        return "psd2-json"
    if head == b"<":
        root = _parse_xml(data)
        kind = _CAMT_NAMESPACES.get(_namespace(root.tag))
        if kind is None:
            raise BankFileError(f"not a camt.053 or camt.054 of version 001.02 or 001.08 (root element {root.tag})")
        return kind
    raise BankFileError("neither XML (camt) nor JSON (PSD2): the file starts with neither '<' nor '{'")


def read_statement(data: bytes, fmt: str | None = None) -> Statement:
    fmt = fmt or detect_format(data)
    if fmt not in FORMATS:
        raise BankFileError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    statement = Statement(fmt)
    entries = _psd2_transactions(data, statement) if fmt == "psd2-json" else _camt_transactions(data, fmt, statement)
    seen: set[str] = set()
    for where, parse in entries:
        try:
            payments = parse()
            for payment in payments:
                bounds.check(payment)  # as the worker checks it: refused here, with the reason, not there
        except _Broken as broken:
            statement.rejected.append(Rejected(broken.where or where, broken.reason))
            continue
        except ev.InvalidEvent as exc:
            statement.rejected.append(Rejected(where, f"{exc.field}: {exc.reason}" if exc.field else exc.reason))
            continue
        except (TypeError, AttributeError, ValueError) as exc:  # a value of the wrong JSON type (a number for a text)
            statement.rejected.append(Rejected(where, f"a value of the wrong type: {exc}"))
            continue
        for payment in payments:
            if payment.event_id in seen:
                statement.duplicates += 1
                continue
            seen.add(payment.event_id)
            statement.payments.append(payment)
    return statement


# --------------------------------------------------------------------------- camt.053 / camt.054


def _parse_xml(data: bytes):
    try:
        return safe_xml.parse(data, "a bank statement")
    except safe_xml.XmlRefused as exc:
        raise BankFileError(str(exc)) from None


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


class _Element:
    """An element with its path, for finding children by their plain names."""

    def __init__(self, element, path: str, ns: str):
        self.element, self.path, self.ns = element, path, ns

    def all(self, name: str) -> list["_Element"]:
        found = self.element.findall(f"{{{self.ns}}}{name}")
        return [_Element(e, f"{self.path}/{name}[{n}]" if len(found) > 1 else f"{self.path}/{name}", self.ns)
                for n, e in enumerate(found, start=1)]

    def find(self, path: str) -> Optional["_Element"]:
        element = self.element.find("/".join(f"{{{self.ns}}}{part}" for part in path.split("/")))
        return None if element is None else _Element(element, f"{self.path}/{path}", self.ns)

    def text(self, path: str) -> Optional[str]:
        found = self.find(path)
        if found is None or found.element.text is None:
            return None
        return found.element.text.strip() or None

    def required(self, path: str) -> str:
        value = self.text(path)
        if value is None:
            raise _Broken("missing", f"{self.path}/{path}")
        return value


def _camt_transactions(data: bytes, fmt: str, statement: Statement):
    root = _parse_xml(data)
    ns = _namespace(root.tag)
    if _CAMT_NAMESPACES.get(ns) != fmt:
        raise BankFileError(f"not a {fmt} of version 001.02 or 001.08 (root element {root.tag})")
    document = _Element(root, "Document", ns)
    message = document.find("BkToCstmrStmt" if fmt == "camt.053" else "BkToCstmrDbtCdtNtfctn")
    if message is None:
        raise BankFileError(f"Document: no {'BkToCstmrStmt' if fmt == 'camt.053' else 'BkToCstmrDbtCdtNtfctn'}")
    for report in message.all("Stmt" if fmt == "camt.053" else "Ntfctn"):
        account = report.text("Acct/Id/IBAN")
        report_id = report.text("Id")
        for entry in report.all("Ntry"):
            status = entry.text("Sts/Cd") or entry.text("Sts")
            if status not in (None, "BOOK"):
                statement.pending += 1
                continue
            yield entry.path, lambda entry=entry, account=account: _camt_entry(entry, account, report_id)


def _camt_entry(entry: _Element, account: Optional[str], report_id: Optional[str]) -> list[ev.PaymentReceived]:
    direction = entry.required("CdtDbtInd")
    if direction not in ("CRDT", "DBIT"):
        raise _Broken(f"{direction!r} is neither CRDT nor DBIT", f"{entry.path}/CdtDbtInd")
    reversal = (entry.text("RvslInd") or "false").lower() == "true"
    booked = _camt_date(entry)
    entry_amount = entry.find("Amt")
    if entry_amount is None:
        raise _Broken("missing", f"{entry.path}/Amt")
    entry_currency = entry_amount.element.get("Ccy") or ""
    entry_minor = minor_units(entry_amount.element.text or "", entry_currency, entry_amount.path)
    # The bank's own reference is unique; an NtryRef only numbers the entries of one statement, so
    # it counts only with the statement's Id before it (the next statement's entry 1 is another).
    entry_reference = entry.text("AcctSvcrRef")
    if entry_reference is None and entry.text("NtryRef") and report_id:
        entry_reference = f"{report_id}/{entry.text('NtryRef')}"
    details = [tx for block in entry.all("NtryDtls") for tx in block.all("TxDtls")]
    if not details:  # an entry without details is one transaction
        details = [None]
    if entry_reference is None and any(tx is None or tx.text("Refs/AcctSvcrRef") is None for tx in details):
        raise _Broken("no AcctSvcrRef (nor an NtryRef in a statement with an Id) to give its payments a stable id",
                      entry.path)
    payments = []
    for index, tx in enumerate(details, start=1):
        amount_element = entry_amount if tx is None else (
            tx.find("Amt") or tx.find("AmtDtls/TxAmt/Amt") or tx.find("AmtDtls/InstdAmt/Amt")
            or (entry_amount if len(details) == 1 else None))
        if amount_element is None:
            raise _Broken("missing in a batch entry", f"{tx.path}/Amt")
        currency = amount_element.element.get("Ccy") or ""
        amount = minor_units(amount_element.element.text or "", currency, amount_element.path)
        own = None if tx is None else tx.text("Refs/AcctSvcrRef")
        transaction_id = own or (entry_reference if len(details) == 1 else f"{entry_reference}/{index}")
        # The other party: the payer of a credit; of a reversal, that of the transaction it
        # reverses (a credit taken back names its payer: the debtor's account, to find the payment by).
        counterparty = "Dbtr" if (direction == "CRDT") != reversal else "Cdtr"
        node = tx or entry
        payments.append(ev.PaymentReceived(
            event_id=f"camt:{account or 'account'}:{transaction_id}",
            transaction_id=transaction_id,
            booking_date=booked,
            amount_minor=amount,
            currency=currency,
            payer_iban=node.text(f"RltdPties/{counterparty}Acct/Id/IBAN"),
            payer_name=node.text(f"RltdPties/{counterparty}/Pty/Nm") or node.text(f"RltdPties/{counterparty}/Nm"),
            structured_reference=_structured_reference(node),
            unstructured_remittance=_unstructured(node),
            end_to_end_id=_end_to_end(node),
            account_iban=account,
            direction="debit" if direction == "DBIT" else "credit",
            reversal=reversal,
        ))
    if sum(p.amount_minor for p in payments) != entry_minor or any(p.currency != entry_currency for p in payments):
        raise _Broken(f"the entry's amount {entry_amount.element.text} {entry_currency} is not the sum of its "
                      "transactions", entry_amount.path)
    return payments


def _camt_date(entry: _Element) -> date:
    text = entry.text("BookgDt/Dt") or entry.text("BookgDt/DtTm") or entry.text("ValDt/Dt")
    if text is None:
        raise _Broken("missing", f"{entry.path}/BookgDt")
    try:
        return date.fromisoformat(text[:10]) if len(text) > 10 else date.fromisoformat(text)
    except ValueError:
        raise _Broken(f"{text!r} is not a date", f"{entry.path}/BookgDt") from None


def _structured_reference(node: _Element) -> Optional[str]:
    """The creditor reference: SCOR (an RF reference, or a betalingskenmerk issued by CUR)."""
    remittance = node.find("RmtInf")
    for strd in (remittance.all("Strd") if remittance else []):
        reference = strd.text("CdtrRefInf/Ref")
        if reference:
            return reference
    return None


def _unstructured(node: _Element) -> Optional[str]:
    remittance = node.find("RmtInf")
    lines = [u.element.text.strip() for u in (remittance.all("Ustrd") if remittance else []) if u.element.text]
    return " ".join(line for line in lines if line) or None


def _end_to_end(node: _Element) -> Optional[str]:
    value = node.text("Refs/EndToEndId")
    return None if value in (None, "NOTPROVIDED") else value


# --------------------------------------------------------------------------- Berlin Group NextGenPSD2


def _psd2_transactions(data: bytes, statement: Statement):
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BankFileError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("transactions"), dict):
        raise BankFileError('not a Berlin Group account report: no "transactions" object')
    account = document.get("account") if isinstance(document.get("account"), dict) else {}
    report = document["transactions"]
    pending = report.get("pending") or []
    statement.pending += len(pending) if isinstance(pending, list) else 0
    booked = report.get("booked") or []
    if not isinstance(booked, list):
        raise BankFileError('"transactions.booked" is not a list')
    for n, transaction in enumerate(booked):
        where = f"transactions.booked[{n}]"
        yield where, lambda transaction=transaction, where=where: [psd2_payment(transaction, account.get("iban"), where)]


def psd2_payment(transaction: dict, account_iban: Optional[str], where: str) -> ev.PaymentReceived:
    """One booked Berlin Group transaction as a payment (also for the polling connector)."""
    if not isinstance(transaction, dict):
        raise _Broken("not an object", where)
    transaction_id = transaction.get("transactionId") or transaction.get("entryReference")
    if not isinstance(transaction_id, str) or not transaction_id:
        raise _Broken("no transactionId (nor entryReference) to give the payment a stable id", where)
    amount = transaction.get("transactionAmount")
    if not isinstance(amount, dict) or not isinstance(amount.get("amount"), str):
        raise _Broken("missing or not {amount, currency}", f"{where}.transactionAmount")
    minor = minor_units(amount["amount"], str(amount.get("currency") or ""), f"{where}.transactionAmount")
    day = transaction.get("bookingDate") or transaction.get("valueDate")
    try:
        booked = date.fromisoformat(day) if isinstance(day, str) else None
    except ValueError:
        booked = None
    if booked is None:
        raise _Broken(f"{day!r} is not a date", f"{where}.bookingDate")
    debit = minor < 0
    party = "creditor" if debit else "debtor"
    structured = transaction.get("remittanceInformationStructured")
    if isinstance(structured, dict):  # the object shape: {"reference": ..., "referenceType": ...}
        structured = structured.get("reference")
    elif isinstance(transaction.get("remittanceInformationStructuredArray"), list):
        first = next(iter(transaction["remittanceInformationStructuredArray"]), None)
        structured = first.get("reference") if isinstance(first, dict) else None
    unstructured = transaction.get("remittanceInformationUnstructured")
    if isinstance(transaction.get("remittanceInformationUnstructuredArray"), list):
        unstructured = " ".join(str(u) for u in transaction["remittanceInformationUnstructuredArray"]) or unstructured
    end_to_end = transaction.get("endToEndId")
    party_account = transaction.get(f"{party}Account")
    return ev.PaymentReceived(
        event_id=f"psd2:{account_iban or 'account'}:{transaction_id}",
        transaction_id=transaction_id,
        booking_date=booked,
        amount_minor=abs(minor),
        currency=amount["currency"],
        payer_iban=party_account.get("iban") if isinstance(party_account, dict) else None,
        payer_name=transaction.get(f"{party}Name") if isinstance(transaction.get(f"{party}Name"), str) else None,
        structured_reference=structured if isinstance(structured, str) and structured else None,
        unstructured_remittance=unstructured if isinstance(unstructured, str) and unstructured else None,
        end_to_end_id=end_to_end if isinstance(end_to_end, str) and end_to_end != "NOTPROVIDED" else None,
        account_iban=account_iban,
        direction="debit" if debit else "credit",
        reversal=False,
    )

