"""Every scenario of ``tests/scenarios.py`` three ways, asserted by the same expectation:

- ``core``: the events through the in-memory topology (``streams.core.pipeline.Pipeline``,
  the matcher hop included);
- ``simulate``: the events as a JSON-lines file through ``dunning simulate`` in a process
  of its own, its output lines parsed back;
- ``pipeline``: one broker, worker, sink and projector (PostgreSQL, a real SMTP server) for
  the module, the scenarios published into it one after the other and read back from
  the platform's topics.

Beyond its expectation, what ``simulate`` and the pipeline produce must equal what the core
produces, output for output; and in the pipeline every action must be delivered (each
e-mail once, at the SMTP server) and the read models must show the final snapshot.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import fields
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from harness import SAMPLE_POLICY
from schemas import topics
from schemas.codec import Codec, DecodeError
from schemas.json_form import event_from_json, event_to_json
from streams.core import events as ev
from streams.core.pipeline import Pipeline
from streams.core.policy import policy_from_yaml
from tests.scenarios import SCENARIOS, Outcome, Scenario

ROOT = Path(__file__).resolve().parent.parent
POLICY = policy_from_yaml(SAMPLE_POLICY.read_text(), str(SAMPLE_POLICY))
PARTITIONS = 4
TIMEOUT = 90.0  # for any one wait in the pipeline; generous for a busy 2-core machine


# --------------------------------------------------------------------------- core


def run_core(scenario: Scenario) -> Outcome:
    pipeline = Pipeline(POLICY)
    outputs, refused = [], []
    for event in scenario.events:
        try:
            outputs.extend(pipeline.process(event))
        except ev.InvalidEvent:
            refused.append(event.event_id)
    outputs.extend(pipeline.snapshots())
    return Outcome.of(outputs, refused, scenario)


# --------------------------------------------------------------------------- simulate


def run_simulate(scenario: Scenario, tmp_path: Path) -> Outcome:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(event_to_json(e)) + "\n" for e in scenario.events))
    done = subprocess.run(
        [sys.executable, "-m", "dunning.cli", "simulate", str(path), "--snapshots", "--policy", str(SAMPLE_POLICY)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    outputs, refused = [], []
    for line in done.stdout.splitlines():
        record = json.loads(line)
        if record["type"] == "Rejected":
            assert record["line"] == scenario.events.index(
                next(e for e in scenario.events if e.event_id == record["event_id"])) + 1
            refused.append(record["event_id"])
        else:
            outputs.append(event_from_json(record))
    return Outcome.of(outputs, refused, scenario)


# --------------------------------------------------------------------------- pipeline


class Recorder:
    """Every event the watcher reads, in the order read (a topic partition's order is kept)."""

    def __init__(self) -> None:
        self._events: list = []
        self._lock = threading.Lock()

    def __call__(self, event, _received: float) -> None:
        with self._lock:
            self._events.append(event)

    def events(self) -> list:
        with self._lock:
            return list(self._events)


class Platform:
    """One running stack for the module's pipeline runs, with what reads it back."""

    def __init__(self, stack, smtp_handler, codec: Codec):
        from connectors.publisher import Publisher
        from harness.watch import pipeline_watcher
        from projections.db import make_engine
        from streams.kafka.clients import make_admin

        self.stack, self.smtp, self.codec = stack, smtp_handler, codec
        self.recorder = Recorder()
        self.watcher = pipeline_watcher(stack.bootstrap, codec, seen=self.recorder).start()
        from streams.kafka.progress import WorkerProgress

        self.publisher = Publisher(stack.bootstrap, codec, PARTITIONS,
                                   before_tick=WorkerProgress(stack.bootstrap, timeout=TIMEOUT))
        self.admin = make_admin(stack.bootstrap)
        self.engine = make_engine(stack.db_url)

    def close(self) -> None:
        self.watcher.stop()
        self.engine.dispose()

    def wait_ready(self, timeout: float = 180.0) -> None:
        """A registration in, its snapshot out: the worker has joined (that takes a while on
        a busy machine, and should not count against the first scenario)."""
        warm = ev.DebtorRegistered("scenarios-warm-up", "SCENARIOS-WARM-UP", "Warm-up", "B2B")
        self.publisher.publish(warm)
        self.publisher.flush()
        self.watcher.wait_for(lambda w: any(s.debtor_id == warm.debtor_id for s in w.events("DebtorSnapshot")),
                              timeout, "the worker to start")

    # ---- in

    def publish(self, scenario: Scenario) -> None:
        """The events in their order, as real feeds deliver them: nothing waits for the
        worker but a day's tick, which goes out once everything before it is processed
        (``streams.kafka.progress.WorkerProgress``, as ``dunning publish`` and the clock do)."""
        for event in scenario.events:
            self.publisher.publish(event)
        self.publisher.flush()

    # ---- out

    def wait_done(self, scenario: Scenario) -> None:
        """The last tick done for every debtor, everything the worker read committed (so its
        outputs are on the broker), and the watcher caught up with them."""
        from harness.drive import wait_until_day_done

        wait_until_day_done(self.watcher, scenario.debtor_ids, scenario.last_day, timeout=TIMEOUT)
        from tests.support import wait_until

        wait_until(self._worker_committed_everything, TIMEOUT, f"{scenario}: the worker's offsets committed")
        self.watcher.wait_caught_up(TIMEOUT)

    def _worker_committed_everything(self) -> bool:
        from streams.kafka.progress import processed

        return processed(self.admin, self.stack.bootstrap, topics.WORKER_GROUP,
                         [topics.LEDGER.name, topics.BANK.name, topics.MATCHING.name])

    def outcome(self, scenario: Scenario) -> Outcome:
        outputs, refused = [], []
        for event in self.recorder.events():
            if isinstance(event, ev.DeadLetter):
                try:
                    refused.append(self.codec.decode(event.original_value).event_id)
                except DecodeError:
                    pass  # not one of the scenario's events
            else:
                outputs.append(event)
        return Outcome.of(outputs, refused, scenario)

    def check_delivered_and_projected(self, scenario: Scenario, outcome: Outcome) -> None:
        """Every action delivered through its channel (each e-mail once, to the debtor, naming
        its invoices), and the read models showing the final snapshots and the deliveries."""
        from projections import queries
        from projections.models import Action, Debtor
        from tests.support import wait_until

        actions = {a.action_id: a for debtor in outcome.actions.values() for a in debtor}
        expected = {i: "sent" if a.channel == "email" else "recorded" for i, a in actions.items()}

        def delivered():
            results = {d.action_id: d.status for d in self.watcher.events("DeliveryResult") if d.action_id in actions}
            return [results] if len(results) == len(actions) else None

        (results,) = wait_until(delivered, TIMEOUT, f"{scenario}: {len(actions)} deliveries")
        assert results == expected
        for action_id, action in actions.items():
            mails = [m for rcpts, m in self.smtp.messages if m["X-Dunning-Action-Id"] == action_id]
            if action.channel != "email":
                assert mails == []
                continue
            assert len(mails) == 1, f"{scenario}: {len(mails)} e-mails for {action.step_name}"
            (mail,) = mails
            assert [rcpts for rcpts, m in self.smtp.messages if m is mail] == [[action.email]]
            text = mail.get_body(preferencelist=("plain",)).get_content()
            assert all(item.invoice_id in text for item in action.items), f"{scenario}: {action.step_name}"

        snapshots = outcome.snapshots

        def projected():
            with Session(self.engine) as session:
                debtors = {d: session.get(Debtor, d) for d in snapshots}
                rows = session.scalars(select(Action).where(Action.debtor_id.in_(list(snapshots)))).all()
                if any(row is None or row.version < snapshots[d].version for d, row in debtors.items()):
                    return None
                if not set(actions) <= {r.action_id for r in rows} or any(
                        r.delivery_status == "pending" or r.step_name is None for r in rows):
                    return None
                return debtors, rows

        debtors, rows = wait_until(projected, TIMEOUT, f"{scenario}: the projection of {sorted(snapshots)}")
        for debtor_id, row in debtors.items():
            snap = snapshots[debtor_id]
            assert (row.version, row.business_date, row.balance_minor, row.overdue_minor, row.credit_minor,
                    row.limit_state, row.workflow) == (snap.version, snap.business_date, snap.balance_minor,
                                                       snap.overdue_minor, snap.credit_minor, snap.limit_state,
                                                       snap.workflow)
        assert {r.action_id: (r.business_date, r.step_name, r.total_minor, r.delivery_status) for r in rows} == {
            i: (a.business_date, a.step_name, a.total_minor, expected[i]) for i, a in actions.items()}

        reversals = {a.event_id: a for debtor in outcome.alerts.values() for a in debtor
                     if isinstance(a, ev.PaymentReversed)}

        def reversals_projected():
            with Session(self.engine) as session:
                listed = {r["event_id"]: r for r in queries.payment_reversals(session) if r["event_id"] in reversals}
            return [listed] if len(listed) == len(reversals) else None

        (listed,) = wait_until(reversals_projected, TIMEOUT, f"{scenario}: {len(reversals)} reversals projected")
        assert {i: (r["transaction_id"], r["amount_minor"], tuple(r["invoice_ids"])) for i, r in listed.items()} == {
            i: (a.transaction_id, a.amount_minor, a.invoice_ids) for i, a in reversals.items()}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    from harness.stack import Stack
    from projections.db import migrate
    from tests.support import free_port, postgres_database, start_smtp

    controller, handler = start_smtp(free_port())
    try:
        with postgres_database("dunning_scenarios") as db_url:
            migrate(db_url)
            env = {"DATABASE_URL": db_url, "SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
            with Stack(tmp_path_factory.mktemp("stack"), PARTITIONS, env) as stack:
                for role in ("worker", "sink", "project"):
                    stack.start(role)
                stack.db_url = db_url
                running = Platform(stack, handler, Codec())
                try:
                    running.wait_ready()
                    yield running
                finally:
                    running.close()
    finally:
        controller.stop()


def run_pipeline(scenario: Scenario, platform: Platform) -> Outcome:
    platform.publish(scenario)
    platform.wait_done(scenario)
    outcome = platform.outcome(scenario)
    platform.check_delivered_and_projected(scenario, outcome)
    return outcome


# --------------------------------------------------------------------------- the tests


def assert_same(outcome: Outcome, core: Outcome, where: str) -> None:
    """Field by field, so that a difference names what differs."""
    for f in fields(Outcome):
        assert getattr(outcome, f.name) == getattr(core, f.name), f"{where} differs from the core in {f.name}"


WHERE = ["core", "simulate", pytest.param("pipeline", marks=[pytest.mark.broker, pytest.mark.postgres])]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name.replace(" ", "-").replace(",", ""))
@pytest.mark.parametrize("where", WHERE)
def test_scenario(scenario: Scenario, where: str, request, tmp_path):
    if where == "core":
        outcome = run_core(scenario)
    elif where == "simulate":
        outcome = run_simulate(scenario, tmp_path)
    else:
        outcome = run_pipeline(scenario, request.getfixturevalue("platform"))

    scenario.expect(outcome)
    if where != "core":
        assert_same(outcome, run_core(scenario), where)
