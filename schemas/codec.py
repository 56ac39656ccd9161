"""Events to and from Avro in the Confluent wire format.

A message is the magic byte 0, the writer schema's id as 4 bytes big-endian, then the Avro
binary body. Encoding writes with the event type's current ``.avsc``; decoding reads with the
writer schema the id names and resolves it to the current ``.avsc`` of the same record, so data
written with any earlier version still decodes (the registry keeps them BACKWARD_TRANSITIVE).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas import catalog
from schemas.records import from_record_fn, physical_schema, to_record_fn
from schemas.source import SchemaError, SchemaSource, SchemaSourceError
from streams.core.events import EVENT_TYPES_BY_NAME

MAGIC_BYTE = 0
HEADER_SIZE = 5


class DecodeError(SchemaError):
    """A message that cannot be decoded; when ``transient`` (the registry out of reach) the
    message itself may be fine."""


class EncodeError(SchemaError):
    """An event that cannot be encoded (unknown type, a value that does not fit its schema, or
    no schema id)."""


@dataclass(slots=True, frozen=True)
class _Writer:
    header: bytes
    schema: dict  # parsed
    to_record: Callable[[object], dict]


@dataclass(slots=True, frozen=True)
class _Reader:
    writer_schema: dict  # parsed
    reader_schema: dict | None  # parsed; None when it equals the writer schema (no resolution)
    from_record: Callable[[dict], object]


class Codec:
    def __init__(self, source: SchemaSource | None = None, schema_dir: Path = catalog.SCHEMA_DIR):
        if source is None:
            from schemas.registry_file import RegistryFile

            source = RegistryFile()
        self.source = source
        self._schema_dir = schema_dir
        self._current: dict[str, tuple[dict, dict]] = {}  # record name -> (schema JSON, parsed)
        self._writers: dict[tuple[str, type], _Writer] = {}
        self._readers: dict[int, _Reader] = {}

    # ------------------------------------------------------------------ encoding

    def encode(self, topic: str, event: object) -> bytes:
        writer = self._writers.get((topic, type(event))) or self._writer_for(topic, type(event))
        out = BytesIO()
        out.write(writer.header)
        try:
            schemaless_writer(out, writer.schema, writer.to_record(event))
        except Exception as exc:  # fastavro raises many types for a value that does not fit
            raise EncodeError(f"{type(event).__name__}: {type(exc).__name__}: {exc}") from exc
        return out.getvalue()

    def schema_id(self, topic: str, event_type: type) -> int:
        """The id ``encode`` writes for this type on this topic."""
        writer = self._writers.get((topic, event_type)) or self._writer_for(topic, event_type)
        return int.from_bytes(writer.header[1:], "big")

    def _writer_for(self, topic: str, event_type: type) -> _Writer:
        name = event_type.__name__
        if EVENT_TYPES_BY_NAME.get(name) is not event_type:
            raise EncodeError(f"{event_type.__module__}.{event_type.__qualname__} is not an event type")
        schema, parsed = self._current_schema(name)
        subject = catalog.subject_name(topic, name)
        try:
            schema_id = self.source.id_for(subject, schema)
        except SchemaSourceError as exc:
            raise EncodeError(exc.reason, transient=exc.transient) from exc
        header = bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big")
        writer = _Writer(header, parsed, to_record_fn(event_type))
        self._writers[topic, event_type] = writer
        return writer

    # ------------------------------------------------------------------ decoding

    def decode(self, data: bytes) -> object:
        if len(data) < HEADER_SIZE:
            raise DecodeError(f"message of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
        if data[0] != MAGIC_BYTE:
            raise DecodeError(f"bad magic byte {data[0]} (expected {MAGIC_BYTE}): not in the Confluent wire format")
        schema_id = int.from_bytes(data[1:HEADER_SIZE], "big")
        reader = self._readers.get(schema_id) or self._reader_for(schema_id)
        body = BytesIO(data)
        body.seek(HEADER_SIZE)
        try:
            record = schemaless_reader(body, reader.writer_schema, reader.reader_schema)
        except EOFError:
            raise DecodeError(f"schema id {schema_id}: truncated body") from None
        except Exception as exc:
            raise DecodeError(f"schema id {schema_id}: body does not decode: {type(exc).__name__}: {exc}") from exc
        if body.tell() != len(data):
            raise DecodeError(f"schema id {schema_id}: {len(data) - body.tell()} bytes left after the record")
        try:
            return reader.from_record(record)
        except Exception as exc:
            raise DecodeError(f"schema id {schema_id}: record does not fit its event type: {exc}") from exc

    def _reader_for(self, schema_id: int) -> _Reader:
        try:
            writer_schema = self.source.schema_for(schema_id)
        except SchemaSourceError as exc:
            raise DecodeError(exc.reason, transient=exc.transient) from exc
        except Exception as exc:  # e.g. a registry answer that is not a schema
            raise DecodeError(f"schema id {schema_id}: cannot load the schema: {exc}") from exc
        if writer_schema is None:
            raise DecodeError(f"unknown schema id {schema_id}")
        name = _event_name(writer_schema)
        if name is None:
            raise DecodeError(f"schema id {schema_id} is not an event schema of {catalog.NAMESPACE}")
        current, current_parsed = self._current_schema(name)
        try:
            writer_parsed = parse_schema(physical_schema(writer_schema))
        except Exception as exc:
            raise DecodeError(f"schema id {schema_id}: invalid schema: {exc}") from exc
        same = catalog.canonical(writer_schema) == catalog.canonical(current)
        reader = _Reader(writer_parsed, None if same else current_parsed, from_record_fn(EVENT_TYPES_BY_NAME[name]))
        self._readers[schema_id] = reader
        return reader

    def _current_schema(self, record_name: str) -> tuple[dict, dict]:
        if record_name not in self._current:
            schema = catalog.load_schema(record_name, self._schema_dir)
            self._current[record_name] = (schema, parse_schema(physical_schema(schema)))
        return self._current[record_name]


def _event_name(schema: object) -> str | None:
    """The event type a writer schema describes, by its full record name."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    name = str(schema.get("name", ""))
    namespace, _, short = name.rpartition(".")
    namespace = namespace or schema.get("namespace", "")
    return short if namespace == catalog.NAMESPACE and short in EVENT_TYPES_BY_NAME else None
