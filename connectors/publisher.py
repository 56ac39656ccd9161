"""Publishing input events to their topics: what ``dunning publish`` and the demo use.

Each event type goes to its topic (``schemas.topics.INPUT_TOPIC``) keyed by debtor id
(bank transactions by transaction id); a DayStarted goes to every partition of the ledger and
of the matcher (``topics.TICKED``), and is delivered before anything after it is sent.
A record counts as published only once librdkafka reports it delivered.

``publish_file`` reads a JSON-lines file line by line and holds no more than one line
(at most ``MAX_LINE_BYTES``) and the records librdkafka has not yet confirmed: by default it
checks the whole file first and publishes nothing if any line is bad, then reads it again to
publish it; with ``skip_invalid`` it publishes the valid lines in one pass.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import orjson
from confluent_kafka import KafkaError, KafkaException, Producer

from schemas import topics
from schemas.codec import Codec, EncodeError
from schemas.json_form import JsonFormError, parse_json_line
from streams.core import events as ev
from streams.kafka.clients import make_producer, produce
from streams.kafka.producer import DeliveryFailed

# A guard against reading a runaway line into memory, not a field rule: the core bounds
# every field (streams.core.bounds), which keeps an input's record far below this too.
MAX_LINE_BYTES = 1 << 20  # 1 MiB, not counting the newline
MAX_LISTED = 1000  # line numbers listed in a report; the counts are always complete

Record = tuple[str, bytes | None, bytes, int | None]  # topic, key, value, partition (None: by key)


def records_of(codec: Codec, partitions: int, event) -> list[Record]:
    """The records an input event is published as: one, or for a DayStarted one per
    partition of each topic that keeps time (``topics.TICKED``)."""
    spec = topics.INPUT_TOPIC.get(type(event))
    if spec is None:
        raise ValueError(f"{type(event).__name__} is not an input event")
    if isinstance(event, ev.DayStarted):
        return [(ticked.name, None, codec.encode(ticked.name, event), partition)
                for ticked in topics.TICKED for partition in range(partitions)]
    return [(spec.name, topics.key_of(event).encode(), codec.encode(spec.name, event), None)]


def _phases(records: list[Record]) -> list[list[Record]]:
    """A tick's records by topic, in ``topics.TICKED`` order."""
    return [[r for r in records if r[0] == ticked.name] for ticked in topics.TICKED]


def is_tick(records: list[Record]) -> bool:
    """The records of a DayStarted: the only input published without a key."""
    return bool(records) and records[0][1] is None


class Publisher:
    """``before_tick``: called before a DayStarted goes out, once everything published
    before it is delivered; the commands pass ``streams.kafka.progress.WorkerProgress``, so
    that a tick is a barrier (every event before it applied before the day starts). Between
    the phases of a tick its ``between_phases`` is called, if it has one."""

    def __init__(self, bootstrap: str, codec: Codec, partitions: int, producer: Producer | None = None,
                 before_tick: Callable[[], None] | None = None):
        self.bootstrap = bootstrap
        self.codec = codec
        self.before_tick = before_tick
        self.partitions = partitions
        self.producer = producer or make_producer(bootstrap)
        self.delivered = 0  # records the broker confirmed
        self.failed = 0  # records it did not
        self.first_error: str | None = None
        self._failed_at_flush = 0

    def publish(self, event) -> int:
        """Produces the event's records and returns how many; ``flush`` says whether they arrived."""
        records = records_of(self.codec, self.partitions, event)
        self.send(records)
        return len(records)

    def publish_all(self, events: Iterable) -> int:
        count = 0
        for event in events:
            self.publish(event)
            count += 1
        self.flush()
        return count

    def send(self, records: list[Record], on_delivery: Callable[[KafkaError | None], None] | None = None) -> None:
        """Produces the records; ``on_delivery(error)`` is called once per record when its
        delivery is reported (``error`` None: delivered), after it is counted. A tick goes
        out in phases, one per ticked topic (``topics.TICKED``), each after ``before_tick``:
        the matcher's day (and the probes it sends) is over before the ledger's begins."""

        def reported(error: KafkaError | None, _message=None) -> None:
            if error is None:
                self.delivered += 1
            else:
                self.failed += 1
                if self.first_error is None:
                    self.first_error = _reason(error)
            if on_delivery is not None:
                on_delivery(error)

        if not (is_tick(records) and self.before_tick is not None):
            self._produce_all(records, reported)
            return
        for number, phase in enumerate(_phases(records)):
            self.wait()
            if not self.failed:  # a tick after records that did not arrive would skip them
                barrier = self.before_tick if number == 0 else getattr(self.before_tick, "between_phases",
                                                                         self.before_tick)
                barrier()
            self._produce_all(phase, reported)
        # Delivered before anything after it is sent: what comes later reaches the matcher
        # (over the bank agent, or as a reference from the ledger) behind the tick. (Without
        # ``before_tick`` a tick is no barrier, and is not waited for either.)
        self.wait()

    def _produce_all(self, records: list[Record], reported) -> None:
        for index, (topic, key, value, partition) in enumerate(records):
            try:
                self._produce(topic, key, value, partition, reported)
            except KafkaException as exc:  # refused at once (say the producer hit a fatal error)
                for _ in records[index:]:
                    reported(exc.args[0])
                return

    def _produce(self, topic: str, key: bytes | None, value: bytes, partition: int | None, callback) -> None:
        produce(self.producer, topic, value, key, partition, on_delivery=callback)
        self.producer.poll(0)

    def wait(self) -> None:
        """Returns once every record produced has its delivery report (delivered, or failed
        when librdkafka's message.timeout.ms ran out)."""
        while self.producer.flush(1.0):
            pass

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self.producer.flush(timeout)
        if remaining:
            raise TimeoutError(f"{remaining} records were not delivered within {timeout} s")
        failed, self._failed_at_flush = self.failed - self._failed_at_flush, self.failed
        if failed:
            raise DeliveryFailed(f"{failed} records were not delivered: {self.first_error}")


def _reason(error) -> str:
    return error.str() if isinstance(error, KafkaError) else str(error)


# --------------------------------------------------------------------------- files


def open_events_file(path: Path) -> BinaryIO:
    """The file, for reading in binary; ``OSError`` when it cannot be read (missing, a
    directory). A pipe (say ``/dev/stdin``) is copied to a temporary file first: the file is
    read twice, and to its end to count what was not sent."""
    handle = open(path, "rb")
    if stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
        return handle
    with handle:
        copy = tempfile.TemporaryFile()
        shutil.copyfileobj(handle, copy)
    copy.seek(0)
    return copy


def _lines(handle: BinaryIO) -> Iterator[tuple[int, bytes | JsonFormError]]:
    """(line number, bytes) for each line that is not blank; a line longer than
    MAX_LINE_BYTES comes as its error, read past in pieces rather than held."""
    number = 0
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            size = len(raw)
            while not raw.endswith(b"\n") and (raw := handle.readline(1 << 16)):
                size += len(raw)
            size -= raw.endswith(b"\n")
            yield number, JsonFormError(
                f"the line has {size:,} bytes, more than the {MAX_LINE_BYTES:,} (1 MiB) a line may have", line=number)
        elif not raw.isspace():
            yield number, raw


def _parse(raw: bytes | JsonFormError, number: int) -> object:
    if isinstance(raw, JsonFormError):
        raise raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonFormError(f"not UTF-8: byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line",
                            line=number) from None
    return parse_json_line(text, number)


_MADE_BY = {  # type -> (who produces it, a hint)
    ev.PaymentMatched: ("the matcher", "; publish the PaymentReceived instead"),
    ev.ReferenceIssued: ("the ledger agent", "; it comes from an InvoiceIssued's payment_reference"),
    ev.DeliveryResult: ("the sink", ""),
}


def _named_type(raw: bytes | JsonFormError) -> type | None:
    """The event type a line names in its "type", whatever else is wrong with it."""
    try:
        obj = orjson.loads(raw) if isinstance(raw, bytes) else None
    except orjson.JSONDecodeError:
        return None
    name = obj.get("type") if isinstance(obj, dict) else None
    return ev.EVENT_TYPES_BY_NAME.get(name) if isinstance(name, str) else None


def _checked_records(raw: bytes | JsonFormError, number: int, codec: Codec, partitions: int) -> list[Record]:
    """The records of one line; ``JsonFormError`` naming line and field when the line is bad.
    An ``EncodeError`` that is ``transient`` (no schema registry) is not the line's fault and
    is raised as it is."""
    try:
        event = _parse(raw, number)
        cls = type(event)
    except JsonFormError:
        cls = _named_type(raw)  # an output type is the mistake to report, not its missing fields
        if cls is None or cls in topics.INPUT_TOPIC:
            raise
    if cls not in topics.INPUT_TOPIC:
        spec = topics.OUTPUT_TOPIC.get(cls)
        who, hint = _MADE_BY.get(cls, ("the worker", f" (an output, on {spec.name})" if spec else ""))
        raise JsonFormError(f"{cls.__name__} is produced by {who}, not published{hint}", field="type", line=number)
    try:
        records = records_of(codec, partitions, event)
    except EncodeError as exc:
        if exc.transient:
            raise
        raise JsonFormError(f"cannot be encoded: {exc.reason}", line=number) from None
    return records


def read_events(path: Path) -> tuple[list, list[JsonFormError]]:
    """Events of a JSON-lines file, and the errors of the lines that are not valid."""
    events, errors = [], []
    with open(path, "rb") as handle:
        for number, raw in _lines(handle):
            try:
                events.append(_parse(raw, number))
            except JsonFormError as exc:
                errors.append(exc)
    return events, errors


@dataclass
class FileReport:
    lines: int = 0  # lines holding an event (blank lines are not counted)
    lines_published: int = 0  # lines whose every record the broker confirmed
    records_delivered: int = 0  # a DayStarted line is one record per partition of each ticked topic
    lines_rejected: int = 0
    rejected_lines: list[int] = field(default_factory=list)  # the first MAX_LISTED
    lines_failed: int = 0  # lines with a record the broker did not confirm
    failed_lines: list[int] = field(default_factory=list)  # the first MAX_LISTED reported
    records_failed: int = 0
    first_error: str | None = None  # of the records that failed
    # Lines neither published, rejected nor failed: all of them when a line is bad (without
    # skip_invalid) or Kafka cannot be reached, those after a failed delivery.
    lines_not_sent: int = 0
    error: str | None = None  # why publishing stopped before it began or ended

    @property
    def ok(self) -> bool:
        return not (self.lines_rejected or self.lines_failed or self.records_failed or self.lines_not_sent
                    or self.error)

    def reject(self, error: JsonFormError) -> None:
        self.lines_rejected += 1
        if len(self.rejected_lines) < MAX_LISTED:
            self.rejected_lines.append(error.line)

    def to_json(self) -> dict:
        return {name: value for name, value in asdict(self).items() if value is not None}


def publish_file(handle: BinaryIO, codec: Codec, partitions: int,
                 connect: Callable[[], AbstractContextManager[Publisher]], *, skip_invalid: bool = False,
                 on_rejected: Callable[[JsonFormError], None] = lambda error: None) -> FileReport:
    """Publishes the events of a JSON-lines file (from ``open_events_file``) with the
    publisher ``connect()`` gives; each bad line goes to ``on_rejected``. Without
    ``skip_invalid`` nothing is published when any line is bad, and ``connect`` is not called."""
    report = FileReport()
    try:
        if not skip_invalid:
            before = _identity(handle)
            for number, raw in _lines(handle):
                report.lines += 1
                try:
                    _checked_records(raw, number, codec, partitions)
                except JsonFormError as error:
                    report.reject(error)
                    on_rejected(error)
            if report.lines_rejected:
                return report
            if _identity(handle) != before:
                report.error = "the file changed while it was checked; nothing was published"
                return report
            handle.seek(0)
            report = FileReport()  # the publishing pass counts again
        with connect() as publisher:
            _publish(handle, publisher, report, on_rejected)
    except EncodeError as exc:  # transient: the schema registry cannot be reached
        report.error = f"schema registry: {exc.reason}"
    except KafkaException as exc:
        report.error = f"Kafka: {_reason(exc.args[0])}"
    finally:
        report.lines += sum(1 for _ in _lines(handle))  # not read: publishing stopped early
        report.lines_not_sent = report.lines - report.lines_published - report.lines_rejected - report.lines_failed
    return report


def _identity(handle: BinaryIO) -> tuple[int, int]:
    status = os.fstat(handle.fileno())
    return status.st_size, status.st_mtime_ns


def _publish(handle: BinaryIO, publisher: Publisher, report: FileReport,
             on_rejected: Callable[[JsonFormError], None]) -> None:
    waiting: dict[int, int] = {}  # line number -> its records not yet reported
    failed: set[int] = set()  # lines among those with a record that failed

    def reported(number: int, error: KafkaError | None) -> None:
        if error is not None:
            failed.add(number)
        waiting[number] -= 1
        if waiting[number]:
            return
        del waiting[number]
        if number in failed:
            failed.discard(number)
            report.lines_failed += 1
            if len(report.failed_lines) < MAX_LISTED:
                report.failed_lines.append(number)
        else:
            report.lines_published += 1

    try:
        for number, raw in _lines(handle):
            report.lines += 1
            if publisher.failed:  # the broker is not taking records: send no more
                break
            try:
                records = _checked_records(raw, number, publisher.codec, publisher.partitions)
            except JsonFormError as error:
                report.reject(error)
                on_rejected(error)
                continue
            waiting[number] = len(records)
            publisher.send(records, partial(reported, number))
    finally:
        publisher.wait()
        report.records_delivered, report.records_failed = publisher.delivered, publisher.failed
        report.first_error = publisher.first_error
        report.failed_lines.sort()
