"""Publishing a timeline of days into a running pipeline, day by day.

Each day: its tick, then its ledger events and bank transactions in the ``order`` asked
for: ``ledger-first``, ``bank-first``, or ``mixed`` (the two interleaved at random, each in
its own order). Nothing else is waited for between them: a payment that reaches the
matcher before its invoice's reference waits for it. The tick of the next day is the
barrier, as in production: it goes out once the worker has processed everything before it
(``streams.kafka.progress.WorkerProgress``), so the streamed result equals the in-memory
pipeline's whatever the order and the speed of the worker.
"""

from __future__ import annotations

import random
from typing import Callable

from connectors.publisher import Publisher
from harness.sample_ledger import Day
from harness.watch import TopicWatcher
from streams.kafka.progress import WorkerProgress

ORDERS = ("ledger-first", "bank-first", "mixed")


def day_events(day: Day, order: str, rng: random.Random) -> list:
    """The day's ledger events and payments in ``order`` (the tick not included)."""
    if order == "ledger-first":
        return [*day.ledger, *day.payments]
    if order == "bank-first":
        return [*day.payments, *day.ledger]
    if order != "mixed":
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    ledger, payments, out = list(day.ledger), list(day.payments), []
    while ledger or payments:
        source = ledger if ledger and (not payments or rng.random() < len(ledger) / (len(ledger) + len(payments))) \
            else payments
        out.append(source.pop(0))
    return out


def drive(publisher: Publisher, days: list[Day], timeout: float = 60.0, order: str = "ledger-first", seed: int = 0,
          before_day: Callable[[int], None] | None = None) -> None:
    """Publishes ``days``; returns once the worker has processed all of them."""
    rng = random.Random(seed)
    barrier = publisher.before_tick or WorkerProgress(publisher.bootstrap, timeout=timeout)
    publisher.before_tick = barrier
    for index, day in enumerate(days):
        if before_day:
            before_day(index)
        publisher.publish(day.tick)
        for event in day_events(day, order, rng):
            publisher.publish(event)
        publisher.flush()
    barrier()


def wait_until_day_done(watcher: TopicWatcher, debtor_ids: set[str], day, timeout: float = 60.0) -> None:
    """Every debtor has a snapshot on or after the given business date."""
    def done(w: TopicWatcher) -> bool:
        latest = {s.debtor_id for s in w.events("DebtorSnapshot") if s.business_date and s.business_date >= day}
        return debtor_ids <= latest
    watcher.wait_for(done, timeout, f"snapshots of {len(debtor_ids)} debtors for {day}")
    watcher.wait_caught_up(timeout)  # and whatever else was produced before them
