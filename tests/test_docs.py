"""docs/integrators.md: its examples are valid events and it covers the whole contract.

Every ```json block is one event in the JSON form, exactly as ``dunning publish`` reads it; each
event type has exactly one example, in its own section, that survives the Avro codec; every topic
is named and every field table lists the fields of its schema.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from schemas import topics
from schemas.codec import HEADER_SIZE, MAGIC_BYTE, Codec
from schemas.json_form import JsonFormError, parse_json_line
from streams.core import events as ev

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "integrators.md"
TEXT = GUIDE.read_text(encoding="utf-8")
LINES = TEXT.splitlines()

_HEADING = re.compile(r"^(#{4,5}) (\w+)$")  # #### event type, ##### nested record
_FIELD_ROW = re.compile(r"^\| `(\w+)` \|")
_RECORD_TYPES = {cls.__name__: cls for cls in (*ev.ALL_TYPES, *ev.NESTED_TYPES.values())}


@dataclass(frozen=True)
class Example:
    line_no: int  # 1-based line of the JSON object in the guide
    text: str
    section: str | None  # the nearest #### heading above it


def _examples() -> list[Example]:
    found, section, block_start = [], None, None
    for number, line in enumerate(LINES, start=1):
        heading = _HEADING.match(line)
        if heading and heading.group(1) == "####":
            section = heading.group(2)
        if line == "```json":
            block_start = number
        elif line == "```" and block_start is not None:
            body = LINES[block_start:number - 1]
            assert len(body) == 1, f"docs/integrators.md:{block_start}: a json block holds one object on one line"
            found.append(Example(block_start + 1, body[0], section))
            block_start = None
    return found


EXAMPLES = _examples()


def _event(example: Example) -> object:
    return parse_json_line(example.text, example.line_no)


def test_every_json_block_is_read():
    # A block the reader missed would escape every check below.
    assert len(EXAMPLES) == TEXT.count("```json\n") > 0


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"line{e.line_no}")
def test_example_is_a_valid_event_in_its_own_section(example):
    event = _event(example)  # raises JsonFormError naming the guide's line and the field
    assert type(event).__name__ == example.section


def test_every_event_type_has_exactly_one_example():
    counts = Counter(type(_event(e)).__name__ for e in EXAMPLES)
    assert counts == Counter({cls.__name__: 1 for cls in ev.ALL_TYPES})


def _topic_cases() -> list[tuple[Example, str]]:
    """Every (example, topic) its type travels on; an invalid example is left to the test above,
    so that it fails one test instead of the collection."""
    cases = []
    for example in EXAMPLES:
        try:
            event_type = type(_event(example))
        except JsonFormError:
            continue
        cases.extend((example, spec.name) for spec in topics.ALL if event_type in spec.types)
    return cases


@pytest.mark.parametrize("example, topic", _topic_cases(), ids=lambda v: v if isinstance(v, str) else f"line{v.line_no}")
def test_example_round_trips_through_the_codec(example, topic):
    codec = Codec()
    event = _event(example)
    data = codec.encode(topic, event)
    assert data[0] == MAGIC_BYTE
    assert int.from_bytes(data[1:HEADER_SIZE], "big") == codec.schema_id(topic, type(event))
    assert codec.decode(data) == event


def test_every_event_type_travels_on_some_topic():
    # Otherwise the round-trip cases above would silently leave a type out.
    assert {type(_event(example)) for example, _ in _topic_cases()} == set(ev.ALL_TYPES)


@pytest.mark.parametrize("spec", topics.ALL, ids=lambda s: s.name)
def test_every_topic_is_named(spec):
    assert f"`{spec.name}`" in TEXT


def _field_tables() -> dict[str, list[str]]:
    """Record name -> field names of the first table under its #### or ##### heading."""
    tables: dict[str, list[str]] = {}
    current = None
    for line in LINES:
        heading = _HEADING.match(line)
        if heading:
            current = heading.group(2) if heading.group(2) in _RECORD_TYPES else None
            continue
        row = _FIELD_ROW.match(line)
        if current is not None and row:
            tables.setdefault(current, []).append(row.group(1))
        elif current in tables and not line.startswith("|"):
            current = None  # the table ended; later tables of the section are not field tables
    return tables


def test_field_tables_list_the_fields_of_every_record_in_order():
    expected = {name: [f.name for f in dataclasses.fields(cls)] for name, cls in _RECORD_TYPES.items()}
    assert _field_tables() == expected
