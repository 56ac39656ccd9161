"""End to end through the real parts: the embedded broker, the Faust worker, the channel
sink against a real SMTP server, and the projector against PostgreSQL.

The named scenarios (an overdue invoice reminded by e-mail and projected, a payment by
reference stopping the next step, ...) run through the same parts in tests/test_scenarios.py;
here: what is not a scenario of one ledger (undecodable records, values past the bounds,
60 days of the sample ledger against ``simulate``)."""

from __future__ import annotations

from datetime import date

import pytest

from connectors.publisher import Publisher
from harness import SAMPLE_POLICY
from harness.drive import drive, wait_until_day_done
from harness.sample_ledger import sample_days
from harness.stack import Stack
from harness.watch import pipeline_watcher
from projections.db import migrate
from schemas import topics
from schemas.codec import Codec
from streams.core import events as ev
from streams.core.policy import policy_from_yaml
from streams.core.simulate import simulate
from streams.kafka.clients import make_producer
from tests.support import free_port, postgres_database, start_smtp, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.postgres]
PARTITIONS = 4


@pytest.fixture(scope="module")
def smtp():
    controller, handler = start_smtp(free_port())
    yield controller, handler
    controller.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, smtp):
    """One broker, worker, sink and projector for the module's tests."""
    controller, _ = smtp
    with postgres_database("dunning_e2e") as db_url:
        migrate(db_url)
        env = {"DATABASE_URL": db_url, "SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
        with Stack(tmp_path_factory.mktemp("stack"), PARTITIONS, env) as running:
            for role in ("worker", "sink", "project"):
                running.start(role)
            running.db_url = db_url
            yield running


@pytest.fixture(scope="module")
def codec():
    return Codec()


@pytest.fixture(scope="module")
def watcher(stack, codec):
    watching = pipeline_watcher(stack.bootstrap, codec).start()
    yield watching
    watching.stop()


@pytest.fixture(scope="module")
def publisher(stack, codec):
    return Publisher(stack.bootstrap, codec, PARTITIONS)


def test_bad_events_are_dead_lettered_and_the_pipeline_goes_on(stack, publisher, watcher, codec):
    producer = make_producer(stack.bootstrap)
    producer.produce(topics.LEDGER.name, key=b"E2E-2", value=b"not avro at all")
    # An invoice for a debtor nobody registered, and one with a negative amount.
    publisher.publish(ev.InvoiceIssued("e2e-inv-orphan", "E2E-NOBODY", "E2E-F9", date(2024, 3, 1),
                                       date(2024, 3, 31), 10_000))
    producer.flush(10)
    publisher.publish(ev.DebtorRegistered("e2e-reg-2", "E2E-2", "Slagerij Test", "B2C", email="s@example.nl"))
    publisher.publish(ev.InvoiceIssued("e2e-inv-neg", "E2E-2", "E2E-F10", date(2024, 3, 1), date(2024, 3, 31), -5))
    publisher.publish(ev.InvoiceIssued("e2e-inv-ok", "E2E-2", "E2E-F11", date(2024, 3, 1), date(2024, 3, 31), 7_500))
    publisher.flush()

    def snapshot_with_invoice():
        return [s for s in watcher.events("DebtorSnapshot")
                if s.debtor_id == "E2E-2" and any(i.invoice_id == "E2E-F11" for i in s.items)]

    wait_until(snapshot_with_invoice, 60, "the valid invoice after the bad ones")
    reasons = [d.reason for d in watcher.events("DeadLetter")]
    assert any("cannot decode" in r for r in reasons)
    assert any("unknown debtor 'E2E-NOBODY'" in r for r in reasons)
    assert any("amount_minor" in r and "-5" in r for r in reasons)
    garbage = [d for d in watcher.events("DeadLetter") if d.original_value == b"not avro at all"]
    assert garbage and garbage[0].source_topic == topics.LEDGER.name
    latest = snapshot_with_invoice()[-1]
    assert [i.invoice_id for i in latest.items] == ["E2E-F11"]


def test_streaming_pipeline_and_simulate_produce_the_same_actions(stack, publisher, watcher):
    timeline = sample_days(days=60)
    drive(publisher, timeline, timeout=120)
    debtors = {e.debtor_id for day in timeline for e in day.ledger if isinstance(e, ev.DebtorRegistered)}
    wait_until_day_done(watcher, debtors, timeline[-1].date, timeout=120)

    policy = policy_from_yaml(SAMPLE_POLICY.read_text())
    expected = {o.action_id for o in simulate([e for d in timeline for e in d.events()], policy)
                if isinstance(o, ev.DunningActionDue)}
    streamed = {a.action_id for a in watcher.events("DunningActionDue") if a.debtor_id in debtors}
    assert len(expected) > 100
    assert streamed == expected
