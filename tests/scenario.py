"""A small builder for ledger scenarios: one debtor, events fed through ``apply`` in
order, everything the core emitted kept for the assertions.

Payments can be fed as bank transactions (``pay_by_reference``): they go through the
reference matcher first, with an index built from the ``ReferenceIssued`` the ledger
emitted, as in the real topology.
"""

from __future__ import annotations

from datetime import date, timedelta
from itertools import count
from typing import Optional

from harness import SAMPLE_POLICY  # noqa: E402
from streams.core import events as ev
from streams.core.ledger import apply
from streams.core.matching import ReferenceEntry, entry_for, match_payment
from streams.core.policy import Policy, policy_from_yaml
from streams.core.state import DebtorState

BASE = date(2025, 3, 3)  # day 0 of every scenario


def day(n: int) -> date:
    """The business date n days after the scenario's day 0."""
    return BASE + timedelta(days=n)


def sample_policy() -> Policy:
    return policy_from_yaml(SAMPLE_POLICY.read_text(), str(SAMPLE_POLICY))


class Scenario:
    """One debtor's ledger, fed event by event; ``outputs`` holds all it emitted."""

    def __init__(self, debtor_id: str = "D1", policy: Optional[Policy] = None):
        self.debtor_id = debtor_id
        self.policy = policy or sample_policy()
        self.state = DebtorState(debtor_id)
        self.outputs: list = []
        self.references: dict[str, ReferenceEntry] = {}
        self._ids = count(1)

    # ---- feeding

    def feed(self, event) -> list:
        """Apply one event; returns what it emitted. ``InvalidEvent`` propagates and
        leaves the state as it was."""
        if isinstance(event, ev.PaymentReceived):
            result = match_payment(self.references, event)
            emitted = [result]
            if isinstance(result, ev.PaymentMatched):
                emitted += self._apply(result)
        else:
            emitted = self._apply(event)
        self.outputs.extend(emitted)
        return emitted

    def _apply(self, event) -> list:
        self.state, emitted = apply(self.state, event, self.policy)
        for output in emitted:
            if isinstance(output, ev.ReferenceIssued):
                self.references[output.reference] = entry_for(output)
        return emitted

    def tick(self, on: date) -> list:
        return self.feed(ev.DayStarted(f"day-{on}", on))

    def run_until(self, last: date) -> dict[date, list]:
        """One DayStarted for every date after the current business date up to ``last``
        (only ``last`` before the first one); returns the outputs by date, dates with no
        output left out."""
        current = self.state.today or last - timedelta(days=1)
        by_date = {}
        while current < last:
            current += timedelta(days=1)
            emitted = self.tick(current)
            if emitted:
                by_date[current] = emitted
        return by_date

    # ---- event builders (each feeds the event and returns what it emitted)

    def _event_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def register(self, kind: str = "B2B", segment: str = "default", **fields) -> list:
        fields.setdefault("name", "Buyer BV" if kind == "B2B" else "J. Jansen")
        fields.setdefault("email", "ap@buyer.example")
        return self.feed(
            ev.DebtorRegistered(self._event_id("reg"), self.debtor_id, kind=kind, segment=segment, **fields)
        )

    def invoice_event(
        self,
        invoice_id: str,
        due: date,
        amount_minor: int,
        issued: Optional[date] = None,
        reference: Optional[str] = None,
        currency: str = "EUR",
    ) -> ev.InvoiceIssued:
        return ev.InvoiceIssued(
            event_id=f"inv-{invoice_id}",
            debtor_id=self.debtor_id,
            invoice_id=invoice_id,
            issue_date=issued or due - timedelta(days=14),
            due_date=due,
            amount_minor=amount_minor,
            currency=currency,
            payment_reference=reference,
        )

    def invoice(self, invoice_id: str, due: date, amount_minor: int, **kw) -> list:
        return self.feed(self.invoice_event(invoice_id, due, amount_minor, **kw))

    def pay(self, invoice_id: str, amount_minor: int, on: date) -> list:
        """A payment already matched to the invoice (the matcher's output)."""
        transaction = self._event_id("tx")
        return self.feed(
            ev.PaymentMatched(f"pay:{transaction}", self.debtor_id, invoice_id, transaction, on, amount_minor)
        )

    def pay_by_reference(self, reference: Optional[str], amount_minor: int, on: date, currency: str = "EUR") -> list:
        transaction = self._event_id("tx")
        return self.feed(
            ev.PaymentReceived(
                event_id=f"bank-{transaction}",
                transaction_id=transaction,
                booking_date=on,
                amount_minor=amount_minor,
                currency=currency,
                structured_reference=reference,
            )
        )

    def credit_note(self, invoice_id: str, amount_minor: int, on: date) -> list:
        note = self._event_id("cn")
        return self.feed(ev.CreditNoteIssued(f"ev-{note}", self.debtor_id, note, invoice_id, on, amount_minor))

    def dispute(self, dispute_id: str, invoice_id: str, on: date, amount_minor: Optional[int] = None) -> list:
        return self.feed(
            ev.DisputeOpened(
                f"open-{dispute_id}", self.debtor_id, dispute_id, invoice_id, on, amount_minor=amount_minor
            )
        )

    def resolve(self, dispute_id: str, on: date) -> list:
        return self.feed(ev.DisputeResolved(f"resolve-{dispute_id}", self.debtor_id, dispute_id, on))

    def promise(
        self, promise_id: str, made_on: date, promised: date, amount_minor: int, invoice_ids: tuple[str, ...] = ()
    ) -> list:
        return self.feed(
            ev.PromiseToPayMade(
                f"ptp-{promise_id}", self.debtor_id, promise_id, made_on, promised, amount_minor, invoice_ids=invoice_ids
            )
        )

    def limit(self, amount_minor: int, source: str = "own") -> list:
        return self.feed(ev.CreditLimitSet(self._event_id("limit"), self.debtor_id, amount_minor, source=source))


# --------------------------------------------------------------------------- reading outputs


def actions(outputs) -> list[ev.DunningActionDue]:
    return [o for o in outputs if isinstance(o, ev.DunningActionDue)]


def of_type(outputs, event_type) -> list:
    return [o for o in outputs if isinstance(o, event_type)]


def steps_by_date(by_date: dict[date, list]) -> dict[date, list[str]]:
    """Which steps fired on which date: the shape most scenarios assert on."""
    fired = {on: [a.step_name for a in actions(out)] for on, out in by_date.items()}
    return {on: names for on, names in fired.items() if names}
