"""``dunning poll-psd2`` against a real Berlin Group account-information endpoint on loopback
(``ThreadingHTTPServer``) and the embedded broker: pages followed by ``_links.next`` in its
three shapes, every request's headers checked, a 503 answered with Retry-After and asked
again, a pending transaction, a debit, the object form of the structured reference, names
that are not ASCII; every transaction reaches the bank topic exactly once, also when a poll
is stopped half-way (the bank failing for good, the process killed) and a second one goes
on from the state file. And the command's one-line refusals: a setting missing, no start
date, the consent expired (401)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.psd2_poll import Account, PollState, Psd2Client, Psd2Error, StateFile, _retry_after
from harness.embedded import EmbeddedBroker
from harness.watch import TopicWatcher
from schemas import topics
from schemas.codec import Codec
from streams.kafka.clients import ensure_topics
from tests.support import wait_until

PARTITIONS = 4
ACCOUNT = "3dc3d5b3-7023-4848-9853-f5400a64e80f"
CONSENT = "1234-wertiq-983"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhaXMifQ.c2lnbmF0dXJl"
IBAN = "NL20INGB0001234567"
PREFIX = "/psd2"  # the API's base has a path: links relative to it ("/v1/...") must keep it
PAGE_SIZE = 2


def transaction(tx_id: str, booked: str, amount: str, **fields) -> dict:
    return {"transactionId": tx_id, "bookingDate": booked, "valueDate": booked,
            "transactionAmount": {"currency": "EUR", "amount": amount}, **fields}


def booked(prefix: str, broken: bool = False) -> list[dict]:
    """Eight booked transactions over three days (four pages of two); ``broken``: the fifth has an
    amount with a letter O in it."""
    return [
        transaction(f"{prefix}0414-01", "2025-04-14", "1391.50", endToEndId="F2025-0117",
                    debtorName="Bakkerij Çelik & Zonen", debtorAccount={"iban": "NL91ABNA0417164300"},
                    remittanceInformationStructured="5000056789012345", bankTransactionCode="PMNT-RCDT-ESCT"),
        transaction(f"{prefix}0414-02", "2025-04-14", "250.00", debtorName="Müller GmbH",
                    debtorAccount={"iban": "DE89370400440532013000"},
                    remittanceInformationStructured={"reference": "RF18539007547034", "referenceType": "SCOR",
                                                     "referenceIssuer": "ISO"}),
        transaction(f"{prefix}0414-03", "2025-04-14", "-45.00", creditorName="Bloemenhuis Ærø",
                    creditorAccount={"iban": "NL91ABNA0417164300"},
                    remittanceInformationUnstructured="terugbetaling creditnota C-2025-004"),
        transaction(f"{prefix}0415-01", "2025-04-15", "121.00", debtorName="Zoë van Dijk",
                    remittanceInformationUnstructured="factuur F2025-0131 klantnr 4411"),
        transaction(f"{prefix}0415-02", "2025-04-15", "12O.00" if broken else "120.00", debtorName="Jansen BV"),
        transaction(f"{prefix}0415-03", "2025-04-15", "35.00", debtorName="Café ’t Hoekje",
                    debtorAccount={"iban": "BE68539007547034"}, endToEndId="NOTPROVIDED"),
        transaction(f"{prefix}0416-01", "2025-04-16", "99.99", debtorName="Šimon Novák",
                    remittanceInformationUnstructuredArray=["factuur F2025-0140", "en F2025-0141"]),
        transaction(f"{prefix}0416-02", "2025-04-16", "10.00", debtorName="Ørsted Service B.V."),
    ]


PENDING = {"transactionAmount": {"currency": "EUR", "amount": "999.00"}, "debtorName": "Nog Niet BV",
           "remittanceInformationUnstructured": "F2025-0160"}  # no id, no booking date yet

Fault = Callable[[int, int], Optional[tuple[int, dict, dict]]]  # (page, attempt) -> (status, headers, body)


def tpp(status_code: str, text: str) -> dict:
    return {"tppMessages": [{"category": "ERROR", "code": status_code, "text": text}]}


class Bank:
    """An ASPSP's AIS endpoint: ``GET {PREFIX}/v1/accounts/{ACCOUNT}/transactions`` filtered by
    ``dateFrom`` and paged, every request's headers checked (what a request got wrong is kept in
    ``problems`` and answered 400). ``fault(page, attempt)`` may answer a request instead."""

    def __init__(self, transactions: list[dict], fault: Fault = lambda page, attempt: None):
        self.transactions = transactions
        self.fault = fault
        self.problems: list[str] = []
        self.requests: list[tuple[str, int, int, float]] = []  # dateFrom, page, status, when
        self.request_ids: set[str] = set()
        self._attempts: Counter = Counter()
        self._lock = threading.Lock()
        bank = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                bank.answer(self)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client killed while its request was held: nobody to answer

        self.server = Server(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}{PREFIX}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Bank":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def dates_asked(self) -> list[str]:
        with self._lock:
            return [asked for asked, *_ in self.requests]

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        wrong = []
        if url.path != f"{PREFIX}/v1/accounts/{ACCOUNT}/transactions":
            wrong.append(f"path {url.path}")
        if query.get("bookingStatus") != "booked":
            wrong.append(f"bookingStatus {query.get('bookingStatus')}")
        if request.headers.get("Consent-ID") != CONSENT:
            wrong.append(f"Consent-ID {request.headers.get('Consent-ID')}")
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            wrong.append("Authorization")
        request_id = request.headers.get("X-Request-ID", "")
        try:
            uuid.UUID(request_id)
        except ValueError:
            wrong.append(f"X-Request-ID {request_id!r}")
        try:
            asked = date.fromisoformat(query.get("dateFrom", "")).isoformat()
        except ValueError:
            asked = ""
            wrong.append(f"dateFrom {query.get('dateFrom')}")
        page = int(query.get("page", "1"))
        with self._lock:
            if request_id in self.request_ids:
                wrong.append(f"X-Request-ID {request_id} used twice")
            self.request_ids.add(request_id)
            self._attempts[asked, page] += 1
            attempt = self._attempts[asked, page]
        if wrong:
            self.problems.extend(wrong)
            status, headers, body = 400, {}, tpp("FORMAT_ERROR", ", ".join(wrong))
        else:
            status, headers, body = self.fault(page, attempt) or (200, {}, self.page(asked, page, query))
        with self._lock:
            self.requests.append((asked, page, status, time.monotonic()))
        data = json.dumps(body, ensure_ascii=False).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(data)

    def page(self, asked: str, page: int, query: dict) -> dict:
        with self._lock:
            matching = [t for t in self.transactions if t["bookingDate"] >= asked]
        pages = max(1, -(-len(matching) // PAGE_SIZE))
        route = f"/v1/accounts/{ACCOUNT}/transactions?bookingStatus=booked&dateFrom={asked}"
        links = {"account": {"href": f"/v1/accounts/{ACCOUNT}"}, "first": {"href": f"{route}&page=1"},
                 "last": {"href": f"{route}&page={pages}"}}
        if page < pages:
            shapes = [{"href": f"{route}&page={page + 1}"},  # relative to the API's base, as the spec shows it
                      f"{self.base_url}{route}&page={page + 1}",  # absolute, a plain string
                      {"href": f"transactions?bookingStatus=booked&dateFrom={asked}&page={page + 1}"}]  # to the page
            links["next"] = shapes[(page - 1) % len(shapes)]
        return {"account": {"iban": IBAN, "currency": "EUR"},
                "transactions": {"booked": matching[(page - 1) * PAGE_SIZE:page * PAGE_SIZE],
                                 "pending": [PENDING] if page == 1 else [], "_links": links}}


# --------------------------------------------------------------------------- running the command


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker() as running:
        ensure_topics(running.bootstrap, PARTITIONS)
        yield running.bootstrap


def environment(bank_url: str, bootstrap: str, data_dir: Path, **more: str) -> dict:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("KAFKA_", "PSD2_", "SCHEMA_REGISTRY_", "DATABASE_URL", "SMTP_URL"))}
    env.update(KAFKA_BOOTSTRAP=bootstrap, KAFKA_PROFILE="embedded", PARTITIONS=str(PARTITIONS),
               DATA_DIR=str(data_dir), PSD2_BASE_URL=bank_url, PSD2_ACCOUNT_ID=ACCOUNT, PSD2_CONSENT_ID=CONSENT,
               PSD2_TOKEN=TOKEN, PSD2_RETRY_SECONDS="20")
    env.update(more)
    return {key: value for key, value in env.items() if value is not None}


def poll_once(env: dict, *args: str) -> tuple[int, Optional[dict], str]:
    done = subprocess.run([sys.executable, "-m", "dunning.cli", "poll-psd2", "--once", *args], env=env,
                          capture_output=True, text=True, timeout=180)
    assert "Traceback" not in done.stderr, done.stderr
    assert TOKEN not in done.stderr + done.stdout
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr


def start_polling(env: dict, out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dunning.cli", "poll-psd2", "--interval", "0.3", *args], env=env,
                            stdout=open(out, "w"), stderr=open(out.with_suffix(".err"), "w"))


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def counts(watcher: TopicWatcher, prefix: str) -> Counter:
    return Counter(p.transaction_id for p in watcher.events("PaymentReceived") if p.transaction_id.startswith(prefix))


def wait_for_ids(watcher: TopicWatcher, prefix: str, expected: set[str]) -> Counter:
    """Once every expected id reached the topic and the topic is read to its end: how often each came."""
    watcher.wait_for(lambda w: set(counts(w, prefix)) >= expected, 60, f"{sorted(expected)} on the bank topic")
    watcher.wait_caught_up(30)
    return counts(watcher, prefix)


def state(data_dir: Path) -> dict:
    return json.loads((data_dir / "psd2" / f"{ACCOUNT}.json").read_text(encoding="utf-8"))


@pytest.fixture()
def watcher(broker):
    watching = TopicWatcher(broker, Codec(), [topics.BANK.name]).start()
    yield watching
    watching.stop()


# --------------------------------------------------------------------------- the tests


@pytest.mark.broker
def test_a_poll_follows_every_page_retries_a_503_and_publishes_each_booked_transaction_once(
        broker, watcher, tmp_path):
    prefix = "A-"
    unavailable = (503, {"Retry-After": "1"}, tpp("SERVICE_UNAVAILABLE", "maintenance, try again in a second"))
    with Bank(booked(prefix, broken=True), fault=lambda page, attempt: unavailable
              if (page, attempt) == (2, 1) else None) as bank:
        env = environment(bank.base_url, broker, tmp_path)
        status, report, stderr = poll_once(env, "--date-from", "2025-04-14")
        assert status == 1, stderr  # one transaction rejected
        assert {k: v for k, v in report.items() if k not in ("rejected",)} == {
            "account_id": ACCOUNT, "date_from": "2025-04-14", "pages": 4, "read": 8, "published": 7,
            "duplicates_skipped": 0, "pending_skipped": 1, "not_delivered": 0, "complete": True,
            "next_date_from": "2025-04-16", "stopped": False}
        (rejected,) = report["rejected"]
        assert rejected["where"] == "page 3: transactions.booked[0].transactionAmount"
        assert "'12O.00' is not a number" in rejected["reason"]
        assert f"poll-psd2: {rejected['where']}: amount '12O.00' is not a number" in stderr

        # Every request was right; page 2 was asked twice, the second time after the Retry-After.
        assert bank.problems == []
        assert [(asked, page, code) for asked, page, code, _ in bank.requests] == [
            ("2025-04-14", 1, 200), ("2025-04-14", 2, 503), ("2025-04-14", 2, 200), ("2025-04-14", 3, 200),
            ("2025-04-14", 4, 200)]
        assert bank.requests[2][3] - bank.requests[1][3] >= 0.9
        assert len(bank.request_ids) == 5

        published = {f"{prefix}{n}" for n in ("0414-01", "0414-02", "0414-03", "0415-01", "0415-03", "0416-01",
                                              "0416-02")}
        assert wait_for_ids(watcher, prefix, published) == Counter({tx_id: 1 for tx_id in published})
        payments = {p.transaction_id: p for p in watcher.events("PaymentReceived") if p.transaction_id in published}
        celik, muller, refund = (payments[f"{prefix}0414-0{n}"] for n in (1, 2, 3))
        assert (celik.event_id, celik.account_iban, celik.booking_date) == (
            f"psd2:{IBAN}:{prefix}0414-01", IBAN, date(2025, 4, 14))
        assert (celik.payer_name, celik.amount_minor, celik.structured_reference, celik.end_to_end_id) == (
            "Bakkerij Çelik & Zonen", 139_150, "5000056789012345", "F2025-0117")
        assert (muller.structured_reference, muller.payer_name) == ("RF18539007547034", "Müller GmbH")
        assert (refund.direction, refund.amount_minor, refund.payer_name) == ("debit", 4_500, "Bloemenhuis Ærø")
        assert payments[f"{prefix}0416-01"].unstructured_remittance == "factuur F2025-0140 en F2025-0141"
        assert payments[f"{prefix}0415-03"].end_to_end_id is None  # NOTPROVIDED

        # The state: the latest booking date published, and what was published on it.
        saved = state(tmp_path)
        assert (saved["date_from"], saved["published"]) == (
            "2025-04-16", {"2025-04-16": [f"{prefix}0416-01", f"{prefix}0416-02"]})

        # The next poll asks from that date and publishes nothing again ...
        status, report, _ = poll_once(env)
        assert (status, report["published"], report["duplicates_skipped"], report["pages"]) == (0, 0, 2, 1)
        assert bank.dates_asked()[-1] == "2025-04-16"
        # ... and the one after it only what was booked since.
        bank.transactions += [transaction(f"{prefix}0416-03", "2025-04-16", "5.00", debtorName="Laat BV"),
                              transaction(f"{prefix}0417-01", "2025-04-17", "7.50", debtorName="Vroeg BV")]
        status, report, _ = poll_once(env)
        assert (status, report["published"], report["duplicates_skipped"], report["next_date_from"]) == (
            0, 2, 2, "2025-04-17")
        published |= {f"{prefix}0416-03", f"{prefix}0417-01"}
        assert wait_for_ids(watcher, prefix, published) == Counter({tx_id: 1 for tx_id in published})
        assert bank.problems == []


@pytest.mark.broker
def test_a_poll_the_bank_stops_answering_half_way_is_followed_by_one_that_publishes_exactly_the_rest(
        broker, watcher, tmp_path):
    prefix = "B-"
    down = {"down": True}
    failing = (500, {}, tpp("INTERNAL_SERVER_ERROR", "backend unavailable"))
    with Bank(booked(prefix), fault=lambda page, attempt: failing if page >= 3 and down["down"] else None) as bank:
        env = environment(bank.base_url, broker, tmp_path, PSD2_RETRY_SECONDS="1.5")
        status, report, stderr = poll_once(env, "--date-from", "2025-04-14")
        assert status == 1
        assert (report["pages"], report["published"], report["complete"]) == (2, 4, False)
        line = [line for line in stderr.splitlines() if line.startswith("dunning poll-psd2:")]
        assert len(line) == 1 and "500 Internal Server Error: INTERNAL_SERVER_ERROR: backend unavailable" in line[0]
        assert "gave up after" in line[0] and "PSD2_RETRY_SECONDS" in line[0]
        assert sum(1 for _, page, _, _ in bank.requests if page == 3) >= 2  # asked again before giving up
        first_half = {f"{prefix}0414-01", f"{prefix}0414-02", f"{prefix}0414-03", f"{prefix}0415-01"}
        saved = state(tmp_path)
        assert saved["date_from"] == "2025-04-14"  # not further: pages were left unread
        assert {i for ids in saved["published"].values() for i in ids} == first_half
        assert wait_for_ids(watcher, prefix, first_half) == Counter({tx_id: 1 for tx_id in first_half})

        down["down"] = False
        status, report, stderr = poll_once(env)  # no --date-from: the state has it
        assert status == 0, stderr
        assert (report["date_from"], report["published"], report["duplicates_skipped"], report["complete"]) == (
            "2025-04-14", 4, 4, True)
        everything = {t["transactionId"] for t in booked(prefix)}
        assert wait_for_ids(watcher, prefix, everything) == Counter({tx_id: 1 for tx_id in everything})
        assert bank.problems == []


@pytest.mark.broker
def test_a_poller_killed_after_its_first_page_is_followed_by_one_that_publishes_exactly_the_rest(
        broker, watcher, tmp_path):
    prefix = "C-"
    asked, release = threading.Event(), threading.Event()

    def hold_page_two(page: int, attempt: int):
        if page == 2 and not release.is_set():
            asked.set()
            release.wait(60)
        return None

    with Bank(booked(prefix), fault=hold_page_two) as bank:
        env = environment(bank.base_url, broker, tmp_path)
        first = start_polling(env, tmp_path / "first.out", "--date-from", "2025-04-14")
        try:
            page_one = {f"{prefix}0414-01", f"{prefix}0414-02"}
            wait_until(lambda: (tmp_path / "psd2" / f"{ACCOUNT}.json").exists() and {
                i for ids in state(tmp_path)["published"].values() for i in ids} == page_one, 60,
                "page 1 in the state file")
            assert wait_for_ids(watcher, prefix, page_one) == Counter({tx_id: 1 for tx_id in page_one})
            assert asked.wait(30), "page 2 not asked"
            assert first.poll() is None
        finally:
            first.kill()
            first.wait(30)
        release.set()

        # The same state file, the command looping: it goes on where the first one was killed.
        second = start_polling(env, tmp_path / "second.out")
        try:
            everything = {t["transactionId"] for t in booked(prefix)}
            assert wait_for_ids(watcher, prefix, everything) == Counter({tx_id: 1 for tx_id in everything})
            wait_until(lambda: "2025-04-16" in bank.dates_asked(), 60, "a later poll from the new date")
        finally:
            second.send_signal(signal.SIGINT)  # Ctrl-C ends it cleanly
            assert second.wait(60) == 0
        polls = [json.loads(line) for line in (tmp_path / "second.out").read_text().splitlines()]
        assert (polls[0]["date_from"], polls[0]["published"], polls[0]["duplicates_skipped"]) == ("2025-04-14", 6, 2)
        assert all(p["published"] == 0 for p in polls[1:]) and polls[-1]["next_date_from"] == "2025-04-16"
        assert "Traceback" not in (tmp_path / "second.err").read_text()
        watcher.wait_caught_up(30)
        assert counts(watcher, prefix) == Counter({tx_id: 1 for tx_id in everything})
        assert bank.problems == []


@pytest.mark.parametrize("missing", ["PSD2_BASE_URL", "PSD2_ACCOUNT_ID", "PSD2_CONSENT_ID", "PSD2_TOKEN"])
def test_a_missing_setting_is_refused_in_one_line(missing, tmp_path):
    env = environment("http://127.0.0.1:1/psd2", "127.0.0.1:1", tmp_path, **{missing: None})
    status, report, stderr = poll_once(env, "--date-from", "2025-04-14")
    assert (status, report) == (2, None)
    assert one_line(stderr).startswith(f"dunning poll-psd2: {missing} is not set; poll-psd2 needs")


def test_a_bad_token_is_refused_without_repeating_it(tmp_path):
    env = environment("http://127.0.0.1:1/psd2", "127.0.0.1:1", tmp_path, PSD2_TOKEN="Bearer s3cr3t-t0ken")
    status, _, stderr = poll_once(env)
    line = one_line(stderr)
    assert status == 2 and "bad setting PSD2_TOKEN:" in line and "s3cr3t" not in line


@pytest.mark.broker
def test_the_first_poll_needs_a_start_date(broker, tmp_path):
    with Bank([]) as bank:
        status, _, stderr = poll_once(environment(bank.base_url, broker, tmp_path))
        assert status == 2 and "give --date-from YYYY-MM-DD for the first poll" in one_line(stderr)
        assert bank.requests == []


@pytest.mark.broker
def test_an_expired_consent_is_one_line_with_the_banks_message_and_is_not_retried(broker, tmp_path):
    expired = (401, {}, tpp("CONSENT_EXPIRED", "The consent was created by this TPP but has expired and needs "
                                               "to be renewed."))
    with Bank(booked("D-"), fault=lambda page, attempt: expired) as bank:
        status, report, stderr = poll_once(environment(bank.base_url, broker, tmp_path), "--date-from", "2025-04-14")
        line = one_line(stderr)
        assert status == 2
        assert line.startswith("dunning poll-psd2: the bank answered 401 Unauthorized: CONSENT_EXPIRED: The consent "
                               "was created by this TPP but has expired"), line
        assert "PSD2_CONSENT_ID" in line
        assert len(bank.requests) == 1 and report["published"] == 0


# --------------------------------------------------------------------------- pieces, no broker


def test_next_links_of_every_shape_and_none_to_another_host():
    client = Psd2Client(Account("https://api.bank.example/psd2", ACCOUNT, CONSENT, TOKEN))
    here = client.first_url(date(2025, 4, 14))
    assert here == (f"https://api.bank.example/psd2/v1/accounts/{ACCOUNT}/transactions"
                    "?bookingStatus=booked&dateFrom=2025-04-14")

    def after(links: dict) -> Optional[str]:
        return client.next_url({"transactions": {"booked": [], "_links": links}}, here, 1)

    assert after({"next": {"href": "/v1/accounts/x/transactions?page=2"}}) == \
        "https://api.bank.example/psd2/v1/accounts/x/transactions?page=2"
    assert after({"next": {"href": "/psd2/v1/accounts/x/transactions?page=2"}}) == \
        "https://api.bank.example/psd2/v1/accounts/x/transactions?page=2"
    assert after({"next": "https://api.bank.example/psd2/v1/x?page=2"}) == "https://api.bank.example/psd2/v1/x?page=2"
    assert after({"next": {"href": "transactions?page=2"}}) == \
        f"https://api.bank.example/psd2/v1/accounts/{ACCOUNT}/transactions?page=2"
    assert after({"account": {"href": "/v1/accounts/x"}}) is None
    assert client.next_url({"transactions": {}, "_links": {"next": {"href": "/v1/p2"}}}, here, 1) == \
        "https://api.bank.example/psd2/v1/p2"  # at the top, as some banks put it
    with pytest.raises(Psd2Error, match="leads to https://evil.example, not to PSD2_BASE_URL's host"):
        after({"next": {"href": "https://evil.example/v1/accounts/x/transactions?page=2"}})
    with pytest.raises(Psd2Error, match="_links.next has no href"):
        after({"next": {}})


def test_retry_after_in_seconds_or_as_a_date():
    assert _retry_after("3") == 3.0
    assert _retry_after(None) is None and _retry_after("soon") is None
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 <= _retry_after(later) <= 30


def test_a_completed_poll_keeps_only_the_latest_date_and_its_ids():
    kept = PollState(date(2025, 4, 14))
    for day, tx_id in ((date(2025, 4, 14), "a"), (date(2025, 4, 16), "c"), (date(2025, 4, 15), "b")):
        kept.add(day, tx_id)
    kept.completed(date(2025, 4, 14))
    assert (kept.date_from, kept.published) == (date(2025, 4, 16), {date(2025, 4, 16): {"c"}})
    nothing = PollState(date(2025, 4, 14))
    nothing.completed(date(2025, 4, 20))  # asked from a later date, nothing booked since
    assert (nothing.date_from, nothing.published) == (date(2025, 4, 20), {})


def test_two_pollers_of_one_account_do_not_run_at_once_and_a_broken_state_is_refused(tmp_path):
    state_file = StateFile(tmp_path / "psd2", "acc/1")
    with state_file.locked():
        with pytest.raises(Psd2Error, match="another poll-psd2 of this account is running"):
            with StateFile(tmp_path / "psd2", "acc/1").locked():
                pass
    state_file.save(PollState(date(2025, 4, 14), {date(2025, 4, 14): {"x"}}))
    assert state_file.path.name == "acc%2F1.json" and [p.name for p in state_file.path.parent.glob(".*.tmp")] == []
    assert state_file.load() == PollState(date(2025, 4, 14), {date(2025, 4, 14): {"x"}})
    state_file.path.write_text("{not json", encoding="utf-8")
    with pytest.raises(Psd2Error, match="cannot be read .*give --date-from") as refused:
        state_file.load()
    assert refused.value.refused
