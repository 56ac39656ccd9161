"""The bench workload (200,000 events) through the real parts: ``dunning publish`` →
worker → sink (a real SMTP server) → projector on PostgreSQL. Every invoice, payment and
balance in the read models is checked against ``dunning simulate`` on the same events.

The payments go in once every invoice is through the ledger: a payment that reaches the
matcher before its invoice's reference does is not matched (a limit of the matcher, not
of the spine), and this test is about nothing being lost on the way. Takes about three
minutes on this project's 2-core machine."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, text

from harness.bench import policy, workload
from harness.stack import Stack
from projections.db import migrate
from schemas.json_form import event_to_json
from streams.core import events as ev
from streams.core.pipeline import Pipeline
from tests.support import free_port, postgres_database, start_smtp

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.slow]
PARTITIONS = 4
EVENTS = 200_000


def write_jsonl(path, events) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event_to_json(event), ensure_ascii=False) + "\n")


def publish(stack: Stack, path) -> dict:
    done = subprocess.run([sys.executable, "-m", "dunning.cli", "publish", str(path)], env=stack.child_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def read_models(url: str) -> tuple[dict, dict, set]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            debtors = {row[0]: tuple(row[1:]) for row in connection.execute(text(
                "SELECT debtor_id, balance_minor, overdue_minor, credit_minor, version FROM debtors"))}
            items = {(row[0], row[1]): tuple(row[2:]) for row in connection.execute(text(
                "SELECT debtor_id, invoice_id, amount_minor, paid_minor, open_minor FROM open_items"))}
            unmatched = {row[0] for row in connection.execute(text("SELECT transaction_id FROM unmatched_payments"))}
        return debtors, items, unmatched
    finally:
        engine.dispose()


def test_the_bench_workload_through_every_stage_matches_simulate(tmp_path):
    events = workload(debtors=2_000, events=EVENTS, ticks=5)
    payments = [e for e in events if isinstance(e, ev.PaymentReceived)]
    write_jsonl(tmp_path / "ledger.jsonl", [e for e in events if not isinstance(e, ev.PaymentReceived)])
    write_jsonl(tmp_path / "payments.jsonl", payments)

    pipeline = Pipeline(policy())
    outputs = [o for e in events for o in pipeline.process(e)]
    expected = pipeline.snapshots()
    expected_debtors = {s.debtor_id: (s.balance_minor, s.overdue_minor, s.credit_minor, s.version) for s in expected}
    expected_items = {(s.debtor_id, i.invoice_id): (i.amount_minor, i.paid_minor, i.open_minor)
                      for s in expected for i in s.items}
    expected_unmatched = {o.transaction_id for o in outputs if isinstance(o, ev.PaymentUnmatched)}
    expected_mails = {o.action_id for o in outputs if isinstance(o, ev.DunningActionDue) and o.channel == "email"}

    controller, smtp = start_smtp(free_port())
    started = time.monotonic()
    try:
        with postgres_database("dunning_load") as url:
            migrate(url)
            env = {"DATABASE_URL": url, "SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
            with Stack(tmp_path / "stack", PARTITIONS, env) as stack:
                for role in ("worker", "sink", "project"):
                    stack.start(role)
                first = publish(stack, tmp_path / "ledger.jsonl")
                assert first["lines_published"] == len(events) - len(payments)

                def invoices_projected() -> bool:
                    _, items, _ = read_models(url)
                    return len(items) >= sum(isinstance(e, ev.InvoiceIssued) for e in events)

                _wait(invoices_projected, 600, "every invoice in the read models")
                second = publish(stack, tmp_path / "payments.jsonl")
                assert second["lines_published"] == len(payments)
                _wait(lambda: read_models(url)[0] == expected_debtors, 600, "every debtor as simulate has it")
                _wait(lambda: {m["X-Dunning-Action-Id"] for _, m in smtp.messages} >= expected_mails, 120,
                      "every e-mail")
                debtors, items, unmatched = read_models(url)
                ended = [name for name, process in stack.processes.items() if process.poll() is not None]
    finally:
        controller.stop()
    print(f"load: {EVENTS} events through every stage in {time.monotonic() - started:.0f} s")
    assert ended == []
    assert debtors == expected_debtors
    assert items == expected_items
    assert unmatched == expected_unmatched
    sent = [m["X-Dunning-Action-Id"] for _, m in smtp.messages]
    assert sorted(sent) == sorted(expected_mails)


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(1)
