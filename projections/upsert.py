"""Insert-or-update in one statement, the same way on PostgreSQL and SQLite.

Both dialects speak ``INSERT ... ON CONFLICT``; SQLAlchemy exposes it through a
dialect-specific ``insert`` with the same API, so choosing it is all this module does.
Rows go to the database as one executemany (pipelined by psycopg 3).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

ROWS_KEY = "dunning_rows_written"  # in Connection.info: rows written per table

_INSERT_BY_DIALECT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}

Row = dict[str, Any]
# Builds the extra condition of the DO UPDATE from the stored row and the proposed one.
Guard = Callable[[Table, Any], ColumnElement[bool]]


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[Row],
    *,
    keys: Sequence[str],
    update: Iterable[str] | None = None,
    only_if: Guard | None = None,
) -> None:
    """Insert ``rows``; on a key conflict overwrite the ``update`` columns (default: all
    non-key columns present in the rows) when ``only_if`` holds, or keep the stored row
    when there is nothing to update. Rows must be unique by ``keys`` (PostgreSQL refuses
    to touch one row twice in a statement).
    """
    if not rows:
        return
    statement = _INSERT_BY_DIALECT[connection.dialect.name](table)
    columns = [name for name in rows[0] if name not in keys] if update is None else list(update)
    if columns:
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: excluded[name] for name in columns},
            where=only_if(table, excluded) if only_if is not None else None,
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    connection.execute(statement, list(rows))
    # Counted per table, and published by the projector once the transaction is committed.
    connection.info.setdefault(ROWS_KEY, collections.Counter())[table.name] += len(rows)


def insert_missing(connection: Connection, table: Table, rows: Sequence[Row], *, keys: Sequence[str]) -> None:
    """Insert the rows whose key is not stored yet; stored rows stay as they are."""
    upsert(connection, table, rows, keys=keys, update=())


def unique_by(rows: Iterable[Row], keys: Sequence[str]) -> list[Row]:
    """The rows with the last one winning per key, in first-seen key order."""
    latest: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        latest[tuple(row[key] for key in keys)] = row
    return list(latest.values())
