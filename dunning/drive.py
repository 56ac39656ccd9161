"""Publishing a timeline of days into a running pipeline, day by day.

Within a day: the tick, then the ledger events, then the bank transactions. Before the
bank transactions go out, the matcher must know every payment reference issued so far,
and before the next day starts every payment must be matched or reported unmatched;
that keeps the streaming result equal to the in-memory pipeline's, whatever the speed
of the worker.
"""

from __future__ import annotations

from connectors.publisher import Publisher
from dunning.sample_ledger import Day
from dunning.watch import TopicWatcher
from streams.core import events as ev


def drive(publisher: Publisher, watcher: TopicWatcher, days: list[Day], timeout: float = 60.0) -> None:
    references = 0
    payments = 0
    for day in days:
        publisher.publish(day.tick)
        for event in day.ledger:
            publisher.publish(event)
            if isinstance(event, ev.InvoiceIssued) and event.payment_reference:
                references += 1
        publisher.flush()
        if not day.payments:
            continue
        expected_refs = references
        watcher.wait_for(lambda w: len(w.events("ReferenceIssued")) >= expected_refs, timeout,
                         f"{expected_refs} payment references indexed")
        for payment in day.payments:
            publisher.publish(payment)
        publisher.flush()
        payments += len(day.payments)
        expected = payments
        watcher.wait_for(
            lambda w: len({e.transaction_id for e in w.events("PaymentMatched")})
            + len({e.transaction_id for e in w.events("PaymentUnmatched")}) >= expected,
            timeout, f"{expected} payments matched or reported unmatched",
        )


def wait_until_day_done(watcher: TopicWatcher, debtor_ids: set[str], day, timeout: float = 60.0) -> None:
    """Every debtor has a snapshot on or after the given business date."""
    def done(w: TopicWatcher) -> bool:
        latest = {s.debtor_id for s in w.events("DebtorSnapshot") if s.business_date and s.business_date >= day}
        return debtor_ids <= latest
    watcher.wait_for(done, timeout, f"snapshots of {len(debtor_ids)} debtors for {day}")
