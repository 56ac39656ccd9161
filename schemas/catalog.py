"""The ``.avsc`` files next to this module and the registry subjects they are published under.

Subjects follow Confluent's TopicRecordNameStrategy, ``<topic>-<namespace>.<RecordName>``,
because several record types share one topic.
"""

from __future__ import annotations

import json
from pathlib import Path

from schemas import topics

SCHEMA_DIR = Path(__file__).resolve().parent
NAMESPACE = "nl.dunning.events"


def full_name(record_name: str) -> str:
    return f"{NAMESPACE}.{record_name}"


def subject_name(topic: str, record_name: str) -> str:
    return f"{topic}-{full_name(record_name)}"


def schema_path(record_name: str, schema_dir: Path = SCHEMA_DIR) -> Path:
    return schema_dir / f"{record_name}.avsc"


def load_schema(record_name: str, schema_dir: Path = SCHEMA_DIR) -> dict:
    """The current schema of one event type, as JSON."""
    return json.loads(schema_path(record_name, schema_dir).read_text(encoding="utf-8"))


def subjects() -> dict[str, type]:
    """Every subject of the platform and the event type registered under it, in topic order."""
    return {
        subject_name(topic.name, cls.__name__): cls
        for topic in topics.ALL
        for cls in topic.types
    }



def canonical(schema: dict) -> str:
    """One text per schema, to compare schemas and to send them to a registry."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
