"""BACKWARD_TRANSITIVE checks with the Apache ``avro`` reference checker.

BACKWARD: a consumer on the new schema reads data written with an older one. TRANSITIVE: with
every older one, because changelogs and replays hold data of all versions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType


def why_unreadable(reader: dict, writer: dict) -> str | None:
    """Why data written with ``writer`` cannot be read with ``reader``; None when it can."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer))
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    kinds = ", ".join(sorted({i.value for i in result.incompatibilities}))
    details = "; ".join(sorted(result.messages))
    where = ", ".join(sorted(loc for loc in result.locations if loc != "/"))
    return f"{kinds}: {details}" + (f" at {where}" if where else "")


def backward_transitive_problems(new: dict, earlier: Iterable[tuple[str, dict]]) -> list[str]:
    """One line per earlier schema (labelled) that the new schema cannot read."""
    problems = []
    for label, old in earlier:
        reason = why_unreadable(new, old)
        if reason:
            problems.append(f"cannot read {label}: {reason}")
    return problems
