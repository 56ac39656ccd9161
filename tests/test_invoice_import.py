"""``dunning import-invoices``: the listing state of open-item exports (compared, written only
once the broker confirmed everything, atomically) with a producer that reports deliveries as
told; end to end through the embedded broker, a UBL folder imported into a running worker
books its invoices and credit note, a second import changes nothing, and a second open-item
export that no longer lists an invoice reports it and publishes nothing for it. Also the
command's one-line answers to a missing file and an unknown format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from connectors.invoice_files import read_invoices
from connectors.invoice_import import InvoiceStateError, ListingState, publish_listing, read_invoice_path
from connectors.publisher import Publisher
from schemas.codec import Codec
from streams.core import events as ev

PARTITIONS = 4
FILES = Path(__file__).parent / "invoice_files"
UBL = FILES / "ubl"
EXACT = FILES / "exact_receivables.csv"


def without(path: Path, invoice_number: str) -> bytes:
    """The export as it looks once the package no longer lists the invoice."""
    lines = path.read_bytes().splitlines(keepends=True)
    kept = [line for line in lines if f",{invoice_number},".encode() not in line]
    assert len(kept) == len(lines) - 1
    return b"".join(kept)


# --------------------------------------------------------------------------- the listing state, no broker


class Producer:
    """What ``Publisher`` needs of a librdkafka producer; deliveries are reported at ``flush``,
    as delivered or, with ``fail``, timed out."""

    def __init__(self, fail: bool = False):
        self.fail, self.sent, self._reports = fail, [], []

    def produce(self, topic, value=None, key=None, on_delivery=None, **kwargs):
        self.sent.append((topic, key, value))
        self._reports.append(on_delivery)

    def poll(self, timeout=None):
        return 0

    def flush(self, timeout=None):
        reports, self._reports = self._reports, []
        for report in reports:
            report(KafkaError(KafkaError._MSG_TIMED_OUT) if self.fail else None, None)
        return 0


def publish(data: bytes, state: ListingState, fail: bool = False, name: str = "receivables.csv"):
    codec, producer = Codec(), Producer(fail)
    report = publish_listing(Path(name), read_invoices(data, name=name), Publisher("-", codec, PARTITIONS, producer),
                             state)
    return report, [codec.decode(value) for _, _, value in producer.sent]


def test_an_open_item_export_is_compared_with_the_last_one_of_its_source(tmp_path):
    state = ListingState(tmp_path / "invoice-imports", "exact", "receivables")
    first, sent = publish(EXACT.read_bytes(), state)
    assert (first.debtors_published, first.invoices_published, first.credit_notes_published) == (3, 4, 1)
    assert (first.no_longer_listed, first.changed_not_published, first.not_delivered, first.ok) == ([], [], 0, True)
    # debtors first, then invoices, then credit notes
    assert [type(e).__name__ for e in sent] == ["DebtorRegistered"] * 3 + ["InvoiceIssued"] * 4 + ["CreditNoteIssued"]
    assert sorted(state.load()) == ["20250117", "20250119", "20250121", "20250122"]
    assert not [p for p in state.path.parent.iterdir() if p != state.path]  # no temporary file left

    second, sent = publish(without(EXACT, "20250121"), state)
    assert second.no_longer_listed == [{"invoice_id": "20250121", "debtor_id": "1001"}]
    assert "20250121" not in {e.invoice_id for e in sent if isinstance(e, ev.InvoiceIssued)}
    assert second.invoices_published == 3 and second.ok  # reported, not an error
    assert sorted(state.load()) == ["20250117", "20250119", "20250122"]
    third, _ = publish(without(EXACT, "20250121"), state)
    assert third.no_longer_listed == []  # reported once: the listing moved on


def test_an_invoice_listed_with_another_open_amount_is_reported_and_not_published(tmp_path):
    state = ListingState(tmp_path, "exact", "receivables")
    publish(EXACT.read_bytes(), state)
    part_paid = EXACT.read_bytes().replace(b",1391.5,", b",1000,")
    report, sent = publish(part_paid, state)
    assert report.changed_not_published == [
        {"invoice_id": "20250117", "debtor_id": "1001", "changed": {"amount_minor": [139_150, 100_000]}}]
    assert "20250117" not in {e.invoice_id for e in sent if isinstance(e, ev.InvoiceIssued)}
    assert state.load()["20250117"]["amount_minor"] == 139_150  # what the platform holds
    again, _ = publish(part_paid, state)
    assert len(again.changed_not_published) == 1


def test_nothing_is_remembered_when_the_broker_did_not_confirm_everything(tmp_path):
    state = ListingState(tmp_path, "exact", "receivables")
    publish(EXACT.read_bytes(), state)
    before = state.path.read_bytes()
    report, sent = publish(without(EXACT, "20250121"), state, fail=True)
    assert (report.not_delivered, report.debtors_published, report.ok) == (7, 0, False)
    assert len(sent) == 3  # the debtors failed: their invoices were not sent after them
    assert state.path.read_bytes() == before
    assert publish(without(EXACT, "20250121"), state)[0].no_longer_listed == [
        {"invoice_id": "20250121", "debtor_id": "1001"}]


def test_a_broken_state_file_is_refused_before_anything_is_sent(tmp_path):
    state = ListingState(tmp_path, "exact", "receivables")
    state.path.write_text("{not json", encoding="utf-8")
    codec, producer = Codec(), Producer()
    with pytest.raises(InvoiceStateError, match="not a listing state"):
        publish_listing(EXACT, read_invoices(EXACT.read_bytes()), Publisher("-", codec, PARTITIONS, producer), state)
    assert producer.sent == []


def test_a_listing_that_cannot_be_stored_is_reported_and_leaves_the_last_one_whole(tmp_path, monkeypatch):
    import connectors.invoice_import as invoice_import

    state = ListingState(tmp_path, "exact", "receivables")
    publish(EXACT.read_bytes(), state)
    before = state.path.read_bytes()

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(invoice_import.os, "replace", disk_full)
    report, sent = publish(without(EXACT, "20250121"), state)
    assert report.invoices_published == 3 and not report.ok
    assert report.listing_not_saved.endswith("cannot be written: No space left on device")
    assert state.path.read_bytes() == before and list(tmp_path.iterdir()) == [state.path]  # no temporary file left


def test_a_ubl_folder_is_published_in_order_with_stable_ids():
    codec, producer = Codec(), Producer()
    report = publish_listing(UBL, read_invoice_path(UBL), Publisher("-", codec, PARTITIONS, producer))
    assert (report.files_read, report.documents_read, report.debtors_published, report.invoices_published,
            report.credit_notes_published, report.source) == (3, 3, 2, 2, 1, None)
    assert [codec.decode(v).event_id for _, _, v in producer.sent][2:] == [
        "ubl:inv:F2025-0117", "ubl:inv:F2025-0118", "ubl:cn:C2025-0007"]


# --------------------------------------------------------------------------- the command


def import_invoices(bootstrap: str, data_dir: Path, *args) -> tuple[int, dict | None, str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "KAFKA_PROFILE": "embedded", "PARTITIONS": str(PARTITIONS),
           "DATA_DIR": str(data_dir)}
    env.pop("SCHEMA_REGISTRY_URL", None)
    done = subprocess.run([sys.executable, "-m", "dunning.cli", "import-invoices", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_missing_file_and_an_unknown_format_are_refused_in_one_line(tmp_path):
    # Refused before Kafka is asked: no broker needed.
    status, report, stderr = import_invoices("127.0.0.1:1", tmp_path, tmp_path / "missing.csv")
    assert (status, report) == (2, None)
    assert one_line(stderr) == f"dunning import-invoices: {tmp_path / 'missing.csv'}: No such file or directory"
    status, report, stderr = import_invoices("127.0.0.1:1", tmp_path, EXACT, "--format", "csv")
    assert (status, report) == (2, None)
    assert one_line(stderr) == ("dunning import-invoices: --format must be one of ubl, exact, twinfield, moneybird, "
                                "eboekhouden, not 'csv'")
    status, _, stderr = import_invoices("127.0.0.1:1", tmp_path, UBL, "--source", "x")
    assert status == 2 and "--source names the listing of an open-item export" in one_line(stderr)


@pytest.mark.broker
def test_an_imported_ubl_folder_books_its_invoices_in_the_worker_and_a_second_import_changes_nothing(tmp_path):
    from harness.stack import Stack
    from harness.watch import pipeline_watcher
    from streams.kafka.progress import WorkerProgress

    codec = Codec()
    with Stack(tmp_path, PARTITIONS) as stack:
        stack.start("worker")
        watcher = pipeline_watcher(stack.bootstrap, codec).start()
        publisher = Publisher(stack.bootstrap, codec, PARTITIONS, before_tick=WorkerProgress(stack.bootstrap, timeout=120))
        try:
            publisher.publish_all([ev.DayStarted("day:2025-04-07", date(2025, 4, 7))])
            status, report, stderr = import_invoices(stack.bootstrap, tmp_path / "var", UBL)
            assert (status, stderr) == (0, "")
            assert {k: report[k] for k in ("format", "files_read", "documents_read", "debtors_published",
                                           "invoices_published", "credit_notes_published", "rejected",
                                           "no_longer_listed", "not_delivered")} == {
                "format": "ubl", "files_read": 3, "documents_read": 3, "debtors_published": 2,
                "invoices_published": 2, "credit_notes_published": 1, "rejected": [], "no_longer_listed": [],
                "not_delivered": 0}

            def latest(debtor_id: str):
                snapshots = [s for s in watcher.events("DebtorSnapshot") if s.debtor_id == debtor_id]
                return max(snapshots, key=lambda s: s.version) if snapshots else None

            def booked(w) -> bool:
                celik, mueller = latest("12345678"), latest("DE123456789")
                return (celik is not None and mueller is not None and mueller.items
                        and any(i.credited_minor for i in celik.items))

            watcher.wait_for(booked, 60, "both debtors' snapshots with the invoices and the credit note")
            celik, mueller = latest("12345678"), latest("DE123456789")
            assert (celik.name, celik.kind) == ("Bakkerij Çelik & Zonen", "B2B")
            assert [(i.invoice_id, i.amount_minor, i.credited_minor, i.open_minor, i.payment_reference)
                    for i in celik.items] == [("F2025-0117", 139_150, 3_630, 135_520, "5000056789012345")]
            assert [(i.invoice_id, i.open_minor, i.payment_reference) for i in mueller.items] == [
                ("F2025-0118", 25_000, "RF18539007547034")]
            references = {r.reference for r in watcher.events("ReferenceIssued")}
            assert {"5000056789012345", "RF18539007547034"} <= references

            # The same folder again: the same ids, and the worker changes nothing.
            WorkerProgress(stack.bootstrap, timeout=120)()
            watcher.wait_caught_up(60)
            versions = {d: latest(d).version for d in ("12345678", "DE123456789")}
            ledger_before = len(watcher.events("InvoiceIssued"))
            status, report, _ = import_invoices(stack.bootstrap, tmp_path / "var", UBL)
            assert (status, report["invoices_published"], report["credit_notes_published"]) == (0, 2, 1)
            watcher.wait_for(lambda w: len(w.events("InvoiceIssued")) == ledger_before + 2, 60,
                             "the second import's invoices on the ledger")
            WorkerProgress(stack.bootstrap, timeout=120)()
            watcher.wait_caught_up(60)
            assert {d: latest(d).version for d in versions} == versions
            assert latest("12345678").items == celik.items
            assert watcher.events("DeadLetter") == []
        finally:
            watcher.stop()


@pytest.mark.broker
def test_an_open_item_export_that_no_longer_lists_an_invoice_reports_it_and_publishes_nothing_for_it(tmp_path):
    from harness.embedded import EmbeddedBroker
    from harness.watch import TopicWatcher
    from schemas import topics
    from streams.kafka.clients import ensure_topics

    data_dir = tmp_path / "var"
    monday, tuesday = tmp_path / "openstaand-2025-04-14.csv", tmp_path / "openstaand-2025-04-15.csv"
    monday.write_bytes(EXACT.read_bytes())
    tuesday.write_bytes(without(EXACT, "20250121"))
    hostile = FILES / "hostile" / "external_entity.xml"
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, PARTITIONS)
        watcher = TopicWatcher(broker.bootstrap, Codec(), [topics.LEDGER.name]).start()
        try:
            status, report, stderr = import_invoices(broker.bootstrap, data_dir, monday, "--source", "exact-main")
            assert (status, stderr, report["source"], report["no_longer_listed"]) == (0, "", "exact-main", [])
            assert (report["debtors_published"], report["invoices_published"], report["credit_notes_published"],
                    report["not_open_skipped"]) == (3, 4, 1, 1)
            state = data_dir / "invoice-imports" / "exact--exact-main.json"
            assert sorted(json.loads(state.read_text(encoding="utf-8"))["invoices"]) == [
                "20250117", "20250119", "20250121", "20250122"]
            watcher.wait_for(lambda w: len(w.events("InvoiceIssued")) == 4, 60, "the first export's invoices")

            status, report, stderr = import_invoices(broker.bootstrap, data_dir, tuesday, "--source", "exact-main")
            assert status == 0 and report["no_longer_listed"] == [{"invoice_id": "20250121", "debtor_id": "1001"}]
            assert one_line(stderr).startswith(f"{tuesday}: invoice 20250121 (debtor 1001) was listed by the last import")
            assert report["invoices_published"] == 3
            watcher.wait_for(lambda w: len(w.events("InvoiceIssued")) == 7, 60, "the second export's invoices")
            watcher.wait_caught_up(60)
            issued = [i.event_id for i in watcher.events("InvoiceIssued")]
            assert issued.count("exact:inv:20250121") == 1  # only from the first export
            assert sorted(json.loads(state.read_text(encoding="utf-8"))["invoices"]) == [
                "20250117", "20250119", "20250122"]

            # A hostile file publishes nothing and leaves the listing alone.
            records = len(watcher.events("InvoiceIssued")) + len(watcher.events("DebtorRegistered"))
            status, report, stderr = import_invoices(broker.bootstrap, data_dir, hostile)
            assert (status, report) == (1, None)
            assert one_line(stderr).endswith("declares a DTD or entities (DTDForbidden); an invoice needs "
                                             "neither, and they can read local files or expand without end; nothing "
                                             "was published")
            # A malformed export: the bad rows named with line and column, the others published.
            status, report, stderr = import_invoices(broker.bootstrap, data_dir, FILES / "exact_malformed.csv")
            assert status == 1 and (report["invoices_published"], len(report["rejected"])) == (2, 6)
            assert "exact_malformed.csv: line 5, column Amount: amount '12O.00' is not a number" in stderr
            watcher.wait_for(lambda w: len(w.events("InvoiceIssued")) + len(w.events("DebtorRegistered"))
                             == records + 4, 60, "the malformed export's good rows")
        finally:
            watcher.stop()
