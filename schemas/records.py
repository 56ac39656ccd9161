"""Event dataclasses to and from the plain dicts fastavro reads and writes.

Built once per class: a field-name list read with one ``attrgetter`` call, plus converters for
the few fields that need one. ``dataclasses.asdict`` would deep-copy every value and is several
times slower on the hot path.

Dates and timestamps are converted here, not by fastavro's logical-type hooks: those cost about
a microsecond per field, a sizeable share of encoding a small event. fastavro is therefore given
``physical_schema(...)``, the same schema with those two logical types left to their plain
``int``/``long``; the bytes on the wire are identical.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from functools import cache
from operator import attrgetter

from schemas.shapes import Kind, shape_of

ToRecord = Callable[[object], dict]
FromRecord = Callable[[dict], object]

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)
_CONVERTED_LOGICAL_TYPES = {"date", "timestamp-millis"}


def _days(value: date) -> int:
    return value.toordinal() - _EPOCH_ORDINAL


def _date(days: int) -> date:
    return date.fromordinal(days + _EPOCH_ORDINAL)


def _millis(value: datetime) -> int:
    if value.tzinfo is None:  # naive means UTC here, never the machine's local time
        value = value.replace(tzinfo=timezone.utc)
    return (value - _EPOCH) // _MILLISECOND


def _datetime(millis: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=millis)


def _or_none(convert: Callable) -> Callable:
    return lambda value: None if value is None else convert(value)


def physical_schema(schema: object) -> object:
    """``schema`` with the logical types converted here replaced by their underlying type."""
    if isinstance(schema, list):
        return [physical_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("logicalType") in _CONVERTED_LOGICAL_TYPES:
        return schema["type"]
    out = dict(schema)
    if "fields" in out:
        out["fields"] = [dict(f, type=physical_schema(f["type"])) for f in out["fields"]]
    if "items" in out:
        out["items"] = physical_schema(out["items"])
    if isinstance(out.get("type"), (dict, list)):
        out["type"] = physical_schema(out["type"])
    return out


@cache
def to_record_fn(cls: type) -> ToRecord:
    """A function that turns an instance of ``cls`` into a dict for fastavro."""
    shapes = shape_of(cls)
    names = tuple(s.name for s in shapes)
    values_of = attrgetter(*names) if len(names) > 1 else (lambda e: (getattr(e, names[0]),))
    converters: list[tuple[str, Callable]] = []
    for s in shapes:
        if s.kind is Kind.RECORD_ARRAY:
            item = to_record_fn(s.record)
            convert: Callable | None = lambda v, item=item: [item(x) for x in v]
        else:
            convert = {Kind.DATE: _days, Kind.TIMESTAMP: _millis}.get(s.kind)
        if convert is not None:
            converters.append((s.name, _or_none(convert) if s.optional else convert))

    if not converters:
        return lambda event: dict(zip(names, values_of(event)))

    def to_record(event: object) -> dict:
        record = dict(zip(names, values_of(event)))
        for name, convert in converters:
            record[name] = convert(record[name])
        return record

    return to_record


@cache
def from_record_fn(cls: type) -> FromRecord:
    """A function that builds an instance of ``cls`` from a dict fastavro read."""
    converters: list[tuple[str, Callable]] = []
    for s in shape_of(cls):
        if s.kind is Kind.RECORD_ARRAY:
            item = from_record_fn(s.record)
            convert: Callable | None = lambda v, item=item: tuple(item(x) for x in v)
        else:
            convert = {Kind.DATE: _date, Kind.TIMESTAMP: _datetime, Kind.STRING_ARRAY: tuple}.get(s.kind)
        if convert is not None:
            converters.append((s.name, _or_none(convert) if s.optional else convert))

    if not converters:
        return lambda record: cls(**record)

    def from_record(record: dict) -> object:
        for name, convert in converters:
            record[name] = convert(record[name])
        return cls(**record)

    return from_record
