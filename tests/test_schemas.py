"""The Avro layer: schema files, the versioned registry file, the wire-format codec."""

from __future__ import annotations

import base64
import dataclasses
import json
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.runners import make_codec
from dunning.settings import load_settings
from schemas import catalog, registry_file, topics
from schemas.codec import Codec, DecodeError, EncodeError
from schemas.registry import SchemaRegistry
from schemas.registry_file import IncompatibleSchema, RegistryFile
from schemas.shapes import REQUIRED, Kind, shape_of
from streams.core import events as ev
from tests.support import free_port, start_schema_registry

ROOT = Path(__file__).resolve().parents[1]
NESTED = {ev.ActionItem, ev.SnapshotItem, ev.SnapshotDispute, ev.SnapshotPromise}

# --------------------------------------------------------------------------- sample events

_UTC = timezone.utc


def _sample_value(kind: Kind, name: str, record: type | None) -> object:
    if kind is Kind.STRING:
        return "EUR" if name == "currency" else f"{name}-ü€"  # non-ASCII on purpose
    if kind is Kind.LONG:
        return -(2**40) - len(name)  # large and negative: the codec must not care
    if kind is Kind.BOOLEAN:
        return True
    if kind is Kind.DATE:
        return date(2025, 2, 28)
    if kind is Kind.TIMESTAMP:
        return datetime(2025, 2, 28, 9, 30, 15, 123000, tzinfo=_UTC)
    if kind is Kind.BYTES:
        return b"\x00\xff raw"
    if kind is Kind.STRING_ARRAY:
        return ("INV-1", "INV-2")
    return (full(record), minimal(record))


def full(cls: type) -> object:
    """An event with every field set, optional ones included."""
    return cls(**{s.name: _sample_value(s.kind, s.name, s.record) for s in shape_of(cls)})


def minimal(cls: type) -> object:
    """An event with only the fields that have no default."""
    values = {}
    for s in shape_of(cls):
        if s.required:
            values[s.name] = None if s.optional else _sample_value(s.kind, s.name, s.record)
            if s.kind is Kind.RECORD_ARRAY:
                values[s.name] = ()
    return cls(**values)


def _topics_of(cls: type) -> list[str]:
    return [t.name for t in topics.ALL if cls in t.types]


CASES = [
    pytest.param(topic, sample(cls), id=f"{cls.__name__}-{sample.__name__}-{topic}")
    for cls in ev.ALL_TYPES
    for topic in _topics_of(cls)
    for sample in (full, minimal)
]


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(RegistryFile())


# --------------------------------------------------------------------------- .avsc files


def _expected_avro_type(kind: Kind, record: type | None) -> object:
    return {
        Kind.STRING: "string",
        Kind.LONG: "long",
        Kind.BOOLEAN: "boolean",
        Kind.BYTES: "bytes",
        Kind.DATE: {"type": "int", "logicalType": "date"},
        Kind.TIMESTAMP: {"type": "long", "logicalType": "timestamp-millis"},
        Kind.STRING_ARRAY: {"type": "array", "items": "string"},
    }.get(kind) or {"type": "array", "items": record.__name__}


def _assert_record_matches(schema: dict, cls: type) -> None:
    assert schema["type"] == "record" and schema["name"] == cls.__name__
    assert schema["doc"].strip()
    shapes = shape_of(cls)
    assert [f["name"] for f in schema["fields"]] == [s.name for s in shapes]
    for field, shape in zip(schema["fields"], shapes, strict=True):
        where = f"{cls.__name__}.{shape.name}"
        assert field["doc"].strip(), where
        avro_type = field["type"]
        if shape.kind is Kind.RECORD_ARRAY:
            nested = avro_type["items"]
            _assert_record_matches(nested, shape.record)
            avro_type = {"type": "array", "items": nested["name"]}
        expected = _expected_avro_type(shape.kind, shape.record)
        if shape.optional:
            assert avro_type == ["null", expected], where
            assert field["default"] is None, where
        else:
            assert avro_type == expected, where
        if shape.kind in (Kind.STRING_ARRAY, Kind.RECORD_ARRAY):
            assert field["default"] == [], where
        elif shape.default is not REQUIRED:
            assert field["default"] == shape.default and type(field["default"]) is type(shape.default), where
        elif not shape.optional:
            assert "default" not in field, where


@pytest.mark.parametrize("cls", ev.ALL_TYPES, ids=lambda c: c.__name__)
def test_schema_file_mirrors_the_dataclass(cls):
    schema = catalog.load_schema(cls.__name__)
    assert schema["namespace"] == "nl.dunning.events"
    _assert_record_matches(schema, cls)
    parse_schema(schema)  # fastavro accepts it
    avro.schema.parse(json.dumps(schema))  # and so does the reference implementation


def test_there_is_one_schema_file_per_event_type_and_no_other():
    files = {p.stem for p in catalog.SCHEMA_DIR.glob("*.avsc")}
    assert files == {cls.__name__ for cls in ev.ALL_TYPES}
    assert not files & {cls.__name__ for cls in NESTED}  # nested records live inside their parent


def test_dataclass_defaults_become_avro_defaults():
    fields = {f["name"]: f for f in catalog.load_schema("DebtorRegistered")["fields"]}
    assert fields["currency"]["default"] == "EUR"
    assert fields["segment"]["default"] == "default"
    assert fields["language"]["default"] == "nl"
    assert fields["intercompany"]["default"] is False
    assert fields["email"]["default"] is None


# --------------------------------------------------------------------------- codec


@pytest.mark.parametrize(("topic", "event"), CASES)
def test_every_event_type_round_trips(codec, topic, event):
    assert codec.decode(codec.encode(topic, event)) == event


def test_nested_records_come_back_as_dataclasses_in_tuples(codec):
    snapshot = full(ev.DebtorSnapshot)
    decoded = codec.decode(codec.encode(topics.SNAPSHOTS.name, snapshot))
    assert isinstance(decoded.items, tuple) and len(decoded.items) == 2
    assert isinstance(decoded.items[0], ev.SnapshotItem)
    assert decoded.items[0].issue_date == date(2025, 2, 28)
    assert decoded.items[1].paused is None
    assert isinstance(decoded.promises[0], ev.SnapshotPromise)
    promise = codec.decode(codec.encode(topics.LEDGER.name, full(ev.PromiseToPayMade)))
    assert promise.invoice_ids == ("INV-1", "INV-2")


def test_wire_format_is_magic_byte_then_schema_id_then_avro_body(codec):
    event = ev.InvoiceIssued("e-1", "D-1", "INV-1", date(2025, 1, 1), date(2025, 1, 31), 12_50)
    data = codec.encode("dunning.ledger", event)
    subject = "dunning.ledger-nl.dunning.events.InvoiceIssued"
    latest_id = registry_file.load()[subject][-1].id
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == latest_id == codec.schema_id("dunning.ledger", ev.InvoiceIssued)
    # The body is plain Avro: fastavro with the .avsc (logical types and all) reads it.
    body = schemaless_reader(BytesIO(data[5:]), parse_schema(catalog.load_schema("InvoiceIssued")))
    assert body == {
        "event_id": "e-1", "debtor_id": "D-1", "invoice_id": "INV-1",
        "issue_date": date(2025, 1, 1), "due_date": date(2025, 1, 31),
        "amount_minor": 1250, "currency": "EUR", "payment_reference": None,
    }


def test_a_type_on_two_topics_is_written_with_each_subjects_id(codec):
    payment = full(ev.PaymentReceived)
    bank = codec.encode(topics.BANK.name, payment)
    matching = codec.encode(topics.MATCHING.name, payment)
    assert bank[1:5] != matching[1:5]
    assert bank[5:] == matching[5:]
    assert codec.decode(bank) == codec.decode(matching) == payment


def test_datetimes_decode_as_utc_and_naive_ones_are_taken_as_utc(codec):
    amsterdam = timezone(timedelta(hours=1))
    aware = ev.DeliveryResult("e", "A-1", "D-1", "email", "sent", datetime(2025, 3, 1, 10, 0, 0, 7000, tzinfo=amsterdam))
    decoded = codec.decode(codec.encode(topics.DELIVERIES.name, aware))
    assert decoded.attempted_at == datetime(2025, 3, 1, 9, 0, 0, 7000, tzinfo=timezone.utc)
    assert decoded.attempted_at.tzinfo is not None
    naive = dataclasses.replace(aware, attempted_at=datetime(2025, 3, 1, 9, 0, 0))
    assert codec.decode(codec.encode(topics.DELIVERIES.name, naive)).attempted_at == datetime(
        2025, 3, 1, 9, 0, 0, tzinfo=timezone.utc
    )


def test_data_written_with_an_older_schema_version_decodes_with_the_current_one():
    # Version 1 of InvoiceIssued, before payment_reference existed.
    current = catalog.load_schema("InvoiceIssued")
    old = dict(current, fields=[f for f in current["fields"] if f["name"] != "payment_reference"])
    old_id = 9001

    class TwoVersions(RegistryFile):
        def schema_for(self, schema_id):
            return old if schema_id == old_id else super().schema_for(schema_id)

    out = BytesIO()
    out.write(bytes([0]) + old_id.to_bytes(4, "big"))
    schemaless_writer(out, parse_schema(old), {
        "event_id": "e", "debtor_id": "d", "invoice_id": "i", "issue_date": date(2025, 1, 1),
        "due_date": date(2025, 2, 1), "amount_minor": 10, "currency": "USD",
    })
    decoded = Codec(TwoVersions()).decode(out.getvalue())
    assert decoded == ev.InvoiceIssued("e", "d", "i", date(2025, 1, 1), date(2025, 2, 1), 10, "USD", None)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter than the 5-byte header"),
        (b"\x00\x00\x00", "shorter than the 5-byte header"),
        (b"\x01\x00\x00\x00\x02rest", "bad magic byte 1"),
        (b"{\"type\": \"InvoiceIssued\"}", "bad magic byte 123"),
        (b"\x00\x00\x00\x27\x0f\x02", "unknown schema id 9999"),
    ],
)
def test_garbage_is_refused_with_a_clear_reason(codec, data, reason):
    with pytest.raises(DecodeError) as refused:
        codec.decode(data)
    assert reason in refused.value.reason
    assert not refused.value.transient


def test_a_truncated_body_is_refused(codec):
    data = codec.encode(topics.LEDGER.name, full(ev.InvoiceIssued))
    for cut in (6, len(data) // 2, len(data) - 1):
        with pytest.raises(DecodeError, match="truncated body"):
            codec.decode(data[:cut])


def test_bytes_after_the_record_are_refused(codec):
    data = codec.encode(topics.LEDGER.name, full(ev.DayStarted))
    with pytest.raises(DecodeError, match="2 bytes left after the record"):
        codec.decode(data + b"\x00\x00")


def test_a_body_that_is_not_the_record_is_refused(codec):
    header = codec.encode(topics.LEDGER.name, full(ev.DayStarted))[:5]
    with pytest.raises(DecodeError, match="body does not decode"):
        codec.decode(header + b"\x08\xff\xfe\xfd\xfc\x02")  # a 4-byte "string" that is not UTF-8


_SHARED_SOURCE = RegistryFile()


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=80), schema_id=st.sampled_from([1, 2, 13, 20, 22, 5000]))
def test_any_bytes_decode_to_an_event_or_a_decode_error(body, schema_id):
    codec = Codec(_SHARED_SOURCE)
    data = bytes([0]) + schema_id.to_bytes(4, "big") + body
    try:
        event = codec.decode(data)
    except DecodeError as refused:
        assert refused.reason
    else:
        assert type(event) in ev.ALL_TYPES


def test_encoding_refuses_what_it_cannot_encode(codec):
    @dataclasses.dataclass(frozen=True)
    class Stranger:
        event_id: str

    with pytest.raises(EncodeError, match="is not an event type"):
        codec.encode(topics.LEDGER.name, Stranger("x"))
    with pytest.raises(EncodeError, match="InvoiceIssued"):
        codec.encode(topics.LEDGER.name, dataclasses.replace(full(ev.InvoiceIssued), amount_minor="12.50"))
    with pytest.raises(EncodeError, match="registry_file --update"):
        codec.encode(topics.ACTIONS.name, full(ev.InvoiceIssued))  # no such subject


# --------------------------------------------------------------------------- registry file


def test_registry_file_matches_the_schema_files():
    assert registry_file.check() == []


def test_registry_file_check_command_passes():
    result = subprocess.run(
        [sys.executable, "-m", "schemas.registry_file", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "matches" in result.stdout


def test_registry_file_has_every_subject_with_stable_unique_ids():
    registry = registry_file.load()
    assert set(catalog.subjects()) <= set(registry)
    assert "dunning.bank-transactions-nl.dunning.events.PaymentReceived" in registry
    assert "dunning.matching-nl.dunning.events.PaymentReceived" in registry
    assert "dunning.dead-letters-nl.dunning.events.DeadLetter" in registry
    ids = [v.id for versions in registry.values() for v in versions]
    assert len(ids) == len(set(ids))
    for subject, versions in registry.items():
        assert [v.version for v in versions] == list(range(1, len(versions) + 1)), subject


def test_every_version_of_every_subject_is_readable_by_the_latest():
    checker = ReaderWriterCompatibilityChecker()
    for subject, versions in registry_file.load().items():
        latest = avro.schema.parse(json.dumps(versions[-1].schema))
        for version in versions:
            result = checker.get_compatibility(latest, avro.schema.parse(json.dumps(version.schema)))
            assert result.compatibility is SchemaCompatibilityType.compatible, (subject, version.version)


@pytest.fixture
def workspace(tmp_path) -> tuple[Path, Path]:
    """A copy of the schema folder to change freely: (registry.json, folder of .avsc)."""
    folder = tmp_path / "schemas"
    folder.mkdir()
    for path in catalog.SCHEMA_DIR.glob("*.avsc"):
        shutil.copy(path, folder)
    shutil.copy(registry_file.REGISTRY_PATH, folder / "registry.json")
    return folder / "registry.json", folder


def _edit_schema(folder: Path, name: str, change) -> None:
    path = folder / f"{name}.avsc"
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema, indent=2))


def test_update_appends_a_new_version_for_a_compatible_change(workspace):
    registry_path, folder = workspace
    before = registry_file.load(registry_path)
    _edit_schema(folder, "PaymentReceived", lambda s: s["fields"].append(
        {"name": "batch_id", "type": ["null", "string"], "default": None, "doc": "Batch the booking came in."}
    ))
    assert any("PaymentReceived" in p for p in registry_file.check(registry_path, folder))

    appended = registry_file.update(registry_path, folder)

    after = registry_file.load(registry_path)
    assert len(appended) == 2  # the type lives on two topics: two subjects
    top = max(v.id for versions in before.values() for v in versions)
    for subject in ("dunning.bank-transactions-nl.dunning.events.PaymentReceived",
                    "dunning.matching-nl.dunning.events.PaymentReceived"):
        assert [v.version for v in after[subject]] == [v.version for v in before[subject]] + [len(before[subject]) + 1]
        assert after[subject][:-1] == before[subject]  # old ids are stable
        assert after[subject][-1].id > top
    assert {s: v for s, v in after.items() if "PaymentReceived" not in s} == {
        s: v for s, v in before.items() if "PaymentReceived" not in s
    }
    assert registry_file.check(registry_path, folder) == []
    assert registry_file.update(registry_path, folder) == []  # nothing left to do


def test_update_refuses_a_field_without_default_and_writes_nothing(workspace):
    registry_path, folder = workspace
    original = registry_path.read_bytes()
    _edit_schema(folder, "InvoiceIssued", lambda s: s["fields"].append(
        {"name": "vat_minor", "type": "long", "doc": "VAT in minor units."}
    ))
    with pytest.raises(IncompatibleSchema) as refused:
        registry_file.update(registry_path, folder)
    assert refused.value.subject == "dunning.ledger-nl.dunning.events.InvoiceIssued"
    assert "reader_field_missing_default_value" in str(refused.value)
    assert "vat_minor" in str(refused.value)
    assert registry_path.read_bytes() == original


def test_update_refuses_a_type_change_against_any_earlier_version(workspace):
    registry_path, folder = workspace
    # v2 adds an optional field: fine.
    _edit_schema(folder, "DayStarted", lambda s: s["fields"].append(
        {"name": "note", "type": ["null", "string"], "default": None, "doc": "Why."}
    ))
    registry_file.update(registry_path, folder)
    # v3 turns business_date into a string: cannot read v1 or v2 data.
    _edit_schema(folder, "DayStarted", lambda s: s["fields"][1].update(type="string"))
    with pytest.raises(IncompatibleSchema) as refused:
        registry_file.update(registry_path, folder)
    assert "version 1" in str(refused.value) and "version 2" in str(refused.value)
    assert "type_mismatch" in str(refused.value)


def test_update_command_exits_non_zero_naming_the_subject(workspace):
    registry_path, folder = workspace
    _edit_schema(folder, "DeadLetter", lambda s: s["fields"].append({"name": "attempts", "type": "int", "doc": "n"}))
    args = ["--update", "--registry", str(registry_path), "--schemas", str(folder)]
    result = subprocess.run([sys.executable, "-m", "schemas.registry_file", *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert "refused: dunning.dead-letters-nl.dunning.events.DeadLetter" in result.stderr
    assert "attempts" in result.stderr
    check = subprocess.run(
        [sys.executable, "-m", "schemas.registry_file", "--check", "--registry", str(registry_path), "--schemas", str(folder)],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert check.returncode == 1 and "DeadLetter.avsc differs" in check.stderr


# --------------------------------------------------------------------------- Confluent registry


@pytest.fixture
def schema_registry():
    server, state = start_schema_registry()
    try:
        yield server.url, state
    finally:
        server.stop()


def test_confluent_registry_registers_each_subject_once_and_decodes_by_id(schema_registry):
    url, state = schema_registry
    producer = Codec(SchemaRegistry(url))
    invoice = full(ev.InvoiceIssued)
    first = producer.encode(topics.LEDGER.name, invoice)
    producer.encode(topics.LEDGER.name, invoice)
    assert state.requests == [("POST", "/subjects/dunning.ledger-nl.dunning.events.InvoiceIssued/versions")]
    assert int.from_bytes(first[1:5], "big") == state.subjects["dunning.ledger-nl.dunning.events.InvoiceIssued"][0]
    assert producer.decode(first) == invoice  # its own schema: no GET needed
    assert [r for r in state.requests if r[0] == "GET"] == []

    # Both subjects of PaymentReceived get registered; the registry gives them one id.
    payment = full(ev.PaymentReceived)
    bank, matching = producer.encode(topics.BANK.name, payment), producer.encode(topics.MATCHING.name, payment)
    assert set(state.subjects) >= {
        "dunning.bank-transactions-nl.dunning.events.PaymentReceived",
        "dunning.matching-nl.dunning.events.PaymentReceived",
    }
    assert bank[1:5] == matching[1:5]

    consumer = Codec(SchemaRegistry(url))
    assert consumer.decode(first) == invoice
    assert consumer.decode(first) == invoice
    schema_id = int.from_bytes(first[1:5], "big")
    assert state.requests.count(("GET", f"/schemas/ids/{schema_id}")) == 1  # cached after the first


def test_confluent_registry_unknown_id_is_a_decode_error(schema_registry):
    url, _ = schema_registry
    with pytest.raises(DecodeError, match="unknown schema id 4242") as refused:
        Codec(SchemaRegistry(url)).decode(b"\x00" + (4242).to_bytes(4, "big") + b"\x02")
    assert not refused.value.transient


def test_unreachable_registry_is_a_transient_error(schema_registry):
    url, _ = schema_registry
    dead = "http://127.0.0.1:1"  # nothing listens on port 1
    with pytest.raises(EncodeError, match="unreachable") as refused:
        Codec(SchemaRegistry(dead, timeout=2)).encode(topics.LEDGER.name, full(ev.DayStarted))
    assert refused.value.transient
    data = Codec(SchemaRegistry(url)).encode(topics.LEDGER.name, full(ev.DayStarted))
    with pytest.raises(DecodeError, match="unreachable") as refused:
        Codec(SchemaRegistry(dead, timeout=2)).decode(data)
    assert refused.value.transient


def test_the_settings_pick_the_registry_from_schema_registry_url(schema_registry):
    url, state = schema_registry
    remote = make_codec(load_settings({"SCHEMA_REGISTRY_URL": url}))
    assert isinstance(remote.source, SchemaRegistry)
    remote.encode(topics.ALERTS.name, full(ev.LimitWarning))
    assert "dunning.alerts-nl.dunning.events.LimitWarning" in state.subjects
    local = make_codec(load_settings({}))
    assert isinstance(local.source, RegistryFile)
    assert local.schema_id(topics.ALERTS.name, ev.LimitWarning) == registry_file.load()[
        "dunning.alerts-nl.dunning.events.LimitWarning"
    ][-1].id


@pytest.mark.parametrize("how", ["in the url", "as variables"])
def test_the_registry_gets_basic_auth_and_no_error_shows_the_password(schema_registry, how, caplog):
    caplog.set_level("DEBUG")  # the HTTP client logs each request with its URL
    url, state = schema_registry
    host = url.removeprefix("http://")
    if how == "in the url":
        environ = {"SCHEMA_REGISTRY_URL": f"http://ops:s3cr3t-pw@{host}"}
    else:
        environ = {"SCHEMA_REGISTRY_URL": url, "SCHEMA_REGISTRY_USER": "ops", "SCHEMA_REGISTRY_PASSWORD": "s3cr3t-pw"}
    codec = make_codec(load_settings(environ))
    codec.encode(topics.ALERTS.name, full(ev.LimitWarning))
    expected = "Basic " + base64.b64encode(b"ops:s3cr3t-pw").decode()
    assert state.authorizations and set(state.authorizations) == {expected}

    state.available = False
    with pytest.raises(EncodeError) as refused:
        make_codec(load_settings(environ)).encode(topics.ALERTS.name, full(ev.LimitBreached))
    assert "503" in str(refused.value) and host in str(refused.value)
    assert "s3cr3t" not in str(refused.value) and "ops:" not in str(refused.value)
    dead = {**environ, "SCHEMA_REGISTRY_URL": environ["SCHEMA_REGISTRY_URL"].replace(host, f"127.0.0.1:{free_port()}")}
    with pytest.raises(EncodeError) as unreachable:
        make_codec(load_settings(dead)).encode(topics.ALERTS.name, full(ev.LimitBreached))
    assert "unreachable" in str(unreachable.value) and "s3cr3t" not in str(unreachable.value)
    assert repr(load_settings(environ)).count("s3cr3t") == 0
    assert caplog.records and not [r for r in caplog.records if "s3cr3t" in r.getMessage()]


def test_a_registry_that_refuses_a_subject_is_a_clear_error_not_a_crash(schema_registry):
    url, _ = schema_registry
    with pytest.raises(EncodeError, match="answered 404") as refused:  # the fake knows no /wrong/ prefix
        Codec(SchemaRegistry(url + "/wrong")).encode(topics.ALERTS.name, full(ev.LimitWarning))
    assert not refused.value.transient
