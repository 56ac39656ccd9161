"""The whole topology in memory: what ``dunning simulate`` runs, and what tests compare
the streaming pipeline with.

It routes exactly as the Faust app does: ledger events to their debtor, payments to the
matcher's entry of their reference (or of their transaction id), index entries and
probes to their key, and a DayStarted first to every matcher entry with payments waiting
(the probes set out, visit the indexes and reach their debtors), then to every debtor,
as the clock's two-phase tick does in the stream. ReferenceIssued, PayerLearned,
PaymentProbe and the matcher's PaymentMatched are internal hops, routed on at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.core import events as ev
from streams.core import matching
from streams.core.cascade import NOTHING_KNOWN, NUMBER, NUMBER_KEY, with_target
from streams.core.ledger import apply
from streams.core.policy import Policy
from streams.core.snapshot import snapshot
from streams.core.state import DebtorState


@dataclass
class Pipeline:
    policy: Policy
    debtors: dict[str, DebtorState] = field(default_factory=dict)
    slots: dict[str, object] = field(default_factory=dict)  # the matcher's Slot or Known, by key
    waiting: set[str] = field(default_factory=set)  # the keys of the slots with payments waiting

    def process(self, event) -> list:
        """Outputs of one input event, including internal hops, in the order they arise.
        An invalid event raises ``InvalidEvent`` and changes nothing."""
        kind = type(event)
        if kind is ev.PaymentReceived:
            key = matching.matching_key(event)
            slot, outputs = matching.on_payment(self.slots.get(key, matching.EMPTY), event)
            if slot.waiting:  # otherwise the slot is as it was: a payment matched or refused changes none
                self.slots[key] = slot
                self.waiting.add(key)
            return self._from_matcher(outputs)
        if kind is ev.PaymentAllocated:
            key = matching.matching_key(event)
            before = self.slots.get(key, matching.EMPTY)
            slot, outputs = matching.on_allocated(before, event)
            if slot is not before:
                self._store(key, slot)
            return self._from_matcher(outputs)
        if kind is ev.DayStarted:
            outputs = []
            for key in sorted(self.waiting):
                slot, found = matching.on_day(self.slots[key], event.business_date)
                self._store(key, slot)
                outputs.extend(self._from_matcher(found))
            for debtor_id in sorted(self.debtors):
                outputs.extend(self._to_debtor(debtor_id, event))
            return outputs
        return self._to_debtor(event.debtor_id, event)

    def _store(self, key: str, slot: matching.Slot | matching.Known) -> None:
        if getattr(slot, "waiting", ()):  # an index entry (Known) has none
            self.slots[key] = slot
            return
        self.waiting.discard(key)
        if matching.holds_nothing(slot):
            self.slots.pop(key, None)  # the stream deletes the key too
        else:
            self.slots[key] = slot

    def _to_debtor(self, debtor_id: str, event) -> list:
        state = self.debtors.get(debtor_id) or DebtorState(debtor_id)
        state, outputs = apply(state, event, self.policy)
        self.debtors[debtor_id] = state
        hops = None
        for output in outputs:
            kind = type(output)
            if kind is ev.ReferenceIssued:  # one per invoice, the most frequent hop: written out
                number = output.reference if output.kind == NUMBER else output.number
                if number:  # its number's entry (``matching.index_keys``)
                    key = NUMBER_KEY + number
                    self.slots[key] = with_target(self.slots.get(key, NOTHING_KNOWN), output.debtor_id,
                                                  output.invoice_id)
                if output.kind == NUMBER:
                    continue
                key = output.reference
                slot, found = matching.on_reference(self.slots.get(key, matching.EMPTY), output)
                self.slots[key] = slot
                if found:
                    if not slot.waiting:
                        self.waiting.discard(key)
                    hops = (hops or []) + self._from_matcher(found)
            elif kind is ev.PayerLearned:
                found = self._index(output)
                if found:
                    hops = (hops or []) + self._from_matcher(found)
            elif kind is ev.ReferenceRetired:
                for key in matching.index_keys(output):
                    slot, _ = matching.on_retired(self.slots.get(key, matching.empty_at(key)), output, key)
                    self._store(key, slot)
        return outputs + hops if hops else outputs

    def _index(self, event: ev.PayerLearned) -> list:
        key = matching.index_key(event)
        known, found = matching.on_index(self.slots.get(key, matching.NOTHING_KNOWN), event)
        self.slots[key] = known
        return found

    def _from_matcher(self, outputs: list) -> list:
        """The matcher's outputs, each match or probe followed by where it goes next."""
        results: list = []
        for output in outputs:
            results.append(output)
            kind = type(output)
            if kind is ev.PaymentMatched:
                results.extend(self._to_debtor(output.debtor_id, output))
            elif kind is ev.PaymentProbe:
                if output.debtor_id is not None:
                    results.extend(self._to_debtor(output.debtor_id, output))
                else:
                    key = matching.index_key(output)
                    _, found = matching.on_probe(self.slots.get(key, matching.NOTHING_KNOWN), output)
                    results.extend(self._from_matcher(found))
        return results

    def snapshots(self) -> list[ev.DebtorSnapshot]:
        return [snapshot(s, self.policy) for _, s in sorted(self.debtors.items()) if s.debtor is not None]
