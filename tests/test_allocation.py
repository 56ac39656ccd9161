"""Allocation of money received (BW 6:43/6:44): ``streams.core.allocation`` alone, and
through the ledger: an overpayment or a payment covering several invoices pays the others,
credit on account pays the next invoice, and nobody is reminded of what their credit covers."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from streams.core import events as ev
from streams.core.allocation import allocate
from streams.core.state import Item
from tests.scenario import Scenario, day

START = date(2025, 3, 3)


def item(invoice_id: str, due: int, amount: int, paid: int = 0) -> Item:
    return Item(invoice_id, f"e-{invoice_id}", START, START + timedelta(days=due), amount, paid, 0, None)


def test_the_named_invoice_first_then_the_oldest_due_then_credit():
    items = [item("A", 10, 1_000), item("B", 5, 2_000), item("C", 20, 3_000)]
    assert allocate(4_500, items, designated="C") == ({"C": 3_000, "B": 1_500}, 0)
    assert allocate(7_000, items, designated="A") == ({"A": 1_000, "B": 2_000, "C": 3_000}, 1_000)
    assert allocate(500, items) == ({"B": 500}, 0)


def test_disputed_amounts_are_paid_last():
    items = [item("A", 5, 1_000), item("B", 10, 2_000)]
    assert allocate(1_500, items, disputed={"A": 800}) == ({"A": 200, "B": 1_300}, 0)
    assert allocate(3_500, items, disputed={"A": 800}) == ({"A": 1_000, "B": 2_000}, 500)


def test_nothing_open_leaves_everything_as_credit():
    assert allocate(900, [item("A", 5, 1_000, paid=1_000)]) == ({}, 900)


ITEMS = st.lists(st.tuples(st.integers(0, 60), st.integers(1, 10_000), st.integers(0, 10_000)), max_size=8)


@given(ITEMS, st.integers(0, 60_000), st.data())
def test_allocation_never_takes_more_than_is_paid_or_is_open(drawn, amount, data):
    items = [item(f"I{n}", due, amount_minor, min(paid, amount_minor)) for n, (due, amount_minor, paid) in enumerate(drawn)]
    disputed = {i.invoice_id: data.draw(st.integers(0, i.open_minor)) for i in items}
    designated = data.draw(st.sampled_from([None, *[i.invoice_id for i in items]]))
    portions, left = allocate(amount, items, disputed, designated)
    by_id = {i.invoice_id: i for i in items}
    assert all(0 < portion <= by_id[invoice_id].open_minor for invoice_id, portion in portions.items())
    assert sum(portions.values()) + left == amount and left >= 0
    if left:  # credit only once everything open is paid
        assert sum(portions.values()) == sum(i.open_minor for i in items)
    if designated is not None:
        assert portions.get(designated, 0) == min(amount, by_id[designated].open_minor)


# --------------------------------------------------------------------------- through the ledger


def two_invoices() -> Scenario:
    s = Scenario("ALLOC-1")
    s.feed(ev.DayStarted("day:0", day(0)))
    s.feed(ev.DebtorRegistered("reg", "ALLOC-1", "Alloc BV", "B2B", segment="smb", email="ap@alloc.example"))
    s.feed(ev.InvoiceIssued("inv-a", "ALLOC-1", "A", day(0), day(14), 10_000))
    s.feed(ev.InvoiceIssued("inv-b", "ALLOC-1", "B", day(0), day(21), 5_000))
    return s


def paid(s: Scenario, event_id: str, invoice_id: str, amount: int, on: int) -> None:
    s.feed(ev.PaymentMatched(event_id, "ALLOC-1", invoice_id, f"tx-{event_id}", day(on), amount))


def test_one_transfer_for_two_invoices_quoting_one_pays_both_and_no_reminder_follows():
    s = two_invoices()
    paid(s, "p1", "A", 15_000, 2)
    assert {i.invoice_id: i.open_minor for i in s.state.items.values()} == {"A": 0, "B": 0}
    assert s.state.credit_minor == 0
    for n in range(1, 60):
        s.feed(ev.DayStarted(f"day:{n}", day(n)))
    assert [o for o in s.outputs if isinstance(o, ev.DunningActionDue)] == []


def test_an_overpayment_pays_the_next_invoice_and_the_rest_stays_credit():
    s = two_invoices()
    paid(s, "p1", "A", 12_000, 2)  # 2,000 too much: it goes to B
    assert (s.state.item("B").open_minor, s.state.credit_minor) == (3_000, 0)
    paid(s, "p2", "B", 4_000, 3)  # 1,000 too much: nothing else is open
    assert (s.state.open_minor, s.state.credit_minor, s.state.balance_minor) == (0, 1_000, -1_000)
    s.feed(ev.InvoiceIssued("inv-c", "ALLOC-1", "C", day(4), day(18), 2_500))
    assert (s.state.item("C").paid_minor, s.state.item("C").open_minor, s.state.credit_minor) == (1_000, 1_500, 0)


def test_a_credit_note_beyond_its_invoice_pays_the_others():
    s = two_invoices()
    s.feed(ev.CreditNoteIssued("cn-1", "ALLOC-1", "CN-1", "A", day(1), 12_000))
    assert (s.state.item("A").credited_minor, s.state.item("B").open_minor, s.state.credit_minor) == (10_000, 3_000, 0)


def test_the_same_payment_twice_is_allocated_once():
    s = two_invoices()
    paid(s, "p1", "A", 12_000, 2)
    paid(s, "p1", "A", 12_000, 2)
    assert (s.state.item("B").open_minor, s.state.credit_minor) == (3_000, 0)


def test_money_that_allocation_puts_on_a_promised_invoice_counts_towards_the_promise():
    # Invoices A (10,000) and B (5,000); a promise of 5,000 for B; one payment of 15,000 naming A.
    from datetime import date

    from streams.core import events as ev
    from streams.core.pipeline import Pipeline
    from tests.scenario import sample_policy

    day = date(2025, 3, 3)
    pipeline = Pipeline(sample_policy())
    outputs = [o for e in (
        ev.DayStarted("d0", day), ev.DebtorRegistered("r", "P1", "Belofte BV", "B2B", segment="smb"),
        ev.InvoiceIssued("ia", "P1", "INV-A", day, day, 10_000), ev.InvoiceIssued("ib", "P1", "INV-B", day, day, 5_000),
        ev.PromiseToPayMade("pm", "P1", "PTP-1", day, date(2025, 3, 20), 5_000, invoice_ids=("INV-B",)),
        ev.PaymentMatched("pay-1", "P1", "INV-A", "tx-1", day, 15_000),
    ) for o in pipeline.process(e)]
    assert [type(o).__name__ for o in outputs if type(o).__name__.startswith("Promise")] == ["PromiseKept"]
