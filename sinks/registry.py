"""Every channel of the platform, in one list: its name (as the policy names it), how it
delivers, and whether it leaves a task for a person. The policy check, the sink and the
projector ask this list; adding a channel is a line here and the channel's own module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sinks.delivery import Deliverer, SinkParts
from sinks.email import EmailChannel
from sinks.tasks import TaskChannel


@dataclass(frozen=True)
class Channel:
    name: str
    delivers: str  # in a few words, for the docs and the check-policy report
    leaves_task: bool  # a person acts on it: the projector keeps it in the tasks table
    build: Callable[[SinkParts], Deliverer]


CHANNELS = (
    Channel("email", "an e-mail over SMTP (SMTP_URL), or an .eml file in DATA_DIR/outbox", False, EmailChannel),
    Channel("sms", "a task for a person to send the SMS", True, TaskChannel),
    Channel("letter", "a task for a person to send the letter", True, TaskChannel),
    Channel("call", "a call task on the call list", True, TaskChannel),
    Channel("collection", "a task to hand the debtor over to the collection agency", True, TaskChannel),
)
BY_NAME = {channel.name: channel for channel in CHANNELS}


def names() -> tuple[str, ...]:
    return tuple(BY_NAME)


def task_channels() -> frozenset[str]:
    """The channels whose actions leave a task for a person."""
    return frozenset(channel.name for channel in CHANNELS if channel.leaves_task)
