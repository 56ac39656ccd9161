"""Where the codec gets schema ids from: the registry file or a Confluent-compatible registry."""

from __future__ import annotations

from typing import Protocol


class SchemaError(ValueError):
    """Something about schemas went wrong; ``reason`` says what. ``transient`` is True only
    when the schema registry could not be reached or answered 5xx: trying again later may work."""

    def __init__(self, reason: str, *, transient: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class SchemaSourceError(SchemaError):
    """The source cannot answer: the schema is not registered, or the registry is unreachable."""


class SchemaSource(Protocol):
    def id_for(self, subject: str, schema: dict) -> int:
        """The id under which ``schema`` is registered for ``subject``."""
        ...

    def schema_for(self, schema_id: int) -> dict | None:
        """The schema with this id; None when no such id exists."""
        ...
