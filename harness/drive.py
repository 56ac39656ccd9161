"""Publishing a timeline of days into a running pipeline, day by day.

Within a day: the tick, then the ledger events, then the bank transactions. Before the
bank transactions go out, the matcher must know every payment reference issued so far,
and before the next day starts every payment must be matched or reported unmatched;
that keeps the streaming result equal to the in-memory pipeline's, whatever the speed
of the worker.
"""

from __future__ import annotations

from typing import Callable

from connectors.publisher import Publisher
from harness.sample_ledger import Day
from harness.watch import TopicWatcher
from streams.core import events as ev


def drive(publisher: Publisher, watcher: TopicWatcher, days: list[Day], timeout: float = 60.0,
          before_day: Callable[[int], None] | None = None) -> None:
    referenced: set[str] = set()  # invoice ids whose payment reference the matcher must know
    for index, day in enumerate(days):
        if before_day:
            before_day(index)
        publisher.publish(day.tick)
        for event in day.ledger:
            publisher.publish(event)
            if isinstance(event, ev.InvoiceIssued) and event.payment_reference:
                referenced.add(event.invoice_id)
        publisher.flush()
        if not day.payments:
            continue
        expected_refs = set(referenced)
        watcher.wait_for(lambda w: expected_refs <= {e.invoice_id for e in w.events("ReferenceIssued")},
                         timeout, f"{len(expected_refs)} payment references indexed")
        for payment in day.payments:
            publisher.publish(payment)
        publisher.flush()
        paid = {p.transaction_id for p in day.payments}
        watcher.wait_for(
            lambda w: paid <= {e.transaction_id for e in w.events("PaymentMatched")}
            | {e.transaction_id for e in w.events("PaymentUnmatched")},
            timeout, f"{len(paid)} payments of {day.date} matched or reported unmatched",
        )


def wait_until_day_done(watcher: TopicWatcher, debtor_ids: set[str], day, timeout: float = 60.0) -> None:
    """Every debtor has a snapshot on or after the given business date."""
    def done(w: TopicWatcher) -> bool:
        latest = {s.debtor_id for s in w.events("DebtorSnapshot") if s.business_date and s.business_date >= day}
        return debtor_ids <= latest
    watcher.wait_for(done, timeout, f"snapshots of {len(debtor_ids)} debtors for {day}")
    watcher.wait_caught_up(timeout)  # and whatever else was produced before them
