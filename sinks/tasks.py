"""The channels a person delivers (SMS, letter, call, collection hand-over): the projector
writes a task row from the action itself, so the sink only reports it as recorded."""

from __future__ import annotations

from sinks.delivery import RECORDED, Outcome, SinkParts
from streams.core.events import DunningActionDue


class TaskChannel:
    def __init__(self, parts: SinkParts):
        pass

    def deliver(self, action: DunningActionDue) -> Outcome:
        return Outcome(RECORDED, f"{action.channel} task recorded", RECORDED)

    def give_up(self, action: DunningActionDue, reason: str) -> None:
        pass
