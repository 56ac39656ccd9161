"""Offline simulation: the same core as the streaming worker, on a list of events.

Use it to try a policy change on last year's events before it goes live. Outputs come
in the order the pipeline produces them; an event the core refuses yields a
``Rejected`` record with its position and reason instead of stopping the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

from streams.core import events as ev
from streams.core.bounds import check
from streams.core.pipeline import Pipeline
from streams.core.policy import Policy

# The matcher's index entries and probes: how a result comes about, not a result.
INTERNAL_HOPS = (ev.ReferenceIssued, ev.PayerLearned, ev.PaymentProbe)


@dataclass(frozen=True, slots=True)
class Rejected:
    position: int  # 1-based position of the event in the input
    event_id: str
    reason: str
    field: str | None


def simulate(events: Iterable, policy: Policy, snapshots: bool = False) -> Iterator:
    pipeline = Pipeline(policy)
    for position, event in enumerate(events, start=1):
        try:
            check(event)  # the bounds every field must keep, as the worker checks them on decoding
            outputs = pipeline.process(event)
        except ev.InvalidEvent as exc:
            yield Rejected(position, getattr(event, "event_id", ""), f"{type(event).__name__} {exc}", exc.field)
            continue
        for output in outputs:
            if type(output) not in INTERNAL_HOPS:
                yield output
    if snapshots:
        yield from pipeline.snapshots()
