"""Timelines shared by the tests that compare the stream with ``dunning simulate``."""

from __future__ import annotations

from datetime import timedelta

from harness.sample_ledger import Day, sample_days
from streams.core import events as ev
from streams.core.references import betalingskenmerk_for


def timeline_with_early_payments(days: int) -> list[Day]:
    """The sample ledger, plus debtors who pay before their invoice is booked: one two days
    before, one on the same day (published first when the bank goes first), and one on the
    same day without a reference, naming the invoice number in the text."""
    timeline = sample_days(days=days)
    for n, paid_on, issued_on, quotes in ((1, 1, 3, "reference"), (2, 5, 5, "reference"), (3, 6, 6, "number")):
        debtor, reference = f"EARLY-{n}", betalingskenmerk_for(f"7700{n:04d}")
        timeline[0].ledger.append(ev.DebtorRegistered(f"reg-{debtor}", debtor, f"Vooruit {n} BV", "B2B",
                                                      segment="smb", email=f"ap@vooruit{n}.example"))
        timeline[paid_on].payments.append(ev.PaymentReceived(
            f"bank-early-{n}", f"tx-early-{n}", timeline[paid_on].date, 25_000,
            structured_reference=reference if quotes == "reference" else None,
            unstructured_remittance=f"factuur F-{debtor}"))
        issued = timeline[issued_on].date
        timeline[issued_on].ledger.append(ev.InvoiceIssued(f"inv-{debtor}", debtor, f"F-{debtor}", issued,
                                                           issued + timedelta(days=14), 25_000,
                                                           payment_reference=reference))
    return timeline
