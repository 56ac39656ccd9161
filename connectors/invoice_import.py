"""``dunning import-invoices FILE|DIR``: a folder of UBL documents (or one) or an open-item
export read whole, checked, and its debtors, invoices and credit notes published to the ledger.

Everything is read before anything goes out: a file that cannot be read is refused and
nothing of it is published (in a folder, the other files go on); a document or row that
cannot be read is rejected with its place and the reason, and the others go out. Debtors
go first, then invoices, then credit notes, each group once the broker confirmed the one
before (a credit note needs its invoice, an invoice its debtor). Importing the same files
again publishes the same ids: nothing changes.

An open-item export lists what is open today; an invoice it no longer lists was paid,
credited or written off in the accounting package, which the platform learns from the
bank or from a credit note, never from an absence. So each source (the format and the
file's stem, or ``--source``) keeps what its last import listed in a small JSON file under
``DATA_DIR/invoice-imports/``, written (temporary file, then ``os.replace``) only once the
broker confirmed every record. The report names the invoices listed last time and missing
now (``no_longer_listed``) and publishes nothing for them; an invoice listed again with
other content (a lower open amount after a part payment booked in the package) is not
published either, as the platform keeps an issued invoice as it was issued
(``changed_not_published``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import Optional
from urllib.parse import quote

from confluent_kafka import KafkaError
from tqdm import tqdm

from connectors.invoice_files import (
    DEFAULT_TERM_DAYS,
    InvoiceFileError,
    InvoiceReader,
    Listing,
    Rejected,
)
from connectors.publisher import Publisher, Record, records_of
from schemas.codec import EncodeError
from streams.core import events as ev

STATE_DIRECTORY = "invoice-imports"  # under DATA_DIR


class InvoiceStateError(ValueError):
    """A listing state file that cannot be read or written: nothing is published."""


@dataclass
class InvoiceImportReport:
    path: str
    format: str
    source: Optional[str]  # open-item exports: whose listing was compared
    files_read: int = 0
    documents_read: int = 0  # UBL documents or CSV rows, rejected and not open ones included
    debtors_published: int = 0  # confirmed by the broker
    invoices_published: int = 0
    credit_notes_published: int = 0
    duplicates_skipped: int = 0
    not_open_skipped: int = 0  # paid, drafts, nothing open, payments on account
    rejected: list[dict] = field(default_factory=list)  # {"where", "reason"}
    no_longer_listed: list[dict] = field(default_factory=list)  # {"invoice_id", "debtor_id"}
    changed_not_published: list[dict] = field(default_factory=list)  # {"invoice_id", "debtor_id", "changed"}
    not_delivered: int = 0
    listing_not_saved: Optional[str] = None  # why the listing could not be stored (then the next import
    # compares with the one before)

    @property
    def ok(self) -> bool:
        return not (self.rejected or self.not_delivered or self.listing_not_saved)

    def to_json(self) -> dict:
        return {name: value for name, value in asdict(self).items()
                if value is not None or name != "listing_not_saved"}


def read_invoice_path(path: Path, fmt: str | None = None, term_days: int = DEFAULT_TERM_DAYS) -> Listing:
    """A folder of UBL ``.xml`` documents, or one file. ``OSError`` when the path cannot be
    read, ``InvoiceFileError`` when the file (or the folder) holds nothing to read."""
    if not path.is_dir():
        reader = InvoiceReader(fmt, term_days)
        reader.add_file(str(path), path.read_bytes())
        return reader.finish()
    if fmt not in (None, "ubl"):
        raise InvoiceFileError(f"a folder is read as UBL documents; a {fmt} export is one file: name it")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".xml" and p.is_file())
    if not files:
        raise InvoiceFileError("no .xml files in the folder")
    reader = InvoiceReader("ubl", term_days)
    for file in tqdm(files, unit="file", desc=path.name, disable=None, leave=False):
        try:
            reader.add_file(str(file), file.read_bytes())
        except OSError as exc:
            reader.refuse(str(file), f"cannot be read: {exc.strerror or exc}")
        except InvoiceFileError as exc:
            reader.refuse(str(file), str(exc))
    return reader.finish()


# --------------------------------------------------------------------------- what was listed


def _fingerprint(invoice: ev.InvoiceIssued) -> dict:
    """What the platform was given of an invoice (what it compares when one is issued again)."""
    return {"debtor_id": invoice.debtor_id, "issue_date": invoice.issue_date.isoformat(),
            "due_date": invoice.due_date.isoformat(), "amount_minor": invoice.amount_minor,
            "currency": invoice.currency, "payment_reference": invoice.payment_reference}


class ListingState:
    """The invoices an open-item export of one source listed at its last import, with what
    was published of each: ``DATA_DIR/invoice-imports/<format>--<source>.json``."""

    def __init__(self, directory: Path, fmt: str, source: str):
        self.format, self.source = fmt, source
        self.path = directory / f"{fmt}--{quote(source, safe='')}.json"

    def load(self) -> dict[str, dict] | None:
        """Invoice id -> what was published of it; None before the first import."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InvoiceStateError(f"{self.path}: cannot be read: {exc.strerror or exc}") from None
        try:
            state = json.loads(text)
            invoices = state["invoices"]
            if not (isinstance(invoices, dict) and all(isinstance(v, dict) for v in invoices.values())):
                raise ValueError("invoices is not an object of objects")
        except (ValueError, KeyError, TypeError) as exc:
            raise InvoiceStateError(f"{self.path}: not a listing state ({exc}); remove it to start the comparison "
                                    "afresh") from None
        return invoices

    def save(self, invoices: dict[str, dict]) -> None:
        """Written whole or not at all: a temporary file beside it, then ``os.replace``."""
        document = {"format": self.format, "source": self.source, "written": date.today().isoformat(),
                    "invoices": dict(sorted(invoices.items()))}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(document, out, ensure_ascii=False, indent=1)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as exc:
            raise InvoiceStateError(f"{self.path}: cannot be written: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- publishing


def publish_listing(path: Path, listing: Listing, publisher: Publisher,
                    state: ListingState | None = None) -> InvoiceImportReport:
    """Publishes what ``listing`` holds and reports it. With ``state`` (an open-item export),
    compares the listing with the last one of its source first, and stores it once the
    broker confirmed everything (``listing_not_saved`` says why it could not).
    ``InvoiceStateError``: the state cannot be read (then nothing is published); ``EncodeError`` that is ``transient``: the schema
    registry cannot be reached (nothing is published)."""
    report = InvoiceImportReport(str(path), listing.format or "", state.source if state else None,
                                 files_read=listing.files, documents_read=listing.documents,
                                 duplicates_skipped=listing.duplicates, not_open_skipped=listing.not_open,
                                 rejected=[asdict(r) for r in listing.rejected])
    previous = state.load() if state is not None else None
    invoices = listing.invoices
    if previous is not None:
        invoices = []
        for invoice in listing.invoices:
            before = previous.get(invoice.invoice_id)
            now = _fingerprint(invoice)
            if before is not None and before != now:
                report.changed_not_published.append({
                    "invoice_id": invoice.invoice_id, "debtor_id": invoice.debtor_id,
                    "changed": {k: [before.get(k), now[k]] for k in now if before.get(k) != now[k]}})
            else:
                invoices.append(invoice)
        report.no_longer_listed = [{"invoice_id": number, "debtor_id": previous[number].get("debtor_id")}
                                   for number in sorted(previous) if number not in listing.listed]

    # Every record is encoded before the first goes out: one that cannot be is rejected
    # (with its debtor's other documents if it is a registration), the rest goes.
    groups: dict[str, list[tuple[object, list[Record]]]] = {"debtors": [], "invoices": [], "credit_notes": []}
    unregistered: set[str] = set()
    for group, events in (("debtors", listing.debtors), ("invoices", invoices), ("credit_notes", listing.credit_notes)):
        for event in events:
            if event.debtor_id in unregistered:
                _refuse(report, listing, event, f"its debtor's registration cannot be published: {event.debtor_id}")
                continue
            try:
                groups[group].append((event, records_of(publisher.codec, publisher.partitions, event)))
            except EncodeError as exc:
                if exc.transient:
                    raise
                _refuse(report, listing, event, f"cannot be encoded: {exc.reason}")
                if isinstance(event, ev.DebtorRegistered):
                    unregistered.add(event.debtor_id)

    delivered = {"debtors": 0, "invoices": 0, "credit_notes": 0}
    confirmed: set[str] = set()  # invoice ids

    def reported(group: str, event, error: KafkaError | None) -> None:
        if error is None:
            delivered[group] += 1
            if isinstance(event, ev.InvoiceIssued):
                confirmed.add(event.invoice_id)

    total = sum(len(items) for items in groups.values())
    with tqdm(total=total, unit="event", desc=path.name, disable=None, leave=False) as bar:
        for group, items in groups.items():
            if publisher.failed:  # what comes next needs what did not arrive: send no more
                break
            for event, records in items:
                publisher.send(records, partial(reported, group, event))
                bar.update(1)
            publisher.wait()  # the next group goes out once this one is confirmed
    report.debtors_published = delivered["debtors"]
    report.invoices_published = delivered["invoices"]
    report.credit_notes_published = delivered["credit_notes"]
    report.not_delivered = total - sum(delivered.values())

    if state is not None and not report.not_delivered:
        kept = {}  # what the platform holds of each invoice listed now
        published = {i.invoice_id: i for i in invoices if i.invoice_id in confirmed}
        for number in listing.listed:
            if number in published:
                kept[number] = _fingerprint(published[number])
            elif previous is not None and number in previous:
                kept[number] = previous[number]  # changed, or rejected now: as it was published
        try:
            state.save(kept)
        except InvoiceStateError as exc:
            report.listing_not_saved = str(exc)
    return report


def _refuse(report: InvoiceImportReport, listing: Listing, event, reason: str) -> None:
    report.rejected.append(asdict(Rejected(listing.origin.get(event.event_id, event.event_id), reason)))


__all__ = ["InvoiceImportReport", "InvoiceStateError", "ListingState", "publish_listing", "read_invoice_path"]
