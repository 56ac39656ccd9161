"""Fail-over and scale-out: the worker is killed with SIGKILL in the middle of the stream
and started again, or a second worker joins in the middle of the stream. Tables are
recovered from their changelogs and what was not committed is processed again; the final
debtor states and the e-mails sent must be exactly those of an uninterrupted run (the
in-memory pipeline), with no e-mail sent twice."""

from __future__ import annotations

import json
import signal
from collections import Counter

import pytest

from connectors.publisher import Publisher
from harness import SAMPLE_POLICY
from harness.drive import drive, wait_until_day_done
from harness.sample_ledger import sample_days
from harness.stack import Stack
from harness.watch import pipeline_watcher
from projections.db import migrate
from schemas.codec import Codec
from streams.core import events as ev
from streams.core.pipeline import Pipeline
from streams.core.policy import policy_from_yaml
from tests.support import free_port, postgres_database, start_smtp, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.postgres]
PARTITIONS = 4
DAYS = 60
KILL_BEFORE_DAY = 31


def expected_outcome(timeline):
    pipeline = Pipeline(policy_from_yaml(SAMPLE_POLICY.read_text()))
    outputs = [o for day in timeline for e in day.events() for o in pipeline.process(e)]
    emails = {o.action_id for o in outputs if isinstance(o, ev.DunningActionDue) and o.channel == "email"}
    return {s.debtor_id: s for s in pipeline.snapshots()}, emails


def latest_snapshots(watcher) -> dict:
    latest: dict = {}
    for snap in watcher.events("DebtorSnapshot"):
        if snap.debtor_id not in latest or snap.version > latest[snap.debtor_id].version:
            latest[snap.debtor_id] = snap
    return latest


def run_with_a_change_of_workers(tmp_path, change) -> tuple:
    """The sample timeline through broker, worker(s), sink (real SMTP) and projector
    (PostgreSQL); ``change(stack, day_index)`` runs before each day is published. Returns
    the watcher, the mails received and what the in-memory pipeline expects."""
    controller, smtp = start_smtp(free_port())
    codec = Codec()
    timeline = sample_days(days=DAYS)
    debtors = {e.debtor_id for day in timeline for e in day.ledger if isinstance(e, ev.DebtorRegistered)}
    try:
        with postgres_database("dunning_failover") as db_url:
            migrate(db_url)
            env = {"DATABASE_URL": db_url, "SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
            with Stack(tmp_path, PARTITIONS, env) as stack:
                for role in ("worker", "sink", "project"):
                    stack.start(role)
                watcher = pipeline_watcher(stack.bootstrap, codec).start()
                try:
                    drive(Publisher(stack.bootstrap, codec, PARTITIONS), timeline, timeout=120,
                          before_day=lambda index: change(stack, index))
                    wait_until_day_done(watcher, debtors, timeline[-1].date, timeout=120)
                    expected_states, expected_emails = expected_outcome(timeline)

                    def settled(w) -> bool:
                        # The last day's payments reach the snapshots after its tick did.
                        return ({m["X-Dunning-Action-Id"] for _, m in smtp.messages} >= expected_emails
                                and latest_snapshots(w) == expected_states)

                    try:
                        watcher.wait_for(settled, 60, "the expected e-mails and final states")
                    except TimeoutError:
                        pass  # the assertions below show what differs
                    ended = [name for name, process in stack.processes.items() if process.poll() is not None]
                    assert ended == [], f"{ended} ended before the run did"
                finally:
                    watcher.stop()
    finally:
        controller.stop()
    return watcher, smtp, expected_states, expected_emails


def assert_as_without_the_change(watcher, smtp, expected_states, expected_emails) -> None:
    sent = Counter(m["X-Dunning-Action-Id"] for _, m in smtp.messages)
    assert sorted(expected_emails - set(sent)) == []
    assert sorted(set(sent) - expected_emails) == []
    latest = latest_snapshots(watcher)
    assert sorted(d for d in expected_states if latest.get(d) != expected_states[d]) == []
    assert [action for action, copies in sent.items() if copies > 1] == []


def wait_for_ledger_partitions(log_file, timeout: float = 180) -> None:
    """Until the worker that writes ``log_file`` holds ledger partitions: the day is driven
    on only then, however long the group takes to rebalance on a busy machine."""

    def assigned() -> bool:
        for line in log_file.read_text(encoding="utf-8").splitlines() if log_file.exists() else []:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "partitions assigned" and entry.get("ledger_partitions"):
                return True
        return False

    wait_until(assigned, timeout, f"{log_file.name}: ledger partitions assigned")


def test_kill_minus_nine_mid_stream_changes_nothing(tmp_path):
    killed = []

    def crash_and_restart(stack, index: int) -> None:
        if index == KILL_BEFORE_DAY:
            stack.kill("worker", signal.SIGKILL)  # the previous day may still be in flight
            killed.append(True)
            stack.start("worker", name="worker-restarted")
            wait_for_ledger_partitions(tmp_path / "worker-restarted.log")

    outcome = run_with_a_change_of_workers(tmp_path, crash_and_restart)
    assert killed, "the worker was never killed"
    assert_as_without_the_change(*outcome)


def test_a_second_worker_joining_mid_stream_changes_nothing(tmp_path):
    """Scale-out: the group rebalances, the first worker hands over the partitions it
    loses with the batches in hand finished, the second restores their tables."""
    joined = []

    def add_a_worker(stack, index: int) -> None:
        if index == KILL_BEFORE_DAY:
            joined.append(stack.start("worker", name="worker-2"))
            wait_for_ledger_partitions(tmp_path / "worker-2.log")

    outcome = run_with_a_change_of_workers(tmp_path, add_a_worker)
    assert joined, "the second worker never started"
    # It took over partitions: it saw the day ticks of its own.
    assert '"event": "day started"' in (tmp_path / "worker-2.log").read_text()
    assert_as_without_the_change(*outcome)
