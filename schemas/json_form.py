"""The JSON form of events: what integrators write for ``dunning publish`` and ``dunning simulate``.

One JSON object per line, ``{"type": "InvoiceIssued", "event_id": "...", ...}``, with the
dataclass field names. Dates are ``"YYYY-MM-DD"``, date-times ISO 8601 with a UTC offset, bytes
base64, amounts integers in minor units (a decimal amount is refused: money is exact). Every
refusal names the line and the field, so a file with a thousand events can be fixed quickly.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
from datetime import date, datetime, timezone

import orjson

from schemas.shapes import FieldShape, Kind, shape_of
from streams.core import bounds
from streams.core import events as ev

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


class JsonFormError(ValueError):
    """A line or object that is not a valid event, with where (line, field) and why (reason)."""

    def __init__(self, reason: str, *, field: str | None = None, line: int | None = None):
        self.reason = reason
        self.field = field
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ", ".join(
            part
            for part in (
                f"line {self.line}" if self.line is not None else "",
                f'field "{self.field}"' if self.field is not None else "",
            )
            if part
        )
        return f"{where}: {self.reason}" if where else self.reason

    def at_line(self, line: int) -> JsonFormError:
        return JsonFormError(self.reason, field=self.field, line=line)


def parse_json_line(line: str, line_no: int) -> object:
    """The event on one line of a JSON-lines file; ``line_no`` is 1-based, for the message."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise JsonFormError(f"not JSON: {exc}", line=line_no) from None
    try:
        return event_from_json(obj)
    except JsonFormError as exc:
        raise exc.at_line(line_no) from None


def event_from_json(obj: dict) -> object:
    """The event an object of the JSON form describes; ``JsonFormError`` when it is not valid."""
    if not isinstance(obj, dict):
        raise JsonFormError(f"expected a JSON object, got {_json_kind(obj)}")
    if "type" not in obj:
        raise JsonFormError("missing required field", field="type")
    type_name = obj["type"]
    cls = ev.EVENT_TYPES_BY_NAME.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise JsonFormError(
            f"unknown event type {_show(type_name)}{_did_you_mean(type_name, ev.EVENT_TYPES_BY_NAME)}",
            field="type",
        )
    fields = {k: v for k, v in obj.items() if k != "type"}
    event = _build(cls, fields, prefix="")
    if cls in ev.INPUT_TYPES:
        # The bounds of every field (lengths, amounts, dates, text, e-mail...): the rules the
        # worker applies to what it decodes, so that a line refused here would be refused there.
        try:
            bounds.check(event)
        except ev.InvalidEvent as exc:
            raise JsonFormError(exc.reason, field=exc.field) from None
    return event


def event_to_json(event: object) -> dict:
    """The JSON form of an event: ``{"type": ..., **fields}``, every field present."""
    return {"type": type(event).__name__, **_dump(event)}


# --------------------------------------------------------------------------- reading


def _build(cls: type, fields: dict, prefix: str) -> object:
    shapes = shape_of(cls)
    known = {s.name for s in shapes}
    for name in fields:
        if name not in known:
            raise JsonFormError(
                f"unknown field of {cls.__name__}{_did_you_mean(name, known)}", field=prefix + name
            )
    values = {}
    for shape in shapes:
        path = prefix + shape.name
        if shape.name not in fields:
            if shape.required:
                raise JsonFormError("missing required field", field=path)
            continue
        value = _value(shape, fields[shape.name], path)
        _check_domain(cls, shape, value, path)
        values[shape.name] = value
    return cls(**values)


def _value(shape: FieldShape, raw: object, path: str) -> object:
    if raw is None:
        if shape.optional:
            return None
        raise JsonFormError("must not be null", field=path)
    kind = shape.kind
    if kind is Kind.STRING:
        return _expect(isinstance(raw, str), raw, "is not a string", path)
    if kind is Kind.LONG:
        return _integer(shape, raw, path)
    if kind is Kind.BOOLEAN:
        return _expect(isinstance(raw, bool), raw, "is not a boolean (true or false)", path)
    if kind is Kind.DATE:
        return _date(raw, path)
    if kind is Kind.TIMESTAMP:
        return _timestamp(raw, path)
    if kind is Kind.BYTES:
        return _bytes(raw, path)
    _expect(isinstance(raw, list), raw, "is not an array", path)
    if kind is Kind.STRING_ARRAY:
        return tuple(
            _expect(isinstance(item, str), item, "is not a string", f"{path}[{i}]")
            for i, item in enumerate(raw)
        )
    items = []
    for i, item in enumerate(raw):
        _expect(isinstance(item, dict), item, "is not an object", f"{path}[{i}]")
        items.append(_build(shape.record, item, prefix=f"{path}[{i}]."))
    return tuple(items)


def _integer(shape: FieldShape, raw: object, path: str) -> int:
    if isinstance(raw, float) and shape.name.endswith("_minor"):
        raise JsonFormError(
            f"{_show(raw)} is not an integer: amounts are exact, in minor units (cents), e.g. 1250 for 12.50",
            field=path,
        )
    # bool is a subclass of int in Python, but true is no number.
    _expect(isinstance(raw, int) and not isinstance(raw, bool), raw, "is not an integer", path)
    if not _LONG_MIN <= raw <= _LONG_MAX:
        raise JsonFormError(f"{raw} does not fit in a 64-bit integer", field=path)
    return raw


def _date(raw: object, path: str) -> date:
    if isinstance(raw, str) and _DATE.fullmatch(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise JsonFormError(f"{_show(raw)} is not a date (YYYY-MM-DD)", field=path)


def _timestamp(raw: object, path: str) -> datetime:
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
            raise JsonFormError(
                f"{_show(raw)} has no UTC offset (e.g. 2025-01-31T09:30:00Z or +01:00)", field=path
            )
    raise JsonFormError(f"{_show(raw)} is not an ISO 8601 date-time (e.g. 2025-01-31T09:30:00Z)", field=path)


def _bytes(raw: object, path: str) -> bytes:
    if isinstance(raw, str):
        try:
            return base64.b64decode(raw, validate=True)
        except binascii.Error:
            pass
    raise JsonFormError(f"{_show(raw)} is not base64", field=path)


def _check_domain(cls: type, shape: FieldShape, value: object, path: str) -> None:
    # An input is checked whole once it is built (event_from_json); of the core's own records
    # (internal hops, outputs) only the currency's shape, by the same rule.
    if value is None or cls in ev.INPUT_TYPES or shape.name != "currency":
        return
    try:
        bounds.CURRENCY.check(value, path)  # type: ignore[arg-type]
    except ev.InvalidEvent as exc:
        raise JsonFormError(exc.reason, field=exc.field) from None


def _expect(ok: bool, raw: object, reason: str, path: str) -> object:
    if not ok:
        raise JsonFormError(f"{_show(raw)} {reason}", field=path)
    return raw


def _show(value: object) -> str:
    text = orjson.dumps(value).decode() if _is_json(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_json(value: object) -> bool:
    try:
        orjson.dumps(value)
        return True
    except TypeError:
        return False


def _json_kind(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _did_you_mean(name: object, candidates) -> str:
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


# --------------------------------------------------------------------------- writing


def _dump(record: object) -> dict:
    out = {}
    for shape in shape_of(type(record)):
        value = getattr(record, shape.name)
        if value is None:
            out[shape.name] = None
        elif shape.kind is Kind.DATE:
            out[shape.name] = value.isoformat()
        elif shape.kind is Kind.TIMESTAMP:
            # Naive means UTC, as in the Avro codec.
            out[shape.name] = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
        elif shape.kind is Kind.BYTES:
            out[shape.name] = base64.b64encode(value).decode("ascii")
        elif shape.kind is Kind.STRING_ARRAY:
            out[shape.name] = list(value)
        elif shape.kind is Kind.RECORD_ARRAY:
            out[shape.name] = [_dump(item) for item in value]
        else:
            out[shape.name] = value
    return out
