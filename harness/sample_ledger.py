"""The demo's sample ledger: about 50 debtors in three segments over 90 days.

Deterministic (seeded), so the demo tells the same story every time: invoices, payments
by reference (on time, late, partial), some without one (the text names the invoice, or
only the debtor's known account and the amount say which), one payment whose reference
matches nothing, one dispute, a kept and a broken promise, one credit-limit breach and an
intercompany debtor that is never dunned.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from schwifty import IBAN

from streams.core import events as ev
from streams.core.references import betalingskenmerk_for

START = date(2025, 1, 1)
DAYS = 90


@dataclass
class Day:
    date: date
    ledger: list = field(default_factory=list)  # debtor events, published after the tick
    payments: list = field(default_factory=list)  # bank transactions, published last

    @property
    def tick(self) -> ev.DayStarted:
        return ev.DayStarted(event_id=f"day:{self.date.isoformat()}", business_date=self.date)

    def events(self) -> list:
        return [self.tick, *self.ledger, *self.payments]


def sample_days(start: date = START, days: int = DAYS, seed: int = 7) -> list[Day]:
    rng = random.Random(seed)
    # The story is written for at least DAYS days and cut to the length asked for, so a
    # short run is the beginning of the same story.
    length = max(days, DAYS)
    timeline = [Day(start + timedelta(days=i)) for i in range(length)]
    invoice_no = 20250000

    def new_invoice(debtor_id: str, day: int, amount: int, term: int) -> ev.InvoiceIssued:
        nonlocal invoice_no
        invoice_no += 1
        issued = timeline[day].date
        invoice = ev.InvoiceIssued(
            event_id=f"inv-evt-{invoice_no}",
            debtor_id=debtor_id,
            invoice_id=f"F{invoice_no}",
            issue_date=issued,
            due_date=issued + timedelta(days=term),
            amount_minor=amount,
            payment_reference=betalingskenmerk_for(str(invoice_no)),
        )
        timeline[day].ledger.append(invoice)
        return invoice

    def pay(invoice: ev.InvoiceIssued, day: int, amount: int | None = None, quotes: str = "reference") -> None:
        """``quotes``: "reference" (structured), "number" (the invoice number in the text
        only) or "nothing" (the debtor's account and the amount must tell)."""
        if day >= length:
            return
        tx = f"tx-{invoice.invoice_id}-{day}"
        timeline[day].payments.append(
            ev.PaymentReceived(
                event_id=f"bank-{tx}",
                transaction_id=tx,
                booking_date=timeline[day].date,
                amount_minor=invoice.amount_minor if amount is None else amount,
                payer_iban=str(IBAN.generate("NL", bank_code="INGB", account_code=invoice.debtor_id[1:].rjust(10, "0"))),
                payer_name=f"Debtor {invoice.debtor_id}",
                structured_reference=invoice.payment_reference if quotes == "reference" else None,
                unstructured_remittance="betaling" if quotes == "nothing" else f"Factuur {invoice.invoice_id}",
            )
        )

    profiles = (
        [("B2C", "retail", "consumer")] * 20
        + [("B2B", "enterprise", "key-account")] * 10
        + [("B2B", "smb", "business")] * 19
    )
    invoices_by_debtor: dict[str, list[ev.InvoiceIssued]] = {}
    for n, (kind, segment, _) in enumerate(profiles, start=1):
        debtor_id = f"D{n:03d}"
        timeline[0].ledger.append(
            ev.DebtorRegistered(
                event_id=f"reg-{debtor_id}",
                debtor_id=debtor_id,
                name=f"{'Familie' if kind == 'B2C' else 'Bedrijf'} {debtor_id}",
                kind=kind,
                segment=segment,
                language="nl" if n % 4 else "en",
                email=f"{debtor_id.lower()}@example.nl",
                phone=f"+3161234{n:04d}",
                credit_limit_minor=None if kind == "B2C" else 2_500_000 if segment == "enterprise" else 1_500_000,
                branch="Utrecht" if n % 2 else "Rotterdam",
                salesperson=("Anouk", "Bram", "Chris")[n % 3],
            )
        )
        invoices = invoices_by_debtor[debtor_id] = []
        for _ in range(rng.randint(1, 3)):
            amount = rng.randint(50, 900) * 100 if kind == "B2C" else rng.randint(500, 4_000) * 100
            invoices.append(new_invoice(debtor_id, rng.randint(0, 35), amount, 14 if kind == "B2C" else 30))
        behaviour = rng.random()
        for index, invoice in enumerate(invoices):
            due = (invoice.due_date - start).days
            if behaviour < 0.35:  # pays on time; now and then without a reference
                pay(invoice, due - rng.randint(0, 5), quotes="nothing" if index and n % 3 == 0 else "reference")
            elif behaviour < 0.6:  # pays late, after a reminder or two; some name the invoice in the text only
                pay(invoice, due + rng.randint(5, 25), quotes="number" if n % 2 == 0 else "reference")
            elif behaviour < 0.7:
                pay(invoice, due + rng.randint(2, 10), amount=invoice.amount_minor // 2)  # pays half
            # the rest never pays within the 90 days

    # An intercompany debtor: booked, never dunned.
    timeline[0].ledger.append(
        ev.DebtorRegistered(event_id="reg-D050", debtor_id="D050", name="Zusterbedrijf BV", kind="B2B",
                            segment="group", intercompany=True, email="finance@zuster.example.nl")
    )
    new_invoice("D050", 2, 1_250_000, 30)

    # One limit breach: a business debtor orders far over its limit.
    new_invoice("D031", 20, 1_600_000, 30)

    # One dispute on a consumer invoice, resolved in favour of the creditor after six weeks.
    disputed = invoices_by_debtor["D002"][0]
    opened = min((disputed.due_date - start).days + 4, length - 1)
    timeline[opened].ledger.append(
        ev.DisputeOpened(event_id="dsp-1-open", debtor_id="D002", dispute_id="DSP-1", invoice_id=disputed.invoice_id,
                         opened_on=timeline[opened].date, kind="dispute", reason="Product niet geleverd", owner="Anouk")
    )
    if opened + 42 < length:
        timeline[opened + 42].ledger.append(
            ev.DisputeResolved(event_id="dsp-1-resolved", debtor_id="D002", dispute_id="DSP-1",
                               resolved_on=timeline[opened + 42].date, outcome="delivered, claim stands")
        )

    # A promise kept and a promise broken.
    for debtor_id, keeps in (("D004", True), ("D006", False)):
        invoice = invoices_by_debtor[debtor_id][0]
        made = (invoice.due_date - start).days + 5
        promised = made + 10
        if promised >= length:
            continue  # a short timeline ends before this story does
        timeline[made].ledger.append(
            ev.PromiseToPayMade(event_id=f"ptp-{debtor_id}", debtor_id=debtor_id, promise_id=f"PTP-{debtor_id}",
                                made_on=timeline[made].date, promised_date=timeline[promised].date,
                                amount_minor=invoice.amount_minor, invoice_ids=(invoice.invoice_id,))
        )
        # Drop whatever the behaviour above planned for this invoice: the promise decides.
        for day in timeline:
            day.payments = [p for p in day.payments if invoice.invoice_id not in p.transaction_id]
        if keeps:
            pay(invoice, promised - 1)

    # A payment whose reference matches no invoice: it must surface as unmatched.
    timeline[min(45, length - 1)].payments.append(
        ev.PaymentReceived(event_id="bank-tx-mystery", transaction_id="tx-mystery", booking_date=timeline[min(45, length - 1)].date,
                           amount_minor=123_45, payer_iban="NL44RABO0123456789", payer_name="Onbekend",
                           structured_reference=betalingskenmerk_for("99999999"),
                           unstructured_remittance="betaling")
    )
    return timeline[:days]


def sample_events(**kwargs) -> list:
    return [event for day in sample_days(**kwargs) for event in day.events()]
