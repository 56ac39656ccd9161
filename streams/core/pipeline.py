"""The whole topology in memory: what ``dunning simulate`` runs, and what tests compare
the streaming pipeline with.

It routes exactly as the Faust app does: ledger events to their debtor, payments through
the reference matcher, a DayStarted to every debtor, and ReferenceIssued / PaymentMatched
outputs back into the matcher and the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.core import events as ev
from streams.core.ledger import apply
from streams.core.matching import ReferenceEntry, entry_for, match_payment
from streams.core.policy import Policy
from streams.core.snapshot import snapshot
from streams.core.state import DebtorState


@dataclass
class Pipeline:
    policy: Policy
    debtors: dict[str, DebtorState] = field(default_factory=dict)
    references: dict[str, ReferenceEntry] = field(default_factory=dict)

    def process(self, event) -> list:
        """Outputs of one input event, including internal hops, in the order they arise.
        An invalid event raises ``InvalidEvent`` and changes nothing."""
        kind = type(event)
        if kind is ev.PaymentReceived:
            result = match_payment(self.references, event)
            if type(result) is ev.PaymentMatched:
                return [result, *self._to_debtor(result.debtor_id, result)]
            return [result]
        if kind is ev.DayStarted:
            outputs: list = []
            for debtor_id in sorted(self.debtors):
                outputs.extend(self._to_debtor(debtor_id, event))
            return outputs
        return self._to_debtor(event.debtor_id, event)

    def _to_debtor(self, debtor_id: str, event) -> list:
        state = self.debtors.get(debtor_id) or DebtorState(debtor_id)
        state, outputs = apply(state, event, self.policy)
        self.debtors[debtor_id] = state
        for output in outputs:
            if type(output) is ev.ReferenceIssued:
                self.references[output.reference] = entry_for(output)
        return outputs

    def snapshots(self) -> list[ev.DebtorSnapshot]:
        return [snapshot(s, self.policy) for _, s in sorted(self.debtors.items()) if s.debtor is not None]
