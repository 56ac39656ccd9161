"""``dunning import-bank`` end to end: a real-shaped camt.053 statement imported into a running
worker pays the invoice its betalingskenmerk names (no reminder after it), puts its debit, its
reversal and its unknown references in the unmatched queue, and a second import of the same
file changes nothing. Also the command's answers to a file it refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from connectors.publisher import Publisher
from harness.stack import Stack
from harness.watch import pipeline_watcher
from schemas.codec import Codec
from streams.core import events as ev
from streams.kafka.progress import WorkerProgress

PARTITIONS = 4
FILES = Path(__file__).parent / "bank_files"
STATEMENT = FILES / "camt053_001_02.xml"  # books 1,391.50 for 5000056789012345 on 2025-04-15
START = date(2025, 4, 1)


def import_bank(bootstrap: str, *args) -> tuple[int, dict | None, str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "KAFKA_PROFILE": "embedded", "PARTITIONS": str(PARTITIONS)}
    env.pop("SCHEMA_REGISTRY_URL", None)
    done = subprocess.run([sys.executable, "-m", "dunning.cli", "import-bank", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr


def tick(on: date) -> ev.DayStarted:
    return ev.DayStarted(f"day:{on.isoformat()}", on)


@pytest.mark.broker
def test_an_imported_statement_pays_the_invoice_and_no_reminder_follows(tmp_path):
    codec = Codec()
    with Stack(tmp_path, PARTITIONS) as stack:
        stack.start("worker")
        watcher = pipeline_watcher(stack.bootstrap, codec).start()
        publisher = Publisher(stack.bootstrap, codec, PARTITIONS, before_tick=WorkerProgress(stack.bootstrap, timeout=120))
        try:
            publisher.publish_all([
                tick(START),
                ev.DebtorRegistered("reg-celik", "DEB-CELIK", "Bakkerij Çelik & Zonen", "B2B", segment="smb",
                                    email="crediteuren@celik.example"),
                ev.InvoiceIssued("inv-0117", "DEB-CELIK", "F2025-0117", START, date(2025, 4, 15), 139_150,
                                 payment_reference="5000056789012345"),
                ev.InvoiceIssued("inv-0118", "DEB-CELIK", "F2025-0118", START, date(2025, 4, 15), 10_000),
            ])
            for n in range(1, 15):
                publisher.publish(tick(START + timedelta(days=n)))
            status, report, stderr = import_bank(stack.bootstrap, STATEMENT)
            assert (status, stderr) == (0, "")
            assert {k: report[k] for k in ("format", "read", "published", "duplicates_skipped", "pending_skipped",
                                           "rejected")} == {"format": "camt.053", "read": 5, "published": 5,
                                                            "duplicates_skipped": 0, "pending_skipped": 1,
                                                            "rejected": []}
            for n in range(15, 60):
                publisher.publish(tick(START + timedelta(days=n)))
            WorkerProgress(stack.bootstrap, timeout=120)()

            watcher.wait_for(lambda w: "2025041500007" in {m.transaction_id for m in w.events("PaymentMatched")},
                             60, "the payment matched")
            unmatched = {}
            watcher.wait_for(lambda w: len({u.transaction_id for u in w.events("PaymentUnmatched")}) >= 4, 60,
                             "the other four reported")
            for u in watcher.events("PaymentUnmatched"):
                unmatched.setdefault(u.transaction_id, u.reason)
            assert sorted(unmatched) == ["2025041500008/1", "2025041500008/2", "2025041500009", "2025041500010"]
            assert unmatched["2025041500008/1"].startswith("no invoice carries reference RF18539007547034 (yet)")
            assert unmatched["2025041500008/2"].startswith("no structured reference, no known invoice number")
            assert unmatched["2025041500009"].startswith("a debit (money out")
            # The reversal reaches a debtor (by its reference or account) that was paid nothing of 80.00 EUR.
            assert unmatched["2025041500010"].startswith("the bank takes back an earlier credit with this one; "
                                                         "no payment of 80.00 EUR")
            (matched,) = {m.event_id: m for m in watcher.events("PaymentMatched")}.values()
            assert (matched.invoice_id, matched.amount_minor) == ("F2025-0117", 139_150)

            # Paid on its due date: reminded of the unpaid invoice, never again of the paid one.
            def after_payment():
                return [a for a in watcher.events("DunningActionDue") if a.business_date >= date(2025, 4, 16)]

            watcher.wait_caught_up(60)
            reminded = [i.invoice_id for a in after_payment() for i in a.items]
            assert "F2025-0118" in reminded and "F2025-0117" not in reminded
            latest = max((s for s in watcher.events("DebtorSnapshot") if s.debtor_id == "DEB-CELIK"),
                         key=lambda s: s.version)
            # the unpaid one's final notice booked the 40.00 a business owes
            assert [i.invoice_id for i in latest.items] == ["F2025-0118"] and latest.balance_minor == 14_000
            assert (latest.principal_open_minor, latest.costs_open_minor) == (10_000, 4_000)

            # The same file again: the same ids, nothing changes.
            seen = len(watcher.events("PaymentMatched")), latest.version
            status, report, _ = import_bank(stack.bootstrap, STATEMENT)
            assert (status, report["published"]) == (0, 5)
            WorkerProgress(stack.bootstrap, timeout=120)()
            watcher.wait_caught_up(60)
            matched_ids = {m.event_id for m in watcher.events("PaymentMatched")}
            latest_again = max((s for s in watcher.events("DebtorSnapshot") if s.debtor_id == "DEB-CELIK"),
                               key=lambda s: s.version)
            assert matched_ids == {matched.event_id}
            assert (latest_again.version, latest_again.balance_minor) == (seen[1], 14_000)
        finally:
            watcher.stop()


@pytest.mark.broker
def test_a_file_it_refuses_publishes_nothing(tmp_path):
    from harness.embedded import EmbeddedBroker
    from streams.kafka.clients import end_offsets

    hostile = tmp_path / "hostile.xml"
    hostile.write_bytes(b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&x;</Document>')
    broken = tmp_path / "broken.xml"
    broken.write_text(STATEMENT.read_text(encoding="utf-8").replace('<Amt Ccy="EUR">120.00</Amt>',
                                                                      '<Amt Ccy="EUR">12O.00</Amt>'), encoding="utf-8")
    with EmbeddedBroker() as broker:
        status, report, stderr = import_bank(broker.bootstrap, hostile)
        assert (status, report) == (1, None)
        assert "hostile.xml: refused: the XML declares a DTD or entities" in stderr
        assert stderr.strip().endswith("nothing was published") and len(stderr.strip().splitlines()) == 1
        status, report, stderr = import_bank(broker.bootstrap, broken)
        assert status == 1 and report["published"] == 3 and len(report["rejected"]) == 1
        assert "Ntry[2]/NtryDtls/TxDtls[2]/AmtDtls/TxAmt/Amt: amount '12O.00' is not a number" in stderr
        assert sum(v for (topic, _), v in end_offsets(broker.bootstrap, ["dunning.bank-transactions"]).items()) == 3
        status, _, stderr = import_bank(broker.bootstrap, tmp_path / "missing.xml")
        assert status == 2 and "missing.xml" in stderr and len(stderr.strip().splitlines()) == 1
