"""JSON logs through structlog and a Prometheus endpoint, the same for every process.

Every log line, from structlog and from the stdlib ``logging`` (Faust, aiokafka, Alembic),
passes :func:`mask_personal_data` before it is rendered:

- values of personal keys (``email``, ``to``, ``phone``, ``iban``, ``name``, ``payer_name``,
  ``debtor_name``, any ``*_email``, ``*_phone``, ``*_iban``, ...) are masked by kind, keeping
  enough to tell two apart: e-mail ``j***@example.nl`` (first character and domain; a
  value holding no address becomes ``***``), IBAN ``NL************4300`` (country and last
  four), phone ``+** * **** **78`` (last two digits), name ``J*** d*** V***`` (initials);
- every other string, the message and rendered tracebacks included, is scanned for
  e-mail addresses, IBANs (the ISO 13616 shape in capitals, with or without spaces) and
  phone numbers (starting with ``+`` and holding 9 to 15 digits, or with ``0`` and exactly
  10; at most one hyphen, no dots), masked the same way. Ids, amounts and dates do not
  have those shapes and pass unchanged, except a capitalised token of IBAN shape (an id
  that embeds an IBAN, a VAT number) and a ten-digit number starting with 0.
"""

from __future__ import annotations

import logging
import re
import socket
import sys
import threading
from functools import lru_cache
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Iterable
from urllib.parse import urlsplit

import structlog
from prometheus_client import CollectorRegistry, GCCollector, Info, PlatformCollector, ProcessCollector
from prometheus_client.exposition import MetricsHandler
from prometheus_client.metrics import MetricWrapperBase

# ----------------------------------------------------------------------------- masking


def _mask_email(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


def _mask_iban(iban: str) -> str:
    compact = "".join(iban.split()).upper()
    if len(compact) < 8:
        return "***"
    return compact[:2] + "*" * (len(compact) - 6) + compact[-4:]


def _mask_phone(number: str) -> str:
    digits = sum(char.isdigit() for char in number)
    if digits < 3:
        return "***"
    seen, out = 0, []
    for char in number:
        if char.isdigit():
            seen += 1
            char = char if seen > digits - 2 else "*"
        out.append(char)
    return "".join(out)


def _mask_name(name: str) -> str:
    return " ".join(word[:1] + "***" for word in name.split())


_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")
# In the two below the first character comes before the look-behind: the search then jumps
# from candidate to candidate instead of trying every position (several times faster).
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9].)[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")
# Candidates only, the digits are counted in _phone. Not after a word character, dot, hyphen
# or slash (ids, decimals, paths); not before a word character or a separator and a digit.
_PHONE = re.compile(r"[+0](?<![\w+@/.-].)\d(?:[ -]?(?:\(0\) ?)?\d){6,14}(?!\w|@|[.,:/-]\d)")


def _email(match: re.Match) -> str:
    return _mask_email(match.group())


def _iban(match: re.Match) -> str:
    return _mask_iban(match.group())


def _phone(match: re.Match) -> str:
    text = match.group()
    digits = sum(char.isdigit() for char in text)
    plausible = 9 <= digits <= 15 if text[0] == "+" else digits == 10
    return _mask_phone(text) if plausible and text.count("-") <= 1 else text


def _scrub(text: str) -> str:
    if "@" in text:  # the e-mail search is the slow one
        text = _EMAIL.sub(_email, text)
    return _PHONE.sub(_phone, _IBAN.sub(_iban, text))


def _mask_email_field(value: str) -> str:
    # The whole value goes, a display name with it: "Jan <jan@x.nl>" -> "j***@x.nl".
    addresses = _EMAIL.findall(value)
    return ", ".join(map(_mask_email, addresses)) if addresses else "***"


_PERSONAL_KEYS = {
    **dict.fromkeys(("email", "e_mail", "email_address", "to", "cc", "bcc", "recipient", "recipients",
                     "reply_to", "mail_to"), _mask_email_field),
    **dict.fromkeys(("phone", "phone_number", "mobile", "telephone"), _mask_phone),
    "iban": _mask_iban,
    **dict.fromkeys(("name", "payer_name", "debtor_name", "contact_name", "customer_name", "full_name",
                     "first_name", "last_name", "account_holder", "holder_name"), _mask_name),
}
_PERSONAL_SUFFIXES = (("_email", _mask_email_field), ("_phone", _mask_phone), ("_iban", _mask_iban))


@lru_cache(maxsize=1024)
def _rule(key: str):
    key = key.lower()
    if key in _PERSONAL_KEYS:
        return _PERSONAL_KEYS[key]
    return next((rule for suffix, rule in _PERSONAL_SUFFIXES if key.endswith(suffix)), None)


def _mask(key, value):
    rule = _rule(key) if isinstance(key, str) else None
    if isinstance(value, str):
        if rule is None:
            return _scrub(value)
        return rule(value) if value else value
    if value is None or isinstance(value, bool) or (isinstance(value, (int, float)) and rule is None):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_mask(key, item) for item in value]
    if isinstance(value, dict):
        return {k: _mask(k, v) for k, v in value.items()}
    # Anything else would be rendered by its repr (JSONRenderer's fallback): mask that.
    text = repr(value)
    return rule(text) if rule else _scrub(text)


_OWN_KEYS = frozenset({"timestamp", "level"})  # written by the processors before this one


def mask_personal_data(logger, method_name: str, event_dict: dict) -> dict:
    """structlog processor: masks personal data in every value (see the module docstring)."""
    for key, value in event_dict.items():
        if key not in _OWN_KEYS:
            event_dict[key] = _mask(key, value)
    return event_dict


# ----------------------------------------------------------------------------- logging


def configure_logging(level: str = "info", process: str = "dunning", log_file: Path | None = None) -> None:
    """Every line as JSON on stderr (or appended to ``log_file``): structlog's, and the
    stdlib logging's of Faust, aiokafka, Alembic and librdkafka (``streams.kafka.clients``
    hands librdkafka the ``librdkafka`` logger)."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    stream = sys.stderr
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - open for the process
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Masking after format_exc_info, so that the rendered traceback is masked too.
    rendering = [structlog.processors.format_exc_info, mask_personal_data, structlog.processors.JSONRenderer()]
    # Records of the stdlib logging become the same JSON lines, masked the same way.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    ))
    logging.basicConfig(handlers=[handler], level=numeric, force=True)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # seven lines of "setup plugin"
    for http in ("httpx", "httpx2", "httpcore", "httpcore2"):  # a line per request, with its URL
        logging.getLogger(http).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[*shared, *rendering],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(process=process)
    # An exception nobody caught is a log line too: JSON, masked, instead of a bare traceback.
    log = structlog.get_logger("dunning")
    sys.excepthook = lambda kind, error, trace: log.critical("uncaught exception", exc_info=(kind, error, trace))
    threading.excepthook = lambda hook: log.critical(
        "uncaught exception in a thread", thread=hook.thread.name if hook.thread else None,
        exc_info=(hook.exc_type, hook.exc_value, hook.exc_traceback))


# ----------------------------------------------------------------------------- metrics


class _MetricsHandler(MetricsHandler):
    """prometheus_client's handler answers every path; this one only /metrics."""

    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/metrics":
            self.send_error(404)
            return
        super().do_GET()


class _MetricsServer(ThreadingHTTPServer):
    def __init__(self, host: str, port: int, registry: CollectorRegistry):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        handler = type("Handler", (_MetricsHandler,), {"registry": registry})
        super().__init__((host, port), handler)


def serve_metrics(port: int, host: str = "127.0.0.1", groups: Iterable[ModuleType] = (),
                  version: str = "unknown") -> ThreadingHTTPServer | None:
    """Expose /metrics on host:port from a daemon thread; port 0 means no endpoint. The
    endpoint shows this process's own metrics only: those of the modules in ``groups``
    (each metric defined in them), the build info, and the process's CPU, memory and GC."""
    if not port:
        return None
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    build = Info("dunning_build", "Version of the running dunning platform", registry=registry)
    build.info({"version": version})
    for module in groups:
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                registry.register(value)
    server = _MetricsServer(host, port, registry)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    structlog.get_logger(__name__).info("metrics endpoint", host=host, port=port)
    return server
