"""End to end through the real parts: the embedded broker, the Faust worker, the channel
sink against a real SMTP server, and the projector against PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.publisher import Publisher
from harness import SAMPLE_POLICY
from harness.drive import drive, wait_until_day_done
from harness.sample_ledger import Day, sample_days
from harness.stack import Stack
from harness.watch import pipeline_watcher
from projections.db import make_engine, migrate
from projections.models import Action, Debtor
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


def mails_to(smtp, address: str) -> list:
    _, handler = smtp
    return [message for rcpts, message in handler.messages if address in rcpts]


def test_overdue_invoice_is_reminded_and_a_payment_stops_the_next_step(stack, publisher, watcher, smtp):
    start = date(2024, 3, 1)
    days = [Day(start + timedelta(days=i)) for i in range(30)]
    days[0].ledger += [
        ev.DebtorRegistered("e2e-reg-1", "E2E-1", "Bakkerij Test BV", "B2B", segment="smb",
                            email="crediteuren@bakkerij.example.nl"),
        ev.InvoiceIssued("e2e-inv-1", "E2E-1", "E2E-F1", start, start + timedelta(days=10), 125_000,
                         payment_reference="5000056789012345"),
    ]
    # business workflow: pre-due at -3 (day 7), first reminder at +1 (day 11), second at +14 (day 24)
    days[12].payments.append(
        ev.PaymentReceived("e2e-bank-1", "E2E-TX-1", days[12].date, 125_000, payer_iban="NL91ABNA0417164300",
                           structured_reference="5000 0567 8901 2345")
    )
    drive(publisher, watcher, days, timeout=90)
    wait_until_day_done(watcher, {"E2E-1"}, days[-1].date, timeout=60)

    actions = [a for a in watcher.events("DunningActionDue") if a.debtor_id == "E2E-1"]
    assert [(a.step_name, a.business_date) for a in actions] == [
        ("pre-due", start + timedelta(days=7)),
        ("first reminder", start + timedelta(days=11)),
    ]
    mails = wait_until(lambda: len(mails_to(smtp, "crediteuren@bakkerij.example.nl")) == 2 and
                       mails_to(smtp, "crediteuren@bakkerij.example.nl"), 30, "two reminder e-mails")
    assert {m["X-Dunning-Action-Id"] for m in mails} == {a.action_id for a in actions}
    assert any("E2E-F1" in m.get_content() for m in mails)

    engine = make_engine(stack.db_url)

    def projected():
        with Session(engine) as session:
            debtor = session.get(Debtor, "E2E-1")
            rows = session.scalars(select(Action).where(Action.debtor_id == "E2E-1")).all()
            if debtor and debtor.business_date == days[-1].date and len(rows) == 2 and all(
                r.delivery_status == "sent" for r in rows
            ):
                return debtor, rows
            return None

    debtor, rows = wait_until(projected, 30, "the projection of E2E-1")
    assert debtor.balance_minor == 0 and debtor.overdue_minor == 0
    assert {r.action_id for r in rows} == {a.action_id for a in actions}


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
    drive(publisher, watcher, timeline, timeout=120)
    debtors = {e.debtor_id for day in timeline for e in day.ledger if isinstance(e, ev.DebtorRegistered)}
    wait_until_day_done(watcher, debtors, timeline[-1].date, timeout=120)

    policy = policy_from_yaml(SAMPLE_POLICY.read_text())
    expected = {o.action_id for o in simulate([e for d in timeline for e in d.events()], policy)
                if isinstance(o, ev.DunningActionDue)}
    streamed = {a.action_id for a in watcher.events("DunningActionDue") if a.debtor_id in debtors}
    assert len(expected) > 100
    assert streamed == expected
