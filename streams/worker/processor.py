"""Batch processing around the core, with no Faust in sight: decode, load state, apply,
collect outputs and dead letters. The Faust agents in ``streams.worker.app`` only feed records
in and write out what comes back, so this module can be tested and benchmarked alone.

State is written once per debtor per batch and one snapshot is emitted per changed
debtor per batch: that, not the core, is what makes the stream fast.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import structlog

from schemas import topics
from schemas.codec import Codec
from streams.core import bounds, matching
from streams.core import events as ev
from streams.core.cascade import Known
from streams.core.ledger import apply
from streams.core.matching import Slot
from streams.core.policy import Policy
from streams.core.snapshot import snapshot
from streams.core.state import DebtorState
from streams.kafka import metrics as consumer_metrics
from streams.kafka.records import (
    Output,
    Record,
    Unusable,
    dead_letter_output,
    decode_for,
    outputs_of,
    partition_of,
)
from streams.worker import metrics
from streams.worker.state_codec import decode_slot, decode_state, encode_slot, encode_state, slot_has_waiting

log = structlog.get_logger(__name__)

DECODED_CACHE_SIZE = 20_000


@dataclass
class BatchResult:
    # key -> (new state, or None: delete the key; the last record that changed it)
    states: dict[bytes, tuple[bytes | None, Record]] = field(default_factory=dict)
    outputs: list[Output] = field(default_factory=list)
    tally: metrics.Tally = field(default_factory=metrics.Tally)  # published once the batch is done


class _Base:
    def __init__(self, codec: Codec):
        self.codec = codec

    def emit(self, result: BatchResult, event) -> None:
        result.outputs.extend(outputs_of(self.codec, event))
        result.tally.add(metrics.OUTPUTS, type(event).__name__)
        if isinstance(event, ev.DunningActionDue):
            result.tally.add(metrics.ACTIONS, event.workflow, event.step_name, event.channel)
            log.info("dunning action due", debtor_id=event.debtor_id, action_id=event.action_id,
                     channel=event.channel, step=event.step_name, total_minor=event.total_minor)

    def dead_letter(self, result: BatchResult, record: Record, reason: str, field_name: str | None = None) -> None:
        result.outputs.append(dead_letter_output(self.codec, record, reason))
        result.tally.add(consumer_metrics.DEAD_LETTERS, record.topic, field_name or "decode")
        log.warning("event dead-lettered", topic=record.topic, partition=record.partition,
                    offset=record.offset, reason=reason, key=(record.key or b"").decode("utf-8", "replace"))

    def decode(self, result: BatchResult, record: Record, allowed: tuple[type, ...]):
        if record.value is None:  # a tombstone deletes a key on a compacted topic; no event to apply
            result.tally.add(consumer_metrics.TOMBSTONES, record.topic)
            return None
        try:
            event = decode_for(self.codec, record.topic, record.value, allowed)
        except Unusable as exc:
            self.dead_letter(result, record, exc.reason, exc.field)
            return None
        result.tally.add(metrics.EVENTS_IN, record.topic, type(event).__name__)
        try:
            bounds.check(event)  # what the rest of the pipeline can hold, as dunning publish checks it
        except ev.InvalidEvent as exc:
            self.dead_letter(result, record, f"{type(event).__name__} {exc}", exc.field)
            return None
        return event


class LedgerProcessor(_Base):
    """Debtor events and day ticks -> new debtor states, actions, alerts, snapshots."""

    def __init__(self, codec: Codec, policy: Policy, partitions: int):
        super().__init__(codec)
        self.policy = policy
        self.partitions = partitions
        self._totals: dict[bytes, tuple[str, int, int]] = {}  # key -> (currency, open, overdue)
        # Decoded states of recently written debtors, valid while the table still holds
        # the same bytes object: decoding is a large share of the per-event cost.
        self._decoded: dict[bytes, tuple[bytes, DebtorState]] = {}
        self._partitions: dict[bytes, int] = {}

    def process(
        self,
        records: Iterable[Record],
        load: Callable[[bytes], Optional[bytes]],
        keys: Callable[[], Iterable[bytes]],
    ) -> BatchResult:
        result = BatchResult()
        states: dict[bytes, DebtorState] = {}

        def state_of(key: bytes) -> DebtorState:
            if key in states:
                return states[key]
            raw = load(key)
            if raw is None:
                return DebtorState(key.decode())
            cached = self._decoded.get(key)
            if cached is not None and cached[0] is raw:
                return cached[1]  # the very bytes this worker wrote: no need to decode them
            return decode_state(raw)

        for record in records:
            event = self.decode(result, record, topics.LEDGER.types)
            if event is None:
                continue
            if isinstance(event, ev.DayStarted):
                # Debtors stored before this batch, and those this batch created so far.
                owned = [k for k in set(keys()).union(states) if self._partition(k) == record.partition]
                for key in owned:
                    self._apply(result, states, state_of(key), key, event, record)
                log.info("day started", business_date=event.business_date.isoformat(),
                         partition=record.partition, debtors=len(owned))
                metrics.LAST_DAY_STARTED.set(time.time())
                continue
            key = event.debtor_id.encode()
            if record.key != key:
                self.dead_letter(result, record, f"record key {record.key!r} is not the debtor_id {event.debtor_id!r}", "key")
                continue
            self._apply(result, states, state_of(key), key, event, record)

        totals: dict[bytes, tuple[str, int, int]] = {}
        for key, (_, record) in result.states.items():
            state = states[key]
            raw = encode_state(state)
            result.states[key] = (raw, record)
            if state.debtor is not None:
                summary = snapshot(state, self.policy)
                self.emit(result, summary)
                totals[key] = (summary.currency, state.open_minor, summary.overdue_minor)
        for key, (raw, _) in result.states.items():
            self._remember_decoded(key, raw, states[key])
        self._track_totals(result.tally, totals)
        result.tally.publish()
        return result

    def _apply(self, result, states, state, key, event, record) -> None:
        try:
            new_state, outputs = apply(state, event, self.policy)
        except ev.InvalidEvent as exc:
            self.dead_letter(result, record, f"{type(event).__name__} {exc}", exc.field)
            return
        if new_state is state:
            return
        states[key] = new_state
        result.states[key] = (b"", record)  # encoded once, after the batch
        for output in outputs:
            self.emit(result, output)

    def forget(self, partitions: set[int]) -> None:
        """The debtors of ``partitions``, which this worker no longer owns, leave its
        gauges and its cache: the worker that takes them over counts them from then on."""
        tally = metrics.Tally()
        for key in [key for key in self._totals if self._partition(key) in partitions]:
            currency, open_minor, overdue_minor = self._totals.pop(key)
            tally.add(metrics.OPEN_AMOUNT, currency, amount=-open_minor)
            tally.add(metrics.OVERDUE_AMOUNT, currency, amount=-overdue_minor)
            tally.add(metrics.DEBTORS, amount=-1)
        for key in [key for key in self._decoded if self._partition(key) in partitions]:
            del self._decoded[key]
        tally.publish()

    def _partition(self, key: bytes) -> int:
        """``partition_of``, remembered: every tick asks it for every debtor held."""
        partition = self._partitions.get(key)
        if partition is None:
            partition = self._partitions[key] = partition_of(key, self.partitions)
        return partition

    def _remember_decoded(self, key: bytes, raw: bytes, state: DebtorState) -> None:
        self._decoded.pop(key, None)
        self._decoded[key] = (raw, state)
        if len(self._decoded) > DECODED_CACHE_SIZE:
            del self._decoded[next(iter(self._decoded))]  # the least recently written

    def _track_totals(self, tally: metrics.Tally, totals: dict[bytes, tuple[str, int, int]]) -> None:
        """Open and overdue amounts of the debtors held: what changed since they were last seen."""
        for key, current in totals.items():
            previous = self._totals.get(key)
            if previous:
                tally.add(metrics.OPEN_AMOUNT, previous[0], amount=-previous[1])
                tally.add(metrics.OVERDUE_AMOUNT, previous[0], amount=-previous[2])
            else:
                tally.add(metrics.DEBTORS)
            tally.add(metrics.OPEN_AMOUNT, current[0], amount=current[1])
            tally.add(metrics.OVERDUE_AMOUNT, current[0], amount=current[2])
        self._totals.update(totals)


class BankProcessor(_Base):
    """Bank transactions -> re-keyed by payment reference for the matcher."""

    def process(self, records: Iterable[Record]) -> BatchResult:
        result = BatchResult()
        for record in records:
            payment = self.decode(result, record, topics.BANK.types)
            if payment is None:
                continue
            result.outputs.append(Output(topics.MATCHING.name, matching.matching_key(payment).encode(), record.value))
        result.tally.publish()
        return result


class MatchingProcessor(_Base):
    """The matcher's inputs (payments, index entries, probes, day ticks), keyed by the
    matcher's key: its slots and index entries (``streams.core.matching``) in the table,
    matches, probes and unmatched payments out."""

    def __init__(self, codec: Codec, partitions: int):
        super().__init__(codec)
        self.partitions = partitions

    def process(
        self,
        records: Iterable[Record],
        load: Callable[[bytes], Optional[bytes]],
        items: Callable[[], Iterable[tuple[bytes, bytes]]],
    ) -> BatchResult:
        result = BatchResult()
        slots: dict[bytes, Slot | Known] = {}  # changed in this batch

        def slot_of(key: bytes) -> Slot | Known:
            if key in slots:
                return slots[key]
            raw = load(key)
            return matching.empty_at(key.decode()) if raw is None else decode_slot(raw)

        def step(key: bytes, change, event, record: Record) -> None:
            before = slot_of(key)
            try:
                slot, outputs = change(before, event)
            except ev.InvalidEvent as exc:
                self.dead_letter(result, record, f"{type(event).__name__} {exc}", exc.field)
                return
            if slot is not before:  # a payment matched at once changes no slot: nothing to write
                slots[key] = slot
                result.states[key] = (b"", record)  # encoded once, after the batch
            for output in outputs:
                self.emit(result, output)

        for record in records:
            event = self.decode(result, record, topics.MATCHING.types)
            if event is None:
                continue
            kind = type(event)
            if kind is ev.DayStarted:
                # The slots of this partition with payments waiting: stored, or changed in this batch.
                waiting = {key for key, raw in items() if slot_has_waiting(raw)}
                waiting.update(key for key, slot in slots.items() if getattr(slot, "waiting", ()))
                for key in sorted(waiting):
                    if partition_of(key, self.partitions) == record.partition:
                        step(key, lambda slot, tick: matching.on_day(slot, tick.business_date), event, record)
            elif kind is ev.PaymentReceived:
                step(matching.matching_key(event).encode(), matching.on_payment, event, record)
            elif kind is ev.PaymentAllocated:
                step(matching.matching_key(event).encode(), matching.on_allocated, event, record)
            elif kind is ev.ReferenceIssued or kind is ev.ReferenceRetired:  # under each of its keys: the record's says which
                keys = matching.index_keys(event)
                key = record.key.decode(errors="replace") if record.key else ""
                if key not in keys:
                    self.dead_letter(result, record, f"{kind.__name__} is keyed {key!r}, not by one of {keys}", "key")
                    continue
                change = matching.on_issued if kind is ev.ReferenceIssued else matching.on_retired
                step(record.key, lambda slot, index_event: change(slot, index_event, key), event, record)
            else:
                key = matching.index_key(event)
                step(key.encode(), matching.on_probe if kind is ev.PaymentProbe else matching.on_index, event, record)
        for key, (_, record) in result.states.items():
            slot = slots[key]
            result.states[key] = (None if matching.holds_nothing(slot) else encode_slot(slot), record)
        result.tally.publish()
        return result


LAG_SAMPLES_PER_BATCH = 64


def lag_seconds(records: list[Record]) -> None:
    """Observe the lag of up to ``LAG_SAMPLES_PER_BATCH`` records spread over the batch:
    records of one batch lag alike, and an observation costs microseconds."""
    now = time.time()
    stride = max(1, -(-len(records) // LAG_SAMPLES_PER_BATCH))  # rounded up: never more than the samples
    for record in records[::stride]:
        metrics.EVENT_LAG_SECONDS.observe(max(0.0, now - record.timestamp))
