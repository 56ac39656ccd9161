"""``dunning poll-psd2``: a Berlin Group NextGenPSD2 account-information endpoint polled for
booked transactions, each published as a ``PaymentReceived``.

One poll asks ``GET {base}/v1/accounts/{account-id}/transactions?bookingStatus=booked&dateFrom=D``
(headers ``Consent-ID``, ``Authorization: Bearer``, a fresh ``X-Request-ID`` per request) and
follows ``_links.next`` until there is none. Every page is read by the same code as
``dunning import-bank`` reads a Berlin Group file (``connectors.bank_files.read_statement``,
``psd2_payment``): the same ids, the same rejections with their place, pending transactions
counted and left for the poll that finds them booked.

Restart state, ``DATA_DIR/psd2/<account-id>.json`` (written whole, through a temporary file and
``os.replace``): ``date_from``, before which every booked transaction is published, and the
ids of the transactions published that were booked on or after it. ``dateFrom`` is a date, so
a poll asks from ``date_from`` again and skips the ids it holds. Ids are added page by page,
only once the broker confirmed their records: a poll stopped anywhere (killed, the bank down)
is followed by one that publishes exactly the rest. When a poll has read every page and all
of it was delivered, ``date_from`` moves to the latest booking date published and only that
date's ids are kept.

Requests that may pass when asked again (429, 500, 502, 503, 504, no connection, a timeout)
are asked again after an exponential backoff with jitter (0.5 s doubling, at most 30 s per
wait, ``Retry-After`` honoured), within ``retry_seconds`` in all; any other 4xx (401: the
consent expired or the token is wrong) ends the poll at once with the status and the bank's
``tppMessages``. The asking again is tenacity's (``Psd2Client.get``).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import tempfile
import threading
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from pathlib import Path
from typing import Callable, Iterator, Optional
from urllib.parse import quote, urlencode, urljoin, urlsplit

import httpx
import structlog
import tenacity

from connectors.bank_files import BankFileError, read_statement
from connectors.publisher import Publisher, records_of
from schemas.codec import EncodeError
from streams.core import events as ev

log = structlog.get_logger(__name__)

RETRIED = frozenset({429, 500, 502, 503, 504})
MAX_PAGES = 10_000  # a bank whose pages never end
_MESSAGE_CHARS = 300  # of the bank's tppMessages in an error line


class Psd2Error(Exception):
    """A poll (or its start) stopped; the message is one line. ``refused``: asking again will
    not help (a 4xx other than 429, a state file that cannot be used, no start date): a person
    has to act. Otherwise the next poll may pass (the bank down, the broker not confirming)."""

    def __init__(self, message: str, *, refused: bool = False, status: int | None = None):
        super().__init__(message)
        self.refused, self.status = refused, status


class Stopped(Exception):
    """The poll was asked to stop (Ctrl-C, SIGTERM) while it waited to ask again."""


class _Transient(Exception):
    """A request that may pass when asked again: what went wrong, and the wait the bank asked for."""

    def __init__(self, problem: str, asked_wait: float | None):
        super().__init__(problem)
        self.problem, self.asked_wait = problem, asked_wait


@dataclass(frozen=True)
class Account:
    """Where the transactions are and what lets us read them."""

    base_url: str  # up to and without /v1
    account_id: str  # the account's resourceId at the bank
    consent_id: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class Backoff:
    budget: float = 120.0  # seconds that retrying one request may take in all
    first: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        """The wait before attempt ``attempt + 1``: full size doubling from ``first``, at most
        ``cap``, with jitter (half to all of it) so that many pollers do not ask in step."""
        return min(self.cap, self.first * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


# --------------------------------------------------------------------------- HTTP


class Psd2Client:
    """GETs of the account's transactions pages, retried as the module says."""

    def __init__(self, account: Account, backoff: Backoff = Backoff(), http: httpx.Client | None = None,
                 stop: threading.Event | None = None, timeout: float = 30.0):
        self.account = account
        self.backoff = backoff
        self.stop = stop or threading.Event()
        self._http = http or httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                          follow_redirects=False)  # a redirect could take the token elsewhere
        base = urlsplit(account.base_url)
        self._origin = (base.scheme, base.netloc.lower())
        self._prefix = base.path.rstrip("/")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Psd2Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def first_url(self, date_from: date) -> str:
        query = urlencode({"bookingStatus": "booked", "dateFrom": date_from.isoformat()})
        return (f"{self.account.base_url.rstrip('/')}/v1/accounts/{quote(self.account.account_id, safe='')}"
                f"/transactions?{query}")

    def get(self, url: str) -> tuple[dict, bytes]:
        """The page's JSON object and its bytes; ``Psd2Error`` once it cannot be had."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Transient),
            wait=self._wait,
            stop=tenacity.stop_before_delay(self.backoff.budget),  # no wait that would pass the budget
            sleep=self._sleep,
            before_sleep=lambda state: log.warning(
                "psd2 request failed, asking again", problem=state.outcome.exception().problem,
                attempt=state.attempt_number, wait_seconds=round(state.upcoming_sleep, 2)),
            retry_error_callback=self._gave_up,
        )
        return retrying(self._get_once, url)

    def _get_once(self, url: str) -> tuple[dict, bytes]:
        try:
            response = self._http.get(url, headers={
                "Accept": "application/json",
                "Consent-ID": self.account.consent_id,
                "Authorization": f"Bearer {self.account.token}",
                "X-Request-ID": str(uuid.uuid4()),
            })
        except httpx.TransportError as exc:  # refused, reset, timed out, not HTTP
            raise _Transient(f"no answer from {urlsplit(url).netloc} ({type(exc).__name__})", None) from None
        status = response.status_code
        if 200 <= status < 300:
            return _page(response), response.content
        problem = f"the bank answered {_status(status)}{_tpp_messages(response)}"
        if status in RETRIED:
            raise _Transient(problem, _retry_after(response.headers.get("Retry-After")))
        hint = "; renew the consent (PSD2_CONSENT_ID) or the token (PSD2_TOKEN)" if status in (401, 403) else ""
        raise Psd2Error((problem.rstrip('.') if hint else problem) + hint, refused=400 <= status < 500, status=status)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        asked = state.outcome.exception().asked_wait
        return asked if asked is not None else self.backoff.delay(state.attempt_number)

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopped()

    def _gave_up(self, state: tenacity.RetryCallState):
        raise Psd2Error(f"{state.outcome.exception().problem}; gave up after {state.attempt_number} attempts in "
                        f"{self.backoff.budget:g} s (PSD2_RETRY_SECONDS)")

    def next_url(self, document: dict, current: str, page: int) -> Optional[str]:
        """The absolute URL of ``_links.next`` (in ``transactions`` or at the top), or None.
        An href may be absolute, relative to the API's base (``/v1/...``, the Berlin Group
        examples' form, also when the base URL has a path), or relative to the page; one that
        leads to another host is refused: the consent and the token are for this one."""
        href = None
        for links in (_dict(document.get("transactions")).get("_links"), document.get("_links")):
            if isinstance(links, dict) and links.get("next") is not None:
                link = links["next"]
                href = link.get("href") if isinstance(link, dict) else link
                if not isinstance(href, str) or not href.strip():
                    raise Psd2Error(f"page {page}: _links.next has no href")
                href = href.strip()
                break
        if href is None:
            return None
        parts = urlsplit(href)
        if parts.scheme or href.startswith("//"):
            absolute = urljoin(current, href)
        elif href.startswith("/"):
            inside = not self._prefix or href == self._prefix or href.startswith(self._prefix + "/")
            absolute = f"{self._origin[0]}://{self._origin[1]}{href if inside else self._prefix + href}"
        else:
            absolute = urljoin(current, href)
        target = urlsplit(absolute)
        if (target.scheme, target.netloc.lower()) != self._origin:
            raise Psd2Error(f"page {page}: _links.next leads to {target.scheme}://{target.netloc}, not to "
                            f"PSD2_BASE_URL's host; not followed (the consent and the token are for that one)")
        return absolute


def _page(response: httpx.Response) -> dict:
    try:
        document = response.json()
    except ValueError:
        raise Psd2Error(f"the bank answered {_status(response.status_code)} with a body that is not JSON "
                        f"({response.headers.get('Content-Type', 'no Content-Type')})") from None
    if not isinstance(document, dict):
        raise Psd2Error("the bank's answer is not a JSON object")
    return document


def _status(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _tpp_messages(response: httpx.Response) -> str:
    """': CODE: text; ...' from a Berlin Group error body (tppMessages, or the problem+json
    form's detail or title), on one line and short; '' when there is none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    texts = []
    if isinstance(body, dict):
        messages = body.get("tppMessages") or body.get("additionalErrors")
        for message in messages if isinstance(messages, list) else []:
            if isinstance(message, dict):
                parts = [str(message[k]) for k in ("code", "text") if message.get(k)]
                texts.append(": ".join(parts))
        if not texts:
            texts = [str(body[k]) for k in ("code", "detail", "title") if body.get(k)][:2]
    line = " ".join("; ".join(t for t in texts if t).split())
    if len(line) > _MESSAGE_CHARS:
        line = line[:_MESSAGE_CHARS - 1] + "…"
    return f": {line}" if line else ""


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


# --------------------------------------------------------------------------- restart state


@dataclass
class PollState:
    date_from: date  # every booked transaction before it is published
    published: dict[date, set[str]] = field(default_factory=dict)  # booked on or after date_from

    def knows(self, transaction_id: str) -> bool:
        return any(transaction_id in ids for ids in self.published.values())

    def add(self, booked: date, transaction_id: str) -> None:
        self.published.setdefault(booked, set()).add(transaction_id)

    def completed(self, asked: date) -> None:
        """After a poll that read every page from ``asked`` and delivered all of it: ask from
        the latest booking date published next time, remembering only that date's ids."""
        self.date_from = max([asked, *self.published])
        self.published = {day: ids for day, ids in self.published.items() if day == self.date_from}


class StateFile:
    """``DIRECTORY/<account-id>.json`` (the id percent-encoded), and a lock beside it so that
    two pollers of one account never run at once."""

    def __init__(self, directory: Path, account_id: str):
        self.account_id = account_id
        name = quote(account_id, safe="")
        self.path = directory / f"{name}.json"
        self._lock_path = directory / f"{name}.lock"

    @contextmanager
    def locked(self) -> Iterator["StateFile"]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Psd2Error(f"{self.path}: another poll-psd2 of this account is running", refused=True) from None
            yield self

    def load(self) -> Optional[PollState]:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise Psd2Error(f"{self.path}: cannot be read ({exc}); move it away and give --date-from",
                            refused=True) from None
        try:
            if document.get("account_id", self.account_id) != self.account_id:
                raise ValueError(f"it is of account {document['account_id']!r}")
            published = document.get("published") or {}
            if not isinstance(published, dict):
                raise ValueError('"published" is not an object')
            return PollState(date.fromisoformat(document["date_from"]), {
                date.fromisoformat(day): {str(i) for i in ids} for day, ids in published.items()
                if isinstance(ids, list)})
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise Psd2Error(f"{self.path}: not a poll-psd2 state ({exc}); move it away and give --date-from",
                            refused=True) from None

    def save(self, state: PollState) -> None:
        document = {
            "account_id": self.account_id,
            "date_from": state.date_from.isoformat(),
            "published": {day.isoformat(): sorted(ids) for day, ids in sorted(state.published.items())},
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=self.path.parent, prefix=".",
                                             suffix=".tmp", delete=False)
        try:
            with handle:
                json.dump(document, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, self.path)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)


# --------------------------------------------------------------------------- the poller


@dataclass
class PollReport:
    account_id: str
    date_from: str  # the dateFrom asked
    pages: int = 0
    read: int = 0  # booked transactions read, rejected ones and repeats included
    published: int = 0  # confirmed by the broker
    duplicates_skipped: int = 0  # published before (the state's date is read again), or twice in the answer
    pending_skipped: int = 0
    rejected: list[dict] = field(default_factory=list)  # {"where": "page N: transactions.booked[i]", "reason"}
    not_delivered: int = 0
    complete: bool = False  # every page read and all of it delivered
    next_date_from: Optional[str] = None  # what the next poll asks from
    stopped: bool = False  # asked to stop (Ctrl-C, SIGTERM) before the last page
    error: Optional[str] = None
    refused: bool = False  # the error needs a person (see Psd2Error)

    @property
    def ok(self) -> bool:
        return self.complete and not (self.rejected or self.not_delivered or self.error)

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("refused")
        if out["error"] is None:
            out.pop("error")
        return out


class Psd2Poller:
    def __init__(self, client: Psd2Client, publisher: Publisher, state_file: StateFile,
                 on_rejected: Callable[[str, str], None] = lambda where, reason: None):
        self.client = client
        self.publisher = publisher
        self.state_file = state_file
        self.on_rejected = on_rejected

    def start_date(self, date_from: Optional[date], state: Optional[PollState]) -> date:
        """The dateFrom of a poll: ``date_from`` when given (to read again from an earlier
        date, or to skip ahead), else the state's; ``Psd2Error`` (refused) when there is neither."""
        if date_from is not None:
            return date_from
        if state is None:
            raise Psd2Error(f"no state yet for account {self.state_file.account_id} ({self.state_file.path}): "
                            "give --date-from YYYY-MM-DD for the first poll", refused=True)
        return state.date_from

    def poll(self, date_from: Optional[date] = None) -> PollReport:
        """One poll: every page from the state's date (or ``date_from``). ``Psd2Error`` only
        when it cannot begin (no start date, a state file it cannot use); whatever stops it
        later is in the report's ``error`` (``refused``: a person has to act)."""
        state = self.state_file.load()
        asked = self.start_date(date_from, state)
        if state is None:
            state = PollState(asked)
            self.state_file.save(state)  # a restart after a poll that published nothing needs no --date-from
        report = PollReport(self.state_file.account_id, asked.isoformat())
        try:
            self._read_pages(asked, state, report)
        except Psd2Error as exc:
            report.error, report.refused = str(exc), exc.refused
        except Stopped:
            report.stopped = True
        if report.complete:
            state.completed(asked)
            self.state_file.save(state)
        report.next_date_from = state.date_from.isoformat()
        return report

    def _read_pages(self, asked: date, state: PollState, report: PollReport) -> None:
        url: Optional[str] = self.client.first_url(asked)
        read_urls: set[str] = set()
        while url is not None:
            if self.client.stop.is_set():
                raise Stopped()
            if url in read_urls or len(read_urls) >= MAX_PAGES:
                raise Psd2Error(f"page {report.pages + 1}: _links.next leads back to a page already read"
                                if url in read_urls else f"more than {MAX_PAGES} pages; stopped")
            read_urls.add(url)
            document, body = self.client.get(url)
            report.pages += 1
            page = report.pages
            if _dict(_dict(document.get("transactions")).get("_links")).get("download"):
                raise Psd2Error(f"page {page}: the bank offers the transactions only as a download "
                                "(_links.download), which poll-psd2 does not read; ask for a shorter period")
            try:
                statement = read_statement(body, "psd2-json")
            except BankFileError as exc:
                raise Psd2Error(f"page {page}: {exc}") from None
            report.read += len(statement.payments) + len(statement.rejected) + statement.duplicates
            report.duplicates_skipped += statement.duplicates
            report.pending_skipped += statement.pending
            for rejected in statement.rejected:
                where = f"page {page}: {rejected.where}"
                report.rejected.append({"where": where, "reason": rejected.reason})
                self.on_rejected(where, rejected.reason)
            fresh = []
            for payment in statement.payments:
                if state.knows(payment.transaction_id):
                    report.duplicates_skipped += 1
                else:
                    fresh.append(payment)
            delivered, problem = self._deliver(fresh)
            for payment in delivered:
                state.add(payment.booking_date, payment.transaction_id)
            if delivered:
                self.state_file.save(state)  # only what the broker confirmed
            report.published += len(delivered)
            if len(delivered) < len(fresh):
                report.not_delivered += len(fresh) - len(delivered)
                raise Psd2Error(f"page {page}: {len(fresh) - len(delivered)} payments not delivered ({problem}); "
                                "the next poll publishes them")
            url = self.client.next_url(document, url, page)
        report.complete = True

    def _deliver(self, payments: list[ev.PaymentReceived]) -> tuple[list[ev.PaymentReceived], Optional[str]]:
        """The payments whose record the broker confirmed, and why the others were not."""
        delivered: list[ev.PaymentReceived] = []
        problem = None
        failed_before = self.publisher.failed
        try:
            for payment in payments:
                records = records_of(self.publisher.codec, self.publisher.partitions, payment)
                self.publisher.send(records, lambda error, payment=payment: (
                    delivered.append(payment) if error is None else None))
        except EncodeError as exc:  # no schema registry, or a payment its schema refuses
            problem = f"cannot encode a payment: {exc.reason}"
        finally:
            self.publisher.wait()
        if problem is None and self.publisher.failed > failed_before:
            problem = f"Kafka: {self.publisher.first_error}"
        return delivered, problem


__all__ = ["Account", "Backoff", "PollReport", "PollState", "Psd2Client", "Psd2Error", "Psd2Poller", "StateFile",
           "Stopped"]
