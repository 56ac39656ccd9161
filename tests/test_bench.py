"""The benchmark's own parts still run and count what they say (figures, not timings)."""

from __future__ import annotations

from harness import bench
from streams.core import events as ev


def test_the_workload_pays_only_invoices_it_issued_and_ticks_in_between():
    events = bench.workload(debtors=50, events=2_000, ticks=3)
    invoices = {e.payment_reference: e for e in events if isinstance(e, ev.InvoiceIssued)}
    payments = [e for e in events if isinstance(e, ev.PaymentReceived)]
    assert len(events) == 2_000
    assert sum(isinstance(e, ev.DebtorRegistered) for e in events) == 50
    assert sum(isinstance(e, ev.DayStarted) for e in events) == 3
    assert payments and all(invoices[p.structured_reference].amount_minor == p.amount_minor for p in payments)


def test_core_figure_counts_every_event_and_its_outputs():
    figures = bench.bench_core(5_000)
    invoices, payments = figures["mix"]["InvoiceIssued"], figures["mix"]["PaymentReceived"]
    assert figures["events"] == sum(figures["mix"].values()) == 5_000
    assert figures["events_per_second"] > 0
    # At least a reference per invoice and a match per payment.
    assert figures["outputs"] >= invoices + payments > 0


def test_memory_figure_holds_the_debtors_as_the_worker_table_does():
    figures = bench.bench_memory(500)
    assert figures["debtors"] == 500 and figures["open_items"] == 5_000
    assert 0 < figures["table_bytes_mib"] < figures["peak_rss_mib"]


def test_the_matching_bench_labels_every_line_and_scores_what_the_cascade_did():
    from harness import bench_matching

    setup, lines = bench_matching.generate(debtors=300, lines=1_500, seed=3)
    assert len(lines) == 1_500 and len({line.payment.transaction_id for line in lines}) == 1_500
    kinds = {line.kind for line in lines}
    assert {"reference", "number_in_text", "known_account_amount", "combined_named", "group_company",
            "unrelated_credit", "refund"} <= kinds
    assert all((line.debtor_id is None) == (line.kind in ("unrelated_credit", "refund")) for line in lines)
    report = bench_matching.run(debtors=300, lines=1_500, seed=3)
    assert report["lines"] == 1_500 and report["lost"] == 0
    assert report["matched_automatically"] + report["queued"] == 1_500
    assert report["by_kind"]["refund"].get("matched", 0) == 0  # money out is never matched
    assert report["precision"] >= 0.999 and report["automatic_rate"] >= 0.90, report
