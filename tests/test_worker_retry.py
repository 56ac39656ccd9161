"""A batch the worker cannot finish is tried again, not dropped and not dead-lettered.

The worker runs against a schema registry (a real HTTP server) that goes down while an
invoice is on its way: the worker cannot read the invoice's schema, so the ledger's batch
fails and stays unacked. Once the registry is back the same batch goes through; a worker
stopped meanwhile stops within seconds and its successor does the batch."""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from datetime import date
from typing import Iterator

import pytest

from connectors.publisher import Publisher
from harness.stack import Stack
from harness.watch import TopicWatcher
from schemas import topics
from schemas.codec import Codec
from schemas.registry import SchemaRegistry
from streams.core import events as ev
from streams.kafka.clients import end_offsets
from tests.support import start_schema_registry

pytestmark = [pytest.mark.broker]
PARTITIONS = 4


@contextmanager
def stuck_on_a_registry_outage(tmp_path) -> Iterator[tuple]:
    """A worker whose ledger batch with an invoice has failed twice for want of the
    registry; yields the stack, the registry and a watcher of the snapshots."""
    server, registry = start_schema_registry()
    codec = Codec(SchemaRegistry(server.url))
    registration = ev.DebtorRegistered("r-1", "R1", "Retry BV", "B2B", email="ap@retry.example")
    invoice = ev.InvoiceIssued("r-inv-1", "R1", "R-F1", date(2025, 3, 3), date(2025, 3, 17), 42_000)
    codec.encode(topics.LEDGER.name, invoice)  # registered now, so the publisher needs no registry later
    try:
        with Stack(tmp_path, PARTITIONS, {"SCHEMA_REGISTRY_URL": server.url}) as stack:
            stack.start("worker")
            watcher = TopicWatcher(stack.bootstrap, codec, [topics.SNAPSHOTS.name]).start()
            try:
                publisher = Publisher(stack.bootstrap, codec, PARTITIONS)
                publisher.publish_all([registration])
                watcher.wait_for(lambda w: any(s.debtor_id == "R1" for s in w.events("DebtorSnapshot")), 120,
                                 "the registration's snapshot")
                registry.available = False
                publisher.publish_all([invoice])
                invoice_schema = f"/schemas/ids/{codec.schema_id(topics.LEDGER.name, ev.InvoiceIssued)}"
                # The worker asked for the invoice's schema, was refused, and asked again later.
                watcher.wait_for(lambda _: sum(path == invoice_schema for _, path in registry.refused) >= 2, 60,
                                 "the worker to try the invoice's batch twice")
                assert not any(s.items for s in watcher.events("DebtorSnapshot"))
                yield stack, registry, watcher
            finally:
                watcher.stop()
    finally:
        server.stop()


def invoice_in_a_snapshot(watcher) -> bool:
    return any([i.invoice_id for i in s.items] == ["R-F1"] for s in watcher.events("DebtorSnapshot"))


def test_a_batch_that_meets_a_registry_outage_goes_through_once_the_registry_is_back(tmp_path):
    with stuck_on_a_registry_outage(tmp_path) as (stack, registry, watcher):
        registry.available = True
        watcher.wait_for(invoice_in_a_snapshot, 60, "the invoice in a snapshot once the registry is back")
        dead_letters = end_offsets(stack.bootstrap, [topics.DEAD_LETTERS.name])
    assert sum(dead_letters.values()) == 0


def test_a_worker_stuck_on_a_failing_batch_stops_on_sigterm_and_loses_nothing(tmp_path):
    with stuck_on_a_registry_outage(tmp_path) as (stack, registry, watcher):
        worker = stack.processes["worker"]
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        took = time.monotonic() - started
        registry.available = True
        stack.start("worker", name="worker-restarted")
        watcher.wait_for(invoice_in_a_snapshot, 120, "the invoice in a snapshot after the restart")
        dead_letters = end_offsets(stack.bootstrap, [topics.DEAD_LETTERS.name])
    assert took < 15, f"the worker took {took:.1f} s to stop"
    assert sum(dead_letters.values()) == 0
