"""The demo's sample ledger tells the story the demo promises, through the real core."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.sample_ledger import sample_days, sample_events
from streams.core import events as ev
from streams.core.simulate import Rejected, simulate
from tests.scenario import sample_policy


@pytest.fixture(scope="module")
def outputs():
    return list(simulate(sample_events(), sample_policy(), snapshots=True))


def test_about_fifty_debtors_in_three_segments_and_one_intercompany():
    registrations = [e for e in sample_events() if isinstance(e, ev.DebtorRegistered)]
    assert 45 <= len(registrations) <= 55
    policy = sample_policy()
    workflows = {policy.workflow_for({"kind": r.kind, "segment": r.segment}).name
                 for r in registrations if not r.intercompany}
    assert set(workflows) == {"consumer", "key-account", "business"}
    assert sum(r.intercompany for r in registrations) == 1


def test_the_story_happens(outputs):
    assert not [o for o in outputs if isinstance(o, Rejected)]
    kinds = Counter(type(o).__name__ for o in outputs)
    assert kinds["PaymentUnmatched"] == 2  # the reference no invoice carries; a payment from an unknown account
    methods = Counter(o.method for o in outputs if isinstance(o, ev.PaymentMatched))
    assert methods["structured_reference"] and methods["invoice_number"] and methods["payer_iban_amount"]
    assert kinds["PromiseKept"] == 1 and kinds["PromiseBroken"] == 1
    assert kinds["LimitBreached"] == 1
    actions = [o for o in outputs if isinstance(o, ev.DunningActionDue)]
    assert {a.channel for a in actions} == {"email", "sms", "letter", "call", "collection"}
    disputed = [s for s in outputs if isinstance(s, ev.DebtorSnapshot) and s.debtor_id == "D002"]
    assert disputed and disputed[-1].disputes == ()  # opened and resolved within the 90 days
    intercompany = [a for a in actions if a.debtor_id == "D050"]
    assert intercompany == []


@pytest.mark.parametrize("days", [1, 10, 45, 120])
def test_a_shorter_or_longer_run_is_the_same_story_cut_or_extended(days):
    full = sample_days()
    timeline = sample_days(days=days)
    assert len(timeline) == days
    shared = min(days, len(full))
    assert [d.events() for d in timeline[:shared]] == [d.events() for d in full[:shared]]
