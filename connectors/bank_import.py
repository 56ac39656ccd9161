"""``dunning import-bank FILE``: a bank statement file (camt.053, camt.054, Berlin Group
JSON) read, checked whole, and its payments published to the bank topic.

The file is read completely before anything goes out: a file that cannot be read is
refused and nothing is published; a transaction that cannot be read is rejected (with
its element and the reason) and the others go out. The report counts what was read,
published (confirmed by the broker), skipped as a repeat within the file, left pending
and rejected. Importing the same file again publishes the same ids: nothing changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from connectors.bank_files import Rejected, Statement, read_statement
from connectors.publisher import Publisher


@dataclass
class ImportReport:
    file: str
    format: str
    read: int = 0  # booked transactions read, rejected ones included
    published: int = 0  # confirmed by the broker
    duplicates_skipped: int = 0
    pending_skipped: int = 0
    rejected: list[dict] = field(default_factory=list)  # {"where", "reason"}
    not_delivered: int = 0

    @property
    def ok(self) -> bool:
        return not (self.rejected or self.not_delivered)

    def to_json(self) -> dict:
        return asdict(self)


def read_bank_file(path: Path, fmt: str | None = None) -> Statement:
    return read_statement(path.read_bytes(), fmt)


def publish_statement(path: Path, statement: Statement, publisher: Publisher,
                      progress: Callable[[int], None] | None = None) -> ImportReport:
    report = ImportReport(str(path), statement.format,
                          read=len(statement.payments) + len(statement.rejected) + statement.duplicates,
                          duplicates_skipped=statement.duplicates, pending_skipped=statement.pending,
                          rejected=[asdict(r) for r in statement.rejected])
    delivered_before = publisher.delivered
    with tqdm(total=len(statement.payments), unit="payment", desc=path.name, disable=None, leave=False) as bar:
        for payment in statement.payments:
            publisher.publish(payment)
            bar.update(1)
            if progress:
                progress(1)
        publisher.wait()
    report.published = publisher.delivered - delivered_before
    report.not_delivered = len(statement.payments) - report.published
    return report


__all__ = ["ImportReport", "Rejected", "publish_statement", "read_bank_file"]
