"""dunning/observability.py: the metrics endpoint (loopback, /metrics only) and the masking
of personal data in every log line, checked on a real server and a real process."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client import Counter

from dunning import cli
from dunning.observability import mask_personal_data, serve_metrics
from dunning.settings import Settings, load_settings
from tests.support import free_port

REPO = Path(__file__).resolve().parents[1]
PROBE = Counter("observability_test_probe", "Incremented by tests/test_observability.py")




def non_loopback_address() -> str | None:
    """This machine's address on its default route, if it has one (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = sock.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


@pytest.fixture
def start():
    servers = []

    def start_server(*args, **kwargs):
        server = serve_metrics(*args, **kwargs)
        servers.append(server)
        return server

    yield start_server
    for server in servers:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------- metrics endpoint


def test_metrics_answers_only_on_its_path(start):
    port = free_port()
    start(port, "127.0.0.1", [sys.modules[__name__]])
    PROBE.inc()
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE observability_test_probe_total counter" in response.text
    assert "observability_test_probe_total 1.0" in response.text
    assert httpx.get(f"http://127.0.0.1:{port}/metrics?name[]=python_info", timeout=5).status_code == 200
    for path in ("/", "/other", "/metrics/x", "/favicon.ico"):
        response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
        assert response.status_code == 404, path
        assert "observability_test_probe" not in response.text, path


def test_each_process_exports_its_own_metrics_and_the_build_info(start):
    import projections.metrics
    import sinks.metrics
    import streams.kafka.metrics
    import streams.worker.metrics

    port = free_port()
    start(port, "127.0.0.1", [sinks.metrics, streams.kafka.metrics], "1.2.3")
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "# TYPE dunning_sink_messages_total counter" in text
    assert "# TYPE dunning_consumer_lag gauge" in text
    assert 'dunning_build_info{version="1.2.3"} 1.0' in text
    assert "process_resident_memory_bytes" in text
    for other in (streams.worker.metrics, projections.metrics):  # another process's: not even as zeros
        for name in (value._name for value in vars(other).values() if hasattr(value, "_name")):
            assert name not in text, name


def test_metrics_listens_on_loopback_unless_told_otherwise(start):
    port = free_port()
    server = start(port)
    assert server.server_address[0] == "127.0.0.1"
    assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
    address = non_loopback_address()
    if address is None:
        return  # the bound address above is the check then
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{address}:{port}/metrics", timeout=5)
    # The same request reaches an endpoint opened with a host: the refusal above is the binding.
    open_port = free_port()
    assert start(open_port, host="0.0.0.0").server_address[0] == "0.0.0.0"
    assert httpx.get(f"http://{address}:{open_port}/metrics", timeout=5).status_code == 200


def test_port_zero_serves_nothing():
    assert serve_metrics(0) is None


def test_metrics_host_setting():
    assert Settings().metrics_host == "127.0.0.1"
    assert load_settings({}).metrics_host == "127.0.0.1"
    assert load_settings({"METRICS_HOST": ""}).metrics_host == "127.0.0.1"  # not every interface
    assert load_settings({"METRICS_HOST": "0.0.0.0"}).metrics_host == "0.0.0.0"


@pytest.mark.parametrize("command", ["cmd_worker", "cmd_sink", "cmd_project", "cmd_clock"])
def test_every_command_serves_metrics_on_the_configured_host(monkeypatch, command):
    class Served(Exception):
        pass

    calls = []

    def fake_serve_metrics(port, host="127.0.0.1", *groups_and_version):
        calls.append((port, host))
        raise Served  # stop before the command needs a broker

    monkeypatch.setattr(cli, "serve_metrics", fake_serve_metrics)
    settings = load_settings({"METRICS_PORT": "9100", "METRICS_HOST": "0.0.0.0"})
    with pytest.raises(Served):
        getattr(cli, command)(settings, argparse.Namespace(start=None, days=1, interval=1.0))
    assert calls == [(9100, "0.0.0.0")]


# ----------------------------------------------------------------------------- masking, a real process

EMAILS = ["jan.jansen@example.nl", "piet+dunning@mail.example.org"]
IBANS = ["NL91ABNA0417164300", "NL91 ABNA 0417 1643 00", "DE89370400440532013000", "BE71 0961 2345 6769"]
PHONES = ["+31 6 1234 5678", "0612345678", "+31612345678", "020-1234567", "+44 20 7946 0958"]
NAMES = ["Jan Jansen", "Petra de Vries"]
# Parts of the above that must not survive either (a masked value keeps only its last digits).
FRAGMENTS = ["jan.jansen", "jansen@", "piet+dunning", "ABNA", "0417 1643", "37040044", "0532013000", "0961 2345",
             "6 1234", "1234 5678", "31612", "020-123", "7946 0958", "Jansen", "Petra", "Vries"]
SAFE = {
    "uuid": str(uuid.UUID("3f2b8c1e-0d4a-4b7e-9a51-0612345678ab")),
    "action_id": "D1:default:2:F1",
    "event_id": "erp-inv-F2025-0117",
    "debtor_id": "DEB-1001",
    "transaction_id": "2025041500007",
    "business_date": "2025-04-15",
    "at": "2025-04-15T10:20:30.123456+00:00",
    "amount": "1234.56",
    "amount_nl": "EUR 1.234,56",
    "topic": "dunning.ledger",
    "total_minor": 123456,
    "offset": 612345678,
    "ratio": 0.25,
    "retry": True,
}

SCRIPT = """
import json, logging, sys
import structlog
from dunning.observability import configure_logging

data = json.loads(sys.argv[1])
emails, ibans, phones, names, safe = data["emails"], data["ibans"], data["phones"], data["names"], data["safe"]
configure_logging("debug", "dunning-probe")
log = structlog.get_logger("probe")

log.info("debtor registered", debtor_id="DEB-1001", email=emails[0], phone=phones[0], payer_iban=ibans[0],
         debtor_name=names[0], name=names[1], to=[emails[1]], contact={"email": emails[1], "mobile": phones[1]})
log.warning("dunning action not delivered", action_id="D1:default:2:F1",
            detail="SMTPRecipientsRefused: {%r: (550, b'5.1.1 <%s>: Recipient address rejected')}" % (emails[0], emails[0]))
log.info("free text: " + ", ".join(emails + ibans + phones))
log.error("payment unmatched", reason="from " + ibans[2] + " / " + ibans[3], error=ValueError(emails[1]))
try:
    raise ValueError("no mailbox " + emails[0] + " for " + ibans[0] + ", call " + phones[4])
except ValueError:
    log.exception("send failed")
logging.getLogger("aiokafka").warning("refused %s for %s at %s", emails[1], phones[2], ibans[1])
try:
    raise RuntimeError("iban " + ibans[2] + " mail " + emails[0])
except RuntimeError:
    logging.getLogger("faust").exception("stdlib failure " + phones[3])
log.info("non-personal", **safe)
logging.getLogger("alembic").info("stdlib non-personal %s %s", safe["action_id"], safe["at"])
import threading
def fail():
    raise KeyError("thread " + emails[1])
thread = threading.Thread(target=fail, name="probe-thread")
thread.start()
thread.join()
raise LookupError("uncaught " + emails[0] + " " + ibans[0])
"""


@pytest.fixture(scope="module")
def log_lines() -> list[dict]:
    data = {"emails": EMAILS, "ibans": IBANS, "phones": PHONES, "names": NAMES, "safe": SAFE}
    result = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(data)], cwd=REPO, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1, result.stderr  # the script ends with an uncaught exception
    lines = result.stderr.splitlines()
    assert len(lines) == 11, result.stderr
    return [json.loads(line) for line in lines]  # every line is JSON


def by_event(lines: list[dict], event: str) -> dict:
    (line,) = [line for line in lines if line["event"].startswith(event)]
    return line


def test_uncaught_exceptions_are_json_lines_too(log_lines):
    in_thread = by_event(log_lines, "uncaught exception in a thread")
    assert in_thread["thread"] == "probe-thread" and "KeyError" in in_thread["exception"]
    (uncaught,) = [line for line in log_lines if line["event"] == "uncaught exception"]
    assert uncaught["level"] == "critical" and "LookupError: uncaught" in uncaught["exception"]


def test_no_personal_data_in_any_line(log_lines):
    # The lines of non-personal values are left out: their UUID holds "0612345678" on purpose.
    with_personal_data = [line for line in log_lines if "non-personal" not in line["event"]]
    assert len(with_personal_data) == 9
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in with_personal_data)
    for value in EMAILS + IBANS + PHONES + NAMES + FRAGMENTS:
        assert value not in text, value
    compact = "".join(text.split())
    for iban in IBANS:
        assert "".join(iban.split()) not in compact, iban


def test_personal_keys_are_masked_by_kind(log_lines):
    line = by_event(log_lines, "debtor registered")
    assert line["email"] == "j***@example.nl"
    assert line["phone"] == "+** * **** **78"
    assert line["payer_iban"] == "NL************4300"
    assert line["debtor_name"] == "J*** J***"
    assert line["name"] == "P*** d*** V***"
    assert line["to"] == ["p***@mail.example.org"]
    assert line["contact"] == {"email": "p***@mail.example.org", "mobile": "********78"}
    assert line["debtor_id"] == "DEB-1001"
    assert line["process"] == "dunning-probe" and line["level"] == "info"


def test_free_text_is_masked_by_pattern(log_lines):
    refused = by_event(log_lines, "dunning action not delivered")
    assert refused["detail"] == ("SMTPRecipientsRefused: {'j***@example.nl': "
                                 "(550, b'5.1.1 <j***@example.nl>: Recipient address rejected')}")
    assert refused["action_id"] == "D1:default:2:F1"
    free = by_event(log_lines, "free text")
    assert free["event"] == ("free text: j***@example.nl, p***@mail.example.org, NL************4300, "
                             "NL************4300, DE****************3000, BE**********6769, +** * **** **78, "
                             "********78, +*********78, ***-*****67, +** ** **** **58")
    unmatched = by_event(log_lines, "payment unmatched")
    assert unmatched["reason"] == "from DE****************3000 / BE**********6769"
    assert unmatched["error"] == "ValueError('p***@mail.example.org')"


def test_tracebacks_are_masked(log_lines):
    failed = by_event(log_lines, "send failed")
    assert "Traceback" in failed["exception"]
    assert "ValueError: no mailbox j***@example.nl for NL************4300, call +** ** **** **58" in failed["exception"]
    stdlib = by_event(log_lines, "stdlib failure")
    assert stdlib["event"] == "stdlib failure ***-*****67"
    assert "RuntimeError: iban DE****************3000 mail j***@example.nl" in stdlib["exception"]


def test_stdlib_records_are_json_lines_like_the_others(log_lines):
    refused = by_event(log_lines, "refused")
    assert refused["logger"] == "aiokafka" and refused["level"] == "warning"
    assert refused["process"] == "dunning-probe" and "timestamp" in refused
    assert refused["event"] == "refused p***@mail.example.org for +*********78 at NL************4300"
    assert by_event(log_lines, "stdlib failure")["logger"] == "faust"


def test_non_personal_values_pass_unchanged(log_lines):
    line = by_event(log_lines, "non-personal")
    assert {key: line[key] for key in SAFE} == SAFE
    assert by_event(log_lines, "stdlib non-personal")["event"] == f"stdlib non-personal {SAFE['action_id']} {SAFE['at']}"


# ----------------------------------------------------------------------------- masking, the processor alone


@pytest.mark.parametrize("text", [
    "01-02-2025 12:00",  # a date and a time
    "due 01-02-2025 10 invoices",  # ten digits from 0, but two hyphens
    "0.0612345678",  # a decimal
    "T10:20:30+0100 amount +123456789.50",
    "camt053-2025-04-15-0007",
    "6F9619FF-8B86-D011-B42D-00CF4FC964FF",  # an upper-case UUID
    "batch of 1234567890 bytes",
    "postgresql+psycopg://dunning:***@postgres:5432/dunning",
])
def test_lookalikes_pass_unchanged(text):
    assert mask_personal_data(None, "info", {"event": text}) == {"event": text}


def test_personal_keys_of_other_types():
    masked = mask_personal_data(None, "info", {
        "mobile": 612345678, "email": None, "phone": "", "debtor_email": "Jan <jan@example.nl>", "iban": "x",
        "recipients": ("a@example.nl", "b@example.nl"), "name": 42, "retry": False,
    })
    assert masked == {"mobile": "*******78", "email": None, "phone": "", "debtor_email": "j***@example.nl",
                      "iban": "***", "recipients": ["a***@example.nl", "b***@example.nl"], "name": "4***",
                      "retry": False}
