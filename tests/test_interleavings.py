"""The stream equals ``dunning simulate`` whatever the order in which the ledger and the bank
feed are read: the same days published bank first, ledger first and mixed (each day's tick
going out as the clock's does, once the worker has processed the day before) give the
actions, matches, reports and final states of the in-memory pipeline on the canonical order.
The timeline holds payments that come before their invoices, on the same day and days before,
and payments without a reference that the matching cascade decides at the day tick.
"""

from __future__ import annotations

import pytest

from connectors.publisher import Publisher
from harness import SAMPLE_POLICY
from harness.drive import ORDERS, drive, wait_until_day_done
from harness.stack import Stack
from harness.watch import pipeline_watcher
from schemas.codec import Codec
from streams.core import events as ev
from streams.core.pipeline import Pipeline
from streams.core.policy import policy_from_yaml
from tests.timelines import timeline_with_early_payments

pytestmark = [pytest.mark.broker]

PARTITIONS = 4
DAYS = 40


def outcome(outputs, snapshots) -> dict:
    return {
        "actions": sorted(a.action_id for a in outputs if type(a) is ev.DunningActionDue),
        "matched": sorted((m.transaction_id, m.invoice_id) for m in outputs if type(m) is ev.PaymentMatched),
        "unmatched": sorted(u.transaction_id for u in outputs if type(u) is ev.PaymentUnmatched),
        "resolved": sorted(r.transaction_id for r in outputs if type(r) is ev.PaymentResolved),
        "final states": {s.debtor_id: s for s in snapshots},
    }


@pytest.mark.parametrize("order", ORDERS)
def test_the_stream_equals_simulate_whatever_the_order_of_bank_and_ledger(order, tmp_path):
    timeline = timeline_with_early_payments(DAYS)
    pipeline = Pipeline(policy_from_yaml(SAMPLE_POLICY.read_text()))
    outputs = [o for day in timeline for e in day.events() for o in pipeline.process(e)]
    expected = outcome(outputs, pipeline.snapshots())
    assert ("tx-early-1", "F-EARLY-1") in expected["matched"] and expected["resolved"] == ["tx-early-1"]
    assert ("tx-early-3", "F-EARLY-3") in expected["matched"]  # by the invoice number in its text
    assert not any(a.debtor_id.startswith("EARLY") for a in outputs if type(a) is ev.DunningActionDue)
    assert len(expected["actions"]) > 50 and len(expected["matched"]) > 20

    codec = Codec()
    with Stack(tmp_path, PARTITIONS) as stack:
        stack.start("worker")
        watcher = pipeline_watcher(stack.bootstrap, codec).start()
        try:
            drive(Publisher(stack.bootstrap, codec, PARTITIONS), timeline, timeout=120, order=order, seed=11)
            wait_until_day_done(watcher, set(expected["final states"]), timeline[-1].date, timeout=120)
            latest: dict[str, ev.DebtorSnapshot] = {}
            for snap in watcher.events("DebtorSnapshot"):
                if snap.debtor_id not in latest or snap.version > latest[snap.debtor_id].version:
                    latest[snap.debtor_id] = snap
            streamed_outputs = [e for name in ("DunningActionDue", "PaymentMatched", "PaymentUnmatched",
                                               "PaymentResolved") for e in watcher.events(name)]
            streamed = outcome(list({getattr(e, "action_id", None) or e.event_id: e for e in streamed_outputs}.values()),
                               latest.values())
        finally:
            watcher.stop()
    for what in expected:
        assert streamed[what] == expected[what], f"{order}: {what} differ from simulate's"
