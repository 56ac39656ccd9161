"""How each field of an event dataclass maps to a wire value.

The Avro codec and the JSON form both walk events field by field; this is the one table they
share, derived from the dataclass annotations so it cannot drift from ``events.py``.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache

REQUIRED = dataclasses.MISSING  # the default of a field that has none


class Kind(enum.Enum):
    STRING = "string"
    LONG = "long"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"
    BYTES = "bytes"
    STRING_ARRAY = "string array"
    RECORD_ARRAY = "record array"


_SCALARS = {
    str: Kind.STRING,
    int: Kind.LONG,
    bool: Kind.BOOLEAN,
    date: Kind.DATE,
    datetime: Kind.TIMESTAMP,
    bytes: Kind.BYTES,
}


@dataclass(frozen=True)
class FieldShape:
    name: str
    kind: Kind
    optional: bool  # None is allowed
    default: object  # REQUIRED when the dataclass has no default
    record: type | None = None  # element type of a RECORD_ARRAY

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@cache
def shape_of(cls: type) -> tuple[FieldShape, ...]:
    """The fields of an event dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    shapes = []
    for field in dataclasses.fields(cls):
        kind, optional, record = _classify(hints[field.name], cls, field.name)
        shapes.append(FieldShape(field.name, kind, optional, field.default, record))
    return tuple(shapes)


def _classify(hint: object, cls: type, name: str) -> tuple[Kind, bool, type | None]:
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"{cls.__name__}.{name}: only Optional[X] unions are supported")
        hint, optional = args[0], True
    if hint in _SCALARS:
        return _SCALARS[hint], optional, None  # type: ignore[index]
    if typing.get_origin(hint) is tuple:
        item, ellipsis = typing.get_args(hint)
        if ellipsis is not Ellipsis:
            raise TypeError(f"{cls.__name__}.{name}: only tuple[X, ...] is supported")
        if item is str:
            return Kind.STRING_ARRAY, optional, None
        if dataclasses.is_dataclass(item):
            return Kind.RECORD_ARRAY, optional, item
    raise TypeError(f"{cls.__name__}.{name}: unsupported type {hint!r}")
