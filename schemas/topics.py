"""Every Kafka topic of the platform: its name, its key and the record types it carries.

Debtor-scoped topics share the debtor id as key and the same partition count, so one
worker owns a debtor's whole state (co-partitioning). Producers must use the murmur2
partitioner (the Java and aiokafka default) for keys to land where Faust expects them.
Several record types share a topic; each is registered under the subject
``<topic>-<namespace>.<RecordName>`` (Confluent's TopicRecordNameStrategy).
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.core import events as ev
from streams.core.matching import index_key, index_keys

# The largest record the platform writes: a debtor's state in its table's changelog and its
# snapshot grow with its open items (``streams.core.ledger.MAX_ITEMS`` bounds them). Topics
# are created with this as their ``max.message.bytes``; producers allow it too.
MAX_RECORD_BYTES = 16 * 1024 * 1024
TOPIC_CONFIG = {"max.message.bytes": str(MAX_RECORD_BYTES)}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str  # what the key holds, for the docs
    types: tuple[type, ...]
    compacted: bool = False


LEDGER = TopicSpec(
    "dunning.ledger",
    "debtor_id (DayStarted: one copy per partition)",
    (
        ev.DebtorRegistered,
        ev.InvoiceIssued,
        ev.CreditNoteIssued,
        ev.DisputeOpened,
        ev.DisputeResolved,
        ev.PromiseToPayMade,
        ev.CreditLimitSet,
        ev.DayStarted,
        ev.PaymentMatched,
        ev.PaymentProbe,
    ),
)
BANK = TopicSpec("dunning.bank-transactions", "transaction_id", (ev.PaymentReceived, ev.PaymentAllocated))
MATCHING = TopicSpec(
    "dunning.matching",
    "the matcher's key: a normalised payment reference, \"tx:\" + a transaction id, \"no:\" + an invoice "
    "number, \"iban:\" + a payer's IBAN (DayStarted: one copy per partition)",
    (ev.ReferenceIssued, ev.ReferenceRetired, ev.PaymentReceived, ev.DayStarted, ev.PayerLearned, ev.PaymentProbe,
     ev.PaymentAllocated),
)
ACTIONS = TopicSpec("dunning.actions", "debtor_id", (ev.DunningActionDue,))
ALERTS = TopicSpec(
    "dunning.alerts",
    "debtor_id",
    (ev.LimitWarning, ev.LimitBreached, ev.LimitCleared, ev.PromiseKept, ev.PromiseBroken, ev.PaymentReversed),
)
UNMATCHED = TopicSpec("dunning.payments-unmatched", "transaction_id", (ev.PaymentUnmatched, ev.PaymentResolved))
SNAPSHOTS = TopicSpec("dunning.snapshots", "debtor_id", (ev.DebtorSnapshot,), compacted=True)
DELIVERIES = TopicSpec("dunning.deliveries", "action_id", (ev.DeliveryResult,))
DEAD_LETTERS = TopicSpec("dunning.dead-letters", "the original key", (ev.DeadLetter,))

ALL = (LEDGER, BANK, MATCHING, ACTIONS, ALERTS, UNMATCHED, SNAPSHOTS, DELIVERIES, DEAD_LETTERS)

# The topics a DayStarted is published to, one copy per partition, in this order with a
# barrier between them (``connectors.publisher``): the matcher's waiting payments first (the
# cascade's probes reach their debtors), then the ledger's debtors (who decide them, then
# run the day).
TICKED = (MATCHING, LEDGER)

# The stream worker's consumer group (its Faust app id).
WORKER_GROUP = "dunning-worker"
# What the worker reads. A day tick goes out once the worker has committed all of them to
# their ends (``streams.kafka.progress``): a tick is a barrier, the day's events, however the
# topics were read, are all applied before the next day starts.
WORKER_INPUTS = (LEDGER, BANK, MATCHING)

# Where the core's outputs go.
OUTPUT_TOPIC = {
    ev.DunningActionDue: ACTIONS,
    ev.LimitWarning: ALERTS,
    ev.LimitBreached: ALERTS,
    ev.LimitCleared: ALERTS,
    ev.PromiseKept: ALERTS,
    ev.PromiseBroken: ALERTS,
    ev.PaymentReversed: ALERTS,
    ev.PaymentUnmatched: UNMATCHED,
    ev.PaymentResolved: UNMATCHED,
    ev.DebtorSnapshot: SNAPSHOTS,
    ev.DeliveryResult: DELIVERIES,
    ev.ReferenceIssued: MATCHING,
    ev.ReferenceRetired: MATCHING,
    ev.PayerLearned: MATCHING,
    ev.PaymentProbe: MATCHING,  # handed to its debtor: LEDGER (``output_topic``)
    ev.PaymentMatched: LEDGER,
    ev.DeadLetter: DEAD_LETTERS,
}

# Where integrators publish each input type.
INPUT_TOPIC = {cls: LEDGER for cls in LEDGER.types if cls not in (ev.PaymentMatched, ev.PaymentProbe)}
INPUT_TOPIC[ev.PaymentReceived] = INPUT_TOPIC[ev.PaymentAllocated] = BANK


def output_topic(event: object) -> TopicSpec:
    """Where an output goes: by its type, but a probe handed to its debtor goes to the ledger."""
    if type(event) is ev.PaymentProbe and event.debtor_id is not None:
        return LEDGER
    return OUTPUT_TOPIC[type(event)]


def keys_of(event: object) -> tuple[str | None, ...]:
    """The record keys an event is written under: one, but an invoice's reference that
    carries its number is written under both (``matching.index_keys``)."""
    if type(event) in (ev.ReferenceIssued, ev.ReferenceRetired):
        return index_keys(event)
    return (key_of(event),)


def key_of(event: object) -> str | None:
    """The record key for an event on its topic."""
    if isinstance(event, (ev.ReferenceIssued, ev.ReferenceRetired, ev.PayerLearned)) or (
            isinstance(event, ev.PaymentProbe) and event.debtor_id is None):
        return index_key(event)
    if isinstance(event, (ev.PaymentReceived, ev.PaymentAllocated, ev.PaymentUnmatched, ev.PaymentResolved)):
        return event.transaction_id
    if isinstance(event, ev.DeliveryResult):
        return event.action_id
    if isinstance(event, ev.DayStarted):
        return None
    return getattr(event, "debtor_id", None)
