"""Named scenarios as data: the input events in order, and what must come out.

Each scenario is written once and run three ways by ``tests/test_scenarios.py``: through
the in-memory topology (``streams.core.pipeline.Pipeline``), through ``dunning simulate``
on a JSON-lines file, and through the real pipeline (broker, worker, sink, projector).
The rule: all three agree, whatever the order topics are read in and however events are
batched. So an expectation sees only what came out, normalised into an ``Outcome``:
the actions and alerts of each debtor in the order they were emitted, the payments
matched and unmatched, the final snapshot of each debtor, and the ids of the input events
refused (``InvalidEvent`` in the core, a ``Rejected`` line of ``simulate``, a dead letter
in the pipeline).

Scenarios share one running pipeline, so each has debtor ids, event ids, transaction ids
and payment references of its own. Time enters only as ``DayStarted``: ``Feed.until(n)``
ticks every day up to day n; every other event happens on the day of the last tick, and
each scenario ends with a tick (the pipeline waits for its debtors' snapshots of that day).

The sample policy (harness/samples/policy.yaml) applies; day 0 is Monday 3 March 2025.
The B2B ``business`` workflow: pre-due at -3, first reminder at +1, second at +14, call at
+21, final notice at +30 (15-day term), collection at +60, minimum 25.00. The B2C
``consumer`` workflow: pre-due at -3, first reminder at +3, SMS at +10, the 14-day letter at
+17 (collection costs, 15-day term), collection at +40, minimum 5.00.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import count
from typing import Callable, Iterable, Optional

from schwifty import IBAN

from streams.core import events as ev
from streams.core.dunning import action_id_for
from streams.core.references import betalingskenmerk_for
from streams.core.terms import term_ends_on

BASE = date(2025, 3, 3)  # day 0 of every scenario, a Monday
SHARED_PAYER = "NL91ABNA0417164300"

ALERT_TYPES = (ev.LimitWarning, ev.LimitBreached, ev.LimitCleared, ev.PromiseKept, ev.PromiseBroken,
               ev.PaymentReversed)


def day(n: int) -> date:
    return BASE + timedelta(days=n)


# --------------------------------------------------------------------------- what came out


@dataclass
class Outcome:
    """What a run produced for one scenario, normalised so that the three ways compare:
    per debtor and in the order emitted (the order across debtors is the stream's to
    choose), an output repeated with the same id kept once (at least once delivery)."""

    actions: dict[str, list[ev.DunningActionDue]] = field(default_factory=dict)  # by debtor
    alerts: dict[str, list] = field(default_factory=dict)  # by debtor: limit and promise events
    matched: dict[str, ev.PaymentMatched] = field(default_factory=dict)  # by transaction id
    unmatched: dict[str, ev.PaymentUnmatched] = field(default_factory=dict)  # by transaction id
    resolved: dict[str, ev.PaymentResolved] = field(default_factory=dict)  # by transaction id
    snapshots: dict[str, ev.DebtorSnapshot] = field(default_factory=dict)  # the last, by debtor
    refused: set[str] = field(default_factory=set)  # event ids of the inputs refused

    @classmethod
    def of(cls, outputs: Iterable, refused: Iterable[str], scenario: "Scenario") -> "Outcome":
        """The outputs that concern the scenario (its debtors, its transactions), in order."""
        debtors, transactions = scenario.named_debtor_ids, scenario.transaction_ids
        out = cls(actions={d: [] for d in sorted(debtors)}, alerts={d: [] for d in sorted(debtors)},
                  refused=set(refused) & scenario.event_ids)
        seen: set[str] = set()
        for output in outputs:
            if isinstance(output, ev.DunningActionDue):
                if output.debtor_id in debtors and output.action_id not in seen:
                    seen.add(output.action_id)
                    out.actions[output.debtor_id].append(output)
            elif isinstance(output, ALERT_TYPES):
                if output.debtor_id in debtors and output.event_id not in seen:
                    seen.add(output.event_id)
                    out.alerts[output.debtor_id].append(output)
            elif isinstance(output, ev.PaymentMatched):
                if output.transaction_id in transactions:
                    out.matched.setdefault(output.transaction_id, output)
            elif isinstance(output, ev.PaymentUnmatched):
                if output.transaction_id in transactions:
                    out.unmatched.setdefault(output.transaction_id, output)
            elif isinstance(output, ev.PaymentResolved):
                if output.transaction_id in transactions:
                    out.resolved.setdefault(output.transaction_id, output)
            elif isinstance(output, ev.DebtorSnapshot):
                latest = out.snapshots.get(output.debtor_id)
                if output.debtor_id in debtors and (latest is None or output.version > latest.version):
                    out.snapshots[output.debtor_id] = output
        return out

    # ---- questions the expectations ask

    def fired(self, debtor_id: str) -> dict[date, list[str]]:
        """The steps that fired, by business date."""
        by_date: dict[date, list[str]] = defaultdict(list)
        for action in self.actions[debtor_id]:
            by_date[action.business_date].append(action.step_name)
        return dict(by_date)

    def dunned(self, debtor_id: str) -> dict[date, list[tuple[str, int]]]:
        """The steps that fired with the total each asked for, by business date."""
        by_date: dict[date, list[tuple[str, int]]] = defaultdict(list)
        for action in self.actions[debtor_id]:
            by_date[action.business_date].append((action.step_name, action.total_minor))
        return dict(by_date)

    def action(self, debtor_id: str, step_name: str, on: Optional[date] = None) -> ev.DunningActionDue:
        """The one action of that step (on that date)."""
        found = [a for a in self.actions[debtor_id] if a.step_name == step_name and on in (None, a.business_date)]
        assert len(found) == 1, f"{len(found)} actions {step_name!r} for {debtor_id} on {on}: {found}"
        return found[0]

    def invoices_by_date(self, debtor_id: str) -> dict[date, list[list[str]]]:
        """The invoices of each action, by business date."""
        by_date: dict[date, list[list[str]]] = defaultdict(list)
        for action in self.actions[debtor_id]:
            by_date[action.business_date].append([i.invoice_id for i in action.items])
        return dict(by_date)

    def snapshot(self, debtor_id: str) -> ev.DebtorSnapshot:
        assert debtor_id in self.snapshots, f"no snapshot of {debtor_id}"
        return self.snapshots[debtor_id]

    def paused(self, debtor_id: str) -> dict[str, Optional[str]]:
        return {i.invoice_id: i.paused for i in self.snapshot(debtor_id).items}

    def alerts_of(self, debtor_id: str, kind: type | None = None) -> list:
        return [a for a in self.alerts[debtor_id] if kind is None or isinstance(a, kind)]


# --------------------------------------------------------------------------- the scenarios as data


@dataclass(frozen=True)
class Scenario:
    name: str
    events: tuple  # the inputs, in order
    expect: Callable[[Outcome], None] = field(repr=False)

    @property
    def debtor_ids(self) -> set[str]:
        """The debtors the scenario registers (a refused event may name others)."""
        return {e.debtor_id for e in self.events if isinstance(e, ev.DebtorRegistered)}

    @property
    def named_debtor_ids(self) -> set[str]:
        """Every debtor an event names, registered or not."""
        return {e.debtor_id for e in self.events if getattr(e, "debtor_id", None)}

    @property
    def transaction_ids(self) -> set[str]:
        return {e.transaction_id for e in self.events if isinstance(e, ev.PaymentReceived)}

    @property
    def event_ids(self) -> set[str]:
        return {e.event_id for e in self.events}

    @property
    def last_day(self) -> date:
        return self.events[-1].business_date

    def __str__(self) -> str:
        return self.name


class Feed:
    """Builds one scenario's events in order; every id carries the scenario's key, every
    payment reference its number."""

    def __init__(self, key: str, number: int):
        self.key = key
        self.number = number
        self.events: list = []
        self.today: Optional[int] = None  # the day of the last tick
        self._ids = count(1)

    def _id(self, what: str) -> str:
        return f"{self.key}-{what}-{next(self._ids)}"

    def _add(self, event):
        self.events.append(event)
        return event

    def _on(self) -> date:
        assert self.today is not None, "tick first: every event happens on the day of the last tick"
        return day(self.today)

    def ref(self, n: int) -> str:
        """A betalingskenmerk no other scenario uses."""
        return betalingskenmerk_for(f"{self.number:03d}{n:05d}")

    # ---- time

    def until(self, n: int) -> None:
        """A DayStarted for each day after the last tick up to day n (the first: day n alone)."""
        start = n if self.today is None else self.today + 1
        for d in range(start, n + 1):
            self._add(ev.DayStarted(f"day:{day(d).isoformat()}", day(d)))
        self.today = n

    # ---- inputs

    def register(self, debtor_id: str, kind: str = "B2B", **fields) -> ev.DebtorRegistered:
        fields.setdefault("name", "Buyer BV" if kind == "B2B" else "J. Jansen")
        fields.setdefault("email", f"{debtor_id.lower()}@buyer.example")
        fields.setdefault("phone", "+31201234567")
        return self._add(ev.DebtorRegistered(self._id("reg"), debtor_id, kind=kind, **fields))

    def invoice(self, debtor_id: str, invoice_id: str, due: date, amount_minor: int,
                reference: Optional[str] = None, currency: str = "EUR") -> ev.InvoiceIssued:
        self._on()
        return self._add(ev.InvoiceIssued(self._id("inv"), debtor_id, invoice_id, due - timedelta(days=14), due,
                                          amount_minor,
                                          currency=currency, payment_reference=reference))

    def pay(self, reference: Optional[str], amount_minor: int, currency: str = "EUR",
            payer_iban: str = SHARED_PAYER) -> ev.PaymentReceived:
        transaction = self._id("tx")
        return self._add(ev.PaymentReceived(f"bank-{transaction}", transaction, self._on(), amount_minor,
                                            currency=currency, payer_iban=payer_iban,
                                            structured_reference=reference))

    def payer(self) -> str:
        """An account only this scenario pays from: the pipeline learns accounts across scenarios
        (``SHARED_PAYER`` is known for every debtor paid from it, and so points to none)."""
        return str(IBAN.generate("NL", bank_code="RABO", account_code=f"{self.number:010d}"))

    def take_back(self, reference: Optional[str], amount_minor: int, payer_iban: str) -> ev.PaymentReceived:
        """The bank reverses an earlier credit (camt RvslInd): a debit naming the payer."""
        transaction = self._id("tx")
        return self._add(ev.PaymentReceived(f"bank-{transaction}", transaction, self._on(), amount_minor,
                                            payer_iban=payer_iban, structured_reference=reference,
                                            direction="debit", reversal=True))

    def credit_note(self, debtor_id: str, invoice_id: str, amount_minor: int) -> ev.CreditNoteIssued:
        return self._add(ev.CreditNoteIssued(self._id("cn"), debtor_id, self._id("CN"), invoice_id, self._on(),
                                             amount_minor))

    def dispute(self, debtor_id: str, dispute_id: str, invoice_id: str,
                amount_minor: Optional[int] = None) -> ev.DisputeOpened:
        return self._add(ev.DisputeOpened(self._id("open"), debtor_id, dispute_id, invoice_id, self._on(),
                                          amount_minor=amount_minor))

    def resolve(self, debtor_id: str, dispute_id: str) -> ev.DisputeResolved:
        return self._add(ev.DisputeResolved(self._id("resolve"), debtor_id, dispute_id, self._on()))

    def promise(self, debtor_id: str, promise_id: str, promised: date, amount_minor: int,
                invoice_ids: tuple[str, ...] = ()) -> ev.PromiseToPayMade:
        return self._add(ev.PromiseToPayMade(self._id("ptp"), debtor_id, promise_id, self._on(), promised,
                                             amount_minor, invoice_ids=invoice_ids))

    def limit(self, debtor_id: str, amount_minor: int, source: str = "own") -> ev.CreditLimitSet:
        return self._add(ev.CreditLimitSet(self._id("limit"), debtor_id, amount_minor, source=source))

    def scenario(self, name: str, expect: Callable[[Outcome], None]) -> Scenario:
        assert isinstance(self.events[-1], ev.DayStarted), f"{name}: a scenario ends with a tick"
        return Scenario(name, tuple(self.events), expect)


# --------------------------------------------------------------------------- 1. the workflow in time


def overdue_invoice_walks_the_workflow() -> Scenario:
    f = Feed("walk", 1)
    f.register("WALK-1", name="Buyer BV", email="ap@buyer.example", phone="+31201234567")
    f.until(0)
    f.invoice("WALK-1", "INV-1", due=day(14), amount_minor=10_000, reference=f.ref(1))
    f.until(44)
    reference = f.ref(1)

    def expect(out: Outcome) -> None:
        assert out.dunned("WALK-1") == {
            day(11): [("pre-due", 10_000)],
            day(15): [("first reminder", 10_000)],
            day(28): [("second reminder", 10_000)],
            day(35): [("call", 10_000)],
            day(44): [("final notice", 14_000)],  # with the 40.00 a business owes from then (b2b_costs: minimum)
        }
        # The reminder names the invoice and how to reach the debtor.
        assert out.action("WALK-1", "first reminder") == ev.DunningActionDue(
            action_id=action_id_for("WALK-1", "business", 2, ["INV-1"]),
            debtor_id="WALK-1", business_date=day(15), workflow="business", step=2, step_name="first reminder",
            channel="email", template="first_reminder", tone="neutral", language="nl", debtor_name="Buyer BV",
            debtor_kind="B2B", currency="EUR", total_minor=10_000,
            items=(ev.ActionItem("INV-1", day(14), 10_000, 1, reference, principal_minor=10_000),),
            email="ap@buyer.example", phone="+31201234567", collection_costs_minor=0,
        )
        final = out.action("WALK-1", "final notice")
        assert (final.term_days, final.collection_costs_minor) == (15, 4_000)  # the 40.00 minimum, booked
        assert [(i.principal_minor, i.costs_minor, i.open_minor) for i in final.items] == [(10_000, 4_000, 14_000)]
        snap = out.snapshot("WALK-1")
        assert (snap.business_date, snap.balance_minor, snap.overdue_minor, snap.workflow) == (
            day(44), 14_000, 14_000, "business")
        assert (snap.principal_open_minor, snap.costs_open_minor) == (10_000, 4_000)
        assert [(i.invoice_id, i.dunning_step) for i in snap.items] == [("INV-1", 5)]
        assert (out.refused, out.alerts["WALK-1"], out.matched, out.unmatched) == (set(), [], {}, {})

    return f.scenario("overdue invoice walks the workflow", expect)


def late_imported_invoice_keeps_the_letter_and_its_term() -> Scenario:
    f = Feed("late", 2)
    f.register("LATE-1", "B2C")
    f.until(50)
    f.invoice("LATE-1", "INV-1", due=day(0), amount_minor=10_000)  # booked 50 days after its due date
    f.until(80)

    def expect(out: Outcome) -> None:
        # One step a day, not skipping the letter: first reminder when booked, SMS, then the
        # letter, posted on Thursday 24 April 2025 (day 52). Friday is the first delivery day;
        # Saturday is King's Day, Sunday and Monday carry no post: received Tuesday 29 April.
        # Its 15-day term runs to 14 May; the hand-over comes the day after (day 73).
        assert day(52) == date(2025, 4, 24) and day(73) == date(2025, 5, 15)
        # The costs the letter announced are booked the day after its term (day 73, before the
        # hand-over that day), and the hand-over carries them.
        assert out.dunned("LATE-1") == {day(50): [("first reminder", 10_000)], day(51): [("sms", 10_000)],
                                        day(52): [("14-day letter", 10_000)], day(73): [("collection", 14_000)]}
        letter = out.action("LATE-1", "14-day letter")
        assert (letter.channel, letter.term_days, letter.collection_costs_minor) == ("letter", 15, 4_000)
        assert [i.costs_minor for i in letter.items] == [0]  # announced, not booked
        handover = out.action("LATE-1", "collection")
        assert handover.collection_costs_minor == 4_000
        assert [(i.principal_minor, i.costs_minor) for i in handover.items] == [(10_000, 4_000)]
        snap = out.snapshot("LATE-1")
        assert (snap.business_date, snap.balance_minor, snap.overdue_minor) == (day(80), 14_000, 14_000)
        assert (snap.principal_open_minor, snap.costs_open_minor) == (10_000, 4_000)
        assert [(i.invoice_id, i.dunning_step) for i in snap.items] == [("INV-1", 5)]
        assert (out.refused, out.alerts["LATE-1"]) == (set(), [])

    return f.scenario("late imported invoice keeps the letter and its term", expect)


# --------------------------------------------------------------------------- 2. money in


def payment_by_reference_stops_the_next_step() -> Scenario:
    f = Feed("pay", 3)
    f.register("PAY-1")
    f.until(0)
    f.invoice("PAY-1", "INV-1", due=day(14), amount_minor=10_000, reference=f.ref(1))
    f.until(16)
    spaced = f.ref(1)[:4] + " " + f.ref(1)[4:7] + " " + f.ref(1)[7:]  # as a bank statement shows it
    paid = f.pay(spaced, 10_000)
    stranger = f.pay(f.ref(99), 2_500)  # a reference no invoice carries
    f.until(60)

    def expect(out: Outcome) -> None:
        assert out.dunned("PAY-1") == {day(11): [("pre-due", 10_000)], day(15): [("first reminder", 10_000)]}
        matched = out.matched[paid.transaction_id]
        assert (matched.debtor_id, matched.invoice_id, matched.amount_minor, matched.booking_date) == (
            "PAY-1", "INV-1", 10_000, day(16))
        assert list(out.matched) == [paid.transaction_id]
        assert out.unmatched[stranger.transaction_id].reason.startswith(f"no invoice carries reference {f.ref(99)}")
        assert list(out.unmatched) == [stranger.transaction_id]
        snap = out.snapshot("PAY-1")
        assert (snap.business_date, snap.balance_minor, snap.overdue_minor, snap.credit_minor, snap.items) == (
            day(60), 0, 0, 0, ())
        assert (out.refused, out.alerts["PAY-1"]) == (set(), [])

    return f.scenario("payment by structured reference stops the next step", expect)


def payment_before_its_invoice_waits_for_it() -> Scenario:
    f = Feed("early", 13)
    f.register("EARLY-1")
    f.until(0)
    paid = f.pay(f.ref(1), 8_000)  # paid up front: the invoice is booked two days later
    f.until(2)
    f.invoice("EARLY-1", "INV-1", due=day(16), amount_minor=8_000, reference=f.ref(1))
    f.until(40)

    def expect(out: Outcome) -> None:
        # Reported the next morning, matched the moment the invoice came, out of the queue again.
        assert out.unmatched[paid.transaction_id].reason.startswith(f"no invoice carries reference {f.ref(1)} (yet)")
        matched = out.matched[paid.transaction_id]
        assert (matched.debtor_id, matched.invoice_id, matched.amount_minor, matched.booking_date) == (
            "EARLY-1", "INV-1", 8_000, day(0))
        assert out.resolved[paid.transaction_id].invoice_id == "INV-1"
        assert out.actions["EARLY-1"] == []  # no reminder for a paid invoice
        snap = out.snapshot("EARLY-1")
        assert (snap.business_date, snap.balance_minor, snap.items) == (day(40), 0, ())

    return f.scenario("payment before its invoice waits for it", expect)


def partial_payment_leaves_the_rest_dunned() -> Scenario:
    f = Feed("part", 4)
    f.register("PART-1")
    f.until(0)
    f.invoice("PART-1", "INV-1", due=day(14), amount_minor=10_000, reference=f.ref(1))
    f.until(20)
    paid = f.pay(f.ref(1), 4_000)
    f.until(28)

    def expect(out: Outcome) -> None:
        assert out.dunned("PART-1") == {day(11): [("pre-due", 10_000)], day(15): [("first reminder", 10_000)],
                                        day(28): [("second reminder", 6_000)]}
        assert {t: (m.invoice_id, m.amount_minor) for t, m in out.matched.items()} == {
            paid.transaction_id: ("INV-1", 4_000)}
        second = out.action("PART-1", "second reminder")
        assert second.total_minor == 6_000 and [i.open_minor for i in second.items] == [6_000]
        snap = out.snapshot("PART-1")
        assert (snap.balance_minor, snap.overdue_minor) == (6_000, 6_000)
        assert [(i.paid_minor, i.open_minor) for i in snap.items] == [(4_000, 6_000)]
        assert (out.refused, out.unmatched, out.alerts["PART-1"]) == (set(), {}, [])

    return f.scenario("partial payment leaves the rest dunned", expect)


def reversal_reopens_what_its_payment_paid() -> Scenario:
    f = Feed("rev", 14)
    f.register("REV-1")
    f.until(0)
    f.invoice("REV-1", "INV-1", due=day(14), amount_minor=10_000, reference=f.ref(1))
    f.until(12)
    payer = f.payer()
    paid = f.pay(f.ref(1), 10_000, payer_iban=payer)  # paid before its due date
    f.until(20)
    back = f.take_back(f.ref(1), 10_000, payer)  # the payer's bank recalls it
    stray = f.take_back(f.ref(2), 3_000, payer)  # takes back nothing this debtor was paid
    f.until(30)

    def expect(out: Outcome) -> None:
        # Paid: no first reminder on day 15. Taken back: open again at the next tick, when the
        # step it missed goes out once; the next keeps its place in the ladder.
        assert out.dunned("REV-1") == {day(11): [("pre-due", 10_000)], day(21): [("first reminder", 10_000)],
                                       day(28): [("second reminder", 10_000)]}
        assert out.matched[paid.transaction_id].invoice_id == "INV-1"
        (reversed_,) = out.alerts["REV-1"]
        assert isinstance(reversed_, ev.PaymentReversed)
        assert (reversed_.transaction_id, reversed_.reversed_transaction_id, reversed_.amount_minor,
                reversed_.invoice_ids, reversed_.booking_date) == (
            back.transaction_id, paid.transaction_id, 10_000, ("INV-1",), day(20))
        assert list(out.unmatched) == [stray.transaction_id]
        queued = out.unmatched[stray.transaction_id]
        # The payer's account leads to the debtor, who was paid nothing of that amount.
        assert (queued.direction, queued.reversal, queued.debtor_id) == ("debit", True, "REV-1")
        assert queued.reason.startswith("the bank takes back an earlier credit with this one; no payment of 30.00 EUR")
        snap = out.snapshot("REV-1")
        assert (snap.balance_minor, snap.overdue_minor, snap.credit_minor) == (10_000, 10_000, 0)
        assert [(i.invoice_id, i.paid_minor, i.open_minor, i.dunning_step) for i in snap.items] == [
            ("INV-1", 0, 10_000, 3)]
        assert out.refused == set()

    return f.scenario("a reversal reopens what its payment paid", expect)


# --------------------------------------------------------------------------- 3. disputes


def dispute_pauses_only_the_disputed_invoice_and_resolving_resumes() -> Scenario:
    f = Feed("dsp", 5)
    f.register("DSP-1")  # two invoices, one disputed in full and left open
    f.register("DSP-2")  # one invoice, disputed, resolved on day 40
    f.register("DSP-3")  # one invoice partly disputed
    f.until(0)
    f.invoice("DSP-1", "INV-A", due=day(14), amount_minor=6_000)
    f.invoice("DSP-1", "INV-B", due=day(14), amount_minor=4_000)
    f.invoice("DSP-2", "INV-1", due=day(14), amount_minor=10_000)
    f.invoice("DSP-3", "INV-A", due=day(14), amount_minor=6_000)
    f.invoice("DSP-3", "INV-B", due=day(14), amount_minor=4_000)
    f.until(5)
    f.dispute("DSP-1", "DSP-1-1", "INV-A")
    f.dispute("DSP-2", "DSP-2-1", "INV-1")
    f.dispute("DSP-3", "DSP-3-1", "INV-A", amount_minor=2_500)
    f.until(40)
    f.resolve("DSP-2", "DSP-2-1")
    f.until(42)

    def expect(out: Outcome) -> None:
        assert out.invoices_by_date("DSP-1") == {day(11): [["INV-B"]], day(15): [["INV-B"]],
                                                 day(28): [["INV-B"]], day(35): [["INV-B"]]}
        assert {a.total_minor for a in out.actions["DSP-1"]} == {4_000}
        assert out.paused("DSP-1") == {"INV-A": "dispute", "INV-B": None}
        assert out.snapshot("DSP-1").balance_minor == 10_000  # a dispute does not change what is owed
        # Nothing while disputed; resolved on day 40: the first reminder at once, then a step a day.
        assert out.dunned("DSP-2") == {day(40): [("first reminder", 10_000)], day(41): [("second reminder", 10_000)],
                                       day(42): [("call", 10_000)]}
        assert out.snapshot("DSP-2").disputes == () and out.paused("DSP-2") == {"INV-1": None}
        assert out.snapshot("DSP-2").balance_minor == 10_000
        # The undisputed part is dunned.
        assert out.dunned("DSP-3") == {d: [(step, 7_500)] for d, step in (
            (day(11), "pre-due"), (day(15), "first reminder"), (day(28), "second reminder"), (day(35), "call"))}
        pre_due = out.action("DSP-3", "pre-due")
        assert {i.invoice_id: i.open_minor for i in pre_due.items} == {"INV-A": 3_500, "INV-B": 4_000}
        assert [i.disputed_minor for i in out.snapshot("DSP-3").items] == [2_500, 0]
        assert out.snapshot("DSP-3").balance_minor == 10_000
        assert out.refused == set() and all(out.alerts[d] == [] for d in ("DSP-1", "DSP-2", "DSP-3"))

    return f.scenario("dispute pauses only the disputed invoice, resolving resumes", expect)


# --------------------------------------------------------------------------- 4. promises to pay


def promise_kept() -> Scenario:
    f = Feed("kept", 6)
    f.register("KEPT-1")  # a promise for everything, paid in time
    f.register("KEPT-2")  # a promise for one of two invoices
    f.until(0)
    f.invoice("KEPT-1", "INV-1", due=day(14), amount_minor=10_000, reference=f.ref(1))
    f.invoice("KEPT-2", "INV-A", due=day(14), amount_minor=6_000)
    f.invoice("KEPT-2", "INV-B", due=day(14), amount_minor=4_000)
    f.until(1)
    f.promise("KEPT-2", "PTP-2", promised=day(70), amount_minor=6_000, invoice_ids=("INV-A",))
    f.until(15)
    f.promise("KEPT-1", "PTP-1", promised=day(30), amount_minor=10_000)
    f.until(29)
    f.pay(f.ref(1), 10_000)
    f.until(60)

    def expect(out: Outcome) -> None:
        assert out.dunned("KEPT-1") == {day(11): [("pre-due", 10_000)], day(15): [("first reminder", 10_000)]}
        (kept,) = out.alerts["KEPT-1"]
        assert isinstance(kept, ev.PromiseKept)
        assert (kept.promise_id, kept.paid_minor, kept.promised_date, kept.business_date) == (
            "PTP-1", 10_000, day(30), day(29))
        assert [p.status for p in out.snapshot("KEPT-1").promises] == ["kept"]
        assert (out.snapshot("KEPT-1").balance_minor, out.snapshot("KEPT-1").items) == (0, ())
        assert [(m.debtor_id, m.invoice_id, m.amount_minor) for m in out.matched.values()] == [
            ("KEPT-1", "INV-1", 10_000)]
        # The promised invoice waits; the other walks the workflow.
        assert out.invoices_by_date("KEPT-2") == {d: [["INV-B"]] for d in (day(11), day(15), day(28), day(35), day(44))}
        # the final notice books the 40.00 a business owes
        assert [a.total_minor for a in out.actions["KEPT-2"]] == [4_000, 4_000, 4_000, 4_000, 8_000]
        assert out.paused("KEPT-2") == {"INV-A": "promise", "INV-B": None}
        assert [p.status for p in out.snapshot("KEPT-2").promises] == ["running"]
        assert out.snapshot("KEPT-2").balance_minor == 14_000
        assert (out.alerts["KEPT-2"], out.refused, out.unmatched) == ([], set(), {})

    return f.scenario("promise kept", expect)


def promise_broken() -> Scenario:
    f = Feed("broken", 7)
    f.register("BROKEN-1")
    f.until(0)
    f.invoice("BROKEN-1", "INV-1", due=day(14), amount_minor=10_000, reference=f.ref(1))
    f.until(15)
    f.promise("BROKEN-1", "PTP-1", promised=day(30), amount_minor=10_000)
    f.until(20)
    f.pay(f.ref(1), 4_000)
    f.until(31)

    def expect(out: Outcome) -> None:
        # Paused from the promise to its date; the day after, broken, and dunning resumes.
        assert out.dunned("BROKEN-1") == {day(11): [("pre-due", 10_000)], day(15): [("first reminder", 10_000)],
                                          day(31): [("second reminder", 6_000)]}
        (broken,) = out.alerts["BROKEN-1"]
        assert isinstance(broken, ev.PromiseBroken)
        assert (broken.promise_id, broken.paid_minor, broken.amount_minor, broken.business_date) == (
            "PTP-1", 4_000, 10_000, day(31))
        assert [p.status for p in out.snapshot("BROKEN-1").promises] == ["broken"]
        assert (out.snapshot("BROKEN-1").balance_minor, out.snapshot("BROKEN-1").overdue_minor) == (6_000, 6_000)
        assert [(i.invoice_id, i.open_minor) for i in out.snapshot("BROKEN-1").items] == [("INV-1", 6_000)]
        assert [(m.invoice_id, m.amount_minor) for m in out.matched.values()] == [("INV-1", 4_000)]
        assert (out.refused, out.unmatched) == (set(), {})

    return f.scenario("promise broken", expect)


# --------------------------------------------------------------------------- 5. credit limit


def credit_limit_warning_breach_cleared() -> Scenario:
    f = Feed("limit", 8)
    f.register("LIMIT-1")
    f.until(0)
    f.limit("LIMIT-1", 10_000)
    f.invoice("LIMIT-1", "INV-A", due=day(60), amount_minor=8_000, reference=f.ref(1))  # 80 %: nothing
    f.invoice("LIMIT-1", "INV-B", due=day(60), amount_minor=1_000)  # 90 %: warning
    f.invoice("LIMIT-1", "INV-C", due=day(60), amount_minor=1_500)  # 105 %: breach
    f.until(3)
    f.pay(f.ref(1), 3_000)  # 75 %: cleared
    f.until(4)

    def expect(out: Outcome) -> None:
        warning, breach, cleared = out.alerts["LIMIT-1"]
        assert (type(warning), type(breach), type(cleared)) == (ev.LimitWarning, ev.LimitBreached, ev.LimitCleared)
        assert (warning.utilisation_bp, warning.exposure_minor, warning.credit_limit_minor) == (9_000, 9_000, 10_000)
        assert (breach.utilisation_bp, breach.exposure_minor) == (10_500, 10_500)
        assert (cleared.utilisation_bp, cleared.exposure_minor, cleared.business_date) == (7_500, 7_500, day(3))
        assert len({warning.event_id, breach.event_id, cleared.event_id}) == 3
        snap = out.snapshot("LIMIT-1")
        assert (snap.limit_state, snap.credit_limit_minor, snap.utilisation_bp) == ("ok", 10_000, 7_500)
        assert snap.balance_minor == 7_500
        assert {i.invoice_id: i.open_minor for i in snap.items} == {"INV-A": 5_000, "INV-B": 1_000, "INV-C": 1_500}
        assert [(m.invoice_id, m.amount_minor) for m in out.matched.values()] == [("INV-A", 3_000)]
        assert (out.refused, out.unmatched) == (set(), {})
        assert out.actions["LIMIT-1"] == []  # nothing is due before day 57

    return f.scenario("credit limit warning, breach, cleared", expect)


# --------------------------------------------------------------------------- 6. who is dunned and for what


def consumer_letter_with_statutory_costs() -> Scenario:
    f = Feed("cons", 9)
    f.register("CONS-1", "B2C", language="en")  # 3,000.00 open
    f.register("CONS-2", "B2C", language="en")  # 2,000.00, of which 500.00 paid before the letter
    f.until(0)
    f.invoice("CONS-1", "INV-A", due=day(14), amount_minor=200_000)
    f.invoice("CONS-1", "INV-B", due=day(14), amount_minor=100_000)
    f.invoice("CONS-2", "INV-A", due=day(14), amount_minor=200_000, reference=f.ref(1))
    f.until(25)
    f.pay(f.ref(1), 50_000)
    f.until(31)

    def expect(out: Outcome) -> None:
        steps = {day(11): "pre-due", day(17): "first reminder", day(24): "sms", day(31): "14-day letter"}
        assert out.dunned("CONS-1") == {d: [(step, 300_000)] for d, step in steps.items()}
        assert out.dunned("CONS-2") == {d: [(step, 200_000 if d < day(25) else 150_000)] for d, step in steps.items()}
        pre_due = out.action("CONS-1", "pre-due")
        assert (pre_due.step, pre_due.tone, pre_due.language, pre_due.items[0].days_overdue) == (1, "friendly", "en", -3)
        letter = out.action("CONS-1", "14-day letter")
        assert (letter.channel, letter.total_minor, letter.term_days) == ("letter", 300_000, 15)
        assert letter.collection_costs_minor == 42_500  # WIK on 3,000.00, not 300.00 + 150.00
        assert [a.collection_costs_minor for a in out.actions["CONS-1"][:-1]] == [0, 0, 0]
        letter = out.action("CONS-2", "14-day letter")
        assert (letter.total_minor, letter.collection_costs_minor) == (150_000, 22_500)
        assert [(m.debtor_id, m.amount_minor) for m in out.matched.values()] == [("CONS-2", 50_000)]
        assert {i.invoice_id: (i.open_minor, i.dunning_step) for i in out.snapshot("CONS-1").items} == {
            "INV-A": (200_000, 4), "INV-B": (100_000, 4)}
        assert [(i.open_minor, i.paid_minor) for i in out.snapshot("CONS-2").items] == [(150_000, 50_000)]
        assert (out.refused, out.unmatched, out.alerts["CONS-1"], out.alerts["CONS-2"]) == (set(), {}, [], [])

    return f.scenario("consumer 14-day letter with statutory collection costs", expect)


def consumer_costs_booked_once_the_letters_term_has_passed() -> Scenario:
    f = Feed("term", 15)
    f.register("TERM-1", "B2C")  # two invoices in one letter, not paid
    f.register("TERM-2", "B2C")  # pays part within the term, the rest after the costs are booked
    f.register("TERM-3", "B2C")  # pays in full within the term
    f.until(0)
    f.invoice("TERM-1", "INV-A", due=day(14), amount_minor=200_000)
    f.invoice("TERM-1", "INV-B", due=day(14), amount_minor=100_000)
    f.invoice("TERM-2", "INV-A", due=day(14), amount_minor=200_000, reference=f.ref(1))
    f.invoice("TERM-3", "INV-A", due=day(14), amount_minor=200_000, reference=f.ref(2))
    f.until(35)  # the letter goes out on day 31 (due + 17)
    f.pay(f.ref(1), 50_000)
    f.pay(f.ref(2), 200_000)
    f.until(60)
    f.pay(f.ref(1), 30_000)
    f.until(62)
    posted = day(31)
    term_ends = term_ends_on(posted, "letter", 15)

    def expect(out: Outcome) -> None:
        for debtor_id in ("TERM-1", "TERM-2", "TERM-3"):
            letter = out.action(debtor_id, "14-day letter")
            assert letter.business_date == posted and [i.costs_minor for i in letter.items] == [0] * len(letter.items)
        # The letter announces the costs on the sum of its invoices: 425.00 on 3,000.00.
        assert out.action("TERM-1", "14-day letter").collection_costs_minor == 42_500
        assert out.action("TERM-2", "14-day letter").collection_costs_minor == 30_000
        # Unpaid after the term: booked the day after it, spread over the letter's invoices, and the
        # hand-over (due on day 54, waiting for the term) carries them.
        handover = out.action("TERM-1", "collection")
        assert handover.business_date == max(day(54), term_ends + timedelta(days=1))
        assert [(i.invoice_id, i.principal_minor, i.costs_minor) for i in handover.items] == [
            ("INV-A", 200_000, 28_333), ("INV-B", 100_000, 14_167)]
        assert (handover.total_minor, handover.collection_costs_minor) == (342_500, 42_500)
        snap = out.snapshot("TERM-1")
        assert (snap.principal_open_minor, snap.costs_open_minor, snap.balance_minor) == (300_000, 42_500, 342_500)
        # 500.00 paid within the term: the costs are those on the 1,500.00 left, 225.00. The 300.00
        # paid after the hand-over goes to the costs first, then 75.00 to the principal (BW 6:44).
        handover = out.action("TERM-2", "collection")
        assert [(i.principal_minor, i.costs_minor) for i in handover.items] == [(150_000, 22_500)]
        [item] = out.snapshot("TERM-2").items
        assert (item.paid_minor, item.costs_minor, item.costs_open_minor, item.principal_open_minor,
                item.open_minor) == (57_500, 22_500, 0, 142_500, 142_500)
        # Paid in full within the term: no costs, no hand-over.
        assert [a.step_name for a in out.actions["TERM-3"]][-1] == "14-day letter"
        assert (out.snapshot("TERM-3").balance_minor, out.snapshot("TERM-3").items) == (0, ())
        assert (out.refused, out.unmatched) == (set(), {})

    return f.scenario("consumer costs booked once the letter's term has passed", expect)


def invoices_at_the_same_step_share_one_action() -> Scenario:
    f = Feed("same", 10)
    f.register("SAME-1")  # two invoices due on the same day
    f.register("SAME-2")  # two invoices due two weeks apart
    f.until(0)
    f.invoice("SAME-1", "INV-B", due=day(14), amount_minor=4_000)
    f.invoice("SAME-1", "INV-A", due=day(14), amount_minor=6_000)
    f.invoice("SAME-2", "INV-OLD", due=day(1), amount_minor=5_000)
    f.invoice("SAME-2", "INV-NEW", due=day(14), amount_minor=5_000)
    f.until(15)

    def expect(out: Outcome) -> None:
        pre_due, first = out.actions["SAME-1"]
        assert (pre_due.step_name, first.step_name) == ("pre-due", "first reminder")
        assert [i.invoice_id for i in first.items] == ["INV-A", "INV-B"]
        assert first.total_minor == 10_000
        assert first.action_id == action_id_for("SAME-1", "business", 2, ["INV-B", "INV-A"])
        assert pre_due.action_id == action_id_for("SAME-1", "business", 1, ["INV-A", "INV-B"])
        # At different steps on the same day: one action each.
        assert out.fired("SAME-2")[day(15)] == ["first reminder", "second reminder"]
        assert out.invoices_by_date("SAME-2")[day(15)] == [["INV-NEW"], ["INV-OLD"]]
        assert [a.total_minor for a in out.actions["SAME-2"] if a.business_date == day(15)] == [5_000, 5_000]
        assert {i.invoice_id: i.dunning_step for i in out.snapshot("SAME-1").items} == {"INV-A": 2, "INV-B": 2}
        assert (out.snapshot("SAME-1").balance_minor, out.snapshot("SAME-2").balance_minor) == (10_000, 10_000)
        assert out.refused == set()

    return f.scenario("invoices at the same step share one action", expect)


def refused_events_are_set_aside_and_the_rest_goes_on() -> Scenario:
    f = Feed("refuse", 11)
    f.register("REFUSE-1")
    f.until(0)
    # Refused invoices carry no payment reference: the pipeline waits for the references issued.
    orphan = f.invoice("REFUSE-NOBODY", "INV-9", due=day(14), amount_minor=10_000)  # never registered
    dollars = f.invoice("REFUSE-1", "INV-USD", due=day(14), amount_minor=10_000, currency="USD")
    f.invoice("REFUSE-1", "INV-1", due=day(14), amount_minor=10_000, reference=f.ref(1))
    stray = f.credit_note("REFUSE-1", "INV-404", 1_000)  # no such invoice
    f.until(15)

    def expect(out: Outcome) -> None:
        assert out.refused == {orphan.event_id, dollars.event_id, stray.event_id}
        assert out.dunned("REFUSE-1") == {day(11): [("pre-due", 10_000)], day(15): [("first reminder", 10_000)]}
        assert out.actions["REFUSE-NOBODY"] == []
        snap = out.snapshot("REFUSE-1")
        assert [i.invoice_id for i in snap.items] == ["INV-1"]
        assert (snap.balance_minor, snap.credit_minor) == (10_000, 0)
        assert set(out.snapshots) == {"REFUSE-1"}  # the unknown debtor was not created

    return f.scenario("refused events are set aside and the rest goes on", expect)


def intercompany_is_never_dunned() -> Scenario:
    f = Feed("ic", 12)
    f.register("IC-1", intercompany=True)
    f.until(0)
    f.invoice("IC-1", "INV-1", due=day(14), amount_minor=1_000_000)
    f.until(80)  # past every step of every workflow, the hand-over at +60 included

    def expect(out: Outcome) -> None:
        assert out.actions["IC-1"] == []
        snap = out.snapshot("IC-1")
        assert (snap.workflow, snap.overdue_minor, snap.business_date) == (None, 1_000_000, day(80))
        assert [i.dunning_step for i in snap.items] == [0]
        assert (out.refused, out.alerts["IC-1"]) == (set(), [])

    return f.scenario("intercompany is never dunned", expect)


SCENARIOS: tuple[Scenario, ...] = tuple(build() for build in (
    overdue_invoice_walks_the_workflow,
    late_imported_invoice_keeps_the_letter_and_its_term,
    payment_by_reference_stops_the_next_step,
    payment_before_its_invoice_waits_for_it,
    partial_payment_leaves_the_rest_dunned,
    reversal_reopens_what_its_payment_paid,
    dispute_pauses_only_the_disputed_invoice_and_resolving_resumes,
    promise_kept,
    promise_broken,
    credit_limit_warning_breach_cleared,
    consumer_letter_with_statutory_costs,
    consumer_costs_booked_once_the_letters_term_has_passed,
    invoices_at_the_same_step_share_one_action,
    refused_events_are_set_aside_and_the_rest_goes_on,
    intercompany_is_never_dunned,
))


def _check_disjoint(scenarios: tuple[Scenario, ...]) -> None:
    """Scenarios share one pipeline: no two may share a debtor, an event, a transaction or a reference."""
    seen: dict[str, str] = {}
    for s in scenarios:
        keys = (s.named_debtor_ids
                | (s.event_ids - {e.event_id for e in s.events if isinstance(e, ev.DayStarted)})
                | s.transaction_ids
                | {e.payment_reference for e in s.events if getattr(e, "payment_reference", None)})
        for k in keys:
            assert seen.setdefault(k, s.name) == s.name, f"{k!r} in both {seen[k]!r} and {s.name!r}"


_check_disjoint(SCENARIOS)
