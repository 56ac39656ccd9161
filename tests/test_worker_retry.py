"""A batch the worker cannot finish is tried again, not dropped and not dead-lettered.

The worker runs against a schema registry (a real HTTP server) that goes down while an
invoice is on its way: the worker cannot read the invoice's schema, so the ledger's batch
fails and stays unacked. Once the registry is back the same batch goes through."""

from __future__ import annotations

from datetime import date

import pytest

from connectors.publisher import Publisher
from dunning.kafka_io import end_offsets
from dunning.stack import Stack
from dunning.watch import TopicWatcher
from schemas.codec import Codec
from schemas.confluent import ConfluentRegistry
from streams import topics
from streams.core import events as ev
from tests.support import start_schema_registry

pytestmark = [pytest.mark.broker]
PARTITIONS = 4


def test_a_batch_that_meets_a_registry_outage_goes_through_once_the_registry_is_back(tmp_path):
    server, registry = start_schema_registry()
    codec = Codec(ConfluentRegistry(server.url))
    registration = ev.DebtorRegistered("r-1", "R1", "Retry BV", "B2B", email="ap@retry.example")
    invoice = ev.InvoiceIssued("r-inv-1", "R1", "R-F1", date(2025, 3, 3), date(2025, 3, 17), 42_000)
    codec.encode(topics.LEDGER.name, invoice)  # registered now, so the publisher needs no registry later
    try:
        with Stack(tmp_path, PARTITIONS, {"SCHEMA_REGISTRY_URL": server.url}) as stack:
            stack.start("worker")
            watcher = TopicWatcher(stack.bootstrap, codec, [topics.SNAPSHOTS.name]).start()
            try:
                publisher = Publisher(stack.bootstrap, codec, PARTITIONS)
                publisher.publish(registration)
                publisher.flush()
                watcher.wait_for(lambda w: any(s.debtor_id == "R1" for s in w.events("DebtorSnapshot")), 120,
                                 "the registration's snapshot")

                registry.available = False
                publisher.publish(invoice)
                publisher.flush()
                invoice_schema = f"/schemas/ids/{codec.schema_id(topics.LEDGER.name, ev.InvoiceIssued)}"
                # The worker asked for the invoice's schema, was refused, and asked again later.
                watcher.wait_for(lambda _: sum(path == invoice_schema for _, path in registry.refused) >= 2, 60,
                                 "the worker to try the invoice's batch twice")
                assert not any(s.items for s in watcher.events("DebtorSnapshot"))

                registry.available = True
                watcher.wait_for(
                    lambda w: any([i.invoice_id for i in s.items] == ["R-F1"] for s in w.events("DebtorSnapshot")),
                    60, "the invoice in a snapshot once the registry is back")
                dead_letters = end_offsets(stack.bootstrap, [topics.DEAD_LETTERS.name])
            finally:
                watcher.stop()
    finally:
        server.stop()

    assert sum(dead_letters.values()) == 0
