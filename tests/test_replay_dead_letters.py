"""``dunning replay-dead-letters``: a record dead-lettered for a cause that has since been
fixed goes back on its topic and takes effect, once; the filters pick what is replayed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta

import pytest

from connectors.publisher import Publisher
from harness.stack import Stack
from harness.watch import TopicWatcher
from schemas import topics
from schemas.codec import Codec
from streams.core import events as ev

pytestmark = [pytest.mark.broker]
PARTITIONS = 4
START = date(2025, 3, 3)


def replay(bootstrap: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "dunning.cli", "replay-dead-letters", *args],
                          env={**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "PARTITIONS": str(PARTITIONS)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_dead_letter_replayed_after_its_cause_is_fixed_takes_effect_once(tmp_path):
    codec = Codec()
    early = [ev.InvoiceIssued(f"rp-inv-{n}", "RP1", f"RP-F{n}", START, START + timedelta(days=14), 1_000 * (n + 1))
             for n in range(2)]
    other = ev.InvoiceIssued("rp-other", "RP2", "RP-X1", START, START + timedelta(days=14), 5_000)
    registration = ev.DebtorRegistered("rp-reg", "RP1", "Replay BV", "B2B", segment="smb", email="ap@replay.example")
    with Stack(tmp_path, PARTITIONS) as stack:
        stack.start("worker")
        watcher = TopicWatcher(stack.bootstrap, codec, [topics.SNAPSHOTS.name, topics.DEAD_LETTERS.name]).start()
        try:
            publisher = Publisher(stack.bootstrap, codec, PARTITIONS)
            publisher.publish_all([*early, other])  # before their debtors are registered
            watcher.wait_for(lambda w: len(w.events("DeadLetter")) == 3, 120, "three dead letters")
            publisher.publish_all([registration])  # the cause fixed for RP1, not for RP2

            counted = replay(stack.bootstrap, "--key", "RP1", "--reason", "unknown debtor", "--dry-run")
            assert (counted["letters"], counted["matched"], counted["replayed"]) == (3, 2, 0)
            assert replay(stack.bootstrap, "--topic", topics.ACTIONS.name)["matched"] == 0

            done = replay(stack.bootstrap, "--key", "RP1")
            assert (done["matched"], done["replayed"], done["by_topic"]) == (2, 2, {topics.LEDGER.name: 2})
            watcher.wait_for(lambda w: any(len(s.items) == 2 for s in w.events("DebtorSnapshot")), 120,
                             "both invoices in a snapshot")
            replay(stack.bootstrap, "--key", "RP1")  # a second replay changes nothing
            publisher.publish_all([ev.DayStarted("rp-day", START)])
            watcher.wait_for(lambda w: any(s.business_date == START for s in w.events("DebtorSnapshot")), 120,
                             "the day's snapshot")
            watcher.wait_caught_up()
        finally:
            watcher.stop()
    final = max(watcher.events("DebtorSnapshot"), key=lambda s: s.version)
    assert sorted(i.invoice_id for i in final.items) == ["RP-F0", "RP-F1"]
    assert final.balance_minor == 3_000
    assert len(watcher.events("DeadLetter")) == 3  # nothing replayed was dead-lettered again
