"""The business clock: publishes DayStarted, the only way time enters the core.

In production one tick per calendar day (Europe/Amsterdam) shortly after midnight; for
demos and replays a range of dates at a chosen pace. Each tick goes out only once the
worker has processed everything published before it (the publisher's ``before_tick``).
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

import structlog
from prometheus_client import Counter, Gauge

from connectors.publisher import Publisher
from streams.core import events as ev

log = structlog.get_logger(__name__)
ZONE = ZoneInfo("Europe/Amsterdam")

TICKS = Counter("dunning_clock_ticks", "DayStarted ticks published")
BUSINESS_DATE = Gauge(
    "dunning_clock_business_date_timestamp_seconds",
    "The business date of the last tick published, as midnight UTC in seconds since the epoch",
)


def day_started(day: date) -> ev.DayStarted:
    # The id is the date: a tick published twice is the same fact.
    return ev.DayStarted(event_id=f"day:{day.isoformat()}", business_date=day)


def waiting_for_worker(seconds: float) -> None:
    log.warning("the next tick waits for the worker to process what came before it", waited_seconds=round(seconds))


def tick(publisher: Publisher, day: date) -> None:
    publisher.publish(day_started(day))
    publisher.flush()
    TICKS.inc()
    BUSINESS_DATE.set(datetime.combine(day, datetime.min.time(), timezone.utc).timestamp())
    log.info("day started", business_date=day.isoformat())


def run_range(publisher: Publisher, start: date, days: int, interval: float) -> None:
    for offset in range(days):
        tick(publisher, start + timedelta(days=offset))
        if interval and offset < days - 1:
            time.sleep(interval)


def run_calendar(publisher: Publisher, now: Callable[[], datetime] = lambda: datetime.now(ZONE)) -> None:
    """Tick today, then every midnight; runs until stopped."""
    while True:
        current = now()
        tick(publisher, current.date())
        tomorrow = datetime.combine(current.date() + timedelta(days=1), datetime.min.time(), ZONE)
        time.sleep(max(1.0, (tomorrow - now()).total_seconds() + 1))
