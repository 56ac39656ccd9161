"""Every channel of the platform, in one list: its name (as the policy names it), how it
delivers, and whether it leaves a task for a person. The policy check, the sink and the
projector ask this list; adding a channel is a line here and the channel's own module.

The list names each channel's class by its module path and imports it only when the sink
builds its channels: the worker and the projector ask the list without loading the sink.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
# A template name is a plain identifier; "_" marks partials, so it may not lead.
TEMPLATE_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Channel:
    name: str
    delivers: str  # in a few words, for the docs and the check-policy report
    leaves_task: bool  # a person acts on it: the projector keeps it in the tasks table
    deliverer: str  # "module:Class", built with the sink's parts (sinks.delivery.SinkParts)

    def build(self, parts):
        module, _, name = self.deliverer.partition(":")
        return getattr(import_module(module), name)(parts)


CHANNELS = (
    Channel("email", "an e-mail over SMTP (SMTP_URL), or an .eml file in DATA_DIR/outbox", False,
            "sinks.email:EmailChannel"),
    Channel("sms", "a task for a person to send the SMS", True, "sinks.tasks:TaskChannel"),
    Channel("letter", "a task for a person to send the letter", True, "sinks.tasks:TaskChannel"),
    Channel("call", "a call task on the call list", True, "sinks.tasks:TaskChannel"),
    Channel("collection", "a task to hand the debtor over to the collection agency", True, "sinks.tasks:TaskChannel"),
)
BY_NAME = {channel.name: channel for channel in CHANNELS}


def names() -> tuple[str, ...]:
    return tuple(BY_NAME)


def task_channels() -> frozenset[str]:
    """The channels whose actions leave a task for a person."""
    return frozenset(channel.name for channel in CHANNELS if channel.leaves_task)


def available_templates(template_dir: Path = TEMPLATE_DIR) -> dict[str, frozenset[str]]:
    """The message templates shipped per language (``nl``, ``en``): what a policy step may name."""
    return {
        language.name: frozenset(path.name.removesuffix(".txt.j2") for path in language.glob("*.txt.j2")
                                 if TEMPLATE_NAME.fullmatch(path.name.removesuffix(".txt.j2")))
        for language in sorted(template_dir.iterdir()) if language.is_dir()
    }
