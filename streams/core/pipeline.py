"""The whole topology in memory: what ``dunning simulate`` runs, and what tests compare
the streaming pipeline with.

It routes exactly as the Faust app does: ledger events to their debtor, payments to the
matcher's slot of their reference, a DayStarted to every matcher slot and every debtor,
and ReferenceIssued / PaymentMatched outputs back into the matcher and the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.core import events as ev
from streams.core import matching
from streams.core.ledger import apply
from streams.core.policy import Policy
from streams.core.snapshot import snapshot
from streams.core.state import DebtorState


@dataclass
class Pipeline:
    policy: Policy
    debtors: dict[str, DebtorState] = field(default_factory=dict)
    slots: dict[str, matching.Slot] = field(default_factory=dict)  # the matcher's, by matching key
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
            if outputs and type(outputs[0]) is ev.PaymentMatched:  # a payment is matched alone, or not at all
                return [outputs[0], *self._to_debtor(outputs[0].debtor_id, outputs[0])]
            return outputs
        if kind is ev.DayStarted:
            outputs = []
            for key in sorted(self.waiting):
                slot, reported = matching.on_day(self.slots[key])
                self.slots[key] = slot
                outputs.extend(reported)
            for debtor_id in sorted(self.debtors):
                outputs.extend(self._to_debtor(debtor_id, event))
            return outputs
        return self._to_debtor(event.debtor_id, event)

    def _to_debtor(self, debtor_id: str, event) -> list:
        state = self.debtors.get(debtor_id) or DebtorState(debtor_id)
        state, outputs = apply(state, event, self.policy)
        self.debtors[debtor_id] = state
        matched = None
        for output in outputs:
            if type(output) is ev.ReferenceIssued:
                slot, found = matching.on_reference(self.slots.get(output.reference, matching.EMPTY), output)
                self.slots[output.reference] = slot
                if found:
                    self.waiting.discard(output.reference)
                    matched = (matched or []) + self._matched(found)
        return outputs + matched if matched else outputs

    def _matched(self, outputs: list) -> list:
        """The matcher's outputs, each match followed by what it does to its debtor."""
        results: list = []
        for output in outputs:
            results.append(output)
            if type(output) is ev.PaymentMatched:
                results.extend(self._to_debtor(output.debtor_id, output))
        return results

    def snapshots(self) -> list[ev.DebtorSnapshot]:
        return [snapshot(s, self.policy) for _, s in sorted(self.debtors.items()) if s.debtor is not None]
