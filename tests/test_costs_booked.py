"""Collection costs booked on the account: the table as data, the rules per kind of debtor, and
money paid on an invoice going to its costs first.

The scenario that runs through the core, ``simulate`` and the real pipeline is in
tests/scenarios.py (consumer costs booked once the letter's term has passed); here: the edges.
Day 0 is a Monday (``tests.scenario.day``); the sample policy's workflows are described in
tests/test_ledger.py.
"""

import re
from dataclasses import replace
from datetime import timedelta
from fractions import Fraction

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import events as ev
from streams.core.collection_costs import STATUTORY, CostsTable, spread
from streams.core.policy import PolicyError, check_policy, policy_from_yaml
from streams.core.state import Item
from streams.core.terms import term_ends_on
from tests.scenario import SAMPLE_POLICY, Scenario, actions, day, sample_policy
from tests.test_policy import SINK_CHANNELS, TEMPLATES


def policy_with(**top) -> dict:
    data = yaml.safe_load(SAMPLE_POLICY.read_text())
    data.update(top)
    return data


def business_workflow(b2b_costs):
    policy = sample_policy()
    workflows = dict(policy.workflows)
    workflows["business"] = replace(workflows["business"], b2b_costs=b2b_costs)
    return replace(policy, workflows=workflows, _by_attributes={})


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize("principal, costs", [
    (250_000, 37_500), (250_001, 37_500),  # the first bracket's end; a cent more adds 0.1 cent
    (500_000, 62_500), (1_000_000, 87_500), (20_000_000, 277_500),
    (26_666, 4_000), (26_667, 4_000), (26_670, 4_001),  # up to 266.67 the minimum holds
    (100_000_000, 677_500), (100_000_001, 677_500),  # the maximum, reached at 1,000,000.00
])
def test_bracket_boundaries_minimum_and_maximum(principal, costs):
    assert STATUTORY.costs(principal) == costs


def test_vat_on_the_costs_only_when_the_table_says_so():
    with_vat = replace(STATUTORY, vat_rate=Fraction(21, 100))
    assert (STATUTORY.costs(100_000), with_vat.costs(100_000)) == (15_000, 18_150)
    assert with_vat.b2b("minimum", 10_000) == 4_840


def test_the_policy_file_gives_its_own_table():
    policy = policy_from_yaml(yaml.safe_dump(policy_with(collection_costs={
        "brackets": [{"up_to_minor": 100_000, "percent": 20}, {"percent": 0.5}],
        "minimum_minor": 2_500, "maximum_minor": 50_000, "vat_percent": 21})))
    table = policy.costs_table
    assert table.brackets == ((100_000, Fraction(1, 5)), (None, Fraction(1, 200)))
    assert table.costs(200_000) == 24_805  # 200.00 + 5.00 = 205.00, plus 21 % VAT
    assert table.costs(5_000) == 3_025  # the minimum, plus VAT
    assert sample_policy().costs_table == STATUTORY  # left out: the statutory table


@pytest.mark.parametrize("costs, place", [
    ({"brackets": [{"up_to_minor": 100_000, "percent": 20}]}, "brackets[0].up_to_minor: the last bracket"),
    ({"brackets": [{"up_to_minor": 100_000, "percent": 20}, {"up_to_minor": 50_000, "percent": 1},
                   {"percent": 1}]}, "brackets[1].up_to_minor: expected a whole amount above 100000"),
    ({"brackets": [{"percent": 150}]}, "brackets[0].percent: expected a percentage from 0 to 100"),
    ({"brackets": [{"percent": "15%"}]}, "brackets[0].percent"),
    ({"minimum_minor": 700_000}, "minimum_minor: 700000 is above maximum_minor 677500"),
    ({"vat": 21}, "collection_costs.vat: unknown key"),
])
def test_a_wrong_table_names_its_place(costs, place):
    with pytest.raises(PolicyError, match=re.escape(place)):
        policy_from_yaml(yaml.safe_dump(policy_with(collection_costs=costs)))


def test_a_workflow_names_what_a_business_pays():
    data = policy_with()
    data["workflows"]["business"]["b2b_costs"] = "flat"
    with pytest.raises(PolicyError, match="b2b_costs: 'flat' is not one of minimum, statutory, none"):
        policy_from_yaml(yaml.safe_dump(data))
    data["workflows"]["business"]["b2b_costs"] = 7_500
    assert policy_from_yaml(yaml.safe_dump(data)).workflows["business"].b2b_costs == 7_500


def test_costs_before_the_due_date_are_refused():
    data = policy_with()
    data["workflows"]["business"]["steps"][0]["collection_costs"] = True
    data["workflows"]["business"]["steps"][0]["term_days"] = 14
    with pytest.raises(PolicyError, match=r"steps\[0\].offset_days: collection costs are due from the day after"):
        policy_from_yaml(yaml.safe_dump(data))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**9), st.lists(st.integers(1, 10**9), min_size=1, max_size=12))
def test_spread_adds_up_exactly_and_follows_the_principals(total, principals):
    pairs = [(f"INV-{i}", p) for i, p in enumerate(principals)]
    parts = spread(total, pairs)
    assert sum(parts.values()) == total
    weight = sum(principals)
    for invoice_id, principal in pairs:
        assert abs(parts[invoice_id] - total * principal / weight) < 1


# --------------------------------------------------------------------------- costs first (BW 6:44)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10**7), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 2 * 10**7))
def test_money_goes_to_the_costs_first_and_a_take_back_undoes_the_principal_first(amount, costs, costs_paid, pay):
    costs_paid = min(costs_paid, costs)
    item = Item("INV-1", "e", day(0), day(0), amount, 0, 0, None, costs_minor=costs, costs_paid_minor=costs_paid)
    pay = min(pay, item.open_minor)
    paid = item.with_paid(pay)
    to_costs = min(pay, costs - costs_paid)
    assert (paid.costs_paid_minor, paid.paid_minor) == (costs_paid + to_costs, pay - to_costs)
    assert paid.open_minor == item.open_minor - pay
    back = paid.with_paid(-pay)
    assert back == item


# --------------------------------------------------------------------------- a business


@pytest.mark.parametrize("rule, costs", [("minimum", 4_000), ("statutory", 150_000 * 15 // 100), (7_500, 7_500),
                                         ("none", 0)])
def test_a_business_owes_the_costs_its_workflow_names_from_the_step_that_claims_them(rule, costs):
    s = Scenario(policy=business_workflow(rule))
    s.register("B2B")
    s.tick(day(0))
    s.invoice("INV-1", due=day(14), amount_minor=150_000)
    s.run_until(day(43))
    assert s.state.item("INV-1").costs_minor == 0  # nothing before the step that claims them
    (notice,) = actions(s.run_until(day(44))[day(44)])
    assert notice.step_name == "final notice"
    assert (notice.total_minor, notice.collection_costs_minor) == (150_000 + costs, costs)
    assert [(i.principal_minor, i.costs_minor) for i in notice.items] == [(150_000, costs)]
    assert (s.state.item("INV-1").costs_minor, s.state.balance_minor) == (costs, 150_000 + costs)


def past_the_final_notice() -> Scenario:
    """A business invoice of 1,500.00 due on day 14, its final notice (day 44) with 40.00 costs."""
    s = Scenario()
    s.register("B2B")
    s.tick(day(0))
    s.invoice("INV-1", due=day(14), amount_minor=150_000)
    s.run_until(day(44))
    return s


def test_a_payment_of_the_principal_alone_leaves_the_costs_open_and_dunned():
    s = past_the_final_notice()
    s.pay("INV-1", 150_000, day(45))
    item = s.state.item("INV-1")
    assert (item.costs_paid_minor, item.paid_minor, item.open_minor) == (4_000, 146_000, 4_000)
    (handover,) = actions(s.run_until(day(74))[day(74)])
    assert [(i.principal_minor, i.costs_minor) for i in handover.items] == [(4_000, 0)]


def test_a_credit_note_credits_the_principal_not_the_costs():
    s = past_the_final_notice()
    s.feed(ev.CreditNoteIssued("cn-1", "D1", "CN-1", "INV-1", day(45), 200_000))
    item = s.state.item("INV-1")
    assert (item.credited_minor, item.costs_open_minor) == (150_000, 0)  # the rest of the credit paid the costs
    assert s.state.credit_minor == 200_000 - 150_000 - 4_000


# --------------------------------------------------------------------------- a consumer


def consumer(policy=None) -> Scenario:
    s = Scenario(policy=policy)
    s.register("B2C")
    s.tick(day(0))
    return s


def test_a_consumer_owes_nothing_before_the_letters_term_has_run_out():
    s = consumer()
    s.invoice("INV-1", due=day(14), amount_minor=100_000)
    fired = s.run_until(day(31))
    (letter,) = actions(fired[day(31)])
    term = term_ends_on(day(31), "letter", letter.term_days)
    assert letter.collection_costs_minor == 15_000
    s.run_until(term)
    assert (s.state.item("INV-1").costs_minor, s.state.balance_minor) == (0, 100_000)
    s.run_until(term + timedelta(days=1))
    assert (s.state.item("INV-1").costs_minor, s.state.balance_minor) == (15_000, 115_000)


def test_the_last_step_letter_still_books_its_costs():
    # A workflow that ends with the letter: nothing moves after it but its costs.
    data = policy_with()
    data["workflows"]["consumer"]["steps"] = data["workflows"]["consumer"]["steps"][:4]
    s = consumer(policy_from_yaml(yaml.safe_dump(data)))
    s.invoice("INV-1", due=day(14), amount_minor=100_000)
    s.run_until(day(31))
    term = term_ends_on(day(31), "letter", 15)
    s.run_until(term + timedelta(days=3))
    assert s.state.item("INV-1").costs_minor == 15_000


def test_a_consumer_is_never_handed_over_without_the_letter():
    data = policy_with()
    steps = data["workflows"]["consumer"]["steps"]
    data["workflows"]["consumer"]["steps"] = [step for step in steps if not step.get("collection_costs")]
    text = yaml.safe_dump(data)
    warnings = check_policy(text, "policy.yaml", channels=SINK_CHANNELS, templates=TEMPLATES).warnings
    assert any("hands over to collection with no step claiming the collection costs" in w for w in warnings)
    s = consumer(policy_from_yaml(text))
    s.invoice("INV-1", due=day(14), amount_minor=100_000)
    fired = s.run_until(day(120))
    assert "collection" not in [a.step_name for acts in fired.values() for a in actions(acts)]
    assert s.state.item("INV-1").costs_minor == 0


def test_a_promise_holds_the_costs_until_it_breaks():
    s = consumer()
    s.invoice("INV-1", due=day(14), amount_minor=100_000)
    s.run_until(day(32))
    s.feed(ev.PromiseToPayMade("ptp-1", "D1", "PTP-1", day(32), day(70), 100_000))
    s.run_until(day(70))
    assert s.state.item("INV-1").costs_minor == 0
    s.run_until(day(71))  # broken: the term passed long ago, so the costs are booked now
    assert s.state.item("INV-1").costs_minor == 15_000
